"""Database URLs."""

from __future__ import annotations


def has_password(url: str) -> bool:
    return ":" in url.partition("://")[2].rpartition("@")[0]


def redacted(url: str) -> str:
    """The URL for messages and logs, without its password, even when it does not parse (a password with a '/')."""
    if not has_password(url):
        return url
    scheme, separator, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    return f"{scheme}{separator}{userinfo.split(':', 1)[0]}:***{at}{host}"
