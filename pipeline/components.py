"""Distributed connected components on Ray Data: the alternating large-star/small-star
algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014).

The graph is a dataset of directed edge rows ``(u, v)`` holding both directions of every
undirected edge. Each round is two hash shuffles on ``u``, and every step is vectorised numpy
over whole blocks, so no worker ever holds more than one partition of edges and the driver
holds none:

- **large-star**: each node ``u`` links its *larger* neighbours to ``m(u)``, the minimum of
  ``u`` and its neighbours;
- **small-star**: each node links itself and its *smaller* neighbours to the minimum of them.

The alternation converges in O(log² n) rounds to a forest of stars, each centred on its
component's smallest node. Convergence is checked on the large-star input: the graph is a
star forest exactly when no node has both a smaller neighbour and a second neighbour. A tiny
counter actor sums that per block; retried blocks only ever overcount, costing a round.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from pipeline.distributed import grouped_blocks, on_driver_node

EDGE_SCHEMA = pa.schema([pa.field("u", pa.int64()), pa.field("v", pa.int64())])
LABEL_SCHEMA = pa.schema([pa.field("node", pa.int64()), pa.field("root", pa.int64())])
MAX_ROUNDS = 64


class ComponentsDidNotConverge(RuntimeError):
    pass


@ray.remote(num_cpus=0)
class ViolationCounter:
    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, round_index: int, count: int) -> None:
        self.counts[round_index] = self.counts.get(round_index, 0) + count

    def get(self, round_index: int) -> int:
        return self.counts.get(round_index, 0)


def edges_table(u: np.ndarray, v: np.ndarray) -> pa.Table:
    """Both directions of each pair, deduplicated and without self loops."""
    a = np.concatenate([u, v]).astype(np.int64)
    b = np.concatenate([v, u]).astype(np.int64)
    keep = a != b
    pairs = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0) if keep.any() else None
    if pairs is None:
        return EDGE_SCHEMA.empty_table()
    return pa.table({"u": pairs[:, 0], "v": pairs[:, 1]}, schema=EDGE_SCHEMA)


def node_runs(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each node's run in a block sorted by ``u``."""
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    return starts, np.diff(np.r_[starts, len(u)])


def large_star_step(block: pa.Table) -> tuple[pa.Table, int]:
    """The large-star edges of a block sorted by ``u``, and how many of its nodes break the
    star-forest condition (a smaller neighbour and a second neighbour)."""
    u = block.column("u").to_numpy()
    v = block.column("v").to_numpy()
    if len(u) == 0:
        return EDGE_SCHEMA.empty_table(), 0
    starts, lengths = node_runs(u)
    nodes = u[starts]
    smallest_neighbour = np.minimum.reduceat(v, starts)
    violations = int(np.sum((smallest_neighbour < nodes) & (lengths >= 2)))
    minimum = np.repeat(np.minimum(smallest_neighbour, nodes), lengths)
    larger = v > u
    return edges_table(v[larger], minimum[larger]), violations


def large_star(block: pa.Table, *, round_index: int = 0, counter: Any = None) -> pa.Table:
    edges, violations = large_star_step(block)
    if counter is not None:
        ray.get(counter.add.remote(round_index, violations))
    return edges


def small_star(block: pa.Table) -> pa.Table:
    u = block.column("u").to_numpy()
    v = block.column("v").to_numpy()
    smaller = v < u
    u, v = u[smaller], v[smaller]
    if len(u) == 0:
        return EDGE_SCHEMA.empty_table()
    starts, lengths = node_runs(u)
    minimum = np.minimum.reduceat(v, starts)
    per_row = np.repeat(minimum, lengths)
    # Every smaller neighbour and the node itself link to the minimum among them.
    return edges_table(np.concatenate([v, u[starts]]), np.concatenate([per_row, minimum]))


def star_labels(block: pa.Table) -> pa.Table:
    """On a star forest: every node with its component's smallest node (roots map to self)."""
    u = block.column("u").to_numpy()
    v = block.column("v").to_numpy()
    if len(u) == 0:
        return LABEL_SCHEMA.empty_table()
    starts, _ = node_runs(u)
    nodes = u[starts]
    roots = np.minimum(np.minimum.reduceat(v, starts), nodes)
    return pa.table({"node": nodes, "root": roots}, schema=LABEL_SCHEMA)


def symmetric(batch: pa.Table) -> pa.Table:
    return edges_table(batch.column("u").to_numpy(), batch.column("v").to_numpy())


def sorted_by_node(table: pa.Table) -> pa.Table:
    return table.sort_by([("u", "ascending")])


