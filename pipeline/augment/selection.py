"""Which records an augmentation stage paraphrases, and how it runs on Ray.

A **unit** is one new record a stage may create: ``(parent, pivot)`` for back-translation,
``(parent, variant)`` for rules. Each unit of an eligible parent (a live original record with
text in the fields to change) gets a seeded 64-bit hash of the stage, parent id, file, line
and unit name. A unit is chosen when

- its hash falls under ``rate`` of the hash range (a seeded Bernoulli sample), and
- with a ``budget``, its parent's stratum is listed and the hash is among the ``budget[s]``
  smallest of that stratum's sampled units.

The budget is therefore an exact cap on the records the stage creates per stratum (kept plus
guard rejects), whatever the batching or worker count. It needs a global view: before the
paraphrasing map, a Ray Data pass keeps the ``budget[s]`` smallest hashes of each stratum per
block, a ``groupby`` on the stratum merges them into the ``budget[s]``-th smallest hash, and
only that one number per stratum comes back to the driver. That is why the augmentation
stages are ``GlobalStage``s: they count, then run their per-batch ``Augment`` in an actor pool
sized by their own ``Resources``, as the plan builder does for per-batch stages.

Stratum keys are those of ``sample`` (``pipeline.strata``): the ``strata`` column values
joined by ``|``; with ``strata: [task, language]``, ``"qa|en"``. The table of budget,
available and selected units per stratum goes to stats.json as the stage's findings.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, ClassVar, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import xxhash
from pydantic import Field, field_validator, model_validator

from pipeline.augment.guard import GUARD_REASONS, GuardConfig
from pipeline.dedup_keys import alive
from pipeline.distributed import report_counts, report_findings
from pipeline.schema import last_content
from pipeline.stage import (
    Augment,
    GlobalContext,
    GlobalStage,
    Resources,
    StageConfig,
)
from pipeline.stage_failure import StageFailure, one_line, run_stage
from pipeline.strata import check_strata, check_stratum_names, stratum_findings, stratum_keys

FieldChoice = Literal["instruction", "response", "both"]
ROLE_OF_FIELD = {"instruction": "user", "response": "assistant"}
HASH_SPACE = 1 << 64
BOTTOM_SCHEMA = pa.schema(
    [
        pa.field("stratum", pa.string()),
        pa.field("hashes", pa.list_(pa.uint64())),
        pa.field("available", pa.int64()),
    ]
)
# The unit name of the parent-level draw that ``rate`` samples.
RATE_DRAW = "\x00rate"


class AugmentConfig(StageConfig):
    # instruction: the last user turn; response: the last assistant turn. ``context`` (an
    # alpaca input, a dolly passage) is data the instruction refers to and stays as it is.
    fields: FieldChoice = "instruction"
    rate: float = Field(1.0, gt=0.0, le=1.0)
    strata: tuple[str, ...] = ("task", "language")
    # stratum key -> most records this stage may create in it; unlisted strata get none.
    budget: dict[str, Annotated[int, Field(ge=0)]] | None = None
    guard: GuardConfig = GuardConfig()
    concurrency: int | None = Field(None, ge=1)
    batch_size: int = Field(256, ge=1)

    @field_validator("strata")
    @classmethod
    def _known_columns(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        return check_strata(columns)

    @model_validator(mode="after")
    def _budget_keys_match_strata(self) -> AugmentConfig:
        check_stratum_names(self.budget or {}, self.strata, "budget")
        return self

    def changed_fields(self) -> tuple[str, ...]:
        return ("instruction", "response") if self.fields == "both" else (self.fields,)


@dataclass(frozen=True)
class Selection:
    """What a worker needs to choose units on its own: the recipe seed, the stage name and,
    with a budget, an exclusive upper bound on unit hashes per stratum."""

    seed: int
    stage: str
    bounds: dict[str, int] | None = None


def unit_hash(selection: Selection, parent: tuple[str, str, int], unit: str) -> int:
    ident, source_file, source_line = parent
    key = f"{selection.seed}\x1f{selection.stage}\x1f{ident}\x1f{source_file}\x1f{source_line}"
    return xxhash.xxh3_64_intdigest(f"{key}\x1f{unit}".encode())


def field_text(turns: list[dict[str, Any]], field: str) -> str:
    return last_content(turns, ROLE_OF_FIELD[field])


def with_field(turns: list[dict[str, Any]], field: str, text: str) -> list[dict[str, Any]]:
    """The turns with the last turn of ``field``'s role holding ``text``."""
    role = ROLE_OF_FIELD[field]
    last = max(index for index, turn in enumerate(turns) if turn["role"] == role)
    return [{**turn, "content": text} if i == last else turn for i, turn in enumerate(turns)]


