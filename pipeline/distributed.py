"""The Ray Data building blocks global stages share: keyed blocks, partition sizing, drops.

- ``grouped_blocks`` hash-partitions a dataset on a key, sorted, and runs a vectorised
  function once per block. Every row of a key lands in one block, which is what Ray's own
  ``map_groups`` relies on; unlike ``map_groups`` it costs no Python call per group, which
  matters when the groups are millions of LSH buckets.
- ``mark_drops`` joins a table of losers (``_uid`` plus detail columns) back onto the corpus
  and stamps ``drop_reason``. The join is a hash shuffle whose partition count grows with the
  data, so no reduce task holds more than ``run.shuffle_partition_bytes`` of it. A losers
  table of at most ``BROADCAST_BYTES`` is instead looked up by every block of the corpus
  (a broadcast join): one copy in the object store, no shuffle.
- ``fits_one_task`` tells a global stage when its whole input is small enough to be decided
  in one task (``single_task``) with the same functions the distributed path runs per block:
  below that size Ray's fixed cost per shuffle dominates the run.

Both run their per-block function through ``releasing``: a worker hands what the block freed
back to the system before its next task (pipeline.memory).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from pipeline.dedup_keys import UID_COLUMN, row_uids
from pipeline.memory import releasing
from pipeline.schema import FLOW_SCHEMA
from pipeline.stage import GlobalContext, StageCounts


def on_driver_node() -> Any:
    """The scheduling of a run's bookkeeping actors (the tally, counters): the driver's
    node, which the run cannot outlive anyway. Left to Ray, a 0-CPU actor may land on any
    worker node, and losing that node loses the counts with it: a restarted actor would come
    back empty, so the run could only fail or miscount. Ray Train pins its controller the
    same way."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def partitions_for(dataset: ray.data.Dataset, context: GlobalContext) -> int:
    """Enough hash partitions that each holds at most ``context.partition_bytes`` of
    ``dataset``, and at least one per worker. ``size_bytes`` is block metadata on a
    materialized dataset: no data moves."""
    return partitions_for_bytes(dataset.size_bytes() or 0, context)


def partitions_for_bytes(
    size: float, context: GlobalContext, partition_bytes: float | None = None
) -> int:
    """Enough hash partitions that each holds at most ``partition_bytes`` (by default
    ``context.partition_bytes``) of ``size`` bytes, and at least one per worker."""
    target = context.partition_bytes if partition_bytes is None else partition_bytes
    return max(1, context.workers, math.ceil(size / target))


def grouped_blocks(
    dataset: ray.data.Dataset,
    key: str | list[str],
    fn: Callable[[pa.Table], pa.Table],
    num_partitions: int,
) -> ray.data.Dataset:
    """``fn`` over whole blocks of a hash partitioning on ``key`` (one column or several),
    each block sorted by it."""
    keys = [key] if isinstance(key, str) else list(key)
    return dataset.repartition(num_partitions, keys=keys, sort=True).map_batches(
        releasing(fn), batch_size=None, batch_format="pyarrow"
    )


def with_uid(batch: pa.Table, file_index: dict[str, int]) -> pa.Table:
    return batch.append_column(UID_COLUMN, pa.array(row_uids(batch, file_index), pa.int64()))


def drop_details(batch: pa.Table, hit: np.ndarray, columns: tuple[str, ...]) -> list[str | None]:
    values = {name: batch.column(name).to_pylist() for name in columns}
    details: list[str | None] = []
    for row in range(batch.num_rows):
        if not hit[row]:
            details.append(None)
            continue
        detail = {name: values[name][row] for name in columns}
        if isinstance(detail.get("similarity"), float):
            detail["similarity"] = round(detail["similarity"], 4)
        details.append(json.dumps(detail, ensure_ascii=False, sort_keys=True))
    return details


def apply_losers(
    batch: pa.Table,
    *,
    reason: str,
    detail_columns: tuple[str, ...],
    position: int,
    tally: Any,
    cluster_column: str | None = None,
) -> pa.Table:
    """Stamp ``reason`` on live rows the join matched to a loser; drop the join's columns.
    With ``cluster_column``, matched live rows (keepers too) get ``cluster_id`` from it."""
    started = time.perf_counter()
    was_alive = pc.is_null(batch.column("drop_reason")).to_numpy(zero_copy_only=False)
    matched = pc.is_valid(batch.column(detail_columns[0])).to_numpy(zero_copy_only=False)
    hit = was_alive & matched
    reasons = batch.column("drop_reason").to_pylist()
    details = batch.column("drop_detail").to_pylist()
    new_details = drop_details(batch, hit, detail_columns)
    for row in np.flatnonzero(hit):
        reasons[row] = reason
        details[row] = new_details[row]
    batch = batch.set_column(
        batch.schema.get_field_index("drop_reason"), "drop_reason", pa.array(reasons, pa.string())
    )
    batch = batch.set_column(
        batch.schema.get_field_index("drop_detail"), "drop_detail", pa.array(details, pa.string())
    )
    if cluster_column is not None:
        clusters = batch.column(cluster_column).to_pylist()
        current = batch.column("cluster_id").to_pylist()
        merged = [
            cluster if alive_row and cluster is not None else old
            for cluster, old, alive_row in zip(clusters, current, was_alive, strict=True)
        ]
        batch = batch.set_column(
            batch.schema.get_field_index("cluster_id"), "cluster_id", pa.array(merged, pa.string())
        )
    report_counts(tally, position, int(was_alive.sum()), {reason: int(hit.sum())}, started)
    return batch.select(FLOW_SCHEMA.names).cast(FLOW_SCHEMA)


