"""Text measurements for the instruction-following checks, needing no downloaded NLTK data.

IFEval counts sentences with NLTK's pretrained punkt model, which cannot be downloaded here,
so ``split_sentences`` is a rule-based splitter in punkt's spirit: a sentence ends at ``.``,
``?``, ``!`` or an ellipsis followed by white space (closing quotes, brackets and markdown
emphasis may sit between), except after an abbreviation or initial (Mr., e.g., U.S., J.),
a list number at the start of a line (``1.``), an ellipsis or abbreviation running into a
lower-case word, and a quoted question or exclamation followed by its lower-case attribution
("Why?" she asked). New lines alone never end a sentence, as in punkt. Decimals (3.14) and
addresses (example.com) never match, having no white space after the point.

Words are IFEval's: runs of ``\\w`` characters, what NLTK's ``RegexpTokenizer(r"\\w+")`` finds.
"""

from __future__ import annotations

import re

from nltk.tokenize import NLTKWordTokenizer

# Words that take a point without ending the sentence; matched lower-cased, point removed.
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "hon", "gen", "col",
        "capt", "cpt", "lt", "sgt", "gov", "sen", "rep", "pres", "messrs",
        "e.g", "i.e", "cf", "vs", "etc", "al", "approx", "ca", "viz", "no", "nos", "vol",
        "fig", "figs", "pp", "ch", "sec", "ed", "eds", "est", "dept", "univ", "assn",
        "inc", "ltd", "co", "corp", "bros", "llc",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "a.m", "p.m", "u.s", "u.k", "u.n", "e.u", "ph.d", "b.a", "m.a", "b.sc", "m.sc",
    }
)  # fmt: skip

# After an abbreviation, these words start a new sentence ("... in the U.S. They ..."), the
# way IFEval's own regex splitter and punkt's orthographic heuristic decide.
SENTENCE_STARTERS = frozenset(
    {
        "A", "An", "The", "I", "He", "She", "It", "We", "They", "You", "This", "That",
        "These", "Those", "There", "Their", "Our", "My", "His", "Her", "Its", "But", "And",
        "So", "However", "Then", "In", "On", "At", "If", "When", "While", "After", "Before",
        "As", "For", "What", "Why", "How", "Who", "Where", "Wherever", "Also", "Finally",
    }
)  # fmt: skip

_BOUNDARY = re.compile(r"(?P<mark>\.{2,}|…|[.?!]+)(?P<close>[\"'”’)\]*_`]*)(?=\s|$)")
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")  # U.S, e.g, a.m (final point removed)
_OPENERS = "\"'“‘([*_`"
_WORD = re.compile(r"\w+")
_WORD_TOKENIZER = NLTKWordTokenizer()


def _token_before(text: str, end: int) -> str:
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip(_OPENERS)


def _word_after(text: str, start: int) -> str:
    match = re.match(r"\s*(\S+)", text[start:])
    return match.group(1).lstrip(_OPENERS) if match else ""


def _at_line_start(text: str, token_end: int, token: str) -> bool:
    line_start = text.rfind("\n", 0, token_end) + 1
    return not text[line_start : token_end - len(token)].strip(" \t" + _OPENERS)


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether the punctuation ``match`` ends a sentence (see the module docstring)."""
    mark, close = match.group("mark"), match.group("close")
    following = _word_after(text, match.end())
    if not following:
        return True
    starts_lower = not following[0].isupper()
    if mark.startswith("..") or mark == "…":
        return not starts_lower
    if mark[0] in "?!":
        return not (close.strip("*_`") and starts_lower)
    token = _token_before(text, match.start())
    list_marker = (token.isdigit() and len(token) <= 3) or re.fullmatch(r"[A-Za-z]", token)
    if list_marker and _at_line_start(text, match.start(), token):
        return False  # "1. Mix the flour", "b. Stir": an item of a numbered list
    lowered = token.lower()
    if lowered in ABBREVIATIONS or _INITIALISM.match(token) or re.fullmatch(r"[A-Z]", token):
        return following in SENTENCE_STARTERS
    return True


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, in order; "" has none."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if _ends_sentence(text, match):
            sentences.append(text[start : match.end()].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


def count_words(text: str) -> int:
    """IFEval's word count: runs of word characters (``RegexpTokenizer(r"\\w+")``)."""
    return len(_WORD.findall(text))


def word_tokens(text: str) -> list[str]:
    """NLTK's ``word_tokenize`` without punkt: the Treebank-style tokenizer on each sentence
    from ``split_sentences`` (hyphenated words stay one token)."""
    return [
        token for sentence in split_sentences(text) for token in _WORD_TOKENIZER.tokenize(sentence)
    ]


def split_on_divider(text: str) -> list[str]:
    """Paragraphs separated by the markdown divider ``***`` (IFEval's split, white space
    around it included); empty pieces at either end dropped, empty ones between kept so a
    caller can reject a doubled divider."""
    pieces = re.split(r"\s?\*\*\*\s?", text)
    while pieces and not pieces[0].strip():
        pieces.pop(0)
    while pieces and not pieces[-1].strip():
        pieces.pop()
    return pieces


def split_blank_line_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by one or more blank lines, stripped, empty ones dropped."""
    return [piece.strip() for piece in re.split(r"\n[ \t]*\n", text) if piece.strip()]


def letter_count(text: str) -> int:
    return sum(character.isalpha() for character in text)
