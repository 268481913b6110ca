"""Stratified sampling to a target mixture, exact and deterministic, distributed on Ray Data.

    corpus --live rows--> keys: stratum, order key (3-4 words of 8 bytes)    [materialized]
    keys --byte histogram per stratum (aggregate)--> rows per stratum (driver: 256 counts each)
    rows per stratum --allocate (driver, exact integers)--> rows to take per stratum
    keys --radix select (pipeline.first_k)--> per stratum, the order key of its last row taken
    corpus --map: order key <= cutoff?--> rows not taken dropped as sample.not_selected

- **Strata** are any record columns (``[task, language]``); a stratum's key is its values
  joined by ``|`` (``qa|en``), which is also how ``caps`` and ``minimums`` name it.
- **Allocation** (``pipeline.strata.allocate``): ``proportional`` to rows, ``equal``, or
  ``temperature`` (rows^(1/T), T5/FLAN mixing), toward ``total``, within per-stratum caps and
  minimums. Strata that run out hand their quota on to the others; counts are exact integers
  (largest remainder, ties to the smaller stratum key). ``total: null`` keeps everything the
  caps allow.
- **Order within a stratum**: higher ``quality_score`` first when ``prefer_quality`` (unscored
  rows last), then a seeded xxhash of the record id, then the row uid (file index and line)
  and a hash of ``augmentation`` (augmented records share their parent's line). Only twins
  identical in all of these could tie; at a cutoff both would be kept.
- **Selection**: the k-th key of each stratum is found by radix select over byte histograms
  (``pipeline.first_k``), so no stratum is ever gathered in one place: workers hold one
  batch, or one histogram bucket of at most ``RESOLVE_ROWS`` keys, and the driver holds 256
  counts per stratum. Choosing the rows is then a local comparison with the cutoff: no join
  or sort of the corpus, and nothing depends on batching or arrival order.
- Rows not taken go to rejects as ``sample.not_selected`` with their stratum, its quota and
  its available rows (the rank of each row is never materialised, by design). The table of
  available, requested and taken rows per stratum goes to stats.json and the report.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from functools import partial
from typing import Annotated, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, field_validator, model_validator

from pipeline.dedup_keys import row_uids
from pipeline.distributed import report_counts, report_findings
from pipeline.first_k import (
    ALL_ONES,
    cut_positions,
    first_k_cutoffs,
    flat,
    key_table,
    target_histograms,
)
from pipeline.stage import GlobalContext, GlobalStage, StageConfig, with_drops
from pipeline.strata import (
    Mode,
    Quota,
    allocate,
    check_strata,
    check_stratum_names,
    stratum_findings,
    stratum_keys,
)

REASON = "sample.not_selected"
SAMPLE_SEED = 0x5A_4D_91_E5
UINT64 = (1 << 64) - 1
Count = Annotated[int, Field(ge=0)]


class SampleConfig(StageConfig):
    strata: tuple[str, ...] = ()
    mode: Mode = "proportional"
    temperature: float = Field(2.0, gt=0.0)
    # Rows to keep in all; null keeps every row the caps allow.
    total: int | None = Field(None, ge=0)
    caps: dict[str, Count] = Field(default_factory=dict)
    minimums: dict[str, Count] = Field(default_factory=dict)
    default_cap: int | None = Field(None, ge=0)
    default_minimum: int = Field(0, ge=0)
    prefer_quality: bool = False
    # Key tables up to this many rows (~40 bytes each) are counted and sorted in one task
    # instead of histogram rounds; 0 forces the distributed rounds.
    single_task_max_keys: int = Field(2_000_000, ge=0)

    @field_validator("strata")
    @classmethod
    def _known_columns(cls, strata: tuple[str, ...]) -> tuple[str, ...]:
        return check_strata(strata)

    @model_validator(mode="after")
    def _bounds_agree(self) -> SampleConfig:
        check_stratum_names(self.caps, self.strata, "caps")
        check_stratum_names(self.minimums, self.strata, "minimums")
        for name, minimum in self.minimums.items():
            cap = self.caps.get(name, self.default_cap)
            if cap is not None and minimum > cap:
                raise ValueError(f"minimums[{name!r}] = {minimum} exceeds its cap {cap}")
        if self.default_cap is not None and self.default_minimum > self.default_cap:
            raise ValueError(
                f"default_minimum {self.default_minimum} exceeds default_cap {self.default_cap}"
            )
        if self.total is not None and sum(self.minimums.values()) > self.total:
            raise ValueError(
                f"minimums add up to {sum(self.minimums.values())}, more than total {self.total}"
            )
        return self

    def allocate(self, available: dict[str, int]) -> dict[str, Quota]:
        """Requested, available and taken rows per stratum under this config's mixture."""
        return allocate(
            available,
            mode=self.mode,
            temperature=self.temperature,
            total=self.total,
            caps=self.caps,
            minimums=self.minimums,
            default_cap=self.default_cap,
            default_minimum=self.default_minimum,
        )


