"""Exact dedup: rows whose normalised key text is identical keep one member, by policy.

Distributed as one hash shuffle of small rows (16-byte digest, rank, id, uid) grouped by
digest, then one join of the losers back onto the corpus. The corpus itself is never grouped,
so a key repeated a million times costs a million small rows in one partition, not a million
records. An input that fits one task (``run.single_task_bytes``) is keyed and grouped there
by the same functions, and its losers broadcast back: no shuffle at all. Removed rows go
to rejects as ``dedup.exact`` with ``duplicate_of`` (the keeper's id). A pair or a binary
record is compared with its replies and label too (``exact_key_texts``): pairs that share a
prompt are a prompt group, not duplicates; the same pair twice is one.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import ray

from pipeline.dedup_keys import (
    RANK_COLUMN,
    UID_COLUMN,
    KeeperPolicy,
    KeyName,
    alive,
    exact_key_texts,
    keeper_rank,
    key_digests,
    normalize_key,
    pick_keepers,
    row_uids,
)
from pipeline.distributed import (
    fits_one_task,
    grouped_blocks,
    in_one_task,
    mark_drops,
    partitions_for,
)
from pipeline.stage import GlobalContext, GlobalStage, StageConfig

DIGEST_COLUMN = "_key"
EXACT_KEY_SCHEMA = pa.schema(
    [
        pa.field(DIGEST_COLUMN, pa.binary(16)),
        pa.field(RANK_COLUMN, pa.float64()),
        pa.field("id", pa.string()),
        pa.field(UID_COLUMN, pa.int64()),
    ]
)


class ExactDedupConfig(StageConfig):
    key: KeyName = "conversation"
    keep: KeeperPolicy = "lowest_id"
    lowercase: bool = True
    strip_punctuation: bool = True
    collapse_whitespace: bool = True
    fold_width: bool = True


def exact_keys(
    batch: pa.Table, config: ExactDedupConfig, file_index: dict[str, int], seed: int
) -> pa.Table:
    """One small row per live record with a non-empty key: digest, rank, id, uid."""
    batch = alive(batch)
    normal = [
        normalize_key(
            text,
            fold_width=config.fold_width,
            lowercase=config.lowercase,
            strip_punctuation=config.strip_punctuation,
            collapse_whitespace=config.collapse_whitespace,
        )
        for text in exact_key_texts(batch, config.key)
    ]
    digests = key_digests(normal, seed)
    keep = np.array([digest is not None for digest in digests], dtype=bool)
    table = pa.table(
        {
            DIGEST_COLUMN: pa.array(digests, pa.binary(16)),
            RANK_COLUMN: pa.array(keeper_rank(batch, config.keep), pa.float64()),
            "id": batch.column("id"),
            UID_COLUMN: pa.array(row_uids(batch, file_index), pa.int64()),
        },
        schema=EXACT_KEY_SCHEMA,
    )
    return table.filter(pa.array(keep))


def losers_in_process(
    table: pa.Table, *, config: ExactDedupConfig, context: GlobalContext
) -> pa.Table:
    """The distributed path's losers (``exact_keys``, then ``pick_keepers`` per digest) for
    a whole input held in one table."""
    keys = exact_keys(table, config, context.file_index, context.seed)
    return pick_keepers(DIGEST_COLUMN, keys)


class ExactDedup(GlobalStage):
    name: ClassVar[str] = "exact_dedup"
    Config = ExactDedupConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("dedup.exact",)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        if fits_one_task(dataset, context):
            # The same keys and keepers over the whole input in one task: no shuffle.
            found = in_one_task(dataset, losers_in_process, config=self.config, context=context)
            return mark_drops(
                dataset,
                ray.get(found),
                reason="dedup.exact",
                detail_columns=("duplicate_of",),
                context=context,
            )
        keys = dataset.map_batches(
            partial(
                exact_keys, config=self.config, file_index=context.file_index, seed=context.seed
            ),
            batch_format="pyarrow",
        )
        losers = grouped_blocks(
            keys,
            DIGEST_COLUMN,
            partial(pick_keepers, DIGEST_COLUMN),
            partitions_for(dataset, context),
        ).materialize()
        return mark_drops(
            dataset,
            losers,
            reason="dedup.exact",
            detail_columns=("duplicate_of",),
            context=context,
        )
