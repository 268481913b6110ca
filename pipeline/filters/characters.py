"""Symbol and letter ratios: Gopher's quality rules (Rae et al. 2021, "Scaling Language Models",
appendix A.1.1), as in DataTrove's ``GopherQualityFilter``, plus one character-level ratio.

- Symbol-to-word ratio (Gopher): ``#`` and ellipses (``...``, ``…``; a run such as Chinese
  ``……`` counts once), each per word, at most ``max_symbol_to_word_ratio``. Gopher aimed at
  hashtag spam and truncated teasers; Markdown heading markers (``## Title``) are neither, so
  they are not counted.
- Alphabetic words (Gopher): at least ``min_alphabetic_word_fraction`` of the words hold an
  alphabetic character. A CJK character is alphabetic (``str.isalpha``).
- Symbol characters (ours): at most ``max_non_alphanumeric_char_fraction`` of the non-space
  characters may be Unicode symbols or control/format characters (categories ``S*`` and
  ``C*``: ``=|<>+$``, emoji, box drawing, zero-width marks). Letters, digits, combining marks
  (Hindi and Thai vowel signs) and all punctuation, CJK punctuation included, are fine.

Fenced code blocks are left out of every ratio, so a code-heavy answer is judged on its prose
only; texts with fewer than ``min_words`` words (``pipeline.text.words``) are not judged.

Reasons: ``filter.too_many_symbols``, ``filter.too_few_letters``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from pipeline.stage import Drop, Filter, StageConfig
from pipeline.text import TextField, field_texts, without_code_blocks, words

_HEADING_MARKER = re.compile(r"^[ \t]{0,3}#{1,6}(?=[ \t]|$)", re.MULTILINE)
_ELLIPSIS = re.compile(r"\.{3,}|…+")


class CharacterRatioConfig(StageConfig):
    fields: tuple[TextField, ...] = Field(default=("response",), min_length=1)
    min_words: int = Field(default=5, ge=0)
    max_symbol_to_word_ratio: float = Field(default=0.1, ge=0.0)
    min_alphabetic_word_fraction: float = Field(default=0.8, ge=0.0, le=1.0)
    max_non_alphanumeric_char_fraction: float = Field(default=0.5, ge=0.0, le=1.0)


def symbol_counts(text: str) -> dict[str, int]:
    """Gopher's two symbols: hashes outside Markdown heading markers, and ellipsis runs."""
    return {
        "#": _HEADING_MARKER.sub("", text).count("#"),
        "...": len(_ELLIPSIS.findall(text)),
    }


def alphabetic_word_fraction(tokens: list[str]) -> float:
    return sum(any(char.isalpha() for char in token) for token in tokens) / len(tokens)


def symbol_char_fraction(text: str) -> float:
    """Share of non-space characters in Unicode categories S* (symbols) and C* (control)."""
    visible = [char for char in text if not char.isspace()]
    if not visible:
        return 0.0
    symbols = sum(unicodedata.category(char)[0] in "SC" for char in visible)
    return symbols / len(visible)


class CharacterRatioFilter(Filter):
    name: ClassVar[str] = "characters"
    Config: ClassVar[type[StageConfig]] = CharacterRatioConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("filter.too_many_symbols", "filter.too_few_letters")
    config: CharacterRatioConfig

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        # The first field that fails names the drop; later fields are not looked at.
        return [
            next((drop for field, text in row if (drop := self._judge(text, field))), None)
            for row in field_texts(batch, self.config.fields)
        ]

    def _judge(self, text: str, field: str) -> Drop | None:
        config = self.config
        prose = without_code_blocks(text)
        tokens = words(prose)
        if len(tokens) < config.min_words:
            return None
        for symbol, count in symbol_counts(prose).items():
            ratio = count / len(tokens)
            if ratio > config.max_symbol_to_word_ratio:
                return Drop(
                    "filter.too_many_symbols",
                    _detail(
                        field,
                        "symbol_to_word_ratio",
                        ratio,
                        "max",
                        config.max_symbol_to_word_ratio,
                        symbol=symbol,
                    ),
                )
        fraction = alphabetic_word_fraction(tokens)
        if fraction < config.min_alphabetic_word_fraction:
            return Drop(
                "filter.too_few_letters",
                _detail(
                    field,
                    "alphabetic_word_fraction",
                    fraction,
                    "min",
                    config.min_alphabetic_word_fraction,
                ),
            )
        fraction = symbol_char_fraction(prose)
        if fraction > config.max_non_alphanumeric_char_fraction:
            return Drop(
                "filter.too_many_symbols",
                _detail(
                    field,
                    "symbol_char_fraction",
                    fraction,
                    "max",
                    config.max_non_alphanumeric_char_fraction,
                ),
            )
        return None


def _detail(
    field: str, measure: str, value: float, side: str, bound: float, **extra: Any
) -> dict[str, Any]:
    return {"field": field, measure: round(value, 4), side: bound, **extra}