def quality_order(scores: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Unsigned keys that sort higher scores first and unscored (null, NaN) rows last."""
    values = flat(pc.fill_null(scores, float("nan"))).astype(np.float64)
    negated = -values + 0.0  # folds -0.0 into 0.0
    bits = negated.view(np.uint64)
    keys = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
    return np.where(np.isnan(values), ALL_ONES, keys).astype(np.uint64)


def seeded_hashes(texts: list[str | None], seed: int) -> np.ndarray:
    return np.fromiter(
        (xxhash.xxh3_64_intdigest((text or "").encode("utf-8"), seed=seed) for text in texts),
        dtype=np.uint64,
        count=len(texts),
    )


def order_words(
    batch: pa.Table, *, seed: int, file_index: dict[str, int], prefer_quality: bool
) -> np.ndarray:
    """The order key per row, rows x words: (quality,) seeded id hash, row uid, and a hash of
    ``augmentation``, since an augmented record shares its parent's file and line."""
    hash_seed = (SAMPLE_SEED ^ seed) & UINT64
    words = [
        seeded_hashes(batch.column("id").to_pylist(), hash_seed),
        row_uids(batch, file_index).astype(np.uint64),
        seeded_hashes(batch.column("augmentation").to_pylist(), hash_seed),
    ]
    if prefer_quality:
        words.insert(0, quality_order(batch.column("quality_score")))
    return np.stack(words, axis=1)


def live(batch: pa.Table) -> np.ndarray:
    return flat(pc.is_null(batch.column("drop_reason"))).astype(bool)


def sample_keys(
    batch: pa.Table, *, config: SampleConfig, seed: int, file_index: dict[str, int]
) -> pa.Table:
    """Ray Data UDF: the key row (stratum, order words) of each live row."""
    alive = batch.filter(pa.array(live(batch)))
    words = order_words(
        alive, seed=seed, file_index=file_index, prefer_quality=config.prefer_quality
    )
    return key_table(stratum_keys(alive, config.strata), words)


def mark_not_selected(
    batch: pa.Table,
    *,
    config: SampleConfig,
    seed: int,
    file_index: dict[str, int],
    cutoffs: dict[str, list],
    details: dict[str, str],
    position: int,
    tally: Any,
) -> pa.Table:
    """Ray Data UDF: drop live rows whose order key lies above their stratum's cutoff."""
    started = time.perf_counter()
    rows = np.flatnonzero(live(batch))
    alive = batch.take(pa.array(rows, pa.int64()))
    strata = stratum_keys(alive, config.strata)
    words = order_words(
        alive, seed=seed, file_index=file_index, prefer_quality=config.prefer_quality
    )
    dropped = np.flatnonzero(cut_positions(strata, words, cutoffs) > 0)
    reasons = batch.column("drop_reason").to_pylist()
    detail_texts = batch.column("drop_detail").to_pylist()
    stratum_names = strata.to_pylist()
    for index in dropped:
        reasons[rows[index]] = REASON
        detail_texts[rows[index]] = details[stratum_names[index]]
    report_counts(tally, position, len(rows), {REASON: len(dropped)}, started)
    return with_drops(batch, reasons, detail_texts)


class Sample(GlobalStage):
    name: ClassVar[str] = "sample"
    Config = SampleConfig
    drop_reasons: ClassVar[tuple[str, ...]] = (REASON,)
    config: SampleConfig

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        config = self.config
        keys = dataset.map_batches(
            partial(sample_keys, config=config, seed=context.seed, file_index=context.file_index),
            batch_format="pyarrow",
        ).materialize()
        rows = keys.count()
        single_task = rows <= config.single_task_max_keys
        histograms = target_histograms(keys, context.workers, single_task) if rows else {}
        table = config.allocate(
            {stratum: int(counts.sum()) for stratum, counts in histograms.items()}
        )
        report_findings(
            context.tally,
            context.position,
            stratum_findings({key: asdict(quota) for key, quota in table.items()}),
        )
        ranks = {key: (quota.taken,) for key, quota in table.items() if quota.available}
        cutoffs = first_k_cutoffs(
            keys,
            ranks,
            histograms,
            workers=context.workers,
            single_task=single_task,
            partition_bytes=context.partition_bytes,
        )
        details = {
            key: json.dumps(
                {"stratum": key, "quota": quota.taken, "available": quota.available},
                ensure_ascii=False,
                sort_keys=True,
            )
            for key, quota in table.items()
        }
        return dataset.map_batches(
            partial(
                mark_not_selected,
                config=config,
                seed=context.seed,
                file_index=context.file_index,
                cutoffs=cutoffs,
                details=details,
                position=context.position,
                tally=context.tally,
            ),
            batch_format="pyarrow",
        )