class SelectiveAugment(Augment):
    """An ``Augment`` that creates one candidate per chosen unit of its live original rows."""

    config: AugmentConfig
    drop_reasons: ClassVar[tuple[str, ...]] = GUARD_REASONS

    def __init__(self, config: StageConfig, selection: Selection) -> None:
        super().__init__(config)
        self.selection = selection

    @classmethod
    def unit_names(cls, config: AugmentConfig) -> tuple[str, ...]:
        raise NotImplementedError

    @classmethod
    def eligible(cls, batch: pa.Table, config: AugmentConfig) -> list[bool]:
        """Live originals with text in every field to change (subclasses narrow further)."""
        originals = pc.is_null(batch.column("augmentation")).to_pylist()
        conversations = batch.column("messages").to_pylist()
        fields = config.changed_fields()
        return [
            original and all(field_text(turns, name).strip() for name in fields)
            for original, turns in zip(originals, conversations, strict=True)
        ]

    @classmethod
    def sampled_units(
        cls, batch: pa.Table, config: AugmentConfig, selection: Selection
    ) -> list[tuple[int, str, str, int]]:
        """``(row, unit, stratum, hash)`` for every unit of the eligible parents that
        ``rate`` sampled, in row order."""
        cut = int(config.rate * HASH_SPACE)
        ids = batch.column("id").to_pylist()
        files = batch.column("source_file").to_pylist()
        lines = batch.column("source_line").to_pylist()
        strata = stratum_keys(batch, config.strata).to_pylist()
        units = cls.unit_names(config)
        sampled = []
        for row, ok in enumerate(cls.eligible(batch, config)):
            if not ok or (config.budget is not None and strata[row] not in config.budget):
                continue
            parent = (ids[row], files[row], lines[row])
            if unit_hash(selection, parent, RATE_DRAW) >= cut:
                continue
            sampled.extend(
                (row, unit, strata[row], unit_hash(selection, parent, unit)) for unit in units
            )
        return sampled

    def chosen_units(self, batch: pa.Table) -> list[tuple[int, str]]:
        bounds = self.selection.bounds
        return [
            (row, unit)
            for row, unit, stratum, value in self.sampled_units(batch, self.config, self.selection)
            if bounds is None or value < bounds.get(stratum, 0)
        ]


def bottom_hashes(
    batch: pa.Table, *, worker: type[SelectiveAugment], config: AugmentConfig, selection: Selection
) -> pa.Table:
    """Per stratum of one block: its ``budget`` smallest unit hashes and its unit count."""
    budget = config.budget or {}
    per_stratum: dict[str, list[int]] = {}
    for _, _, stratum, value in worker.sampled_units(alive(batch), config, selection):
        per_stratum.setdefault(stratum, []).append(value)
    rows = [
        {"stratum": key, "hashes": sorted(values)[: budget[key]], "available": len(values)}
        for key, values in sorted(per_stratum.items())
    ]
    return pa.Table.from_pylist(rows, schema=BOTTOM_SCHEMA)


def merge_bottom(group: pa.Table, *, budget: dict[str, int]) -> pa.Table:
    """One stratum's blocks -> its unit count and the ``budget``-th smallest hash (null when
    the stratum has no more units than its budget, or a budget of 0)."""
    stratum = group.column("stratum")[0].as_py()
    values = np.sort(pc.list_flatten(group.column("hashes")).to_numpy(zero_copy_only=False))
    available = int(pc.sum(group.column("available")).as_py())
    take = budget[stratum]
    last = int(values[take - 1]) if 0 < take < available else None
    return pa.table(
        {
            "stratum": pa.array([stratum], pa.string()),
            "available": pa.array([available], pa.int64()),
            "last": pa.array([last], pa.uint64()),
        }
    )


