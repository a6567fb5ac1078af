"""The phases' sinks. Every block is split into runs of consecutive rows of one input file
(ids `source/relpath#index`), each written as one part named by the file and its first row, so
the work directory can tell which input files a phase has finished (pipelines/workdir.py).

The last phase routes each document to docs/, rejects/ or quarantine/ and writes the part's
counts (STATS_SCHEMA) beside them: stats.json is folded from those, not from a second pass."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.workdir import WorkDir, part_name, unit_key, write_parquet_atomic
from stages.base import QUARANTINE_STAGE

KEPT, REMOVED, QUARANTINED = "kept", "removed", "quarantined"
DIRS = {KEPT: "docs", REMOVED: "rejects", QUARANTINED: "quarantine"}
EXAMPLES_PER_REASON = 3
SNIPPET_CHARS = 300
# What a sink returns to the driver: one row per part written (progress, never data).
PARTS_SCHEMA = pa.schema([("unit", pa.string()), ("documents", pa.int64()), ("bytes", pa.int64())])

STATS_SCHEMA = pa.schema(
    [
        ("category", pa.string()),
        ("source", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("lang", pa.string()),
        ("documents", pa.int64()),
        ("bytes", pa.int64()),
        ("example_ids", pa.list_(pa.string())),
        ("example_texts", pa.list_(pa.string())),
        # Stage signals (Stage.summed, Stage.binned): column -> sum, and "column#bin" -> documents
        ("signals", pa.map_(pa.string(), pa.int64())),
    ]
)
BINS = 10  # binned signals are scores in [0, 1]
# Per-stage time and volume (pipelines/corpus.py StageChain, ingest_files): one row per input file
# and batch carries the figures of its file's documents in that batch, through every phase's parts,
# until the last phase folds them into the part's counts (category TIMING: documents and bytes in,
# signals cpu_ns and wall_ns) and drops the column. A resumed run keeps the parts done before, and
# with them the time they took.
TIMING = "stage_timing"
TIMING_TYPE = pa.list_(
    pa.struct(
        [
            ("stage", pa.string()),
            ("documents", pa.int64()),
            ("bytes", pa.int64()),
            ("cpu_ns", pa.int64()),
            ("wall_ns", pa.int64()),
        ]
    )
)


def unit_runs(block: pa.Table) -> Iterator[tuple[str, int, pa.Table]]:
    """(input file, index of its first row, rows) for each run of consecutive rows of one file."""
    pieces = pc.split_pattern(block["id"], "#", max_splits=1, reverse=True)
    units = pc.list_element(pieces, 0)
    index = pc.cast(pc.list_element(pieces, 1), pa.int64())
    order = pc.sort_indices(pa.table({"unit": units, "index": index}), [("unit", "ascending"), ("index", "ascending")])
    block, units = block.take(order), units.take(order).to_pylist()
    index = index.take(order).to_numpy()
    breaks = np.flatnonzero((index[1:] != index[:-1] + 1) | (np.array(units[1:]) != np.array(units[:-1]))) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(units)]):
        yield units[start], int(index[start]), block.slice(start, stop - start)


def _parts(written: list[tuple[str, int, int]]) -> pa.Table:
    """(input file, documents, text bytes) per part written."""
    return pa.table(
        {
            "unit": [u for u, _, _ in written],
            "documents": [n for _, n, _ in written],
            "bytes": [b for _, _, b in written],
        },
        schema=PARTS_SCHEMA,
    )


def text_bytes(rows: pa.Table) -> int:
    return pc.sum(pc.binary_length(pc.cast(rows["text"], pa.binary()))).as_py() or 0


def write_phase(block: pa.Table, out_dir: str, phase: int) -> pa.Table:
    """Sink of an intermediate phase: every column of every row, for the next phase to read."""
    work = WorkDir(out_dir)
    fs, _ = work.fs_root
    written = []
    for unit, start, rows in unit_runs(block):
        write_parquet_atomic(fs, f"{work.phase_dir(phase)}/{unit_key(unit)}/{part_name(start, rows.num_rows)}", rows)
        written.append((unit, rows.num_rows, text_bytes(rows)))
    return _parts(written)


def with_unit(marks: pa.Table) -> pa.Table:
    """Ray Data UDF: a global stage's marks with the key of their document's input file."""
    units = pc.list_element(pc.split_pattern(marks["id"], "#", max_splits=1, reverse=True), 0)
    return marks.append_column("unit", pa.array([unit_key(u) for u in units.to_pylist()], pa.string()))


def write_marks(block: pa.Table, out_dir: str, phase: int) -> pa.Table:
    """Sink of a global stage's marks, shuffled by input file: one Parquet file per file's marks
    in `block`, named by its content (a retried task rewrites the same name)."""
    work = WorkDir(out_dir)
    fs, _ = work.fs_root
    block = block.sort_by([("unit", "ascending"), ("id", "ascending")])
    units = block["unit"].to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]]) if len(units) else np.zeros(0, np.int64)
    written = []
    for start, stop in zip(starts, np.r_[starts[1:], len(units)].astype(np.int64)):
        rows = block.slice(start, stop - start).drop_columns(["unit"])
        name = hashlib.sha1("\n".join(rows["id"].to_pylist()).encode()).hexdigest()[:16]
        write_parquet_atomic(fs, f"{work.marks_dir(phase)}/{units[start]}/{name}.parquet", rows)
        written.append((units[start], rows.num_rows, 0))  # marks: no text
    return _parts(written)


def categories(rows: pa.Table) -> dict[str, pa.Table]:
    stage = rows["drop_stage"]
    masks = {KEPT: pc.is_null(stage), QUARANTINED: pc.fill_null(pc.equal(stage, QUARANTINE_STAGE), False)}
    masks[REMOVED] = pc.invert(pc.or_(masks[KEPT], masks[QUARANTINED]))
    return {category: rows.filter(mask) for category, mask in masks.items()}


def write_final(
    block: pa.Table, out_dir: str, rejects_text: bool = True, summed: tuple[str, ...] = (), binned: tuple[str, ...] = ()
) -> pa.Table:
    """Sink of the last phase: each part's kept, removed and quarantined rows into the staged
    docs/, rejects/, quarantine/, then its counts (STATS_SCHEMA, with the `summed` and `binned`
    signal columns), written last as the part's completion record."""
    work = WorkDir(out_dir)
    fs, _ = work.fs_root
    written = []
    for unit, start, rows in unit_runs(block):
        key = unit_key(unit)
        stats = []
        if TIMING in rows.column_names:
            stats.append(summarise_timing(rows[TIMING], rows["source"][0].as_py()))
            rows = rows.drop_columns([TIMING])
        for category, part in categories(rows).items():
            if not part.num_rows:
                continue
            stats.append(summarise(part, category, summed, binned))
            if category == REMOVED and not rejects_text:
                part = part.drop_columns(["text"])
            write_parquet_atomic(fs, f"{work.staging}/{DIRS[category]}/part-{key}-{start:012d}.parquet", part)
        write_parquet_atomic(
            fs, f"{work.phase_dir('final')}/{key}/{part_name(start, rows.num_rows)}", pa.concat_tables(stats)
        )
        written.append((unit, rows.num_rows, text_bytes(rows)))
    return _parts(written)


