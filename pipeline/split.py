"""Train/validation(/test) splits with no leakage, stratified, with exact counts per stratum.

    corpus --live rows--> (group, stratum)
    --aggregate by group--> one row per group: its stratum, seeded xxh3-128 of its key [mat.]
    groups --byte histogram per stratum--> groups per stratum (driver: 256 counts each)
    --largest remainder over the fractions--> groups per split per stratum, as ranks
    groups --radix select (pipeline.first_k)--> per stratum, the key of each split's last group
    corpus --map: the row's group key against its stratum's cutoffs--> ``split`` column

- **Groups.** A row's group is its ``parent_id`` if set, else, for a pair or a binary record,
  its prompt (``schema.prompt_key``), else its ``cluster_id``, else its ``id``. Augmentations
  name their (original) parent and near-dup keepers their cluster, so a parent and everything
  made from it, exact duplicates (one id), and every pair or label of one prompt share a
  group. The prompt comes before the cluster: what near dedup keeps of a cluster is its
  keeper's prompt group, so the two agree, and the prompt holds whatever key dedup used. A
  split is chosen per group, never per row: no group is ever on two sides.
- **Stratified, exactly.** A group's stratum is the smallest stratum key among its rows.
  Within a stratum, groups are ordered by a seeded 128-bit hash of the group key; the first
  ``round(fraction x groups)`` (largest remainder, ties to the earlier split) go to the first
  split, the next ones to the second, and so on. Fractions therefore hold per stratum in
  groups, to within one group; in rows as closely as group sizes allow.
- **Distributed.** The corpus is never grouped or sorted: the group table holds ~60 bytes
  per group, and the cutoffs come from radix select over byte histograms, so no stratum sits
  in one place. A row whose stratum is its group's learns its split locally. Only rows of
  groups spanning strata need their group's stratum: those groups' splits are joined back on
  the group key, which costs one shuffle of the corpus and happens only when such groups
  exist. Nothing depends on batching or arrival order.
- The writer puts each split in ``data/<split>/``. No record is dropped here.
"""

from __future__ import annotations

import re
import time
from fractions import Fraction
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import xxhash
from pydantic import Field, field_validator

from pipeline.distributed import grouped_blocks, partitions_for, report_counts, report_findings
from pipeline.first_k import (
    TARGET_COLUMN,
    cut_positions,
    first_k_cutoffs,
    flat,
    key_table,
    key_words,
    on_whole_table,
    target_histograms,
)
from pipeline.schema import FLOW_SCHEMA, prompt_groups
from pipeline.stage import GlobalContext, GlobalStage, StageConfig
from pipeline.strata import check_strata, largest_remainder, stratum_findings, stratum_keys

GROUP_COLUMN = "_group"
LAST_TARGET_COLUMN = "_last_target"
JOINED_SPLIT_COLUMN = "_group_split"
SPLIT_SEED = 0x5B_11_7E_D5
UINT64 = (1 << 64) - 1
SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SplitConfig(StageConfig):
    # In this order: the first fraction of each stratum's groups, then the next, ...
    fractions: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.9, "validation": 0.1}, min_length=1
    )
    stratify: tuple[str, ...] = ()
    # Up to this many live rows, groups are formed, counted and cut in single tasks instead
    # of shuffles and histogram rounds; 0 forces the distributed path.
    single_task_max_keys: int = Field(2_000_000, ge=0)

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fractions: dict[str, float]) -> dict[str, float]:
        for name, fraction in fractions.items():
            if not SPLIT_NAME.match(name):
                raise ValueError(
                    f"split name {name!r} must be lower-case letters, digits and _ (a directory)"
                )
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"fraction of {name!r} must be in (0, 1] (got {fraction})")
        if abs(sum(fractions.values()) - 1.0) > 1e-9:
            raise ValueError(f"fractions must add up to 1 (got {sum(fractions.values())})")
        return fractions

    @field_validator("stratify")
    @classmethod
    def _known_columns(cls, stratify: tuple[str, ...]) -> tuple[str, ...]:
        return check_strata(stratify)


def group_keys(batch: pa.Table) -> pa.Array:
    """``parent_id``, else a feedback record's prompt, else ``cluster_id``, else ``id``."""
    return pc.coalesce(
        batch.column("parent_id"),
        prompt_groups(batch),
        batch.column("cluster_id"),
        batch.column("id"),
    ).combine_chunks()


def group_words(groups: list[str], seed: int) -> np.ndarray:
    """A seeded 128-bit hash of each group key, as two words: the order within a stratum."""
    hash_seed = (SPLIT_SEED ^ seed) & UINT64
    digests = [xxhash.xxh3_128_intdigest(key.encode("utf-8"), seed=hash_seed) for key in groups]
    words = np.zeros((len(groups), 2), np.uint64)
    words[:, 0] = [digest >> 64 for digest in digests]
    words[:, 1] = [digest & UINT64 for digest in digests]
    return words


def live(batch: pa.Table) -> np.ndarray:
    return flat(pc.is_null(batch.column("drop_reason"))).astype(bool)


def group_rows(batch: pa.Table, *, stratify: tuple[str, ...]) -> pa.Table:
    """Ray Data UDF: (group, stratum) of each live row."""
    alive = batch.filter(pa.array(live(batch)))
    return pa.table({GROUP_COLUMN: group_keys(alive), TARGET_COLUMN: stratum_keys(alive, stratify)})