def hash_bound(budget: int, last: int | None) -> int:
    """Exclusive bound on the unit hashes a stratum may take."""
    if budget == 0:
        return 0
    return HASH_SPACE if last is None else last + 1


def budget_bounds(
    dataset: Any, worker: type[SelectiveAugment], config: AugmentConfig, selection: Selection
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """The per-stratum hash bounds, from one pass and one groupby over small rows, and the
    table of budget, available and selected units per stratum."""
    budget = config.budget or {}
    bottoms = dataset.map_batches(
        partial(bottom_hashes, worker=worker, config=config, selection=selection),
        batch_format="pyarrow",
    ).materialize()
    # One row per budgeted stratum: the only thing that reaches the driver.
    merged = (
        bottoms.groupby("stratum")
        .map_groups(partial(merge_bottom, budget=budget), batch_format="pyarrow")
        .take_all()
        if bottoms.count()
        else []
    )
    bounds = {row["stratum"]: hash_bound(budget[row["stratum"]], row["last"]) for row in merged}
    available = {row["stratum"]: row["available"] for row in merged}
    table = {
        key: {
            "budget": count,
            "available": available.get(key, 0),
            "selected": min(count, available.get(key, 0)),
        }
        for key, count in budget.items()
    }
    return bounds, table


class AugmentWorker:
    """Ray Data callable: the per-batch ``Augment`` of a global augmentation stage, built
    once per actor (models load here), reporting its counts like the plan's chains do."""

    def __init__(
        self,
        name: str,
        worker: type[SelectiveAugment],
        options: dict[str, Any],
        selection: Selection,
        position: int,
        tally: Any,
    ) -> None:
        try:
            self.stage = worker(worker.Config.model_validate(options), selection)
        except Exception as error:  # e.g. a model directory gone since validation
            raise StageFailure(
                f"stage {name!r} could not start on worker: {one_line(error)}"
            ) from error
        self.position = position
        self.tally = tally

    def __call__(self, batch: pa.Table) -> pa.Table:
        output, counts = run_stage(self.stage, batch)
        if self.tally is not None:
            ray.get(self.tally.stage_ran.remote(self.position, counts.to_dict()))
            created = output.num_rows - batch.num_rows
            if created:
                digest = created_digest(output, self.stage.name)
                ray.get(self.tally.rows_created.remote(digest, created))
        return output


def created_digest(batch: pa.Table, stage: str) -> str:
    """A digest of the rows ``stage`` created in a batch: equal for a retried batch."""
    hasher = xxhash.xxh3_128()
    hasher.update(stage.encode())
    for ident, augmentation in zip(
        batch.column("id").to_pylist(), batch.column("augmentation").to_pylist(), strict=True
    ):
        if augmentation is not None and json.loads(augmentation)["stage"] == stage:
            hasher.update(f"\x1e{ident}\x1f{augmentation}".encode())
    return hasher.hexdigest()


class GlobalAugment(GlobalStage):
    """A registered augmentation stage: budget pass (if any), then its ``worker`` per batch."""

    worker: ClassVar[type[SelectiveAugment]]
    drop_reasons: ClassVar[tuple[str, ...]] = GUARD_REASONS
    config: AugmentConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        options = cast(AugmentConfig, config)
        return Resources(concurrency=options.concurrency, batch_size=options.batch_size)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        started = time.perf_counter()
        selection = Selection(seed=context.seed, stage=self.name)
        if self.config.budget is not None:
            bounds, table = budget_bounds(dataset, self.worker, self.config, selection)
            selection = Selection(seed=context.seed, stage=self.name, bounds=bounds)
            report_findings(context.tally, context.position, stratum_findings(table))
        # The budget pass is this stage's time too.
        report_counts(context.tally, context.position, 0, {}, started)
        needs = self.resources(self.config)
        return dataset.map_batches(
            AugmentWorker,
            fn_constructor_kwargs={
                "name": self.name,
                # The class itself, not a registry lookup: stages never import the registry.
                "worker": self.worker,
                "options": self.config.model_dump(mode="json"),
                "selection": selection,
                "position": context.position,
                "tally": context.tally,
            },
            batch_size=needs.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(
                min_size=1, max_size=needs.concurrency or context.workers
            ),
            num_cpus=needs.num_cpus,
            num_gpus=needs.num_gpus or None,
        )
