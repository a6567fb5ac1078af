"""Machinery shared by the deduplication stages (not a stage itself).

Duplicates are decided globally (a shuffle by key across the Ray cluster),
but only the small result travels back: a map from each removed document's
id to the id of the document it duplicates. That map is broadcast to the
workers, which mark the rows. Survivors are chosen by `RunContext.rank_key`
(source priority, then id), so the choice does not depend on worker count,
block order or timing.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from stages.base import RunContext, mark_dropped, set_column

DUPLICATE_OF = "duplicate_of"


def alive_rows(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch["drop_stage"]))


def rank_keys(batch: pa.Table, context: RunContext) -> list[str]:
    return [context.rank_key(s, i) for s, i in zip(batch["source"].to_pylist(), batch["id"].to_pylist())]


KEYS_SCHEMA = pa.schema([("key", pa.uint64()), ("rank", pa.string())])
KeysOf = Callable[[pa.Table], list[list[int]]]  # alive rows -> hashed keys of each document


def _key_rows(batch: pa.Table, keys_of: KeysOf, context: RunContext) -> pa.Table:
    rows = alive_rows(batch)
    keys, ranks = [], []
    for doc_keys, rank in zip(keys_of(rows) if rows.num_rows else [], rank_keys(rows, context)):
        unique = set(doc_keys)  # a key repeated inside one document is not a duplicate of another
        keys.extend(unique)
        ranks.extend([rank] * len(unique))
    return pa.table({"key": pa.array(keys, pa.uint64()), "rank": pa.array(ranks, pa.string())}, schema=KEYS_SCHEMA)


def _shared(groups: pa.Table) -> pa.Table:
    return groups.filter(pc.greater(groups["documents"], 1))


def first_owner_of_shared_keys(ds, keys_of: KeysOf, context: RunContext) -> tuple[dict[int, str], Counter]:
    """For every key that several documents have: the best rank key among them.

    One hash shuffle with Arrow aggregations (min, count); only keys shared by
    two or more documents come back to the driver. Also returns how many
    documents share each key, as a histogram."""
    from ray.data.aggregate import Count, Min

    keys = ds.map_batches(_key_rows, fn_kwargs={"keys_of": keys_of, "context": context},
                          batch_format="pyarrow", batch_size=context.batch_size)
    groups = keys.groupby("key").aggregate(Min("rank", alias_name="first"), Count(alias_name="documents"))
    shared = groups.map_batches(_shared, batch_format="pyarrow").take_all()
    return {row["key"]: row["first"] for row in shared}, Counter(row["documents"] for row in shared)


def record_duplicates(batch: pa.Table, duplicate_of: list[str | None], stage: str, reason: str) -> pa.Table:
    """Set `duplicate_of` (keeping an earlier stage's values) and drop those rows for `reason`."""
    values = pa.array(duplicate_of, pa.string())
    if DUPLICATE_OF in batch.column_names:
        values = pc.if_else(pc.is_valid(values), values, batch[DUPLICATE_OF])
    batch = set_column(batch, DUPLICATE_OF, values)
    return mark_dropped(batch, stage, pa.array([reason if o else None for o in duplicate_of], pa.string()))


def mark_duplicates(batch: pa.Table, duplicates_ref, stage: str, reason: str) -> pa.Table:
    """Ray Data UDF: drop alive rows whose id is in the broadcast {id: duplicate_of} map."""
    duplicates: dict[str, str] = ray.get(duplicates_ref)
    alive = batch["drop_stage"].is_null().to_pylist()
    of = [duplicates.get(i) if a else None for i, a in zip(batch["id"].to_pylist(), alive)]
    return record_duplicates(batch, of, stage, reason)


def apply_duplicates(ds, duplicates: dict[str, str], stage: str, reason: str, batch_size: int):
    """Mark `duplicates` on the dataset; the map goes to the object store once."""
    return ds.map_batches(
        mark_duplicates,
        fn_kwargs={"duplicates_ref": ray.put(duplicates), "stage": stage, "reason": reason},
        batch_size=batch_size,
        batch_format="pyarrow",
    )


# Documents that share a bucket key are duplicate candidates. Minhash dedup has one row per
# (document, band) with the signature for verification; exact dedup one row per document (band 0,
# the normalised text's hash as key, no signature).
BUCKET_SCHEMA = pa.schema([("band", pa.int32()), ("key", pa.binary()), ("rank", pa.string()), ("signature", pa.binary())])
EDGES = pa.schema([("a", pa.string()), ("b", pa.string())])


def bucket_edges(block: pa.Table, threshold: float | None) -> pa.Table:
    """Link each member of a bucket to the bucket's best-ranked member, for every bucket of `block`
    (whole buckets: rows sharing (band, key) are all in it), vectorised over the block. With a
    `threshold`, only links whose signatures agree on at least that fraction of positions."""
    if block.num_rows < 2:
        return EDGES.empty_table()
    block = block.sort_by([("band", "ascending"), ("key", "ascending"), ("rank", "ascending")])
    band, key = block["band"].combine_chunks(), block["key"].combine_chunks()
    new = np.ones(block.num_rows, dtype=bool)  # row starts a bucket
    new[1:] = (pc.not_equal(band[1:], band[:-1]).to_numpy(zero_copy_only=False)
               | pc.not_equal(key[1:], key[:-1]).to_numpy(zero_copy_only=False))
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, block.num_rows))
    shared = sizes > 1
    if not shared.any():
        return EDGES.empty_table()
    # Members after the first of each shared bucket, and the first (best-ranked) of their bucket.
    members = np.concatenate([np.arange(s + 1, s + n) for s, n in zip(starts[shared], sizes[shared])])
    firsts = np.repeat(starts[shared], sizes[shared] - 1)
    if threshold is not None:
        rows = np.unique(np.concatenate([members, firsts]))
        where = np.searchsorted(rows, [members, firsts])
        sigs = np.frombuffer(b"".join(block["signature"].take(pa.array(rows)).to_pylist()), dtype=np.uint32)
        sigs = sigs.reshape(len(rows), -1)
        keep = (sigs[where[0]] == sigs[where[1]]).mean(axis=1) >= threshold
        members, firsts = members[keep], firsts[keep]
    rank = block["rank"]
    return pa.table({"a": rank.take(pa.array(firsts)), "b": rank.take(pa.array(members))}, schema=EDGES)


