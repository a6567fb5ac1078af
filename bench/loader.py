"""Loader throughput: `python -m bench.loader [--tokens 64M] [--seq-len 2048] [--batch-size 64]`.

Writes (once, cached under bench/work/, git-ignored) a shard folder of random
token ids in the format `pipelines.shards` writes (uint16, documents of 200 to
4000 tokens, 4 files), or reads an existing one with `--shards out/shards`,
then times `train.data.TokenLoader` in this one process (num_workers=0):
shuffled windows of seq_len+1 tokens copied out of the memory-mapped files
into int64 batches, as a training loop receives them. Counts seq_len tokens
per window (the tokens trained on). Ends with `tokens_per_s X (...: met)`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import pyarrow as pa

from pipelines.shards import shard_schema, write_arrow
from tokenizer.models import file_sha256
from train.data import TokenLoader

GOAL = 50e6  # tokens/s: ~50x what a GPU trains a 125M model at, so the loader is never the bottleneck
WORK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "work")


def synthetic_shards(tokens: int, files: int = 4, seed: int = 0) -> str:
    """A cached shard folder of `tokens` random uint16 ids."""
    out = os.path.join(WORK, f"loader-shards-{tokens}-{files}-v1")
    if os.path.exists(os.path.join(out, "manifest.json")):
        return out
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for index in range(files):
        size = tokens // files
        lengths = rng.integers(200, 4000, size // 200)
        lengths = lengths[: np.searchsorted(np.cumsum(lengths), size)]
        lengths = np.append(lengths, size - lengths.sum())
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = pa.array(rng.integers(0, 1 << 16, size, dtype=np.uint16))
        table = pa.Table.from_arrays(
            [
                pa.array([f"doc/{index}/{i}" for i in range(len(lengths))]),
                pa.array(["bench"] * len(lengths)),
                pa.ListArray.from_arrays(pa.array(offsets), values),
            ],
            schema=shard_schema(pa.uint16()),
        )
        path = os.path.join(out, f"train-{index:05d}.arrow")
        write_arrow(path, table)
        entries.append(
            {
                "split": "train",
                "path": os.path.basename(path),
                "documents": len(lengths),
                "tokens": size,
                "sha256": file_sha256(path),
            }
        )
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump({"dtype": "uint16", "files": entries}, handle, indent=2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loader", description=__doc__.splitlines()[0])
    parser.add_argument("--shards", help="an existing shard folder (default: synthetic, see --tokens)")
    parser.add_argument("--tokens", type=int, default=1 << 26, help="synthetic shard size (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=2048, help="tokens per window (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per batch (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=2000, help="batches timed (after 10 warm-up batches)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default: 0, this process)")
    args = parser.parse_args(argv)
    shards = args.shards or synthetic_shards(args.tokens)
    loader = TokenLoader(shards, seq_len=args.seq_len, batch_size=args.batch_size, num_workers=args.workers)
    batches = iter(loader)
    for _ in range(10):
        next(batches)
    started = time.perf_counter()
    checksum = 0
    for _ in range(args.steps):
        inputs, _targets = next(batches)
        checksum += int(inputs[0, 0])  # touch the batch
    seconds = time.perf_counter() - started
    tokens = args.steps * args.batch_size * args.seq_len
    print(
        f"shards {shards} ({int(loader.source.sizes.sum())} tokens), seq_len {args.seq_len}, "
        f"batch {args.batch_size}, workers {args.workers}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        file=sys.stderr,
    )
    print(f"command: python -m bench.loader {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"steps {args.steps} seconds {seconds:.3f} batches_per_s {args.steps / seconds:.1f}")
    rate = tokens / seconds
    print(
        f"tokens_per_s {rate:.0f} ({rate / 1e6:.1f}M/s; goal >= {GOAL / 1e6:.0f}M/s: "
        f"{'met' if rate >= GOAL else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
