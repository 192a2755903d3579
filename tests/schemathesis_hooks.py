"""Schemathesis hooks (loaded via SCHEMATHESIS_HOOKS): aim generated requests at real data.

Random account and connector ids would only ever meet 403/404; with these, the
generated queries, bodies and event references reach the real handlers.
"""

import os

import schemathesis


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if path_parameters is not None:
        if "account_id" in path_parameters:
            path_parameters["account_id"] = os.environ["CONNTEL_ACCOUNT"]
        if "connector_id" in path_parameters:
            path_parameters["connector_id"] = os.environ["CONNTEL_CONNECTOR"]
    return path_parameters
