"""Exact document dedup: documents whose normalised text is identical (case,
whitespace, punctuation and digits normalised as datatrove's `simplify_text`
does) form a cluster; the best-ranked one survives.

`normalize_digits` (default true, as datatrove) makes every digit run equal: pages that differ
only in prices, dates or counts are duplicates. Set it false to keep them apart."""

from __future__ import annotations

import pyarrow as pa
import xxhash

from stages.base import GlobalStage, RunContext, Strict, make_params
from stages.dedup import (
    BUCKET_SCHEMA,
    DUPLICATE_MARKS,
    DUPLICATE_OF,
    alive_rows,
    bucket_links,
    duplicate_marks,
    mark_duplicates,
    rank_keys,
)
from stages.text import simplify_text


class ExactDedupParams(Strict):
    normalize_digits: bool = True  # every digit run compares as "0"


def text_key_rows(batch: pa.Table, context: RunContext, normalize_digits: bool) -> pa.Table:
    """One bucket row per alive document: its normalised text's hash and its rank key."""
    rows = alive_rows(batch)
    keys = [xxhash.xxh3_64_digest(simplify_text(text, normalize_digits)) for text in rows["text"].to_pylist()]
    return pa.table(
        {
            "band": pa.array([0] * len(keys), pa.int32()),
            "key": pa.array(keys, pa.binary()),
            "rank": pa.array(rank_keys(rows, context), pa.string()),
            "signature": pa.array([b""] * len(keys), pa.binary()),
        },
        schema=BUCKET_SCHEMA,
    )


class ExactDedup(GlobalStage):
    name = "exact_dedup"
    writes = {DUPLICATE_OF: pa.string()}
    marks_schema = DUPLICATE_MARKS

    def __init__(self, **params):
        super().__init__()
        self.params = make_params(ExactDedupParams, params)

    def find(self, ds, context: RunContext):
        keys = ds.map_batches(
            text_key_rows,
            fn_kwargs={"context": context, "normalize_digits": self.params.normalize_digits},
            batch_format="pyarrow",
            batch_size=context.batch_size,
        )
        # One key per document: buckets share no document, each already a star around its survivor.
        marks, self.stats = duplicate_marks(bucket_links(keys), already_stars=True)
        return marks

    def mark(self, batch: pa.Table, marks: pa.Table) -> pa.Table:
        return mark_duplicates(batch, marks, self.name, "exact_duplicate")
