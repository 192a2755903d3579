"""A server worker's garbage collector (conntel.server.run._tune_the_collector): what it holds once started
is frozen, and young collections wait for many more tracked objects than CPython's default 700."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from conntel.server.run import GC_YOUNG_THRESHOLD, _tune_the_collector


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_worker_freezes_what_it_holds_and_collects_the_young_less_often(collector_restored: None):
    _, older, oldest = gc.get_threshold()
    held = len(gc.get_objects())
    _tune_the_collector()
    assert gc.get_freeze_count() >= held * 0.9  # what was held is frozen (a collection may free a few)
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, older, oldest)
    garbage = []
    garbage.append(garbage)  # a cycle: still collected
    del garbage
    assert gc.collect() >= 1
