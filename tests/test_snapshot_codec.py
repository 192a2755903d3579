"""Snapshot frames (store/snapshot_codec.py): exact round trips, the shipped dictionary named in each frame."""

from __future__ import annotations

import msgspec
import pytest
import zstandard

from conntel.client.metrics import sample_snapshots
from conntel.store import snapshot_codec


def test_frames_round_trip_exactly_and_name_the_current_dictionary() -> None:
    texts = [msgspec.json.encode(snapshot) for snapshot in sample_snapshots(5, 3, 30)]
    frames = [snapshot_codec.compress(text) for text in texts]
    assert [snapshot_codec.decompress(frame) for frame in frames] == texts
    assert {zstandard.get_frame_parameters(frame).dict_id for frame in frames} == {snapshot_codec.CURRENT_DICTIONARY}
    assert sum(map(len, frames)) < 0.2 * sum(map(len, texts))  # the dictionary earns its keep (~10%, bench/)


def test_a_frame_without_a_dictionary_still_reads_and_an_unknown_one_is_named() -> None:
    plain = zstandard.ZstdCompressor().compress(b'{"t":1}')
    assert snapshot_codec.decompress(plain) == b'{"t":1}'
    foreign = zstandard.ZstdCompressor(
        dict_data=zstandard.train_dictionary(1024, [b'{"t":%d,"x":"abc%d"}' % (i, i) for i in range(500)], dict_id=99)
    ).compress(b'{"t":1,"x":"abc1"}')
    with pytest.raises(snapshot_codec.UnknownDictionary, match="99"):
        snapshot_codec.decompress(foreign)
