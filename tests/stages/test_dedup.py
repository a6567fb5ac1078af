"""Connected components on Ray (large-star / small-star) equal a plain union-find's, chains and
stars included, whatever the partitioning; marks name every non-survivor once."""

import random

import pyarrow as pa
import pytest
import ray

from stages.dedup import EDGES, connected_components, duplicate_marks


def components(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Reference: node -> smallest node of its component, for nodes that are not the smallest."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    nodes = {n for edge in edges for n in edge}
    return {n: find(n) for n in nodes if find(n) != n}


def dataset(edges: list[tuple[str, str]], blocks: int):
    ordered = [(max(a, b), min(a, b)) for a, b in edges]
    table = pa.table({"node": [n for n, _ in ordered], "parent": [p for _, p in ordered],
                      "changed": [0] * len(ordered)}, schema=EDGES)
    return ray.data.from_arrow(table).repartition(blocks)


def graph(seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    names = [f"{rng.randrange(10**6):08d}|doc/{i}" for i in range(400)]
    edges = [(names[i], names[i + 1]) for i in range(60)]  # a long chain: the worst case for label propagation
    edges += [(names[100], names[i]) for i in range(101, 140)]  # a star
    edges += [(rng.choice(names[150:]), rng.choice(names[150:])) for _ in range(180)]  # random clusters
    return [(a, b) for a, b in edges if a != b]


@pytest.fixture(autouse=True)
def few_shuffle_partitions():
    context = ray.data.DataContext.get_current()
    before = context.default_hash_shuffle_parallelism
    context.default_hash_shuffle_parallelism = 3
    yield
    context.default_hash_shuffle_parallelism = before


@pytest.mark.parametrize("seed,blocks", [(1, 1), (2, 4)])
def test_components_equal_union_find(ray_local, seed, blocks):
    edges = graph(seed)
    stars = pa.concat_tables(ray.get(connected_components(dataset(edges, blocks)).to_arrow_refs()))
    got = dict(zip(stars["node"].to_pylist(), stars["parent"].to_pylist()))
    assert stars.num_rows == len(got)  # one link per node
    assert got == components(edges)


def test_marks_and_cluster_sizes(ray_local):
    a, b, c, d, e = (f"00000001|src/f#{i}" for i in range(5))
    marks, stats = duplicate_marks(dataset([(a, b), (c, b), (d, e)], blocks=2))
    table = pa.concat_tables(ray.get(marks.to_arrow_refs())).sort_by("id")
    assert table.to_pylist() == [{"id": "src/f#1", "duplicate_of": "src/f#0"},
                                 {"id": "src/f#2", "duplicate_of": "src/f#0"},
                                 {"id": "src/f#4", "duplicate_of": "src/f#3"}]
    assert stats == {"duplicates": 3, "cluster_sizes": {"2": 1, "3": 1}}


def test_no_links_no_marks(ray_local):
    marks, stats = duplicate_marks(dataset([], blocks=1))
    assert marks.count() == 0 and stats == {"duplicates": 0, "cluster_sizes": {}}
