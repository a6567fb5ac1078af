"""Connected components on Ray (large-star / small-star) equal a plain union-find's, chains and
stars included, whatever the partitioning; marks name every non-survivor once."""

import random

import pyarrow as pa
import pyarrow.compute as pc
import ray

from stages.dedup import EDGES, _both_directions, connected_components, duplicate_marks, large_star, small_star


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


def edge_table(edges: list[tuple[str, str]]) -> pa.Table:
    ordered = [(max(a, b), min(a, b)) for a, b in edges]
    return pa.table(
        {"node": [n for n, _ in ordered], "parent": [p for _, p in ordered], "changed": [0] * len(ordered)},
        schema=EDGES,
    )


def dataset(edges: list[tuple[str, str]], blocks: int):
    return ray.data.from_arrow(edge_table(edges)).repartition(blocks)


def graph(
    seed: int, nodes: int = 200, chain: int = 16, star: int = 20, random_edges: int = 90
) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    names = [f"{rng.randrange(10**6):08d}|doc/{i}" for i in range(nodes)]
    edges = [(names[i], names[i + 1]) for i in range(chain)]  # the worst case for label propagation
    edges += [(names[chain + 1], names[i]) for i in range(chain + 2, chain + 2 + star)]
    rest = names[chain + star + 2 :]
    edges += [(rng.choice(rest), rng.choice(rest)) for _ in range(random_edges)]  # random clusters
    return [(a, b) for a, b in edges if a != b]


def test_star_rounds_reach_the_components_in_few_rounds():
    """The rounds themselves, on one block (as one shuffle partition sees them), no Ray."""
    for seed in range(1, 9):
        edges = graph(seed)
        links, rounds = edge_table(edges), 0
        while True:
            rounds += 1
            links = small_star(large_star(_both_directions(links)))
            if not pc.sum(links["changed"]).as_py():
                break
        assert dict(zip(links["node"].to_pylist(), links["parent"].to_pylist())) == components(edges)
        assert links.num_rows == len(components(edges)) and rounds <= 7  # O(log n): a 16-link chain


def test_components_on_ray_equal_union_find(ray_local):
    edges = graph(seed=1, nodes=40, chain=4, star=5, random_edges=20)
    stars = pa.concat_tables(ray.get(connected_components(dataset(edges, blocks=3)).to_arrow_refs()))
    got = dict(zip(stars["node"].to_pylist(), stars["parent"].to_pylist()))
    assert stars.num_rows == len(got)  # one link per node
    assert got == components(edges)


def test_marks_and_cluster_sizes(ray_local):
    a, b, c, d, e = (f"00000001|src/f#{i}" for i in range(5))
    marks, stats = duplicate_marks(dataset([(a, b), (c, b), (d, e)], blocks=2))
    table = pa.concat_tables(ray.get(marks.to_arrow_refs())).sort_by("id")
    assert table.to_pylist() == [
        {"id": "src/f#1", "duplicate_of": "src/f#0"},
        {"id": "src/f#2", "duplicate_of": "src/f#0"},
        {"id": "src/f#4", "duplicate_of": "src/f#3"},
    ]
    assert stats == {"duplicates": 3, "cluster_sizes": {"2": 1, "3": 1}}


def test_no_links_no_marks(ray_local):
    marks, stats = duplicate_marks(dataset([], blocks=1))
    assert marks.count() == 0 and stats == {"duplicates": 0, "cluster_sizes": {}}
