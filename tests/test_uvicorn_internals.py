"""The uvicorn insides the guards and server/run.py rely on (guards.UVICORN_INTERNALS), checked before anything else.

After a uvicorn upgrade, the test of each internal that changed fails, naming it, before any behaviour test
does: conftest.py runs this module first. (Under parallel workers that order is not kept; the server then
refuses to start, naming the internal, which the last test here checks.) Fast: no server, no socket.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conntel.server.guards import (
    UVICORN_INTERNALS,
    GuardedHttpToolsProtocol,
    UvicornInternal,
    uvicorn_internal_problem,
    uvicorn_internals_problems,
)

PROTOCOL = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"


@pytest.mark.parametrize("internal", UVICORN_INTERNALS, ids=lambda internal: internal.target.partition(":")[2])
def test_uvicorn_internal_is_as_the_guards_expect(internal: UvicornInternal) -> None:
    problem = uvicorn_internal_problem(internal)
    assert problem is None, problem


def test_every_override_of_uvicorns_protocol_is_listed_with_its_parameters() -> None:
    listed = {internal.target: internal for internal in UVICORN_INTERNALS}
    overridden = [
        name
        for name, value in vars(GuardedHttpToolsProtocol).items()
        if inspect.isfunction(value) and hasattr(HttpToolsProtocol, name)
    ]
    assert "data_received" in overridden
    for name in overridden:
        internal = listed.get(f"{PROTOCOL}.{name}")
        assert internal is not None, f"GuardedHttpToolsProtocol.{name} overrides uvicorn: list it in UVICORN_INTERNALS"
        assert internal.parameters is not None, f"{internal.target}: give the parameters it is overridden with"
        ours = list(inspect.signature(getattr(GuardedHttpToolsProtocol, name)).parameters)[1:]
        if ours not in (["args", "kwargs"], list(internal.parameters)):
            pytest.fail(f"GuardedHttpToolsProtocol.{name} takes {ours}, UVICORN_INTERNALS says {internal.parameters}")


@pytest.mark.parametrize(
    ("internal", "named"),
    [
        (UvicornInternal(f"{PROTOCOL}.send_400_response", "-", parameters=("msg", "status")), "takes (msg)"),
        (UvicornInternal(f"{PROTOCOL}.on_status", "-", parameters=()), "has no HttpToolsProtocol.on_status"),
        (UvicornInternal("uvicorn:Config.__init__", "-", accepts=("http", "guards")), "no longer accepts guards"),
        (UvicornInternal("uvicorn.protocols.http.h9_impl:H9Protocol", "-"), "No module named"),
        (UvicornInternal(f"{PROTOCOL}.header_bytes", "-", instance=True), "no probe for header_bytes"),
    ],
    ids=["parameters", "method", "keyword", "module", "attribute"],
)
def test_a_changed_internal_is_named_with_what_changed(internal: UvicornInternal, named: str) -> None:
    problem = uvicorn_internal_problem(internal)
    assert problem is not None and problem.startswith(f"uvicorn changed: {internal.target} "), problem
    assert named in problem, problem


def test_the_installed_uvicorn_passes_the_whole_check() -> None:
    assert uvicorn_internals_problems() == []


def test_the_server_refuses_to_start_on_a_uvicorn_that_changed(tmp_path: Path) -> None:
    # A uvicorn whose protocol no longer has the hook malformed HTTP goes through (as an upgrade might bring).
    script = (
        "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
        "del HttpToolsProtocol.send_400_response\n"
        "from conntel.cli import main\n"
        f"main(['serve', '--db', {str(tmp_path / 'never.db')!r}, '--port', '{free_port()}'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("Error: uvicorn changed: " + PROTOCOL + ".send_400_response"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, no traceback
    assert not (tmp_path / "never.db").exists()  # refused before the store was opened
