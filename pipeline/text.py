"""Text utilities shared by the filters, written so that Chinese and Japanese work too.

Latin-script text is split into words on whitespace. Chinese and Japanese have no spaces, so
each CJK ideograph, kana and hangul syllable is its own token: a character is the closest
thing those scripts have to a word that needs no dictionary, and it keeps ratios such as
"duplicate n-gram characters" comparable across scripts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

import pyarrow as pa

from pipeline.schema import feedback_rows, instructions_and_responses

# Han (radicals, ext. A, unified, compatibility, ext. B-G), the iteration marks 々 and 〇,
# kana (without the ・ middle dot, which is punctuation), bopomofo and hangul.
CJK_CHARACTERS = (
    "\u2e80-\u2fdf\u3005\u3007\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\u3100-\u312f"
    "\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\u1100-\u11ff\uac00-\ud7af"
    "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK = re.compile(f"[{CJK_CHARACTERS}]")
_TOKEN = re.compile(f"[{CJK_CHARACTERS}]|[^\\s{CJK_CHARACTERS}]+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# A fenced Markdown code block; an unclosed fence runs to the end of the text, as it renders.
_CODE_BLOCK = re.compile(
    r"^[ \t]*(`{3,}|~{3,}).*?(?:^[ \t]*\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL
)

# The two texts a filter can judge: see ``schema.instructions_and_responses``.
TextField = Literal["instruction", "response"]


def _punctuation() -> str:
    # Every Unicode punctuation character of the basic plane (ASCII, CJK full-width and
    # ideographic marks included), plus the Markdown markers ` and ~ that Unicode files
    # under symbols but that wrap words like quotes do.
    marks = (chr(code) for code in range(0x10000))
    return "".join(mark for mark in marks if unicodedata.category(mark).startswith("P")) + "`~"


PUNCTUATION = _punctuation()
_DELETE_PUNCTUATION = str.maketrans("", "", PUNCTUATION)


def is_cjk(char: str) -> bool:
    """True for one Han character, kana or hangul syllable (not for CJK punctuation)."""
    return _CJK.fullmatch(char) is not None


def words(text: str) -> list[str]:
    """Word tokens: whitespace-delimited words, each CJK character on its own.

    Punctuation is stripped from the edges of each word, and tokens that were only
    punctuation disappear, so ``"你好，世界!"`` gives ``["你", "好", "世", "界"]``.
    """
    tokens = (token.strip(PUNCTUATION) for token in _TOKEN.findall(text))
    return [token for token in tokens if token]


def spaced_words(text: str) -> list[str]:
    """Whitespace-delimited words with edge punctuation stripped; CJK runs are not split.

    For languages that write spaces between words in any script, Korean included.
    """
    tokens = (token.strip(PUNCTUATION) for token in text.split())
    return [token for token in tokens if token]


def lines(text: str) -> list[str]:
    """Non-blank lines, stripped of surrounding whitespace."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def paragraphs(text: str) -> list[str]:
    """Blocks separated by at least one blank line, stripped; blank blocks dropped."""
    return [block.strip() for block in _PARAGRAPH_BREAK.split(text) if block.strip()]


def without_code_blocks(text: str) -> str:
    """``text`` with fenced code blocks removed: prose heuristics do not apply to code."""
    return _CODE_BLOCK.sub("\n", text)


def normalized(text: str) -> str:
    """Lowercased, punctuation removed, whitespace collapsed to single spaces."""
    return " ".join(text.lower().translate(_DELETE_PUNCTUATION).split())


def char_ngrams(text: str, size: int) -> set[str]:
    """The set of character n-grams; a text shorter than ``size`` is its own only n-gram."""
    if len(text) < size:
        return {text} if text else set()
    return {text[start : start + size] for start in range(len(text) - size + 1)}


def jaccard(left: set[str], right: set[str]) -> float:
    """|A ∩ B| / |A ∪ B|, and 0.0 when both are empty (nothing in common to speak of)."""
    union = len(left | right)
    return len(left & right) / union if union else 0.0


def language_code(tag: str) -> str:
    """``zh-Hans``, ``pt_BR``, ``EN`` -> ``zh``, ``pt``, ``en``: the ISO 639 part of a tag."""
    return tag.strip().lower().replace("_", "-").split("-")[0]


def field_texts(batch: pa.Table, fields: Sequence[TextField]) -> list[list[tuple[str, str]]]:
    """Per row, ``(field, text)`` for each of ``fields``, in the order given. A pair or a
    binary record gives its instruction only: its replies are meant to differ in quality (an
    undesirable one is bad on purpose), so filters judge its prompt."""
    instructions, responses = instructions_and_responses(batch)
    by_field = {"instruction": instructions, "response": responses}
    return [
        [
            (field, by_field[field][row])
            for field in fields
            if not (prompt_only and field == "response")
        ]
        for row, prompt_only in enumerate(feedback_rows(batch))
    ]
