"""Responses that copy the instruction: a failed generation that echoes the prompt (or its
input) teaches nothing. AlpacaDataCleaned (``gururise/AlpacaDataCleaned``) lists "output
repeats the input" among the Alpaca failures; the similarity measure is the character-shingle
Jaccard of near-duplicate detection (Broder 1997), which needs no word splitting and so works
for Chinese.

Both texts are normalised first (lowercased, punctuation removed, whitespace collapsed). A
response is a copy when

- the Jaccard similarity of its character ``ngram_chars``-grams with the instruction's is at
  least ``max_similarity``, or
- it is a substring of the instruction at least ``min_copied_chars`` long (a shorter one is a
  plausible answer: "Paris" copied from "Is Paris or Lyon the capital?").

The instruction is the last user turn plus its context (``schema.instructions_and_responses``).

Pairs and binary records are not judged: their replies are meant to differ in quality.

Reason: ``filter.response_copies_instruction``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pyarrow as pa
from pydantic import Field

from pipeline.schema import feedback_rows, instructions_and_responses
from pipeline.stage import Drop, Filter, StageConfig
from pipeline.text import char_ngrams, jaccard, normalized


class CopyConfig(StageConfig):
    max_similarity: float = Field(default=0.8, ge=0.0, le=1.0)
    ngram_chars: int = Field(default=5, ge=1)
    min_copied_chars: int = Field(default=20, ge=1)


class CopyFilter(Filter):
    name: ClassVar[str] = "copy"
    Config: ClassVar[type[StageConfig]] = CopyConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("filter.response_copies_instruction",)
    config: CopyConfig

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        instructions, responses = instructions_and_responses(batch)
        return [
            None if prompt_only else self._judge(normalized(instruction), normalized(response))
            for instruction, response, prompt_only in zip(
                instructions, responses, feedback_rows(batch), strict=True
            )
        ]

    def _judge(self, instruction: str, response: str) -> Drop | None:
        if not response:
            return None
        config = self.config
        if len(response) >= config.min_copied_chars and response in instruction:
            return Drop(
                "filter.response_copies_instruction",
                {"copied_chars": len(response), "min": config.min_copied_chars},
            )
        similarity = jaccard(
            char_ngrams(instruction, config.ngram_chars), char_ngrams(response, config.ngram_chars)
        )
        if similarity >= config.max_similarity:
            return Drop(
                "filter.response_copies_instruction",
                {"similarity": round(similarity, 4), "max": config.max_similarity},
            )
        return None
