"""Opaque, signed List Events cursors.

A cursor is the (t, n) of the last event of a page, signed with a per-store
secret over the query it belongs to. A tampered cursor, or one from another
connector, account or query, fails the signature and is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

_POSITION = struct.Struct(">QQ")
_SIGNATURE_BYTES = 16


class CursorError(ValueError):
    pass


class CursorSigner:
    def __init__(self, secret: bytes):
        self._secret = secret

    def _sign(self, scope: str, position: bytes) -> bytes:
        return hmac.new(self._secret, scope.encode() + b"\0" + position, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, scope: str, t: int, n: int) -> str:
        position = _POSITION.pack(t, n)
        return base64.urlsafe_b64encode(position + self._sign(scope, position)).rstrip(b"=").decode()

    def decode(self, scope: str, cursor: str) -> tuple[int, int]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise CursorError("cursor is not one this server issued") from None
        position, signature = raw[: _POSITION.size], raw[_POSITION.size :]
        if len(position) != _POSITION.size or not hmac.compare_digest(signature, self._sign(scope, position)):
            raise CursorError("cursor is not one this server issued for this query")
        return _POSITION.unpack(position)
