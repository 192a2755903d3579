"""JSON text kept as a client sent it: compaction, duplicate keys, comparison.

Payloads are stored and served as the very bytes that were posted, never
re-encoded (re-encoding would turn `\\u00e9` into `é`, `1.50` into `1.5`, cut a
30-digit number to a double and drop one of two equal keys). These helpers
work on JSON text that a parser has already accepted as valid: they find and
skip strings with one C-speed regex, so nothing inside a string is touched.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

# A JSON string token (the text is valid JSON, so no raw control characters inside).
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING_RE = re.compile(_STRING, re.S)
# Tokens: strings, structural characters, and scalars (numbers, true, false, null).
_TOKENS = re.compile(_STRING + rb'|[{}\[\],:]|[^ \t\n\r{}\[\],:"]+', re.S)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DuplicateKey(ValueError):
    """An object holds the same key twice; the message names it and where (`$[3].e`)."""


def compact(text: bytes) -> bytes:
    """JSON `text` without whitespace outside strings, every value written exactly as it was.

    A text without a single whitespace byte (what machines usually send) is returned as it is,
    unchecked: the decode that follows checks it. Otherwise msgspec.json.format copies strings
    and numbers verbatim (C speed); it raises msgspec.DecodeError when `text` is not JSON (and
    RecursionError when nested too deep).
    """
    if not _has_whitespace(text):
        return text
    return msgspec.json.format(text, indent=-1)


def _has_whitespace(text: bytes) -> bool:
    # Four memchr scans: a twentieth of the cost of compacting a text that has none.
    return b" " in text or b"\n" in text or b"\r" in text or b"\t" in text


def may_hold_nul(text: bytes) -> bool:
    """Whether a JSON text may hold a NUL character in a string. JSON can write one only as the six
    characters backslash, `u`, `0000` (a raw NUL byte is refused by the parser; looked for all the same).
    An escaped backslash followed by `u0000` also answers yes: a decode that checks for NUL then decides.
    Most texts have no backslash at all, which one memchr scan tells."""
    return b"\x00" in text or (b"\\" in text and b"\\u0000" in text)


def _members_in_text(text: bytes) -> int:
    # Every object member has exactly one `:` outside strings.
    return _STRING_RE.sub(b"", text).count(b":")


def _colons(text: bytes, escaped: bool) -> int:
    """Members of the objects in `text`, give or take the `:` inside strings.

    Without a backslash in the posted text, every string is written literally, and
    re-encoding what was parsed writes it the same way: the `:` inside strings are the
    same in both texts, so plain counts compare exactly (C speed). With escapes (`\\u003a`
    is a `:` too), strings are cut out before counting.
    """
    return _members_in_text(text) if escaped else text.count(b":")


def _ignore_float(_text: str) -> int:
    return 0


_plain_decoder = msgspec.json.Decoder()
# A parse that only needs to count members: floats (even 1e400, which a float cannot hold) become 0.
# Slower than the plain one (a Python call per float), so only for the texts the plain one refuses.
_counting_decoder = msgspec.json.Decoder(float_hook=_ignore_float)
_encode = msgspec.json.Encoder().encode
_UNCOUNTABLE = object()


def _count_only(text: bytes) -> Any:
    try:
        return _counting_decoder.decode(text)
    except msgspec.ValidationError:  # an integer beyond 64 bits (valid JSON, kept as sent): walk instead
        return _UNCOUNTABLE


def members_kept(text: bytes, reencoded: bytes) -> bool:
    """Whether `reencoded` (what a parser kept of the valid JSON `text`, encoded again) holds as many
    object members as `text`. Then no object of `text` repeats a key: a parser keeps one member per
    distinct key, so a duplicate shows as fewer members (each one `:`), and a parser that drops
    members (a typed one skipping unknown fields) only ever removes `:` too.
    """
    escaped = b"\\" in text
    return _colons(reencoded, escaped) == _colons(text, escaped)


def check_unique_keys(text: bytes) -> None:
    """Raise DuplicateKey if any object in the (valid) JSON `text`, at any depth, repeats a key.

    Fast test: members_kept of a generic parse. Only when it fails is the text walked (in
    Python) to name the key and its place.
    """
    try:
        parsed = _plain_decoder.decode(text)
    except msgspec.ValidationError:  # a float beyond a double (1e400): parse once more, counting only
        parsed = _count_only(text)
    if parsed is not _UNCOUNTABLE and members_kept(text, _encode(parsed)):
        return
    found = find_duplicate_key(text)
    if found is not None:
        path, key = found
        raise DuplicateKey(f"Object contains duplicate field `{key}` - at `{path}`")


def _key(token: bytes) -> str:
    return json.loads(token) if b"\\" in token else token[1:-1].decode()


def _step(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def find_duplicate_key(text: bytes) -> tuple[str, str] | None:
    """The first repeated key of valid JSON `text` as (path of its object, key), or None.

    Keys are compared as the strings they denote: `"\\u0078"` and `"x"` are the same key.
    """
    # Each open container: (path, seen keys of an object or None for an array, [next index]).
    stack: list[tuple[str, set[str] | None, list[int]]] = []
    path = "$"  # where the next value goes
    expect_key = False
    for token in _TOKENS.findall(text):
        first = token[:1]
        if first in (b"{", b"["):
            is_object = first == b"{"
            stack.append((path, set() if is_object else None, [0]))
            expect_key = is_object
            path = path if is_object else f"{path}[0]"
        elif first in (b"}", b"]"):
            stack.pop()
            expect_key = False
        elif first == b",":
            container, keys, index = stack[-1]
            if keys is None:
                index[0] += 1
                path = f"{container}[{index[0]}]"
            else:
                expect_key = True
        elif first == b":":
            expect_key = False
        elif expect_key:
            container, keys, _ = stack[-1]
            key = _key(token)
            assert keys is not None
            if key in keys:
                return container, key
            keys.add(key)
            path = _step(container, key)
    return None


def canonical(text: bytes) -> bytes:
    """Valid JSON `text` with every object's members sorted by key, and no whitespace outside strings.

    Two texts have the same canonical form when they are the same document up to key order and
    insignificant whitespace: every number, string and literal written exactly the same way.
    """
    # Each open container: (is_object, its finished members or elements, [key of the member being read]).
    stack: list[tuple[bool, list[Any], list[bytes | None]]] = []
    done: bytes | None = None
    for token in _TOKENS.findall(text):
        first = token[:1]
        if first in (b"{", b"["):
            stack.append((first == b"{", [], [None]))
            continue
        if first in (b",", b":"):
            continue
        if first in (b"}", b"]"):
            is_object, items, _ = stack.pop()
            if is_object:
                value = b"{" + b",".join(key + b":" + member for key, member in sorted(items)) + b"}"
            else:
                value = b"[" + b",".join(items) + b"]"
        else:
            value = token
        if not stack:
            done = value
            continue
        is_object, items, key = stack[-1]
        if not is_object:
            items.append(value)
        elif key[0] is None:
            key[0] = value
        else:
            items.append((key[0], value))
            key[0] = None
    if done is None:
        raise ValueError("not a JSON value")
    return done
