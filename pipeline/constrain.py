"""Attach verifiable instruction-following constraints: any instruction corpus becomes an RL
prompt set with a checkable reward (Tülu 3's RLVR, Lambert et al. 2024), evaluated on kinds
it never trained on (IFBench, Pyatkin et al. 2025: RL overfits the constraint kinds it saw).

For each live SFT record with a user turn, a seeded hash of its id picks ``per_record_min``
to ``per_record_max`` mutually compatible kinds (``pipeline.constraints``), phrases each one
into a sentence and attaches the sentences to the last user turn (``position``: after its
text, or before it). The record's ``constraints`` column gets ``{kind, args, held_out}`` per
kind, ``args`` the checker's arguments as sorted-key JSON, and ``id`` is recomputed from the
edited text and the constraints.

- **Held-out kinds.** A record whose ``split`` (set by the ``split`` stage, which must run
  earlier) is in ``held_out_splits`` draws only from ``held_out_kinds``; every other record,
  including records no split assigned, only from the other kinds. So ``data/train`` never
  asks for a held-out kind and ``data/validation`` asks for nothing else. With
  ``held_out_kinds: []`` every record draws from all of ``kinds``.
- **Left alone** (counted under ``modified``): pairs and binary-feedback records
  (``skipped.pair``, ``skipped.binary``: their replies were judged against the unconstrained
  prompt), records without a user turn (``skipped.no_user_turn``), records that already have
  constraints (``skipped.already_constrained``), and records no compatible kind fits
  (``skipped.no_compatible_kind``; ``repeat_prompt`` is not drawn for a record with
  ``context``, which the renderer puts after the user turn, so the request to repeat would
  not be one piece of text). ``constrained.seen`` / ``constrained.held_out`` count edited
  records, ``kind.<kind>`` each attached kind, and ``fewer_kinds_than_drawn`` records whose
  pool had fewer compatible kinds than the drawn count.
- **Replies.** The record's assistant turns are kept as they were, so they no longer answer
  the constrained prompt: this is data for RL (``train.rl`` samples its own replies), not for
  SFT. No record is dropped.
- **Determinism.** The generator is seeded from xxh3-64 of ``seed`` and the record's id, so
  the same input gives the same bytes whatever the batching or order. Per-batch stages do not
  see the recipe's ``seed``; this stage's own ``seed`` key changes the draw.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, ClassVar

import pyarrow as pa
import xxhash
from pydantic import Field, field_validator, model_validator

from pipeline.constraints import KINDS, REPEAT_PROMPT, Position, args_json, choose_kinds
from pipeline.constraints import constrain_instruction as constrained_text
from pipeline.schema import FLOW_SCHEMA, record_id, record_kind
from pipeline.stage import StageConfig, StageCounts, Transform

CONSTRAIN_SEED = 0xC0_25_7A_11
UINT64 = (1 << 64) - 1
# One kind from each of five IFEval groups, none conflicting with another, so that a held-out
# record can take two. Chosen to be unlike the seen kinds of their group: a letter count
# (seen: word counts), a first word per paragraph (seen: paragraph and sentence counts),
# highlights (seen: bullets, sections, title), quotes around everything (seen: an end
# phrase), a count of all-caps words (seen: all upper or all lower case).
DEFAULT_HELD_OUT_KINDS = (
    "keywords:letter_frequency",
    "length_constraints:nth_paragraph_first_word",
    "detectable_format:number_highlighted_sections",
    "startend:quotation",
    "change_case:capital_word_frequency",
)


def _check_kinds(kinds: tuple[str, ...], allowed: tuple[str, ...], what: str) -> None:
    unknown = [kind for kind in kinds if kind not in allowed]
    if unknown:
        raise ValueError(
            f"{what}: unknown constraint kind(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(allowed)}"
        )
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"{what}: kinds repeat: {list(kinds)}")


class ConstrainConfig(StageConfig):
    kinds: tuple[str, ...] = Field(default=KINDS, min_length=1)
    held_out_kinds: tuple[str, ...] = DEFAULT_HELD_OUT_KINDS
    held_out_splits: tuple[str, ...] = ("validation", "test")
    # Kinds per record, drawn uniformly in [min, max].
    per_record_min: int = Field(default=1, ge=1, le=len(KINDS))
    per_record_max: int = Field(default=2, ge=1, le=len(KINDS))
    position: Position = "append"
    seed: int = 0

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        _check_kinds(kinds, KINDS, "kinds")
        return kinds

    @model_validator(mode="after")
    def _held_out_within_kinds(self) -> ConstrainConfig:
        _check_kinds(self.held_out_kinds, self.kinds, "held_out_kinds (must be among kinds)")
        if self.held_out_kinds and not set(self.kinds) - set(self.held_out_kinds):
            raise ValueError(
                "every kind is held out, so training records would get none; leave at least "
                f"one of {', '.join(self.kinds)} out of held_out_kinds"
            )
        if self.per_record_min > self.per_record_max:
            raise ValueError(
                f"per_record_min ({self.per_record_min}) must not exceed per_record_max "
                f"({self.per_record_max})"
            )
        return self


class Constrain(Transform):
    name: ClassVar[str] = "constrain"
    Config: ClassVar[type[StageConfig]] = ConstrainConfig
    # Stages that edit or paraphrase prompts, and the split that decides held-out records.
    must_follow: ClassVar[tuple[str, ...]] = (
        "clean",
        "pii",
        "rule_augment",
        "back_translate",
        "split",
    )
    config: ConstrainConfig

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        held_out = set(self.config.held_out_kinds)
        kinds = [kind for kind in KINDS if kind in set(self.config.kinds)]
        self.held_out_pool = [kind for kind in kinds if kind in held_out]
        self.seen_pool = [kind for kind in kinds if kind not in held_out]
        self.hash_seed = (CONSTRAIN_SEED ^ self.config.seed) & UINT64

    def transform(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        rows = batch.select(
            ["id", "system", "messages", "context", "tools", "split", "rejected", "feedback"]
        ).to_pylist()
        existing = batch.column("constraints").to_pylist()
        ids, conversations, constraints = [], [], []
        for row, current in zip(rows, existing, strict=True):
            if current is not None:
                counts.modified["skipped.already_constrained"] += 1
                edited = None
            else:
                edited = self.constrain_row(row, counts.modified)
            if edited is None:
                ids.append(row["id"])
                conversations.append(row["messages"])
                constraints.append(current)
                continue
            turns, attached = edited
            # Like every transform that edits text, the id stays a hash of what is written.
            ids.append(
                record_id(row["system"], turns, row["context"], row["tools"], constraints=attached)
            )
            conversations.append(turns)
            constraints.append(attached)
        replaced = {
            "id": pa.array(ids, pa.string()),
            "messages": pa.array(conversations, FLOW_SCHEMA.field("messages").type),
            "constraints": pa.array(constraints, FLOW_SCHEMA.field("constraints").type),
        }
        for name, column in replaced.items():
            batch = batch.set_column(
                batch.schema.get_field_index(name), FLOW_SCHEMA.field(name), column
            )
        return batch

    def constrain_row(
        self, row: dict[str, Any], modified: Counter
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The edited turns and the constraints of one record, or None (counted) to leave it."""
        kind = record_kind(row["rejected"], row["feedback"])
        if kind != "sft":
            modified[f"skipped.{kind}"] += 1
            return None
        turns = row["messages"]
        last_user = next(
            (index for index in range(len(turns) - 1, -1, -1) if turns[index]["role"] == "user"),
            None,
        )
        if last_user is None:
            modified["skipped.no_user_turn"] += 1
            return None
        held_out = bool(self.config.held_out_kinds) and row["split"] in self.config.held_out_splits
        pool = self.held_out_pool if held_out else self.seen_pool
        if row["context"]:
            pool = [kind for kind in pool if kind != REPEAT_PROMPT]
        rng = random.Random(xxhash.xxh3_64_intdigest(row["id"].encode(), seed=self.hash_seed))
        count = rng.randint(self.config.per_record_min, self.config.per_record_max)
        kinds = choose_kinds(rng, pool, count)
        if not kinds:
            modified["skipped.no_compatible_kind"] += 1
            return None
        if len(kinds) < count:
            modified["fewer_kinds_than_drawn"] += 1
        text, phrased = constrained_text(
            rng, turns[last_user]["content"], kinds, self.config.position
        )
        modified["constrained.held_out" if held_out else "constrained.seen"] += 1
        modified.update(f"kind.{kind}" for kind in kinds)
        edited = [
            *turns[:last_user],
            {**turns[last_user], "content": text},
            *turns[last_user + 1 :],
        ]
        held = set(self.config.held_out_kinds)
        attached = [
            {"kind": kind, "args": args_json(args), "held_out": kind in held}
            for kind, args in phrased
        ]
        return edited, attached
