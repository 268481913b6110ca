"""Text cleaning: repair encoding damage and strip markup and scraping artefacts.

Steps run in a fixed order, each one optional: mojibake -> Unicode normalisation ->
control characters -> HTML -> end-of-text markers -> whitespace. Markdown code (fenced
blocks, inline spans) is treated as data: HTML is not stripped there and whitespace inside
fenced blocks is kept, because indentation and angle brackets are meaningful in code.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from functools import cache, partial
from typing import ClassVar, Literal

import ftfy
import pyarrow as pa

from pipeline.schema import map_texts
from pipeline.stage import StageConfig, StageCounts, Transform

DEFAULT_END_OF_TEXT_MARKERS = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|im_start|>",
    "<|eot_id|>",
    "</s>",
    "<s>",
    "[END]",
    "<|end|>",
    "<eos>",
)

# Only the encoding repairs: ftfy's defaults would also straighten curly quotes, unescape
# HTML and normalise, which are either unwanted or done by our own steps.
MOJIBAKE_ONLY = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)

# ftfy only ever acts on text holding one of these (Latin-1 up to the box-drawing block, the
# Apple logo, fi/fl ligatures, U+FFFD, surrogates); skipping text without them spares its
# costly heuristic on CJK-heavy text. A test checks this against ftfy's own character list.
MOJIBAKE_CANDIDATE_RE = re.compile("[\x80-\u2fff\uf8ff\ufb01\ufb02\ufffd\ud800-\udfff]")

# C0/C1 controls except \t \n (kept) and \r \v \f (line breaks, the whitespace step's job),
# plus every Unicode format (Cf) character; tests check this list against unicodedata.
_FORMAT_CHARS = (
    "\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf"
_JOINING_SCRIPTS = "\u0600-\u06ff\u0750-\u077f\u0900-\u0dff\ufb50-\ufdff\ufe70-\ufefc"
# Some format characters carry meaning: ZWJ builds emoji sequences, ZWNJ shapes Persian and
# Indic words, tag characters spell subdivision flags. Those are kept in context.
ANY_CONTROL_RE = re.compile(f"[{_FORMAT_CHARS}]")
CONTROL_RE = re.compile(
    rf"(?P<keep>(?<=[{_EMOJI}\ufe0f])\u200d(?=[{_EMOJI}])"
    rf"|(?<=[{_JOINING_SCRIPTS}])\u200c(?=[{_JOINING_SCRIPTS}])"
    rf"|\U0001f3f4[\U000e0020-\U000e007f]+\U000e007f)|[{_FORMAT_CHARS}]+"
)

# A backtick fence's info string cannot contain backticks (CommonMark), so "```x```" on one
# line is an inline span, not an unclosed block swallowing the rest of the text.
_FENCE = r"^[ \t]*(?P<fence>`{3,}(?![^\n]*`)|~{3,}).*?(?:^[ \t]*(?P=fence)[ \t\r]*$|\Z)"
FENCE_RE = re.compile(_FENCE, re.MULTILINE | re.DOTALL)
CODE_RE = re.compile(
    rf"{_FENCE}|(?P<ticks>`+)(?!`)[^\n]*?(?<!`)(?P=ticks)(?!`)", re.MULTILINE | re.DOTALL
)

HTML_TAGS = frozenset(
    "a abbr address article aside audio b bdi bdo blockquote body br button canvas caption "
    "center cite code col colgroup dd del details dfn div dl dt em embed fieldset figcaption "
    "figure font footer form h1 h2 h3 h4 h5 h6 head header hr html i iframe img input ins kbd "
    "label legend li link main mark meta nav noscript object ol optgroup option p param "
    "picture pre q small source span strike strong sub summary sup table tbody td template "
    "textarea tfoot th thead time title tr tt u ul video wbr".split()
)  # no "s": in this data "<s>"/"</s>" are tokenizer markers, handled as such
# Stripped even when bare and unclosed; other bare tags ("<input>", "<title>") are common
# prose placeholders, so they count as HTML only with attributes or a closing tag.
HTML_ALWAYS = frozenset("br hr wbr p li tr td th dt dd tbody thead".split())
HTML_BREAKS = {"br": "\n", "hr": "\n", "p": "\n\n", "li": "\n- ", "td": " ", "th": " "}
HTML_BLOCKS = frozenset(
    "address article aside blockquote div dl footer form h1 h2 h3 h4 h5 h6 header nav ol pre "
    "section table tr ul".split()
)
TAG_RE = re.compile(
    r"<(?P<close>/)?(?P<name>[A-Za-z][A-Za-z0-9]*)"
    r"(?P<attrs>(?:\s+[A-Za-z_:@][-\w:.@]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)"
    r"\s*/?>"
)
CLOSING_TAG_RE = re.compile(r"</([A-Za-z][A-Za-z0-9]*)\s*>")
SCRIPT_RE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.I | re.DOTALL)
# Semicolon required: html.unescape alone turns "?a=1&copy=2" in a URL into "?a=1©=2".
ENTITY_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

LINE_BREAK_RE = re.compile(r"\r\n?|[\v\f\u2028\u2029]")
UNICODE_SPACE_RE = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
TRAILING_SPACE_RE = re.compile(r"[ \t]+$", re.MULTILINE)
EXCESS_BLANK_LINES_RE = re.compile(r"\n{3,}")


class CleanConfig(StageConfig):
    fix_mojibake: bool = True
    normalization: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_control_chars: bool = True
    strip_html: bool = True
    strip_end_of_text_markers: bool = True
    end_of_text_markers: tuple[str, ...] = DEFAULT_END_OF_TEXT_MARKERS
    normalize_whitespace: bool = True


def edit_outside_code(text: str, code: re.Pattern[str], edit: Callable[[str], str]) -> str:
    """Apply ``edit`` to the stretches of ``text`` between matches of ``code``."""
    if "`" not in text and "~~~" not in text:
        return edit(text)
    parts, last = [], 0
    for match in code.finditer(text):
        parts += [edit(text[last : match.start()]), match.group()]
        last = match.end()
    parts.append(edit(text[last:]))
    return "".join(parts)


def fix_mojibake(text: str) -> str:
    if text.isascii() or not MOJIBAKE_CANDIDATE_RE.search(text):
        return text
    return ftfy.fix_text(text, MOJIBAKE_ONLY)


def normalize_unicode(text: str, form: Literal["NFC", "NFKC"]) -> str:
    return text if unicodedata.is_normalized(form, text) else unicodedata.normalize(form, text)


def strip_control_chars(text: str) -> str:
    if not ANY_CONTROL_RE.search(text):
        return text
    return CONTROL_RE.sub(lambda match: match.group("keep") or "", text)


def _html_tag_replacement(match: re.Match[str], closed: frozenset[str]) -> str:
    name, attrs = match.group("name").lower(), match.group("attrs")
    is_close = bool(match.group("close"))
    if name not in HTML_TAGS or (attrs and ("=" not in attrs or is_close)):
        return match.group()  # "a<b and c>d" or "List<T>": prose, not markup
    if not (is_close or attrs or name in HTML_ALWAYS or name in closed):
        return match.group()
    if name in HTML_BREAKS and not (is_close and name in ("li", "br")):
        return HTML_BREAKS[name]
    return "\n" if name in HTML_BLOCKS else ""


def _strip_html_prose(text: str) -> str:
    if "<" in text:
        text = SCRIPT_RE.sub("", text)
        closed = frozenset(name.lower() for name in CLOSING_TAG_RE.findall(text))
        text = TAG_RE.sub(partial(_html_tag_replacement, closed=closed), text)
    if "&" in text:
        text = ENTITY_RE.sub(lambda match: html.unescape(match.group()), text)
    return text


def strip_html(text: str) -> str:
    if "<" not in text and "&" not in text:
        return text
    return edit_outside_code(text, CODE_RE, _strip_html_prose)


def strip_markers(text: str, markers: tuple[str, ...]) -> str:
    # Everywhere, code included: tokenizers read these as real special tokens mid-text.
    for marker in markers:
        if marker in text:
            text = text.replace(marker, "")
    return text


def _tidy_prose_whitespace(text: str) -> str:
    text = UNICODE_SPACE_RE.sub(" ", text)
    text = TRAILING_SPACE_RE.sub("", text)
    return EXCESS_BLANK_LINES_RE.sub("\n\n", text)


def _remove_common_indent(text: str) -> str:
    """Strip the indentation all lines share, so an indented snippet keeps its shape."""
    lines = text.split("\n")
    indents = [line[: len(line) - len(line.lstrip(" \t"))] for line in lines if line.strip()]
    margin = min(indents, key=len, default="")
    if not margin or any(not indent.startswith(margin) for indent in indents):
        return text
    return "\n".join(line[len(margin) :] if line.strip() else line for line in lines)


def normalize_whitespace(text: str) -> str:
    text = LINE_BREAK_RE.sub("\n", text)
    text = edit_outside_code(text, FENCE_RE, _tidy_prose_whitespace)
    return _remove_common_indent(text.strip("\n")).strip()


@cache
def _steps(config: CleanConfig) -> tuple[tuple[str, Callable[[str], str]], ...]:
    steps: list[tuple[str, Callable[[str], str]]] = []
    if config.fix_mojibake:
        steps.append(("clean.mojibake", fix_mojibake))
    if config.normalization != "none":
        normalize = partial(normalize_unicode, form=config.normalization)
        steps.append(("clean.unicode_normalized", normalize))
    if config.strip_control_chars:
        steps.append(("clean.control_chars", strip_control_chars))
    if config.strip_html:
        steps.append(("clean.html", strip_html))
    if config.strip_end_of_text_markers and config.end_of_text_markers:
        markers = config.end_of_text_markers
        steps.append(("clean.end_of_text_marker", partial(strip_markers, markers=markers)))
    if config.normalize_whitespace:
        steps.append(("clean.whitespace", normalize_whitespace))
    return tuple(steps)


def clean_text(text: str, config: CleanConfig) -> tuple[str, list[str]]:
    """The cleaned text and the edit kinds that changed it, in the order they ran."""
    kinds = []
    for kind, step in _steps(config):
        edited = step(text)
        if edited != text:
            kinds.append(kind)
            text = edited
    return text, kinds


class CleanText(Transform):
    """Cleans every free-text field; counts one edit per kind per field it changed."""

    name: ClassVar[str] = "clean"
    Config: ClassVar[type[StageConfig]] = CleanConfig
    config: CleanConfig

    def transform(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        def edit(text: str) -> str:
            cleaned, kinds = clean_text(text, self.config)
            counts.modified.update(kinds)
            return cleaned

        return map_texts(batch, edit)