def summarise(rows: pa.Table, category: str, summed: tuple[str, ...] = (), binned: tuple[str, ...] = ()) -> pa.Table:
    """Counts, bytes, signals and a few examples per (source, stage, reason, lang) of one part."""
    langs = rows["lang"] if "lang" in rows.column_names else pa.nulls(rows.num_rows, pa.string())
    keyed = pa.table(
        {
            "source": rows["source"],
            "stage": rows["drop_stage"],
            "reason": rows["drop_reason"],
            "lang": langs,
            "bytes": pc.binary_length(pc.cast(rows["text"], pa.binary())),
            "id": rows["id"],
            "snippet": pc.utf8_slice_codeunits(rows["text"], 0, SNIPPET_CHARS),
        }
    )
    signals = [name for name in summed if name in rows.column_names]
    for name in signals:
        keyed = keyed.append_column(name, pc.fill_null(rows[name], 0).cast(pa.int64()))
    for name in (name for name in binned if name in rows.column_names):
        bins = pc.min_element_wise(
            pc.floor(pc.multiply(rows[name].cast(pa.float64()), BINS)), BINS - 1, skip_nulls=False
        )  # unscored documents fall in no bin
        for b in range(BINS):  # one 0/1 column per bin: the group-by sums them into a histogram
            signals.append(f"{name}#{b}")
            keyed = keyed.append_column(signals[-1], pc.fill_null(pc.equal(bins, b), False).cast(pa.int64()))
    keep_examples = category != KEPT  # kept documents are the bulk: no example lists for them
    aggregations = [("id", "count"), ("bytes", "sum")] + [(name, "sum") for name in signals]
    if keep_examples:
        aggregations += [("id", "list"), ("snippet", "list")]
    grouped = keyed.group_by(["source", "stage", "reason", "lang"], use_threads=False).aggregate(aggregations)
    empty = pa.array([[]] * grouped.num_rows, pa.list_(pa.string()))
    return pa.table(
        {
            "category": pa.array([category] * grouped.num_rows, pa.string()),
            "source": grouped["source"],
            "stage": grouped["stage"],
            "reason": grouped["reason"],
            "lang": grouped["lang"],
            "documents": grouped["id_count"],
            "bytes": grouped["bytes_sum"],
            "example_ids": _head(grouped["id_list"]) if keep_examples else empty,
            "example_texts": _head(grouped["snippet_list"]) if keep_examples else empty,
            "signals": pa.array(
                [
                    list(zip(signals, values))
                    for values in zip(*(grouped[f"{name}_sum"].to_pylist() for name in signals))
                ]
                if signals
                else [[]] * grouped.num_rows,
                pa.map_(pa.string(), pa.int64()),
            ),
        },
        schema=STATS_SCHEMA,
    )


def summarise_timing(timing: pa.ChunkedArray, source: str) -> pa.Table:
    """One TIMING counts row per stage of a part's carried figures (see TIMING)."""
    figures = pa.Table.from_struct_array(pc.list_flatten(timing)).group_by("stage", use_threads=False)
    summed = figures.aggregate([(name, "sum") for name in ("documents", "bytes", "cpu_ns", "wall_ns")])
    n = summed.num_rows
    return pa.table(
        {
            "category": pa.array([TIMING] * n, pa.string()),
            "source": pa.array([source] * n, pa.string()),
            "stage": summed["stage"],
            "reason": pa.nulls(n, pa.string()),
            "lang": pa.nulls(n, pa.string()),
            "documents": summed["documents_sum"],
            "bytes": summed["bytes_sum"],
            "example_ids": pa.array([[]] * n, pa.list_(pa.string())),
            "example_texts": pa.array([[]] * n, pa.list_(pa.string())),
            "signals": pa.array(
                [
                    [("cpu_ns", cpu), ("wall_ns", wall)]
                    for cpu, wall in zip(summed["cpu_ns_sum"].to_pylist(), summed["wall_ns_sum"].to_pylist())
                ],
                pa.map_(pa.string(), pa.int64()),
            ),
        },
        schema=STATS_SCHEMA,
    )


def _head(lists: pa.ChunkedArray) -> pa.Array:
    return pa.array([values[:EXAMPLES_PER_REASON] for values in lists.to_pylist()], pa.list_(pa.string()))
