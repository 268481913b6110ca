"""Repetition within one text: Gopher's quality rules (Rae et al. 2021, "Scaling Language
Models", appendix A.1.1, table A1), as implemented in DataTrove's ``GopherRepetitionFilter``.

Degenerate model outputs loop: the same line, paragraph or phrase again and again. Gopher
measures duplicate lines and paragraphs (as a fraction of the elements and of the characters)
and, over word n-grams, the character share of the single most frequent 2-, 3- and 4-gram and
of all duplicated 5- to 10-grams. Tokens come from ``pipeline.text.words``, where each Chinese
character is a token, so a looping Chinese answer is caught like an English one.

Deviations from Gopher, on purpose: n-gram character fractions count the characters of the
tokens (no spaces), so that one bound fits text with and without spaces; fenced code blocks are
left out (``}`` lines repeat in any program); texts under ``min_words`` tokens are not judged,
as short answers repeat by chance.

Reasons: ``filter.repeated_lines``, ``filter.repeated_paragraphs``, ``filter.repeated_ngrams``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import pyarrow as pa
from pydantic import Field

from pipeline.stage import Drop, Filter, StageConfig
from pipeline.text import (
    TextField,
    field_texts,
    is_cjk,
    lines,
    paragraphs,
    without_code_blocks,
    words,
)

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NgramSize = Annotated[int, Field(ge=1)]


class RepetitionConfig(StageConfig):
    fields: tuple[TextField, ...] = Field(default=("response",), min_length=1)
    # Gopher's bounds were set for web documents; on a 30-word answer one repeated phrase
    # ("at a time") already crosses them, so shorter texts are not judged.
    min_words: int = Field(default=50, ge=0)
    # CJK text is tokenised per character and a word is ~2 characters, so n-gram sizes and
    # min_words are multiplied by this for text that is mostly CJK.
    cjk_ngram_scale: int = Field(default=2, ge=1)
    exclude_code_blocks: bool = True
    max_duplicate_line_fraction: Fraction = 0.3
    max_duplicate_paragraph_fraction: Fraction = 0.3
    max_duplicate_line_char_fraction: Fraction = 0.2
    max_duplicate_paragraph_char_fraction: Fraction = 0.2
    # n -> the largest allowed share of characters in the most frequent n-gram.
    max_top_ngram_char_fraction: dict[NgramSize, Fraction] = {2: 0.20, 3: 0.18, 4: 0.16}
    # n -> the largest allowed share of characters in n-grams seen before in the text.
    max_duplicate_ngram_char_fraction: dict[NgramSize, Fraction] = {
        5: 0.15,
        6: 0.14,
        7: 0.13,
        8: 0.12,
        9: 0.11,
        10: 0.10,
    }


def duplicates(elements: list[str]) -> tuple[int, int]:
    """How many elements repeat an earlier one, and how many characters those repeats hold."""
    seen: set[str] = set()
    repeated = repeated_chars = 0
    for element in elements:
        if element in seen:
            repeated += 1
            repeated_chars += len(element)
        else:
            seen.add(element)
    return repeated, repeated_chars


def top_ngram_chars(tokens: list[str], size: int) -> int:
    """Characters covered by all occurrences of the most frequent n-gram (Gopher)."""
    counts = Counter(tuple(tokens[start : start + size]) for start in range(len(tokens) - size + 1))
    if not counts:
        return 0
    ngram, occurrences = counts.most_common(1)[0]
    if occurrences < 2:  # an n-gram that occurs once is not a repetition
        return 0
    return sum(map(len, ngram)) * occurrences


def duplicate_ngram_chars(tokens: list[str], size: int) -> int:
    """Characters in n-grams seen before in the text; after a repeat, skip past it so that
    overlapping repeats are not counted twice (Gopher, as DataTrove does)."""
    seen: set[tuple[str, ...]] = set()
    repeated_chars = start = 0
    while start <= len(tokens) - size:
        ngram = tuple(tokens[start : start + size])
        if ngram in seen:
            repeated_chars += sum(map(len, ngram))
            start += size
        else:
            seen.add(ngram)
            start += 1
    return repeated_chars


class RepetitionFilter(Filter):
    name: ClassVar[str] = "repetition"
    Config: ClassVar[type[StageConfig]] = RepetitionConfig
    drop_reasons: ClassVar[tuple[str, ...]] = (
        "filter.repeated_lines",
        "filter.repeated_paragraphs",
        "filter.repeated_ngrams",
    )
    config: RepetitionConfig

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        # The first field that fails names the drop; later fields are not looked at.
        return [
            next((drop for field, text in row if (drop := self._judge(text, field))), None)
            for row in field_texts(batch, self.config.fields)
        ]

    def _judge(self, text: str, field: str) -> Drop | None:
        if self.config.exclude_code_blocks:
            text = without_code_blocks(text)
        tokens = words(text)
        scale = self.config.cjk_ngram_scale if _mostly_cjk(tokens) else 1
        if len(tokens) < self.config.min_words * scale:
            return None
        return self._repeated_blocks(text, field) or self._repeated_ngrams(tokens, field, scale)

    def _repeated_blocks(self, text: str, field: str) -> Drop | None:
        config = self.config
        total_chars = max(1, len(text.strip()))
        checks = (
            (
                "paragraph",
                paragraphs(text),
                config.max_duplicate_paragraph_fraction,
                config.max_duplicate_paragraph_char_fraction,
            ),
            (
                "line",
                lines(text),
                config.max_duplicate_line_fraction,
                config.max_duplicate_line_char_fraction,
            ),
        )
        for unit, blocks, max_fraction, max_char_fraction in checks:
            repeated, repeated_chars = duplicates(blocks)
            measures = (
                (f"duplicate_{unit}_fraction", repeated / max(1, len(blocks)), max_fraction),
                (
                    f"duplicate_{unit}_char_fraction",
                    repeated_chars / total_chars,
                    max_char_fraction,
                ),
            )
            for measure, value, bound in measures:
                if value > bound:
                    return Drop(f"filter.repeated_{unit}s", _detail(field, measure, value, bound))
        return None

    def _repeated_ngrams(self, tokens: list[str], field: str, scale: int) -> Drop | None:
        total_chars = sum(map(len, tokens))
        for size, bound in sorted(self.config.max_top_ngram_char_fraction.items()):
            value = top_ngram_chars(tokens, size * scale) / total_chars
            if value > bound:
                return Drop(
                    "filter.repeated_ngrams",
                    _detail(field, f"top_{size}gram_char_fraction", value, bound),
                )
        for size, bound in sorted(self.config.max_duplicate_ngram_char_fraction.items()):
            value = duplicate_ngram_chars(tokens, size * scale) / total_chars
            if value > bound:
                return Drop(
                    "filter.repeated_ngrams",
                    _detail(field, f"duplicate_{size}gram_char_fraction", value, bound),
                )
        return None


def _mostly_cjk(tokens: list[str]) -> bool:
    return sum(1 for token in tokens if len(token) == 1 and is_cjk(token)) * 2 > len(tokens)


def _detail(field: str, measure: str, value: float, bound: float) -> dict[str, Any]:
    return {"field": field, measure: round(value, 4), "max": bound}
