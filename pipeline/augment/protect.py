"""Spans a paraphrase must not touch, swapped for opaque sentinels and put back afterwards.

Fenced code blocks, inline code, URLs, ``{{placeholders}}`` and numbers are replaced by
``XPH<n>X`` before a text is translated or edited, and restored after. A translation model
copies such unknown all-caps tokens through; when it does not (drops, repeats or invents
one), ``restore`` reports the span as lost and the guard rejects the paraphrase. Text that
already contains something shaped like a sentinel has it protected too, so it survives.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

SENTINEL = re.compile(r"XPH(\d+)X")
PROTECTED = re.compile(
    r"```.*?```"  # fenced code, across lines
    r"|`[^`\n]+`"  # inline code
    r"|(?:https?://|www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]"  # URLs, minus closing punctuation
    r"|\{\{.*?\}\}"  # template placeholders
    r"|XPH\d+X"  # a sentinel-shaped word already in the text
    r"|\b\d+(?:[.,:]\d+)*\b",  # numbers (decimal and thousands separators, times), not mp3
    re.DOTALL,
)


class Masked(NamedTuple):
    text: str
    spans: tuple[str, ...]


def sentinel(index: int) -> str:
    return f"XPH{index}X"


def protect(text: str) -> Masked:
    spans: list[str] = []

    def swap(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return sentinel(len(spans) - 1)

    return Masked(PROTECTED.sub(swap, text), tuple(spans))


def restore(text: str, spans: tuple[str, ...]) -> tuple[str, int]:
    """The text with every sentinel replaced by its span, and how many spans were lost:
    missing, repeated or unknown sentinels each count once."""
    seen = Counter(int(index) for index in SENTINEL.findall(text))
    lost = sum(1 for index in range(len(spans)) if seen[index] != 1)
    lost += sum(1 for index in seen if index >= len(spans))

    def put_back(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return spans[index] if index < len(spans) else ""

    return SENTINEL.sub(put_back, text), lost


def has_words(masked_line: str) -> bool:
    """Whether a masked line holds anything to paraphrase besides sentinels and symbols."""
    return any(character.isalpha() for character in SENTINEL.sub("", masked_line))