def bucket_links(buckets, threshold: float | None = None) -> list[tuple[str, str]]:
    """Sorted (best rank key, other rank key) links of a dataset of BUCKET_SCHEMA rows.

    A hash shuffle by (band, key) (as `groupby(...).map_groups` does), then whole blocks at once:
    one call per block rather than one per bucket, most buckets having a single document. Only
    the links come back to the driver."""
    partitions = buckets.context.default_hash_shuffle_parallelism
    edges = buckets.repartition(partitions, keys=["band", "key"]).map_batches(
        bucket_edges, fn_kwargs={"threshold": threshold},
        batch_format="pyarrow", batch_size=None,  # a batch is a whole block: buckets are not split
    ).take_all()
    return sorted({(e["a"], e["b"]) for e in edges})


class UnionFind:
    """Connected components of the candidate-pair graph.

    Runs on the driver over edges only (a few per duplicate document, never
    signatures or text), which stays small next to the corpus."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Keep the smaller rank key as root: the root is the cluster's survivor.
            low, high = (ra, rb) if ra < rb else (rb, ra)
            self.parent[high] = low

    def clusters(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        for root, members in out.items():
            if root not in members:
                members.append(root)
        return out


def duplicates_from_edges(edges: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, int]]:
    """Edges between rank keys -> ({removed id: surviving id}, cluster-size histogram)."""
    components = UnionFind()
    for a, b in edges:
        components.union(a, b)
    duplicates: dict[str, str] = {}
    histogram: Counter = Counter()
    for root, members in components.clusters().items():
        histogram[len(members)] += 1
        survivor = root.split("|", 1)[1]
        for member in members:
            if member != root:
                duplicates[member.split("|", 1)[1]] = survivor
    return duplicates, {str(size): count for size, count in sorted(histogram.items())}
