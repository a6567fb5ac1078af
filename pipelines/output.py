"""The DAG's sink: routes each document to docs/, rejects/ or quarantine/ and
returns per-batch counts, so stats come back from the workers without a second
pass over the data."""

from __future__ import annotations

import hashlib
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from stages.base import QUARANTINE_STAGE

KEPT, REMOVED, QUARANTINED = "kept", "removed", "quarantined"
DIRS = {KEPT: "docs", REMOVED: "rejects", QUARANTINED: "quarantine"}
EXAMPLES_PER_REASON = 3
SNIPPET_CHARS = 300

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


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Local paths and remote URIs (s3://, gs://, hdfs://) alike, via pyarrow."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def write_outputs(batch: pa.Table, out_dir: str, rejects_text: bool = True, summed: tuple[str, ...] = (),
                  binned: tuple[str, ...] = ()) -> pa.Table:
    """Write one batch's three parts as Parquet files named after the batch's first id;
    return its counts (see STATS_SCHEMA), with the `summed` and `binned` signal columns."""
    fs, root = filesystem(out_dir)
    stage = batch["drop_stage"]
    parts = {
        KEPT: pc.is_null(stage),
        QUARANTINED: pc.fill_null(pc.equal(stage, QUARANTINE_STAGE), False),
    }
    parts[REMOVED] = pc.invert(pc.or_(parts[KEPT], parts[QUARANTINED]))
    name = "part-" + hashlib.sha1(batch["id"][0].as_py().encode()).hexdigest()[:16] + ".parquet"
    stats = []
    for category, mask in parts.items():
        rows = batch.filter(mask)
        if not rows.num_rows:
            continue
        stats.append(summarise(rows, category, summed, binned))
        if category == REMOVED and not rejects_text:
            rows = rows.drop_columns(["text"])
        with fs.open_output_stream(f"{root}/{DIRS[category]}/{name}") as stream:
            pq.write_table(rows, stream, compression="zstd")
    return pa.concat_tables(stats) if stats else STATS_SCHEMA.empty_table()


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
        bins = pc.min_element_wise(pc.floor(pc.multiply(rows[name].cast(pa.float64()), BINS)), BINS - 1,
                                   skip_nulls=False)  # unscored documents fall in no bin
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
            "signals": pa.array([list(zip(signals, values)) for values in zip(*(
                grouped[f"{name}_sum"].to_pylist() for name in signals))] if signals else [[]] * grouped.num_rows,
                pa.map_(pa.string(), pa.int64())),
        },
        schema=STATS_SCHEMA,
    )


def _head(lists: pa.ChunkedArray) -> pa.Array:
    return pa.array([values[:EXAMPLES_PER_REASON] for values in lists.to_pylist()], pa.list_(pa.string()))
