"""What the row stages keep, to check that a change to them keeps the same documents.

    python -m bench.row_decisions dump OUT.parquet --mb 20      # the benchmark input, row stages, one core
    python -m bench.row_decisions dump OUT.parquet --corpus DIR  # a corpus output (docs/, rejects/, quarantine/)
    python -m bench.row_decisions compare BEFORE.parquet AFTER.parquet

`dump --mb` runs bench.pipeline_throughput's stages (configs/corpus.yaml's row filters, langid
allowing en+zh) over its cached input of that size in this process, without Ray, and writes one
row per document: id, drop_stage, drop_reason, every signal column and a digest of the final
text. `compare` joins two dumps on id and lists every document whose stage, reason, text or
signals (floats within 1e-6) differ; its exit status is 1 when any does.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FLOAT_TOLERANCE = 1e-6


def text_digests(texts: pa.ChunkedArray) -> pa.Array:
    return pa.array([None if t is None else hashlib.sha1(t.encode()).hexdigest()[:16] for t in texts.to_pylist()])


def decisions_of(table: pa.Table) -> pa.Table:
    """`table` without its bulky columns (text replaced by its digest) and without the per-stage
    timing rows carry (`stage_timing`), which differs between any two runs."""
    keep = [c for c in table.column_names if c not in ("text", "source", "url", "metadata", "stage_timing")]
    return table.select(keep).append_column("text_sha1", text_digests(table["text"]))


def dump_bench_input(mb: float, cores: int) -> pa.Table:
    from bench.inputs import DEFAULT_SHARED, WORK, build_pipeline_input
    from bench.ours_runner import ours_config
    from pipelines.corpus import StageChain
    from stages.base import document_batch

    os.makedirs(WORK, exist_ok=True)
    manifest = build_pipeline_input(DEFAULT_SHARED, mb, cores)
    config = ours_config(os.path.dirname(manifest["files"][0]), os.path.join(WORK, "unused"), 1)
    chain = StageChain(
        [(spec.name, spec.params) for spec in config.stages], config.execution.batch_size, config.ingest.max_batch_bytes
    )
    out, seconds = [], 0.0
    for path in manifest["files"]:
        with open(path, encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        for start in range(0, len(records), config.execution.batch_size):
            chunk = records[start : start + config.execution.batch_size]
            batch = document_batch([r["text"] for r in chunk])
            batch = batch.set_column(0, "id", pa.array([r["id"] for r in chunk]))
            started = time.perf_counter()
            batch = chain(batch)
            seconds += time.perf_counter() - started
            out.append(decisions_of(batch))
    print(
        f"{manifest['documents']:,} documents, {manifest['text_bytes'] / 1e6:.1f} MB: "
        f"row stages took {seconds:.1f} s on one core",
        file=sys.stderr,
    )
    return pa.concat_tables(out, promote_options="default")


def dump_corpus(out_dir: str) -> pa.Table:
    parts = []
    for kind in ("docs", "rejects", "quarantine"):
        for path in sorted(glob.glob(os.path.join(out_dir, kind, "*.parquet"))):
            parts.append(decisions_of(pq.read_table(path)))
    return pa.concat_tables(parts, promote_options="default")


def differences(before: pa.Table, after: pa.Table) -> list[str]:
    """One line per document (or missing id) that differs between the two dumps."""
    a = {row["id"]: row for row in before.to_pylist()}
    b = {row["id"]: row for row in after.to_pylist()}
    lines = [f"{i}: only in the first" for i in sorted(a.keys() - b.keys())]
    lines += [f"{i}: only in the second" for i in sorted(b.keys() - a.keys())]
    columns = [c for c in before.column_names if c in after.column_names and c != "id"]
    for doc_id in sorted(a.keys() & b.keys()):
        changed = []
        for column in columns:
            x, y = a[doc_id][column], b[doc_id][column]
            if isinstance(x, float) and isinstance(y, float):
                if not np.isclose(x, y, rtol=FLOAT_TOLERANCE, atol=FLOAT_TOLERANCE):
                    changed.append(f"{column} {x!r} -> {y!r}")
            elif x != y:
                changed.append(f"{column} {x!r} -> {y!r}")
        if changed:
            lines.append(f"{doc_id}: " + "; ".join(changed))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump")
    dump.add_argument("out")
    source = dump.add_mutually_exclusive_group(required=True)
    source.add_argument("--mb", type=float, help="bench.pipeline_throughput's input of this size")
    source.add_argument("--corpus", help="a corpus output folder")
    dump.add_argument("--cores", type=int, default=2, help="the input's number of files (as the benchmark's --cores)")
    compare = commands.add_parser("compare")
    compare.add_argument("before")
    compare.add_argument("after")
    args = parser.parse_args(argv)
    if args.command == "dump":
        table = dump_corpus(args.corpus) if args.corpus else dump_bench_input(args.mb, args.cores)
        pq.write_table(table, args.out)
        dropped = table["drop_stage"].drop_null()
        print(f"{table.num_rows:,} documents, {table.num_rows - len(dropped):,} kept -> {args.out}")
        return 0
    before, after = pq.read_table(args.before), pq.read_table(args.after)
    lines = differences(before, after)
    print("\n".join(lines[:200]))
    print(f"{len(lines)} of {max(before.num_rows, after.num_rows):,} documents differ")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
