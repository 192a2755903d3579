"""Train the zstd dictionary snapshots are stored with (store/snapshot_codec.py) and write it beside the codec.

    python bench/train_dictionary.py DICT_ID [--samples 3000] [--size 32768]

The samples are the simulator's snapshots (conntel.client.metrics.sample_snapshots: a fleet of 100
connectors, seed 1); bench/ measures on another seed. A dictionary never changes once released
(frames name theirs by id): train a new one under a new id, then point CURRENT_DICTIONARY at it.
Size and level were chosen by bench/zstd_bindings.py (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import zstandard

from conntel.client.metrics import sample_snapshots
from conntel.store import snapshot_codec

FOLDER = Path(snapshot_codec.__file__).parent / "dictionaries"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dict_id", type=int, help="a new id, 32768 to 2^31 - 1 (zstd's range for private ids)")
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--size", type=int, default=32 << 10)
    args = parser.parse_args()
    target = FOLDER / f"{args.dict_id}.zdict"
    if target.exists():
        raise SystemExit(f"{target} exists: a released dictionary never changes, take a new id")
    samples = [msgspec.json.encode(snapshot) for snapshot in sample_snapshots(1, 100, args.samples)]
    trained = zstandard.train_dictionary(args.size, samples, dict_id=args.dict_id)
    FOLDER.mkdir(exist_ok=True)
    target.write_bytes(trained.as_bytes())
    print(f"{target}: {len(trained.as_bytes()):,} bytes from {len(samples):,} snapshots")


if __name__ == "__main__":
    main()
