"""The shared base of every pipeline stage.

A stage sees a ``pyarrow.Table`` batch in FLOW_SCHEMA. The base class splits off rows that an
earlier stage already dropped, hands the live rows to the subclass, stamps drop reasons,
times the call and counts what happened. Subclasses write only the decision:

- a ``Filter`` returns one ``Drop`` or ``None`` per live row;
- a ``Transform`` returns the edited live rows (same count, same order) and counts its edits;
- an ``Augment`` returns new candidate records made from live rows; the base appends them
  (with ``parent_id``, ``augmentation`` and a fresh ``id``) after the unchanged originals.

Stages are pure and Ray-free; ``pipeline.plan`` wraps them as Ray Data callables.

A ``GlobalStage`` is the other kind: it must see the whole corpus at once (dedup, sampling,
splits). It receives the materialized Ray Data dataset and returns a dataset with the same
columns, in which it has only set ``drop_reason``/``drop_detail`` on rows it drops (or edited
live rows). Its logic lives in pure per-batch functions that the plan-free tests call directly;
the Ray part is the shuffles and joins that bring the right rows together.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, NamedTuple, get_args

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from pipeline.schema import feedback_rows, record_id


class PathMarker:
    """Marks a config field as a file path, so the recipe loader can make it absolute."""


# A path in a stage config (blocklists, models). Relative paths are resolved against the
# directory the user ran from, before the config travels to workers whose cwd differs.
FilePath = Annotated[str, PathMarker()]


def path_fields(model: type[BaseModel]) -> list[str]:
    """Fields holding a ``FilePath`` or a tuple of them."""

    def is_path(annotation: Any) -> bool:
        return any(isinstance(item, PathMarker) for item in getattr(annotation, "__metadata__", ()))

    return [
        name
        for name, info in model.model_fields.items()
        if any(isinstance(item, PathMarker) for item in info.metadata)
        or any(is_path(arg) for arg in get_args(info.annotation))
    ]


class StageConfig(BaseModel):
    """Base of every stage's config: frozen, unknown keys rejected, defaults live here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True


