"""Exact document dedup: documents whose normalised text is identical (case,
whitespace, punctuation and digits normalised as datatrove's `simplify_text`
does) form a cluster; the best-ranked one survives."""

from __future__ import annotations

import pyarrow as pa
import xxhash

from stages.base import GlobalStage, RunContext
from stages.dedup import (
    BUCKET_SCHEMA, DUPLICATE_OF, alive_rows, apply_duplicates, bucket_links, duplicates_from_edges, rank_keys,
)
from stages.text import simplify_text


def text_key_rows(batch: pa.Table, context: RunContext) -> pa.Table:
    """One bucket row per alive document: its normalised text's hash and its rank key."""
    rows = alive_rows(batch)
    keys = [xxhash.xxh3_64_digest(simplify_text(text)) for text in rows["text"].to_pylist()]
    return pa.table({"band": pa.array([0] * len(keys), pa.int32()), "key": pa.array(keys, pa.binary()),
                     "rank": pa.array(rank_keys(rows, context), pa.string()),
                     "signature": pa.array([b""] * len(keys), pa.binary())}, schema=BUCKET_SCHEMA)


class ExactDedup(GlobalStage):
    name = "exact_dedup"
    writes = {DUPLICATE_OF: pa.string()}

    def apply(self, ds, context: RunContext):
        # The text is normalised and hashed once; rows are then marked by id, not by rehashing.
        keys = ds.map_batches(text_key_rows, fn_kwargs={"context": context}, batch_format="pyarrow",
                              batch_size=context.batch_size)
        duplicates, histogram = duplicates_from_edges(bucket_links(keys))
        self.stats = {"duplicates": len(duplicates), "cluster_sizes": histogram}
        return apply_duplicates(ds, duplicates, self.name, "exact_duplicate", context.batch_size)
