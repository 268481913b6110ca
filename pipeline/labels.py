"""Labels for strata: ``task`` and ``domain`` from rules or a fastText model, and a
``difficulty`` bucket from a heuristic.

**task and domain.** A record that already has one (from the source, a recipe input's
``task:``/``domain:`` or a template) keeps it unless ``overwrite`` is set. Otherwise:

1. ``rules``: ``{task: [{label, pattern, fields}], domain: [...]}``. Rules are tried in order
   and the first whose regex (case-insensitive, ``re.search``) matches one of its ``fields``
   (``instruction``, the default, and/or ``response``) gives the label.
2. ``domain_model``: a fastText model trained by ``instructflow quality train --label-field
   domain``, for rows no domain rule matched. Its best label is taken when its probability
   reaches ``domain_min_probability``.

A row that nothing labels keeps what it had.

**difficulty** (``easy``, ``medium``, ``hard``), when empty or with ``overwrite``:

    score = min(I / instruction_words_per_point, max_length_points)
          + min(R / response_words_per_point, max_length_points)
          + constraint_weight * min(C, max_constraints)
          + marker_weight * min(M, max_markers)

    easy: score < medium_from;  hard: score >= hard_from;  medium otherwise.

- I, R: length of the instruction (with its context) and the response in words; a CJK
  character counts ``1 / cjk_chars_per_word`` words, as Chinese spends about 1.5 characters
  per English word.
- C: explicit constraints in the instruction, each match of ``CONSTRAINT_PATTERNS`` once:
  counts and limits ("in 50 words", "at most 3 sentences", "100-word", "不超过100字",
  "三句话"), formats ("bullet points", "numbered list", "JSON", "表格", "分点"), obligations
  ("must", "do not", "without", "必须", "不要", "确保"), tone and style ("formal tone",
  "语气"), and numbered or bulleted requirement lines (``1. ...``, ``- ...``).
- M: distinct reasoning and multi-step markers in the instruction and response
  (``REASONING_MARKERS``: "step", "first", "then", "therefore", "because", "calculate",
  "首先", "然后", "因此", "步骤", ...).

With the defaults a one-line question with a two-sentence answer is easy, a request with a
constraint or two and a paragraph-long answer is medium, and a long, constrained request
with a multi-step answer is hard. On the LLaMA-Factory alpaca demos they give 44% easy, 40%
medium, 16% hard in English and 34/52/15% in Chinese.

``counts.modified`` counts every label the stage set, per label: ``task.code``,
``domain.cooking``, ``difficulty.hard``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.classifier import best_label, classifier_texts, label_probabilities, load_fasttext
from pipeline.quality import check_model_file
from pipeline.schema import FLOW_SCHEMA, instructions_and_responses
from pipeline.stage import FilePath, Resources, StageConfig, StageCounts, Transform
from pipeline.text import TextField, is_cjk

DIFFICULTIES = ("easy", "medium", "hard")
_NUMBER = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|hundred)"
_ZH_NUMBER = r"(?:\d+|[一二两三四五六七八九十百千]+)"
_ZH_LIMIT = r"(?:不超过|不少于|至少|最多|控制在|限制在|用)"
CONSTRAINT_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    for pattern in (
        # counts and limits
        rf"\b(?:in|within|under|at most|no more than|less than|fewer than|up to|exactly|"
        rf"at least|maximum of|minimum of|only)\s+{_NUMBER}\s+(?:words?|sentences?|"
        r"paragraphs?|lines?|bullet points?|points?|items?|examples?|characters?|steps?)\b",
        r"\b\d+-(?:word|sentence|paragraph|line|item|point|step)\b",
        rf"(?:{_ZH_LIMIT}\s*)?{_ZH_NUMBER}\s*(?:个)?(?:字|句话|句|段|条|个要点|点|行)"
        rf"|{_ZH_LIMIT}\s*{_ZH_NUMBER}",
        # formats
        r"\b(?:bullet(?:ed)?\s+(?:points?|list)|numbered\s+list|table|json|markdown|yaml|csv|"
        r"formatted\s+as|in\s+the\s+form\s+of|title\s+case|all\s+caps|lowercase|uppercase)\b",
        r"列表|表格|要点|分点|编号|项目符号|格式",
        # obligations and prohibitions
        r"\b(?:must|do not|don't|never|avoid|without|make sure|ensure|be sure to|"
        r"use only|only use|exactly)\b",
        r"必须|务必|不要|不能|不得|不可|确保|避免|只能|仅",
        # tone, style and audience
        r"\b(?:tone|in the style of|for (?:a|an) (?:\w+ )?(?:audience|child|children|beginner|"
        r"expert)s?)\b",
        r"语气|风格|口吻",
        # numbered or bulleted requirement lines
        r"^[ \t]*(?:\d+[.)、]|[-*•])[ \t]+\S",
    )
)
REASONING_MARKERS = re.compile(
    r"\b(?:step[- ]by[- ]step|steps?|first(?:ly)?|second(?:ly)?|third(?:ly)?|then|next|"
    r"finally|therefore|thus|hence|because|consequently|as a result|calculate|compute|"
    r"derive|prove|explain why|reason(?:ing)?|analy[sz]e|compare)\b"
    r"|首先|其次|然后|接着|最后|因此|所以|因为|步骤|第一|第二|推导|证明|计算|分析|比较",
    re.IGNORECASE,
)


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(min_length=1)
    pattern: str = Field(min_length=1)
    fields: tuple[TextField, ...] = Field(default=("instruction",), min_length=1)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return pattern


class Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    task: tuple[Rule, ...] = ()
    domain: tuple[Rule, ...] = ()


class DifficultyConfig(BaseModel):
    """The heuristic's weights and thresholds: see the module docstring for the formula."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    instruction_words_per_point: float = Field(default=40.0, gt=0)
    response_words_per_point: float = Field(default=150.0, gt=0)
    max_length_points: float = Field(default=2.0, ge=0)
    constraint_weight: float = Field(default=1.0, ge=0)
    max_constraints: int = Field(default=3, ge=0)
    marker_weight: float = Field(default=0.5, ge=0)
    max_markers: int = Field(default=4, ge=0)
    cjk_chars_per_word: float = Field(default=1.5, gt=0)
    medium_from: float = 1.0
    hard_from: float = 2.5

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> DifficultyConfig:
        if self.medium_from > self.hard_from:
            raise ValueError(
                f"medium_from ({self.medium_from}) must not exceed hard_from ({self.hard_from})"
            )
        return self