class Resources(NamedTuple):
    """What a stage asks Ray for. Read by the plan builder, never by the stage itself."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    # None: stateless Ray tasks. An int: an actor pool of that size, for stages whose setup
    # (models, classifiers) must run once per worker in ``__init__``.
    concurrency: int | None = None
    batch_size: int = 1024


# Default target bytes of one hash-shuffle partition in global stages.
DEFAULT_PARTITION_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class GlobalContext:
    """What a global stage may use besides its config, handed over by the plan builder.

    ``file_index`` numbers every input file in listing order, so ``(file, line)`` gives each
    record a unique 64-bit row key (``row_uid``) without a pass over the data. ``report`` is
    a callable ``(key, value)`` that stores stage output for stats.json and the report; it is
    an actor handle method on Ray, a plain function in tests.
    """

    seed: int
    workers: int
    position: int
    file_index: dict[str, int]
    tally: Any = None
    # Target bytes per hash-shuffle partition (recipe ``run.shuffle_partition_bytes``).
    partition_bytes: int = DEFAULT_PARTITION_BYTES
    # Inputs up to this many bytes are decided in one task (recipe ``run.single_task_bytes``;
    # ``distributed.fits_one_task``). 0, the default here: always the distributed path.
    single_task_bytes: int = 0


class Drop(NamedTuple):
    reason: str
    detail: dict[str, Any] | None = None


@dataclass
class StageCounts:
    """Summable counters for one stage: reports only add these up."""

    seen: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    modified: Counter = field(default_factory=Counter)
    # What a stage found beyond the funnel, e.g. decontamination's matched evaluation items.
    findings: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def __add__(self, other: StageCounts) -> StageCounts:
        return StageCounts(
            seen=self.seen + other.seen,
            kept=self.kept + other.kept,
            dropped=self.dropped + other.dropped,
            modified=self.modified + other.modified,
            findings=self.findings + other.findings,
            seconds=self.seconds + other.seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "modified": dict(sorted(self.modified.items())),
            "findings": dict(sorted(self.findings.items())),
            "seconds": round(self.seconds, 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageCounts:
        return cls(
            seen=data["seen"],
            kept=data["kept"],
            dropped=Counter(data["dropped"]),
            modified=Counter(data["modified"]),
            findings=Counter(data.get("findings", {})),
            seconds=data["seconds"],
        )


class ConfiguredStage(ABC):
    """What every registered stage has: a name, a config class, a drop vocabulary and the
    resources it asks Ray for."""

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    # The fixed vocabulary of reasons this stage may drop with, fully qualified
    # (``filter.response_too_short``). Anything else is a bug and raises.
    drop_reasons: ClassVar[tuple[str, ...]] = ()
    # Stages that, when a recipe has them, must come before this one (the recipe check
    # enforces it): constrain after the split that decides which records are held out.
    must_follow: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: StageConfig) -> None:
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs {self.Config.__name__}, got {config!r}")
        self.config = config

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        """What the stage needs from Ray, from its config alone: the plan builder asks
        before any worker exists, and must not load models on the driver to find out."""
        return Resources()


class Stage(ConfiguredStage):
    """One step of the plan, batch by batch. Subclass ``Filter`` or ``Transform``, not this."""

    def run(self, batch: pa.Table) -> tuple[pa.Table, StageCounts]:
        """Apply the stage to the live rows of ``batch``; pass dropped rows through untouched."""
        started = time.perf_counter()
        alive_mask = pc.is_null(batch.column("drop_reason"))
        alive = batch.filter(alive_mask)
        already_dropped = batch.filter(pc.invert(alive_mask))
        counts = StageCounts(seen=alive.num_rows)
        if alive.num_rows:
            alive = self._apply(alive, counts)
        counts.kept = alive.num_rows - sum(counts.dropped.values())
        counts.seconds = time.perf_counter() - started
        return pa.concat_tables([alive, already_dropped]), counts

    @abstractmethod
    def _apply(self, alive: pa.Table, counts: StageCounts) -> pa.Table: ...


class Filter(Stage):
    """A stage that keeps or drops each record, naming the failure when it drops."""

    def annotate(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        """Optionally label rows before deciding (the language filter sets ``language``)."""
        return batch

    @abstractmethod
    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        """One entry per row: ``None`` keeps the row, a ``Drop`` rejects it."""

    def _apply(self, alive: pa.Table, counts: StageCounts) -> pa.Table:
        alive = self.annotate(alive, counts)
        decisions = self.decide(alive)
        if len(decisions) != alive.num_rows:
            raise RuntimeError(
                f"stage {self.name!r} decided {len(decisions)} rows of a {alive.num_rows}-row batch"
            )
        reasons: list[str | None] = []
        details: list[str | None] = []
        for decision in decisions:
            if decision is None:
                reasons.append(None)
                details.append(None)
                continue
            if decision.reason not in self.drop_reasons:
                raise RuntimeError(
                    f"stage {self.name!r} dropped with {decision.reason!r}, which is not in its "
                    f"vocabulary {list(self.drop_reasons)}"
                )
            counts.dropped[decision.reason] += 1
            reasons.append(decision.reason)
            details.append(
                json.dumps(decision.detail, ensure_ascii=False, sort_keys=True)
                if decision.detail
                else None
            )
        return with_drops(alive, reasons, details)


class Transform(Stage):
    """A stage that edits records and never drops them (cleaning, PII redaction, labels)."""

    @abstractmethod
    def transform(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        """Return the edited rows, same count and order; add edit kinds to ``counts.modified``."""

    def _apply(self, alive: pa.Table, counts: StageCounts) -> pa.Table:
        edited = self.transform(alive, counts)
        if edited.num_rows != alive.num_rows:
            raise RuntimeError(
                f"transform {self.name!r} returned {edited.num_rows} rows for {alive.num_rows}"
            )
        return edited


class Candidate(NamedTuple):
    """A new record an ``Augment`` stage proposes: the row of its parent in the batch, its
    texts, the provenance to record (method, settings, guard scores) and, when the quality
    guard failed it, why. Failed candidates are still created: they go to rejects."""

    parent: int
    system: str
    messages: list[dict[str, Any]]
    context: str
    augmentation: dict[str, Any]
    drop: Drop | None = None


class Augment(Stage):
    """A stage that adds records. The live rows pass through unchanged; the new ones follow.

    Every created row copies its parent's provenance and labels (``source_file``,
    ``source_line``, ``task``, ...), gets a content ``id`` of its own texts, ``parent_id`` =
    the parent's ``id`` and ``augmentation`` = JSON of ``{"stage": name, **candidate.
    augmentation}``. Accounting counts created rows from that column, so conservation
    becomes input + created = output + rejects + quarantine. Parents are original records
    only: an augmentation of an augmentation would hide the root a split must group on. Pairs
    and binary records are not parents either: a rewritten prompt would need both replies (and
    the label) checked against it again.
    """

    @abstractmethod
    def candidates(self, batch: pa.Table, counts: StageCounts) -> list[Candidate]:
        """The new records for ``batch`` (live rows only), each naming its parent row."""

    def _apply(self, alive: pa.Table, counts: StageCounts) -> pa.Table:
        eligible = alive.filter(pa.array([not row for row in feedback_rows(alive)], pa.bool_()))
        proposed = self.candidates(eligible, counts) if eligible.num_rows else []
        if not proposed:
            return alive
        parents = eligible.take([candidate.parent for candidate in proposed]).to_pylist()
        rows = []
        for candidate, parent in zip(proposed, parents, strict=True):
            if parent["augmentation"] is not None:
                raise RuntimeError(f"stage {self.name!r} augmented a record it created itself")
            rows.append(self._created_row(candidate, parent, counts))
        return pa.concat_tables([alive, pa.Table.from_pylist(rows, schema=alive.schema)])

    def _created_row(
        self, candidate: Candidate, parent: dict[str, Any], counts: StageCounts
    ) -> dict[str, Any]:
        reason = detail = None
        if candidate.drop is not None:
            if candidate.drop.reason not in self.drop_reasons:
                raise RuntimeError(
                    f"stage {self.name!r} rejected with {candidate.drop.reason!r}, which is not "
                    f"in its vocabulary {list(self.drop_reasons)}"
                )
            counts.dropped[candidate.drop.reason] += 1
            reason = candidate.drop.reason
            detail = json.dumps(candidate.drop.detail or {}, ensure_ascii=False, sort_keys=True)
        return {
            **parent,
            "id": record_id(
                candidate.system, candidate.messages, candidate.context, parent["tools"]
            ),
            "system": candidate.system,
            "messages": candidate.messages,
            "context": candidate.context,
            # A score or a cluster describes the parent's text, not the new one.
            "quality_score": None,
            "cluster_id": None,
            "parent_id": parent["id"],
            "augmentation": json.dumps(
                {"stage": self.name, **candidate.augmentation}, ensure_ascii=False, sort_keys=True
            ),
            "drop_reason": reason,
            "drop_detail": detail,
            "raw": None,
        }


def with_drops(batch: pa.Table, reasons: list[str | None], details: list[str | None]) -> pa.Table:
    batch = batch.set_column(
        batch.schema.get_field_index("drop_reason"), "drop_reason", pa.array(reasons, pa.string())
    )
    return batch.set_column(
        batch.schema.get_field_index("drop_detail"), "drop_detail", pa.array(details, pa.string())
    )


class GlobalStage(ConfiguredStage):
    """A stage over the whole dataset. Subclasses implement ``apply`` with Ray Data shuffles,
    groupbys or joins, never a collection on the driver."""

    @abstractmethod
    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        """``ray.data.Dataset`` in FLOW_SCHEMA (materialized) to one in FLOW_SCHEMA (lazy)."""
