"""conntel.jsontext against Python's own JSON parser, on generated documents (Hypothesis).

The HTTP behaviour is tested in test_exact_payloads.py; here, the text helpers it rests
on are compared with a reference on many documents: duplicate keys are found exactly when
json.loads sees a key twice, whitespace goes only outside strings, and the canonical form
ignores key order and whitespace but nothing else.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conntel import jsontext

KEYS = st.sampled_from(["k", "x", "y", "a:b", 'q"', "\\", "é", " "])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.sampled_from(["1.50", "1e2", "-0.0", "1E+400"]).map(lambda text: _Number(text)),
    st.text(alphabet=st.sampled_from(["a", ":", '"', "\\", " ", "\n", "é", "{", "]", ","]), max_size=6),
)


class _Number(str):
    """A number written as given (json.dumps cannot write 1.50)."""


def documents(leaves: Any, keys: Any, width: int, max_leaves: int) -> Any:
    """A document as a tree: objects are lists of (key, value) pairs, so that keys may repeat."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=width),
            st.lists(st.tuples(keys, children), max_size=width).map(lambda pairs: ("object", pairs)),
        ),
        max_leaves=max_leaves,
    )


TREES = documents(SCALARS, KEYS, width=4, max_leaves=12)


def write(tree: Any, rng: random.Random | None, escape: bool) -> str:
    """JSON text of `tree`, with random whitespace (none without `rng`), and with `escape`
    the strings of even length written with non-ASCII characters as \\uXXXX."""

    def space() -> str:
        return rng.choice(["", "", " ", "\n ", "\t"]) if rng else ""

    def string(value: str) -> str:
        return json.dumps(value, ensure_ascii=escape and len(value) % 2 == 0)

    if isinstance(tree, tuple):
        members = [f"{space()}{string(k)}{space()}:{space()}{write(v, rng, escape)}{space()}" for k, v in tree[1]]
        return "{" + ",".join(members) + space() + "}"
    if isinstance(tree, list):
        return "[" + ",".join(space() + write(item, rng, escape) + space() for item in tree) + "]"
    if isinstance(tree, _Number):
        return str(tree)
    if isinstance(tree, str):
        return string(tree)
    return json.dumps(tree)


def has_duplicate(text: str) -> bool:
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        keys = [key for key, _ in items]
        found = found or len(keys) != len(set(keys))
        return dict(items)

    json.loads(text, object_pairs_hook=pairs, parse_constant=float)
    return found


def shuffled(tree: Any, rng: random.Random) -> Any:
    if isinstance(tree, tuple):
        pairs = [(k, shuffled(v, rng)) for k, v in tree[1]]
        rng.shuffle(pairs)
        return ("object", pairs)
    if isinstance(tree, list):
        return [shuffled(item, rng) for item in tree]
    return tree


@settings(max_examples=400, deadline=None)
@given(TREES, st.randoms(use_true_random=False), st.booleans())
def test_duplicate_keys_are_found_exactly_when_a_parser_sees_them(tree: Any, rng: random.Random, escape: bool):
    text = write(tree, rng, escape).encode()
    expected = has_duplicate(text.decode())
    assert (jsontext.find_duplicate_key(text) is not None) == expected
    try:
        jsontext.check_unique_keys(text)
        refused = False
    except jsontext.DuplicateKey:
        refused = True
    assert refused == expected


@settings(max_examples=400, deadline=None)
@given(TREES, st.randoms(use_true_random=False), st.booleans())
def test_compaction_drops_whitespace_outside_strings_only(tree: Any, rng: random.Random, escape: bool):
    text = write(tree, rng, escape).encode()
    compact = jsontext.compact(text)
    assert compact == write(tree, None, escape).encode()


@settings(max_examples=400, deadline=None)
@given(TREES, st.randoms(use_true_random=False))
def test_the_canonical_form_ignores_key_order_and_whitespace_only(tree: Any, rng: random.Random):
    text = write(tree, rng, escape=False).encode()
    if jsontext.find_duplicate_key(text) is not None:
        return  # refused at ingestion: never compared
    other = write(shuffled(tree, rng), rng, escape=False).encode()
    assert jsontext.canonical(text) == jsontext.canonical(other)
    assert jsontext.canonical(text) == jsontext.canonical(jsontext.compact(text))
    # Written differently (a number's spelling, an escape): not the same.
    if b"1.50" in text:
        assert jsontext.canonical(text) != jsontext.canonical(text.replace(b"1.50", b"1.5"))


NUL_TEXTS = st.text(alphabet=st.sampled_from(["\x00", "\\", "u", "0", "a", '"']), max_size=8)
NUL_TREES = documents(NUL_TEXTS, NUL_TEXTS, width=3, max_leaves=8)


def holds_nul(value: Any) -> bool:
    if isinstance(value, dict):
        return any("\x00" in key or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return isinstance(value, str) and "\x00" in value


@settings(max_examples=400, deadline=None)
@given(NUL_TREES, st.randoms(use_true_random=False), st.booleans())
def test_a_text_that_holds_a_nul_anywhere_is_never_said_not_to(tree: Any, rng: random.Random, escape: bool):
    """may_hold_nul lets a decode skip its NUL checks: it may say yes wrongly, never no."""
    text = write(tree, rng, escape).encode()
    if holds_nul(json.loads(text)):
        assert jsontext.may_hold_nul(text)
