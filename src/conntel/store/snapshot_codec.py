"""Snapshot bodies as zstd frames, compressed with a dictionary trained on snapshots.

A snapshot is 5-20 KB of JSON whose keys and much of whose shape repeat in every
one: a dictionary holding them makes each frame a fraction of its JSON (measured
in bench/RESULTS.md). Dictionaries ship with conntel (store/dictionaries/, made by
bench/train_dictionary.py), never change once released, and are named by the id
zstd writes into every frame's header: a frame names the dictionary it needs, so
new snapshots can move to a newer dictionary while old frames still read, and
`store copy` carries frames as they are. Binding: `zstandard` (chosen by
measurement, bench/RESULTS.md).
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources

import zstandard

LEVEL = 3  # zstd's default: a higher level gains little on snapshots for several times the time
# The dictionary new snapshots are compressed with (a file `<id>.zdict` in store/dictionaries/); 0: none.
CURRENT_DICTIONARY = 32768

_local = threading.local()  # zstandard's (de)compressor objects are not to be shared between threads


class UnknownDictionary(LookupError):
    """A frame needs a dictionary this conntel does not ship (written by a newer one)."""


@cache
def dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    try:
        data = (resources.files(__package__) / "dictionaries" / f"{dict_id}.zdict").read_bytes()
    except FileNotFoundError:
        raise UnknownDictionary(f"no zstd dictionary {dict_id}: the store was written by a newer conntel") from None
    return zstandard.ZstdCompressionDict(data)


def compress(json: bytes) -> bytes:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        if CURRENT_DICTIONARY:
            compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary(CURRENT_DICTIONARY))
        else:
            compressor = zstandard.ZstdCompressor(level=LEVEL)
        _local.compressor = compressor
    return compressor.compress(json)


def decompress(frame: bytes) -> bytes:
    decompressors: dict[int, zstandard.ZstdDecompressor] | None = getattr(_local, "decompressors", None)
    if decompressors is None:
        decompressors = _local.decompressors = {}
    dict_id = zstandard.get_frame_parameters(frame).dict_id
    decompressor = decompressors.get(dict_id)
    if decompressor is None:
        if dict_id:
            decompressor = zstandard.ZstdDecompressor(dict_data=dictionary(dict_id))
        else:
            decompressor = zstandard.ZstdDecompressor()
        decompressors[dict_id] = decompressor
    return decompressor.decompress(frame)
