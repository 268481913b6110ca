"""Refusals, AI disclaimers and placeholder responses, which teach a model to refuse or to say
nothing. The phrase lists follow the "unfiltered" cleanings of ShareGPT and WizardLM data
(Hugging Face ``anon8231489123/ShareGPT_Vicuna_unfiltered``,
``ehartford/WizardLM_alpaca_evol_instruct_70k_unfiltered``) and the ``<nooutput>`` placeholders
of the original Alpaca data (fixed by ``gururise/AlpacaDataCleaned``).

- A refusal pattern is searched in the first ``refusal_window_chars`` of the response only:
  refusals come first, and a long helpful answer that later says "I cannot comply with both
  constraints at once, so here is the trade-off" must not be dropped.
- A boilerplate pattern must match the whole response, stripped of surrounding whitespace and
  of final full stops, case-insensitively: "None" alone is a placeholder, "None of the
  above options is prime" is an answer.

Patterns are Python regular expressions, matched case-insensitively. Pairs and binary
records are not judged: a rejected or undesirable refusal is exactly what they teach against.

Reasons: ``filter.refusal``, ``filter.boilerplate_response``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import pyarrow as pa
from pydantic import Field, field_validator

from pipeline.schema import feedback_rows, instructions_and_responses
from pipeline.stage import Drop, Filter, StageConfig

_APOSTROPHE = "['’]"

# Each pattern names a disclaimer or refusal, not a topic: "as an AI researcher" and
# "作为人工智能领域的专家" (as an expert in AI) are not matched.
DEFAULT_REFUSAL_PATTERNS = (
    r"\bas an? (?:ai |artificial intelligence )?language model\b",
    r"\bas an? (?:ai|artificial intelligence)(?: model| assistant| chatbot)?,? I\b",
    rf"\bI(?: am|{_APOSTROPHE}m) sorry,? but I (?:can(?:not|{_APOSTROPHE}t)|am unable"
    rf"|{_APOSTROPHE}m unable|won{_APOSTROPHE}t)",
    rf"\bI (?:cannot|can{_APOSTROPHE}t|can not|am unable to|{_APOSTROPHE}m unable to) "
    r"(?:fulfill|comply with)\b",
    rf"\bI (?:cannot|can{_APOSTROPHE}t|can not) (?:assist|help) with (?:this|that|your) request",
    rf"\bI(?: am|{_APOSTROPHE}m) (?:unable|not able) to provide\b",
    r"作为一?[个名]?\s*(?:AI|人工智能)\s*(?:(?:语言)?模型|助手|程序)?\s*(?:[，,]|我)",
    r"(?:抱歉|对不起)[，,、\s]*(?:但是?)?[，,\s]*我(?:无法|不能|没法|没有办法)",
)

DEFAULT_BOILERPLATE_PATTERNS = (
    r"<\s*no\s*output\s*>",
    r"n/?a",
    r"no output",
    r"none",
    r"null",
    r"todo",
    r"lorem ipsum\b.*",
    rf"sorry,? I don{_APOSTROPHE}t know",
    r"无",
    r"暂无",
)

_FINAL_STOPS = ".。!！"


class RefusalConfig(StageConfig):
    refusal_patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS
    boilerplate_patterns: tuple[str, ...] = DEFAULT_BOILERPLATE_PATTERNS
    refusal_window_chars: int = Field(default=300, ge=1)

    @field_validator("refusal_patterns", "boilerplate_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"pattern {pattern!r} is not a valid regex: {error}") from None
        return patterns


class RefusalFilter(Filter):
    name: ClassVar[str] = "refusal"
    Config: ClassVar[type[StageConfig]] = RefusalConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("filter.refusal", "filter.boilerplate_response")
    config: RefusalConfig

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        flags = re.IGNORECASE | re.DOTALL
        self.refusals = [re.compile(pattern, flags) for pattern in self.config.refusal_patterns]
        self.boilerplate = [
            re.compile(pattern, flags) for pattern in self.config.boilerplate_patterns
        ]

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        _, responses = instructions_and_responses(batch)
        return [
            None if prompt_only else self._judge(response)
            for response, prompt_only in zip(responses, feedback_rows(batch), strict=True)
        ]

    def _judge(self, response: str) -> Drop | None:
        whole = response.strip().rstrip(_FINAL_STOPS).strip()
        for pattern in self.boilerplate:
            if pattern.fullmatch(whole):
                return Drop(
                    "filter.boilerplate_response",
                    {"pattern": pattern.pattern, "response": whole[:80]},
                )
        opening = response.lstrip()[: self.config.refusal_window_chars]
        for pattern in self.refusals:
            found = pattern.search(opening)
            if found:
                return Drop(
                    "filter.refusal",
                    {
                        "pattern": pattern.pattern,
                        "match": found.group(),
                        "at_char": found.start(),
                        "window_chars": self.config.refusal_window_chars,
                    },
                )
        return None
