"""Which zstd binding, dictionary size and level for snapshots (store/snapshot_codec.py): measured, not guessed.

Trains dictionaries on one simulated fleet and measures another (other seed), for each Python binding
installed of `zstandard`, `pyzstd` and `backports.zstd` (the standard library's `compression.zstd` of
3.14), each used as it is meant for many small frames: one reusable compressor and decompressor object.
Rounds are interleaved (A/B/C in every round) and each figure is the median over rounds.

    python bench/zstd_bindings.py [--train 3000] [--test 3000] [--rounds 5]

Needs the bindings it compares in the running interpreter; conntel itself pins only the chosen one.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from collections.abc import Callable

import msgspec

from conntel.client.metrics import sample_snapshots

Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def zstandard_codec(dictionary: bytes, level: int) -> Codec:
    import zstandard

    data = zstandard.ZstdCompressionDict(dictionary)
    compressor = zstandard.ZstdCompressor(level=level, dict_data=data)
    decompressor = zstandard.ZstdDecompressor(dict_data=data)
    return compressor.compress, decompressor.decompress


def pyzstd_codec(dictionary: bytes, level: int) -> Codec:
    import pyzstd

    data = pyzstd.ZstdDict(dictionary)
    compressor = pyzstd.ZstdCompressor(level, data)
    flush = pyzstd.ZstdCompressor.FLUSH_FRAME

    def compress(json: bytes) -> bytes:
        return compressor.compress(json, flush)

    def decompress(frame: bytes) -> bytes:
        return pyzstd.decompress(frame, data)

    return compress, decompress


def backports_codec(dictionary: bytes, level: int) -> Codec:
    from backports import zstd

    data = zstd.ZstdDict(dictionary)
    compressor = zstd.ZstdCompressor(level, zstd_dict=data)
    flush = zstd.ZstdCompressor.FLUSH_FRAME

    def compress(json: bytes) -> bytes:
        return compressor.compress(json, flush)

    def decompress(frame: bytes) -> bytes:
        return zstd.decompress(frame, zstd_dict=data)

    return compress, decompress


BINDINGS = {"zstandard": zstandard_codec, "pyzstd": pyzstd_codec, "backports.zstd": backports_codec}


def available() -> dict[str, Callable[[bytes, int], Codec]]:
    found = {}
    for name, codec in BINDINGS.items():
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        found[name] = codec
    return found


def train(samples: list[bytes], size: int) -> bytes:
    import zstandard

    return zstandard.train_dictionary(size, samples, dict_id=32768).as_bytes()


def measure(codec: Codec, test: list[bytes]) -> tuple[float, float, float]:
    """(compressed/JSON bytes, µs to compress one, µs to decompress one)."""
    compress, decompress = codec
    started = time.perf_counter()
    frames = [compress(json) for json in test]
    middle = time.perf_counter()
    for frame in frames:
        decompress(frame)
    ended = time.perf_counter()
    ratio = sum(map(len, frames)) / sum(map(len, test))
    return ratio, 1e6 * (middle - started) / len(test), 1e6 * (ended - middle) / len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    samples = [msgspec.json.encode(s) for s in sample_snapshots(1, 100, args.train)]
    test = [msgspec.json.encode(s) for s in sample_snapshots(2, 100, args.test)]
    print(f"{len(test)} test snapshots, {sum(map(len, test)) / len(test):,.0f} bytes of JSON each on average")
    bindings = available()
    print("| binding | dictionary | level | bytes of JSON | compress µs | decompress µs |")
    print("|---|---|---|---|---|---|")
    for size in (0, 16 << 10, 32 << 10, 64 << 10, 110 << 10):
        dictionary = train(samples, size) if size else b""
        for level in (3, 6, 9, 19):
            if level > 3 and size not in (0, 32 << 10):
                continue
            results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in bindings}
            for _ in range(args.rounds):
                for name, make in bindings.items():
                    if not dictionary:
                        codec = make_plain(name, level)
                    else:
                        codec = make(dictionary, level)
                    results[name].append(measure(codec, test))
            for name, rows in results.items():
                ratio = statistics.median(r[0] for r in rows)
                comp = statistics.median(r[1] for r in rows)
                dec = statistics.median(r[2] for r in rows)
                print(f"| {name} | {size >> 10} KiB | {level} | {ratio:.1%} | {comp:.0f} | {dec:.0f} |")


def make_plain(name: str, level: int) -> Codec:
    """No dictionary: what a dictionary buys."""
    if name == "zstandard":
        import zstandard

        return zstandard.ZstdCompressor(level=level).compress, zstandard.ZstdDecompressor().decompress
    if name == "pyzstd":
        import pyzstd

        return (lambda json: pyzstd.compress(json, level)), pyzstd.decompress
    from backports import zstd

    return (lambda json: zstd.compress(json, level)), zstd.decompress


if __name__ == "__main__":
    main()
