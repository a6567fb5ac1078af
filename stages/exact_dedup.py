"""Exact document dedup: documents whose normalised text is identical (case,
whitespace, punctuation and digits normalised by datatrove's `simplify_text`)
form a cluster; the best-ranked one survives."""

from __future__ import annotations

import pyarrow as pa
import ray
import xxhash
from datatrove.utils.text import simplify_text

from stages.base import GlobalStage, RunContext
from stages.dedup import DUPLICATE_OF, first_owner_of_shared_keys, rank_keys, record_duplicates


def text_keys(rows: pa.Table) -> list[list[int]]:
    return [[xxhash.xxh3_64_intdigest(simplify_text(text))] for text in rows["text"].to_pylist()]


def mark_exact(batch: pa.Table, owners_ref, context: RunContext, stage: str) -> pa.Table:
    owners: dict[int, str] = ray.get(owners_ref)
    alive = batch["drop_stage"].is_null().to_pylist()
    keys = text_keys(batch)
    of = []
    for is_alive, (key,), rank in zip(alive, keys, rank_keys(batch, context)):
        first = owners.get(key) if is_alive else None
        of.append(first.split("|", 1)[1] if first is not None and first != rank else None)
    return record_duplicates(batch, of, stage, "exact_duplicate")


class ExactDedup(GlobalStage):
    name = "exact_dedup"
    writes = {DUPLICATE_OF: pa.string()}

    def apply(self, ds, context: RunContext):
        owners, shared = first_owner_of_shared_keys(ds, text_keys, context)
        self.stats = {
            "duplicates": sum((n - 1) * clusters for n, clusters in shared.items()),
            "cluster_sizes": {str(n): c for n, c in sorted(shared.items())},
        }
        return ds.map_batches(mark_exact, fn_kwargs={"owners_ref": ray.put(owners), "context": context,
                                                     "stage": self.name},
                              batch_format="pyarrow", batch_size=context.batch_size)
