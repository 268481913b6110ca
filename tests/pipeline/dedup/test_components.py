"""Large-star/small-star connected components: the per-block steps alone, then on Ray."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from pipeline.components import (
    components_of_table,
    connected_components,
    edges_table,
    labels_in_process,
    large_star,
    small_star,
    star_labels,
)


def union_find_roots(pairs: list[tuple[int, int]]) -> dict[int, int]:
    """Ground truth: every node on an edge -> smallest node of its component."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {node: find(node) for node in list(parent)}


def by_u(table: pa.Table) -> pa.Table:
    return table.sort_by([("u", "ascending"), ("v", "ascending")])


def local_components(pairs: list[tuple[int, int]]) -> dict[int, int]:
    """The algorithm with the whole graph as one block: no Ray."""
    u, v = (np.array(side, dtype=np.int64) for side in zip(*pairs, strict=True))
    graph = edges_table(u, v)
    for _ in range(64):
        converged = star_labels(by_u(graph))
        large = large_star(by_u(graph))
        if star_forest(graph):
            return dict(
                zip(converged["node"].to_pylist(), converged["root"].to_pylist(), strict=True)
            )
        graph = small_star(by_u(large))
    raise AssertionError("did not converge")


def star_forest(graph: pa.Table) -> bool:
    table = by_u(graph)
    u, v = table["u"].to_numpy(), table["v"].to_numpy()
    for node in np.unique(u):
        neighbours = v[u == node]
        if neighbours.min() < node and len(neighbours) >= 2:
            return False
    return True


def random_graph(seed: int, nodes: int, edges: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**12, size=nodes, replace=False)
    picks = rng.integers(0, nodes, size=(edges, 2))
    return [(int(ids[a]), int(ids[b])) for a, b in picks if a != b]


def test_edges_table_symmetrises_and_drops_self_loops():
    table = edges_table(np.array([1, 2, 3]), np.array([2, 1, 3]))
    assert sorted(zip(table["u"].to_pylist(), table["v"].to_pylist(), strict=True)) == [
        (1, 2),
        (2, 1),
    ]


def test_path_graph_collapses_to_a_star_on_its_smallest_node():
    pairs = [(5, 4), (4, 3), (3, 2), (2, 1), (1, 0)]
    assert local_components(pairs) == {n: 0 for n in range(6)}


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_match_union_find(seed):
    pairs = random_graph(seed, nodes=300, edges=220)
    assert local_components(pairs) == union_find_roots(pairs)


def sizes_of(roots: dict[int, int]) -> dict[int, int]:
    counts = Counter(roots.values())
    return {node: counts[root] for node, root in roots.items()}


@pytest.mark.parametrize(
    "single_task_max_edges",
    [pytest.param(0, marks=pytest.mark.slow), 10_000],  # shuffle rounds take ~15 s
    ids=["rounds", "one-task"],
)
def test_on_ray_labels_and_sizes_match_union_find(ray_session, single_task_max_edges):
    import ray

    pairs = random_graph(99, nodes=2000, edges=1500) + [(7, 8), (8, 9)]
    u, v = zip(*pairs, strict=True)
    edges = ray.data.from_arrow(pa.table({"u": list(u), "v": list(v)})).repartition(5)
    labels, rounds = connected_components(
        edges, num_partitions=4, single_task_max_edges=single_task_max_edges, sizes=True
    )
    got, sizes = {}, {}
    for batch in labels.iter_batches(batch_format="pyarrow"):
        got.update(zip(batch["node"].to_pylist(), batch["root"].to_pylist(), strict=True))
        sizes.update(zip(batch["node"].to_pylist(), batch["size"].to_pylist(), strict=True))
    expected = union_find_roots(pairs)
    assert got == expected
    assert sizes == sizes_of(expected) and max(sizes.values()) > 2
    assert (1 <= rounds <= 20) if single_task_max_edges == 0 else rounds == 0


@pytest.mark.parametrize("seed", range(4))
def test_in_process_labels_equal_the_star_alternation_row_for_row(seed):
    pairs = random_graph(seed, nodes=3000, edges=2500)
    pairs += [(5, 5), (6, 6), (6, 7), (7, 6), (7, 6)]  # self loops and duplicates
    u, v = (np.array(side, dtype=np.int64) for side in zip(*pairs, strict=True))
    edges = pa.table({"u": u, "v": v})

    labels = labels_in_process(edges)

    expected, _ = components_of_table(edges)
    assert labels.equals(expected)  # same rows in the same order (by node)
    assert dict(zip(labels["node"].to_pylist(), labels["root"].to_pylist(), strict=True)) == (
        {node: root for node, root in union_find_roots(pairs).items() if node != 5}
    )  # a node whose only edge is a self loop is on no edge


def test_in_process_labels_of_no_edges_or_only_self_loops_are_empty():
    for u, v in (([], []), ([3, 4], [3, 4])):
        edges = pa.table({"u": pa.array(u, pa.int64()), "v": pa.array(v, pa.int64())})
        assert labels_in_process(edges).num_rows == 0


def test_a_graph_under_the_single_task_limit_runs_as_one_task_with_equal_labels(ray_session):
    import ray

    pairs = random_graph(7, nodes=2000, edges=1500)
    u, v = zip(*pairs, strict=True)
    edges = ray.data.from_arrow(pa.table({"u": list(u), "v": list(v)})).repartition(3)

    labels, rounds = connected_components(edges, num_partitions=4, single_task_max_edges=10_000)

    assert rounds == 0
    got = {}
    for batch in labels.iter_batches(batch_format="pyarrow"):
        got.update(zip(batch["node"].to_pylist(), batch["root"].to_pylist(), strict=True))
    assert got == union_find_roots(pairs)