def group_table(block: pa.Table, *, seed: int) -> pa.Table:
    """Per block of whole groups: one row per group with its first and last stratum (they
    differ for groups spanning strata) and the order words of its key."""
    grouped = block.group_by(GROUP_COLUMN).aggregate(
        [(TARGET_COLUMN, "min"), (TARGET_COLUMN, "max")]
    )
    words = group_words(grouped.column(GROUP_COLUMN).to_pylist(), seed)
    table = key_table(grouped.column(f"{TARGET_COLUMN}_min").combine_chunks(), words)
    return table.append_column(GROUP_COLUMN, grouped.column(GROUP_COLUMN)).append_column(
        LAST_TARGET_COLUMN, grouped.column(f"{TARGET_COLUMN}_max")
    )


def spanning_groups(
    batch: pa.Table, *, cutoffs: dict[str, list], names: tuple[str, ...]
) -> pa.Table:
    """Ray Data UDF: the split of each group whose rows span several strata."""
    spans = pc.not_equal(batch.column(TARGET_COLUMN), batch.column(LAST_TARGET_COLUMN))
    batch = batch.filter(spans)
    positions = cut_positions(batch.column(TARGET_COLUMN), key_words(batch), cutoffs)
    return pa.table(
        {
            GROUP_COLUMN: batch.column(GROUP_COLUMN),
            JOINED_SPLIT_COLUMN: pa.array([names[p] for p in positions], pa.string()),
        }
    )


def with_group(batch: pa.Table) -> pa.Table:
    """Ray Data UDF: the group key as a join column ("" for dropped rows: never joined)."""
    groups = pc.if_else(pa.array(live(batch)), group_keys(batch), "")
    return batch.append_column(GROUP_COLUMN, groups)


def assign_splits(
    batch: pa.Table,
    *,
    stratify: tuple[str, ...],
    seed: int,
    cutoffs: dict[str, list],
    names: tuple[str, ...],
    position: int,
    tally: Any,
) -> pa.Table:
    """Ray Data UDF: set ``split`` on live rows from their group's place in its stratum."""
    started = time.perf_counter()
    splits = batch.column("split").to_pylist()
    joined = (
        batch.column(JOINED_SPLIT_COLUMN).to_pylist()
        if JOINED_SPLIT_COLUMN in batch.column_names
        else [None] * batch.num_rows
    )
    alive = live(batch)
    local = np.flatnonzero(alive & np.array([split is None for split in joined], dtype=bool))
    rows = batch.take(pa.array(local, pa.int64()))
    words = group_words(group_keys(rows).to_pylist(), seed)
    cuts = cut_positions(stratum_keys(rows, stratify), words, cutoffs)
    for row, cut in zip(local, cuts, strict=True):
        splits[row] = names[cut]
    for row in np.flatnonzero(alive):
        splits[row] = joined[row] or splits[row]
    batch = batch.set_column(
        batch.schema.get_field_index("split"), FLOW_SCHEMA.field("split"), pa.array(splits)
    )
    report_counts(tally, position, int(alive.sum()), {}, started)
    return batch.select(FLOW_SCHEMA.names).cast(FLOW_SCHEMA)


def split_ranks(groups: int, fractions: dict[str, float]) -> tuple[dict[str, int], list[int]]:
    """Groups per split for a stratum of ``groups`` groups, and the ranks that cut them."""
    counts = largest_remainder(
        {name: groups * Fraction(str(fraction)) for name, fraction in fractions.items()}
    )
    cuts = np.cumsum(list(counts.values()))[:-1]
    return counts, [int(cut) for cut in cuts]


class Split(GlobalStage):
    name: ClassVar[str] = "split"
    Config = SplitConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ()
    config: SplitConfig

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        config, seed = self.config, context.seed
        names = tuple(config.fractions)
        partitions = partitions_for(dataset, context)
        rows = dataset.map_batches(
            partial(group_rows, stratify=config.stratify), batch_format="pyarrow"
        ).materialize()
        cutoffs: dict[str, list] = {}
        spanning = None
        if rows.count():
            single_task = rows.count() <= config.single_task_max_keys
            groups = self.groups(rows, seed, partitions, single_task)
            histograms = target_histograms(groups, context.workers, single_task)
            table, ranks = {}, {}
            for stratum, counts in sorted(histograms.items()):
                table[stratum], ranks[stratum] = split_ranks(int(counts.sum()), config.fractions)
            report_findings(context.tally, context.position, stratum_findings(table))
            cutoffs = first_k_cutoffs(
                groups,
                ranks,
                histograms,
                workers=context.workers,
                single_task=single_task,
                partition_bytes=context.partition_bytes,
            )
            spanning = whole_or_blocks(
                groups, partial(spanning_groups, cutoffs=cutoffs, names=names), single_task
            )
        assign = partial(
            assign_splits,
            stratify=config.stratify,
            seed=seed,
            cutoffs=cutoffs,
            names=names,
            position=context.position,
            tally=context.tally,
        )
        if spanning is None or spanning.count() == 0:
            return dataset.map_batches(assign, batch_format="pyarrow")
        keyed = dataset.map_batches(with_group, batch_format="pyarrow")
        joined = keyed.join(
            spanning, join_type="left_outer", num_partitions=partitions, on=(GROUP_COLUMN,)
        )
        return joined.map_batches(assign, batch_format="pyarrow")

    @staticmethod
    def groups(rows: Any, seed: int, partitions: int, single_task: bool) -> Any:
        """One row per group: hash-partitioned on the group key, or in one task when small."""
        table = partial(group_table, seed=seed)
        if single_task:
            return whole_or_blocks(rows, table, single_task)
        return grouped_blocks(rows, GROUP_COLUMN, table, partitions).materialize()


def whole_or_blocks(dataset: Any, fn: Any, single_task: bool) -> Any:
    """``fn`` over a materialized dataset: its whole table in one task, or per block."""
    if single_task:
        return ray.data.from_arrow_refs([on_whole_table.remote(fn, dataset.to_arrow_refs())])
    return dataset.map_batches(fn, batch_format="pyarrow").materialize()
