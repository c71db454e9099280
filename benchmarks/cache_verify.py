"""What verifying the on-disk input cache costs: opening a cache (every shard's sha256 checked, one read of each
shard) against reading its examples once and against writing it.

    python benchmarks/cache_verify.py --megabytes 512 [--json]

It writes a cache of float32 "images" (3 x 64 x 64, the digits recipe's size) into a temporary folder, then times
``DiskCache.open()`` (the verification), a full read of every example through the store, and the write, in one run;
the page cache is warm for the reads (the common case: the cache was just written or read).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from polygraft.inputs.cache.disk import DiskCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=512)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    example_bytes = 3 * 64 * 64 * 4
    count = max(1, args.megabytes * 2**20 // example_bytes)
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as root:
        cache = DiskCache(Path(root), {"source": "bench", "pipeline": "bench"}, size=count)
        started = time.perf_counter()
        writer = cache.writer()
        for index in range(count):
            writer.add({"inputs": {"pixel_values": torch.rand(3, 64, 64, generator=generator)}, "label": index % 10})
        writer.commit()
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        store = cache.open()
        verify_s = time.perf_counter() - started
        assert store is not None
        started = time.perf_counter()
        for index in range(len(store)):
            store[index]
        read_s = time.perf_counter() - started
        megabytes = store.nbytes / 2**20
    result = {"examples": count, "cache_mb": round(megabytes, 1), "write_s": round(write_s, 2),
              "verify_s": round(verify_s, 3), "verify_mb_per_s": round(megabytes / verify_s, 1),
              "read_all_s": round(read_s, 2), "verify_over_read": round(verify_s / read_s, 3)}
    print(json.dumps(result) if args.json else "\n".join(f"{key:18s} {value}" for key, value in result.items()))


if __name__ == "__main__":
    main()
