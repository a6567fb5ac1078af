"""Machinery shared by the deduplication stages (not a stage itself).

A dedup stage works in two steps (`GlobalStage.find`, then `GlobalStage.mark`):

- `find` runs on the cluster: hash shuffles by key (Ray Data `repartition(keys=...)`), then
  whole blocks at once, and the connected components of duplicate links by large-star /
  small-star rounds, each a shuffle. It returns a dataset of *marks*: one row per document
  to change, with its id. Only counts and histograms come back to the driver.
- The pipeline groups the marks by input file (another shuffle) into the run's work directory,
  and `mark` applies each file's marks to that file's rows as it reads them
  (pipelines/corpus.py): a join on document id that never moves the text.

Survivors are chosen by `RunContext.rank_key` (source priority, then id): a cluster's
survivor is its smallest rank key, whatever the worker count, block order or timing.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import RunContext, mark_dropped, set_column

if TYPE_CHECKING:
    from ray.data import Dataset

    from stages.base import GlobalStage

DUPLICATE_OF = "duplicate_of"
DUPLICATE_MARKS = pa.schema([("id", pa.string()), (DUPLICATE_OF, pa.string())])


def alive_rows(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch["drop_stage"]))


def rank_keys(batch: pa.Table, context: RunContext) -> list[str]:
    return [context.rank_key(s, i) for s, i in zip(batch["source"].to_pylist(), batch["id"].to_pylist())]


def ids_of(ranks: pa.Array) -> pa.Array:
    """The document ids inside rank keys (`priority|id`)."""
    return pc.list_element(pc.split_pattern(ranks, "|", max_splits=1), 1)


def shuffle(ds: Dataset, keys: list[str]) -> Dataset:
    """Hash-partition `ds` by `keys`: all rows of a key land in one block, read whole with
    `batch_size=None` (Ray's HashShuffleOperator never splits a partition's block)."""
    return ds.repartition(ds.context.default_hash_shuffle_parallelism, keys=keys)


def sorted_groups(table: pa.Table, keys: list[str], by: list[str]) -> tuple[pa.Table, np.ndarray]:
    """`table` sorted by `by` with repeated rows of `by` removed, and the index of each row's
    group (rows sharing `keys`, a prefix of `by`), counted from 0."""
    table = table.sort_by([(name, "ascending") for name in by])
    same = np.zeros((len(by), table.num_rows), dtype=bool)  # row equals the previous one in column `by[i]`
    for i, name in enumerate(by):
        column = table[name].combine_chunks()
        same[i, 1:] = pc.equal(column[1:], column[:-1]).to_numpy(zero_copy_only=False)
    table = table.filter(pa.array(~same.all(axis=0)))
    new_group = ~same[: len(keys)].all(axis=0)[~same.all(axis=0)]
    return table, np.cumsum(new_group) - 1


# ------------------------------------------------------------------------------------ candidate links

# Documents that share a bucket key are duplicate candidates. Minhash dedup has one row per
# (document, band) with the signature for verification; exact dedup one row per document (band 0,
# the normalised text's hash as key, no signature).
BUCKET_SCHEMA = pa.schema(
    [("band", pa.int32()), ("key", pa.binary()), ("rank", pa.string()), ("signature", pa.binary())]
)
# A link between two documents by rank key, `node` > `parent`; `changed` is for the rounds below.
EDGES = pa.schema([("node", pa.string()), ("parent", pa.string()), ("changed", pa.int64())])


def bucket_edges(block: pa.Table, threshold: float | None) -> pa.Table:
    """Link each member of a bucket to the bucket's best-ranked member, for every bucket of `block`
    (whole buckets: rows sharing (band, key) are all in it), vectorised over the block. With a
    `threshold`, only links whose signatures agree on at least that fraction of positions."""
    if block.num_rows < 2:
        return EDGES.empty_table()
    block = block.sort_by([("band", "ascending"), ("key", "ascending"), ("rank", "ascending")])
    band, key = block["band"].combine_chunks(), block["key"].combine_chunks()
    new = np.ones(block.num_rows, dtype=bool)  # row starts a bucket
    new[1:] = pc.not_equal(band[1:], band[:-1]).to_numpy(zero_copy_only=False) | pc.not_equal(
        key[1:], key[:-1]
    ).to_numpy(zero_copy_only=False)
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
    return _edges(rank.take(pa.array(members)), rank.take(pa.array(firsts)), np.zeros(len(members), np.int64))


def _edges(node, parent, changed: np.ndarray) -> pa.Table:
    return pa.table({"node": node, "parent": parent, "changed": changed}, schema=EDGES)


def bucket_links(buckets: Dataset, threshold: float | None = None) -> Dataset:
    """Links (EDGES) between the members of each bucket of a dataset of BUCKET_SCHEMA rows: a hash
    shuffle by (band, key), then whole blocks at once (one call per block, not per bucket: most
    buckets have a single document)."""
    return shuffle(buckets, ["band", "key"]).map_batches(
        bucket_edges, fn_kwargs={"threshold": threshold}, batch_format="pyarrow", batch_size=None
    )


# ------------------------------------------------------------------------------ connected components
# Large-star / small-star (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014):
# alternated, they turn any graph into one star per connected component, centred on its smallest
# node, in O(log n) rounds; each step is one shuffle by node, and memory per node is its edges.
# Here a node is a rank key, so a component's centre is its survivor.


def _both_directions(edges: pa.Table) -> pa.Table:
    return pa.table(
        {
            "node": pa.concat_arrays([edges["node"].combine_chunks(), edges["parent"].combine_chunks()]),
            "parent": pa.concat_arrays([edges["parent"].combine_chunks(), edges["node"].combine_chunks()]),
        }
    )


def large_star(block: pa.Table) -> pa.Table:
    """Each node u links its larger neighbours to m(u), the smallest of u and its neighbours
    (`block` holds every link of its nodes, in both directions)."""
    links, group = sorted_groups(block.select(["node", "parent"]), ["node"], ["node", "parent"])
    if not links.num_rows:
        return EDGES.empty_table()
    node, neighbour = links["node"], links["parent"]
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    smallest = neighbour.take(pa.array(starts[group]))  # sorted: the group's first neighbour
    m = pc.if_else(pc.less(smallest, node), smallest, node)
    larger = pc.greater(neighbour, node)
    changed = pc.not_equal(m, node).to_numpy(zero_copy_only=False).astype(np.int64)
    mask = larger.to_numpy(zero_copy_only=False)
    return _edges(neighbour.filter(larger), m.filter(larger), changed[mask])


def small_star(block: pa.Table) -> pa.Table:
    """Each node u links itself and its smaller neighbours to the smallest of them (`block` holds
    every link of its nodes to smaller ones: `node` > `parent`). A node's links count as changed
    if the large-star step before changed one of them, so one count per round tells both."""
    changed_before = block.group_by("node").aggregate([("changed", "max")])
    links, group = sorted_groups(block.select(["node", "parent"]), ["node"], ["node", "parent"])
    if not links.num_rows:
        return EDGES.empty_table()
    node, neighbour = links["node"], links["parent"]
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    m = neighbour.take(pa.array(starts))  # per group: its smallest neighbour
    others = np.ones(links.num_rows, dtype=bool)
    others[starts] = False  # the other neighbours are linked to m (changes), the node itself too
    firsts = node.take(pa.array(starts))
    before = changed_before["changed_max"].take(pc.index_in(firsts, value_set=changed_before["node"].combine_chunks()))
    return pa.concat_tables(
        [
            _edges(firsts, m, before.to_numpy(zero_copy_only=False)),
            _edges(
                neighbour.filter(pa.array(others)),
                m.take(pa.array(group[others])),
                np.ones(int(others.sum()), np.int64),
            ),
        ]
    )


def connected_components(edges: Dataset) -> Dataset:
    """One link (node, its component's smallest node) per node that is not the smallest: the
    fixed point of alternating large-star and small-star, reached when neither changes a link."""
    edges = edges.materialize()
    while edges.count():
        large = shuffle(edges.map_batches(_both_directions, batch_format="pyarrow"), ["node"]).map_batches(
            large_star, batch_format="pyarrow", batch_size=None
        )
        edges = shuffle(large, ["node"]).map_batches(small_star, batch_format="pyarrow", batch_size=None).materialize()
        if not value_counts(edges, "changed")[1]:  # a fixed point
            break
    return edges


def value_counts(ds: Dataset, column: str) -> Counter:
    """Rows per value of `column`, a column of few distinct values (0/1 flags, sizes), counted by
    a task per block: the driver gets one small Counter per block, and no shuffle is needed."""
    import ray

    count = ray.remote(num_cpus=0)(_value_counts)
    total: Counter = Counter()
    for counts in ray.get([count.remote(block, column) for block in ds.to_arrow_refs()]):
        total.update(counts)
    return total


def _value_counts(block: pa.Table, column: str) -> Counter:
    return Counter({row["values"]: row["counts"] for row in pc.value_counts(block[column]).to_pylist()})


def duplicate_marks(edges: Dataset, already_stars: bool = False) -> tuple[Dataset, dict]:
    """Marks (DUPLICATE_MARKS: every linked document but its component's survivor) and stats
    (duplicates, cluster-size histogram) of candidate links. `already_stars`: the links already link
    each document to its component's survivor (buckets that share no document)."""
    stars = edges.materialize() if already_stars else connected_components(edges)
    sizes = value_counts(stars.groupby("parent").count().map_batches(_cluster_sizes, batch_format="pyarrow"), "size")
    marks = stars.map_batches(_marks_of_stars, batch_format="pyarrow")
    return marks, {"duplicates": stars.count(), "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())}}


def _cluster_sizes(counts: pa.Table) -> pa.Table:
    return pa.table({"size": pc.add(counts["count()"], 1)})  # the survivor is not a linked node


def _marks_of_stars(stars: pa.Table) -> pa.Table:
    return pa.table({"id": ids_of(stars["node"]), DUPLICATE_OF: ids_of(stars["parent"])}, schema=DUPLICATE_MARKS)


# ---------------------------------------------------------------------------------------- marking


def marks_for(batch: pa.Table, marks: pa.Table) -> pa.Array:
    """For each row of `batch`: the index of its mark in `marks` (null when it has none)."""
    return pc.index_in(batch["id"], value_set=marks["id"].combine_chunks())


def record_duplicates(batch: pa.Table, duplicate_of: pa.Array, stage: str, reason: str) -> pa.Table:
    """Set `duplicate_of` (keeping an earlier stage's values) and drop those rows for `reason`."""
    values = duplicate_of
    if DUPLICATE_OF in batch.column_names:
        values = pc.if_else(pc.is_valid(values), values, batch[DUPLICATE_OF])
    batch = set_column(batch, DUPLICATE_OF, values)
    reasons = pc.if_else(pc.is_valid(duplicate_of), pa.scalar(reason), pa.scalar(None, pa.string()))
    return mark_dropped(batch, stage, reasons)


def mark_duplicates(batch: pa.Table, marks: pa.Table, stage: str, reason: str) -> pa.Table:
    """Drop the rows of `batch` that `marks` (DUPLICATE_MARKS) names, recording what they duplicate."""
    index = marks_for(batch, marks)
    of = marks[DUPLICATE_OF].combine_chunks().take(index) if marks.num_rows else pa.nulls(batch.num_rows, pa.string())
    return record_duplicates(batch, of, stage, reason)


def mark_table(stage: GlobalStage, table: pa.Table, context: RunContext, blocks: int = 1) -> pa.Table:
    """Run a global stage on a table that fits in memory (tests, benchmarks, notebooks): `find` on
    the session's Ray, then `mark` with all the marks at once. The pipeline applies each input
    file's marks to that file's rows instead (pipelines/corpus.py)."""
    import ray

    parts = ray.get(stage.find(ray.data.from_arrow(table).repartition(blocks), context).to_arrow_refs())
    return stage.mark(table, pa.concat_tables([stage.marks_schema.empty_table(), *parts]))