def components_of_table(edges: pa.Table, max_rounds: int = MAX_ROUNDS) -> tuple[pa.Table, int]:
    """The same alternation with the whole graph as one block (a graph small enough for one
    worker): no shuffles, identical labels."""
    graph = sorted_by_node(symmetric(edges))
    for round_index in range(max_rounds):
        large, violations = large_star_step(graph)
        if violations == 0:
            return star_labels(graph), round_index + 1
        graph = sorted_by_node(small_star(sorted_by_node(large)))
    raise ComponentsDidNotConverge(
        f"connected components did not converge in {max_rounds} rounds of large/small star"
    )


def labels_in_process(edges: pa.Table) -> pa.Table:
    """``components_of_table``'s labels (same rows, same order: by node) from scipy's
    connected components over a sparse matrix, for a graph one worker holds whole. On a random
    2M-edge graph: 1.5 s and +254 MB of peak RSS, where the star alternation in one block,
    which copies the graph each round, took 32.7 s and +750 MB (BENCHMARKS.md)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    u = edges.column("u").to_numpy()
    v = edges.column("v").to_numpy()
    linked = u != v  # a self loop puts no node on an edge, as in ``symmetric``
    u, v = u[linked], v[linked]
    if len(u) == 0:
        return LABEL_SCHEMA.empty_table()
    nodes, index = np.unique(np.concatenate([u, v]), return_inverse=True)
    del u, v
    ones = np.ones(len(index) // 2, dtype=np.int8)
    matrix = coo_matrix((ones, (index[: len(ones)], index[len(ones) :])), shape=(len(nodes),) * 2)
    del index
    _, component = scipy_components(matrix.tocsr(), directed=True, connection="weak")
    # Nodes are sorted, so each component's first node is its smallest.
    _, first = np.unique(component, return_index=True)
    roots = nodes[first][component]
    return pa.table({"node": nodes, "root": roots}, schema=LABEL_SCHEMA)


SIZE_COLUMN = "size"


def with_sizes(labels: pa.Table) -> pa.Table:
    """``labels`` plus each node's component size (members, root included)."""
    roots = labels.column("root").to_numpy()
    _, index, counts = np.unique(roots, return_inverse=True, return_counts=True)
    return labels.append_column(SIZE_COLUMN, pa.array(counts[index], pa.int64()))


@ray.remote
def components_task(*tables: pa.Table, sizes: bool = False) -> pa.Table:
    labels = labels_in_process(pa.concat_tables(tables))
    return with_sizes(labels) if sizes else labels


def sized(labels: ray.data.Dataset, num_partitions: int) -> ray.data.Dataset:
    """Distributed labels plus component sizes: a count per root, joined back on the root
    (the join's task for a component holds 24 bytes a member, as the star step itself holds
    its edges)."""
    counts = labels.groupby("root").count().rename_columns({"count()": SIZE_COLUMN})
    return labels.join(
        counts, join_type="inner", num_partitions=num_partitions, on=("root",)
    ).materialize()


def connected_components(
    edges: ray.data.Dataset,
    num_partitions: int,
    max_rounds: int = MAX_ROUNDS,
    single_task_max_edges: int = 0,
    sizes: bool = False,
) -> tuple[ray.data.Dataset, int]:
    """``(node, root)`` for every node on an edge; root = the component's smallest node.

    ``edges`` has int64 columns ``u`` and ``v`` (either direction, duplicates allowed).
    Returns the labels (materialized) and the number of shuffle rounds it took (0 when the
    graph had at most ``single_task_max_edges`` edges and ran as one task: every shuffle
    costs seconds of fixed overhead, which dwarfs a graph of a few million edges).
    With ``sizes``, the labels also carry each node's component size (``size``).
    """
    if edges.count() <= single_task_max_edges:
        labels = components_task.remote(*edges.to_arrow_refs(), sizes=sizes)
        return ray.data.from_arrow_refs([labels]).materialize(), 0
    counter = ViolationCounter.options(scheduling_strategy=on_driver_node()).remote()
    graph = edges.map_batches(symmetric, batch_format="pyarrow").materialize()
    for round_index in range(max_rounds):
        large = grouped_blocks(
            graph,
            "u",
            partial(large_star, round_index=round_index, counter=counter),
            num_partitions,
        ).materialize()
        if ray.get(counter.get.remote(round_index)) == 0:
            labels = grouped_blocks(graph, "u", star_labels, num_partitions).materialize()
            return (sized(labels, num_partitions) if sizes else labels), round_index + 1
        graph = grouped_blocks(large, "u", small_star, num_partitions).materialize()
    raise ComponentsDidNotConverge(
        f"connected components did not converge in {max_rounds} rounds of large/small star"
    )