class LabelConfig(StageConfig):
    rules: Rules = Rules()
    domain_model: FilePath | None = None
    domain_min_probability: float = Field(default=0.5, ge=0.0, le=1.0)
    difficulty: DifficultyConfig = DifficultyConfig()
    overwrite: bool = False
    # Actor pool size when a domain model is loaded (once per worker).
    concurrency: int = Field(default=2, ge=1)

    @field_validator("domain_model")
    @classmethod
    def _model_exists(cls, path: str | None) -> str | None:
        return check_model_file(path)


def word_count(text: str, cjk_chars_per_word: float) -> float:
    """Whitespace words of non-CJK text plus CJK characters / ``cjk_chars_per_word``."""
    cjk = sum(1 for char in text if is_cjk(char))
    spaced = "".join(" " if is_cjk(char) else char for char in text)
    return len(spaced.split()) + cjk / cjk_chars_per_word


def constraint_count(instruction: str) -> int:
    return sum(len(pattern.findall(instruction)) for pattern in CONSTRAINT_PATTERNS)


def marker_count(text: str) -> int:
    return len({marker.lower() for marker in REASONING_MARKERS.findall(text)})


def difficulty_score(instruction: str, response: str, config: DifficultyConfig) -> float:
    """The heuristic score of the module docstring."""
    length_cap = config.max_length_points
    instruction_words = word_count(instruction, config.cjk_chars_per_word)
    response_words = word_count(response, config.cjk_chars_per_word)
    return (
        min(instruction_words / config.instruction_words_per_point, length_cap)
        + min(response_words / config.response_words_per_point, length_cap)
        + config.constraint_weight * min(constraint_count(instruction), config.max_constraints)
        + config.marker_weight * min(marker_count(f"{instruction}\n{response}"), config.max_markers)
    )


