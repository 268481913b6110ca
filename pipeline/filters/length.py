"""Length bounds on the instruction and the response, in characters.

Characters, not words, so that one bound means the same for English and for Chinese, which
has no spaces. Lengths are measured after stripping surrounding whitespace. The instruction is
the last user turn plus its context (``schema.instructions_and_responses``). Bounds follow
common instruction-data practice (Alpaca-cleaned, Dolly): an empty response is a broken record,
a near-empty instruction gives the model nothing to learn from.

A pair or a binary record is judged on its instruction and on having a chosen (or labelled)
reply at all; the reply's length is not held against it, since its replies are meant to
differ in quality.

Reasons: ``filter.empty_response`` (checked first), ``filter.instruction_too_short``,
``filter.instruction_too_long``, ``filter.response_too_short``, ``filter.response_too_long``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pyarrow as pa
from pydantic import Field, model_validator

from pipeline.schema import feedback_rows, instructions_and_responses
from pipeline.stage import Drop, Filter, StageConfig


class LengthConfig(StageConfig):
    min_instruction_chars: int = Field(default=3, ge=0)
    max_instruction_chars: int = Field(default=20_000, ge=0)
    min_response_chars: int = Field(default=1, ge=0)
    max_response_chars: int = Field(default=40_000, ge=0)

    @model_validator(mode="after")
    def _minimum_not_above_maximum(self) -> LengthConfig:
        for part in ("instruction", "response"):
            low = getattr(self, f"min_{part}_chars")
            high = getattr(self, f"max_{part}_chars")
            if low > high:
                raise ValueError(f"min_{part}_chars ({low}) must be <= max_{part}_chars ({high})")
        return self


class LengthFilter(Filter):
    name: ClassVar[str] = "length"
    Config: ClassVar[type[StageConfig]] = LengthConfig
    drop_reasons: ClassVar[tuple[str, ...]] = (
        "filter.empty_response",
        "filter.instruction_too_short",
        "filter.instruction_too_long",
        "filter.response_too_short",
        "filter.response_too_long",
    )
    config: LengthConfig

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        instructions, responses = instructions_and_responses(batch)
        return [
            self._judge(instruction.strip(), response.strip(), prompt_only)
            for instruction, response, prompt_only in zip(
                instructions, responses, feedback_rows(batch), strict=True
            )
        ]

    def _judge(self, instruction: str, response: str, prompt_only: bool = False) -> Drop | None:
        if not response:
            return Drop("filter.empty_response", {"response_chars": 0})
        bounds = self.config
        checks = [
            (
                "instruction",
                len(instruction),
                bounds.min_instruction_chars,
                bounds.max_instruction_chars,
            ),
        ]
        if not prompt_only:
            checks.append(
                ("response", len(response), bounds.min_response_chars, bounds.max_response_chars)
            )
        for part, chars, low, high in checks:
            if chars < low:
                return Drop(f"filter.{part}_too_short", {f"{part}_chars": chars, "min": low})
            if chars > high:
                return Drop(f"filter.{part}_too_long", {f"{part}_chars": chars, "max": high})
        return None