def report_counts(
    tally: Any, position: int, seen: int, dropped: dict[str, int], started: float
) -> None:
    if tally is None:
        return
    counts = StageCounts(seen=seen, kept=seen - sum(dropped.values()))
    counts.dropped.update({k: v for k, v in dropped.items() if v})
    counts.seconds = time.perf_counter() - started
    ray.get(tally.stage_ran.remote(position, counts.to_dict()))


def report_findings(tally: Any, position: int, findings: Counter) -> None:
    """Findings a global stage computed on the driver (a per-stratum table, say)."""
    if tally is None or not findings:
        return
    ray.get(tally.stage_ran.remote(position, StageCounts(findings=findings).to_dict()))


def count_alive(batch: pa.Table, *, position: int, tally: Any) -> pa.Table:
    """For a stage that dropped nothing: the funnel still shows what it saw."""
    seen = int(pc.sum(pc.is_null(batch.column("drop_reason"))).as_py() or 0)
    report_counts(tally, position, seen, {}, time.perf_counter())
    return batch


# Losers tables up to this size are broadcast to the corpus's blocks rather than joined
# (Spark's broadcast-join threshold is 10 MB). A table this size holds ~300k losers.
BROADCAST_BYTES = 16 * 1024 * 1024


def fits_one_task(dataset: ray.data.Dataset, context: GlobalContext, row_bytes: int = 0) -> bool:
    """Is ``dataset`` (materialized) small enough for one task: its bytes plus ``row_bytes``
    of working data per row (a near-dedup signature) within ``context.single_task_bytes``?
    Sizes are block metadata: no data moves."""
    if context.single_task_bytes <= 0:
        return False
    size = (dataset.size_bytes() or 0) + dataset.count() * row_bytes
    return size <= context.single_task_bytes


@ray.remote
def single_task(fn: Callable[..., Any], *blocks: pa.Table, **kwargs: Any) -> Any:
    """``fn(table, **kwargs)`` over the blocks of a dataset concatenated into one table."""
    table = pa.concat_tables(blocks, promote_options="permissive") if blocks else None
    return releasing(fn)(table, **kwargs)


def in_one_task(
    dataset: ray.data.Dataset, fn: Callable[..., Any], *, num_returns: int = 1, **kwargs: Any
) -> Any:
    """``fn`` over the whole of ``dataset`` (materialized; see ``fits_one_task``) in one Ray
    task: no Ray Data execution, no shuffle. Returns its object ref(s)."""
    return single_task.options(num_returns=num_returns).remote(
        fn, *dataset.to_arrow_refs(), **kwargs
    )


def looked_up_losers(
    batch: pa.Table,
    *,
    losers: Any,
    file_index: dict[str, int],
    columns: tuple[str, ...],
    **apply: Any,
) -> pa.Table:
    """``apply_losers`` on a block given the broadcast losers table (an object ref): the
    columns a left outer join on the uid would have added, found by lookup."""
    table = ray.get(losers)
    keyed = with_uid(batch, file_index)
    found = pc.index_in(keyed.column(UID_COLUMN), value_set=table.column(UID_COLUMN))
    for name in columns:
        keyed = keyed.append_column(name, table.column(name).take(found))
    return apply_losers(keyed, **apply)


def mark_drops(
    dataset: ray.data.Dataset,
    losers: ray.data.Dataset | pa.Table,
    *,
    reason: str,
    detail_columns: tuple[str, ...],
    context: GlobalContext,
    cluster_column: str | None = None,
) -> ray.data.Dataset:
    """The corpus with every loser's row dropped as ``reason``; losers must be materialized
    (or a table, from a stage decided in one task). ``losers`` may hold rows with a null
    first detail column: matched but not dropped."""
    table = losers if isinstance(losers, pa.Table) else None
    if (table.num_rows if table is not None else losers.count()) == 0:
        return dataset.map_batches(
            partial(count_alive, position=context.position, tally=context.tally),
            batch_format="pyarrow",
        )
    extra = [cluster_column] if cluster_column else []
    columns = [UID_COLUMN, *detail_columns, *extra]
    apply = {
        "reason": reason,
        "detail_columns": detail_columns,
        "position": context.position,
        "tally": context.tally,
        "cluster_column": cluster_column,
    }
    size = table.nbytes if table is not None else (losers.size_bytes() or 0)
    if size <= BROADCAST_BYTES:
        # Held by the driver and put from there: the copy lives on the driver's node, which
        # the run cannot outlive, rather than on a worker node that may be lost.
        if table is None:
            table = pa.concat_tables(ray.get(losers.to_arrow_refs()), promote_options="permissive")
        return dataset.map_batches(
            releasing(
                partial(
                    looked_up_losers,
                    losers=ray.put(table.select(columns).combine_chunks()),
                    file_index=context.file_index,
                    columns=tuple(columns[1:]),
                    **apply,
                )
            ),
            batch_format="pyarrow",
        )
    if table is not None:
        losers = ray.data.from_arrow(table)
    keyed = dataset.map_batches(
        partial(with_uid, file_index=context.file_index), batch_format="pyarrow"
    )
    joined = keyed.join(
        losers.select_columns(columns),
        join_type="left_outer",
        num_partitions=partitions_for(dataset, context),
        on=(UID_COLUMN,),
    )
    return joined.map_batches(releasing(partial(apply_losers, **apply)), batch_format="pyarrow")
