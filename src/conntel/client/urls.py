"""Where a client finds the API: the default base URL, and a server's root accepted in its place."""

from __future__ import annotations

from urllib.parse import urlsplit

API_PATH = "/client/v4"
DEFAULT_URL = f"http://127.0.0.1:8787{API_PATH}"


def api_base(url: str) -> str:
    """The API base for `url`: the API base itself, or a server's root with /client/v4 appended.

    Anything else (another path, a query, no http(s) scheme or host) is a ValueError whose
    message says what to pass.
    """
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        parts = None
    path = parts.path.rstrip("/") if parts else ""
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or (path and not path.endswith(API_PATH))
    ):
        raise ValueError(
            f"Not a conntel API URL: {url!r}. Pass the server's root (http://HOST:PORT)"
            f" or its API base (http://HOST:PORT{API_PATH})."
        )
    return f"{parts.scheme}://{parts.netloc}{path or API_PATH}"