def difficulty_bucket(score: float, config: DifficultyConfig) -> str:
    if score >= config.hard_from:
        return "hard"
    return "medium" if score >= config.medium_from else "easy"


class LabelRecords(Transform):
    name: ClassVar[str] = "label"
    Config: ClassVar[type[StageConfig]] = LabelConfig
    config: LabelConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        # Without a model the stage is a cheap function that fuses with its neighbours.
        return Resources(concurrency=config.concurrency) if config.domain_model else Resources()

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        self.domain_model = (
            load_fasttext(self.config.domain_model) if self.config.domain_model else None
        )
        self.compiled = {
            column: [
                (rule, re.compile(rule.pattern, re.IGNORECASE))
                for rule in getattr(self.config.rules, column)
            ]
            for column in ("task", "domain")
        }

    def transform(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        instructions, responses = instructions_and_responses(batch)
        texts = {"instruction": instructions, "response": responses}
        columns = {}
        columns["task"], _ = self.rule_labels(batch, "task", texts)
        columns["domain"], matched = self.rule_labels(batch, "domain", texts)
        if self.domain_model is not None:
            columns["domain"] = self.model_domains(batch, columns["domain"], matched)
        if self.config.difficulty.enabled:
            columns["difficulty"] = self.difficulties(batch, instructions, responses)
        for column, values in columns.items():
            before = batch.column(column).to_pylist()
            counts.modified.update(
                f"{column}.{new}" for old, new in zip(before, values, strict=True) if new != old
            )
            index = batch.schema.get_field_index(column)
            batch = batch.set_column(
                index, FLOW_SCHEMA.field(column), pa.array(values, pa.string())
            )
        return batch

    def wanted(self, current: Sequence[str]) -> list[bool]:
        return [self.config.overwrite or not value for value in current]

    def rule_labels(
        self, batch: pa.Table, column: str, texts: dict[str, list[str]]
    ) -> tuple[list[str], list[bool]]:
        """The column after the rules (the first matching rule's label where one is wanted),
        and which rows a rule labelled."""
        values = batch.column(column).to_pylist()
        matched = [False] * len(values)
        rules = self.compiled[column]
        for row, wanted in enumerate(self.wanted(values) if rules else []):
            if not wanted:
                continue
            for rule, pattern in rules:
                if any(pattern.search(texts[field][row]) for field in rule.fields):
                    values[row] = rule.label
                    matched[row] = True
                    break
        return values, matched

    def model_domains(self, batch: pa.Table, domains: list[str], matched: list[bool]) -> list[str]:
        """Domains from the fastText model for rows that want one and no rule labelled."""
        current = batch.column("domain").to_pylist()
        rows = [
            row for row, wanted in enumerate(self.wanted(current)) if wanted and not matched[row]
        ]
        if not rows:
            return domains
        texts = classifier_texts(batch.take(rows))
        for row, probabilities in zip(
            rows, label_probabilities(self.domain_model, texts), strict=True
        ):
            label, probability = best_label(probabilities)
            if probability >= self.config.domain_min_probability:
                domains[row] = label
        return domains

    def difficulties(
        self, batch: pa.Table, instructions: list[str], responses: list[str]
    ) -> list[str]:
        config = self.config.difficulty
        values = batch.column("difficulty").to_pylist()
        for row, wanted in enumerate(self.wanted(values)):
            if wanted:
                score = difficulty_score(instructions[row], responses[row], config)
                values[row] = difficulty_bucket(score, config)
        return values
