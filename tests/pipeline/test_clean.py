"""CleanText: each step alone, the full chain, and the stage on a batch. Pure, no Ray."""

from __future__ import annotations

import sys
import unicodedata

import ftfy.badness
import pyarrow as pa
import pytest

from pipeline.clean import (
    CONTROL_RE,
    MOJIBAKE_CANDIDATE_RE,
    CleanConfig,
    CleanText,
    clean_text,
)
from pipeline.schema import make_record, message, rows_to_table

ONLY = dict(
    fix_mojibake=False,
    normalization="none",
    strip_control_chars=False,
    strip_html=False,
    strip_end_of_text_markers=False,
    normalize_whitespace=False,
)


def only(**options: object) -> CleanConfig:
    """A config with every step off except those named."""
    return CleanConfig(**{**ONLY, **options})


def record(
    user: str, assistant: str, *, system: str = "", context: str = "", line: int = 1
) -> dict:
    return make_record(
        messages=[message("user", user), message("assistant", assistant)],
        system=system,
        context=context,
        source_file="/data/a.jsonl",
        source_format="alpaca",
        source_line=line,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CafÃ©", "Café"),
        ("â€œquotedâ€\x9d", "\u201cquoted\u201d"),
        ("The pipeâ€™s end", "The pipe\u2019s end"),
        ("Ã¼ber naÃ¯ve", "über naïve"),
    ],
)
def test_mojibake_is_repaired(text: str, expected: str) -> None:
    assert clean_text(text, only(fix_mojibake=True)) == (expected, ["clean.mojibake"])


@pytest.mark.parametrize(
    "text", ["Café naïve", "He said \u201chi\u201d", "我的手机号", "plain ascii", "résumé &amp; co"]
)
def test_correct_text_is_not_touched_by_mojibake_repair(text: str) -> None:
    assert clean_text(text, only(fix_mojibake=True)) == (text, [])


def test_mojibake_prefilter_covers_every_character_ftfy_looks_for() -> None:
    # Category ranges ("\xc0-\xd1") have in-range endpoints, so checking the listed ones suffices.
    listed = ftfy.badness.BADNESS_RE.pattern + "".join(ftfy.badness.MOJIBAKE_CATEGORIES.values())
    suspects = {char for char in listed if not char.isascii()}
    assert suspects and all(MOJIBAKE_CANDIDATE_RE.match(char) for char in suspects)


def test_unicode_normalization_forms() -> None:
    decomposed = "Cafe\u0301"
    assert clean_text(decomposed, only(normalization="NFC")) == (
        "Café",
        ["clean.unicode_normalized"],
    )
    # NFC keeps compatibility characters; NFKC folds them (which is why NFC is the default).
    assert clean_text("x² ﬁle", only(normalization="NFC")) == ("x² ﬁle", [])
    assert clean_text("x² ﬁle", only(normalization="NFKC")) == (
        "x2 file",
        ["clean.unicode_normalized"],
    )
    assert clean_text(decomposed, only(fix_mojibake=True)) == (decomposed, [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b\x07c\x1bd", "abcd"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("soft\u00adhyphen \u202eevil\u202c", "softhyphen evil"),
        ("c1\x80\x9fend", "c1end"),
        ("tag\U000e0041\U000e0042 smuggling", "tag smuggling"),
        ("stray\u200djoiner", "strayjoiner"),
    ],
)
def test_control_and_format_characters_are_removed(text: str, expected: str) -> None:
    assert clean_text(text, only(strip_control_chars=True)) == (expected, ["clean.control_chars"])


@pytest.mark.parametrize(
    "text",
    [
        "tabs\tand\nnewlines",
        "family \U0001f468\u200d\U0001f469\u200d\U0001f467 emoji",
        "\u2764\ufe0f\u200d\U0001f525",
        "Persian \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "flag \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
        "crlf\r\nstays for the whitespace step",
    ],
)
def test_meaningful_characters_are_kept(text: str) -> None:
    assert clean_text(text, only(strip_control_chars=True)) == (text, [])


def test_control_character_set_matches_unicode_categories() -> None:
    left_in = {"\t", "\n", "\v", "\f", "\r"}
    for codepoint in range(sys.maxunicode + 1):
        char = chr(codepoint)
        category = unicodedata.category(char)
        stripped = CONTROL_RE.fullmatch(char) is not None and not CONTROL_RE.fullmatch(char)["keep"]
        if category in ("Cc", "Cf") and char not in left_in:
            assert stripped, f"U+{codepoint:04X} ({category}) is not stripped"
        elif stripped:  # newer Unicode format characters, unassigned in this Python
            assert category == "Cn", f"U+{codepoint:04X} ({category}) is stripped"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<p>Hello &amp; welcome</p>", "\n\nHello & welcome\n\n"),
        ("one<br>two<br/>three<br />four", "one\ntwo\nthree\nfour"),
        ("<ul><li>a</li><li>b</li></ul>", "\n\n- a\n- b\n"),
        ('<a href="https://x.org" class=link>link</a> text', "link text"),
        ("<script>alert(1)</script>Safe<style>p {color: red}</style>", "Safe"),
        ("before<!-- a comment -->after", "beforeafter"),
        ("<div><b>bold</b> &lt;tag&gt; &#39;q&#x27;</div>", "\nbold <tag> 'q'\n"),
        ("orphan closing</div> tag", "orphan closing\n tag"),
        ('<img src="x.png"> picture', " picture"),
        ("<H1>Title</H1>", "\nTitle\n"),
    ],
)
def test_html_is_stripped(text: str, expected: str) -> None:
    assert clean_text(text, only(strip_html=True)) == (expected, ["clean.html"])


@pytest.mark.parametrize(
    "text",
    [
        "a < b and c > d",
        "if a<b and c>d then",
        "List<T> and Map<K, V> and Pair<A>",
        "usage: cmd <input> <output> --title <title>",
        "write a story about <topic>",
        "AT&T and R&D, ?a=1&copy=2",
        "x &lt y",
        "<s>marker</s> is not HTML here",
    ],
)
def test_prose_that_only_looks_like_html_is_kept(text: str) -> None:
    assert clean_text(text, only(strip_html=True)) == (text, [])


def test_html_is_kept_inside_code() -> None:
    text = (
        "Use <b>bold</b> or `<b>x</b> &amp;` inline.\n"
        "```html\n<p>Hello &amp; <br> world</p>\n```\n"
        "~~~\n<div>tilde</div>\n~~~\n"
        "After <i>all</i>."
    )
    expected = (
        "Use bold or `<b>x</b> &amp;` inline.\n"
        "```html\n<p>Hello &amp; <br> world</p>\n```\n"
        "~~~\n<div>tilde</div>\n~~~\n"
        "After all."
    )
    assert clean_text(text, only(strip_html=True)) == (expected, ["clean.html"])


def test_unclosed_fence_protects_the_rest_of_the_text() -> None:
    text = "See <b>this</b>:\n```\n<b>raw</b>"
    assert clean_text(text, only(strip_html=True))[0] == "See this:\n```\n<b>raw</b>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer<|endoftext|>", "Answer"),
        ("<|im_start|>assistant\nHi<|im_end|>", "assistant\nHi"),
        ("<s>Hello</s>", "Hello"),
        ("done<|eot_id|>[END]<|end|><eos>", "done"),
        ("```\nprint('x')<|endoftext|>\n```", "```\nprint('x')\n```"),
    ],
)
def test_end_of_text_markers_are_removed(text: str, expected: str) -> None:
    assert clean_text(text, only(strip_end_of_text_markers=True)) == (
        expected,
        ["clean.end_of_text_marker"],
    )


def test_end_of_text_markers_are_configurable() -> None:
    config = only(strip_end_of_text_markers=True, end_of_text_markers=("<|custom|>",))
    assert clean_text("a<|custom|>b</s>", config) == ("ab</s>", ["clean.end_of_text_marker"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\nb\rc", "a\nb\nc"),
        ("non\u00a0breaking\u2009thin\u3000ideographic", "non breaking thin ideographic"),
        ("trailing   \nspaces\t\nhere", "trailing\nspaces\nhere"),
        ("one\n\n\n\n\ntwo\n\n\nthree", "one\n\ntwo\n\nthree"),
        ("one\n  \n\t\n \ntwo", "one\n\ntwo"),
        ("\n\n   padded field  \n\n", "padded field"),
        ("    x = 1\n    if x:\n        y = 2\n", "x = 1\nif x:\n    y = 2"),
        ("form\x0cfeed", "form\nfeed"),
    ],
)
def test_whitespace_is_normalized(text: str, expected: str) -> None:
    assert clean_text(text, only(normalize_whitespace=True)) == (expected, ["clean.whitespace"])


@pytest.mark.parametrize(
    "text",
    ["tidy text", "two\n\nparagraphs", "keep  inner  spaces", "- a\n  - b", "```\n\n\n\nx  \n```"],
)
def test_tidy_whitespace_is_kept(text: str) -> None:
    assert clean_text(text, only(normalize_whitespace=True)) == (text, [])


def test_code_block_survives_html_stripping_and_whitespace_normalization() -> None:
    code = (
        "```python\r\n"
        "def render(items):   \r\n"
        '    html = "<ul>" + "".join(f"<li>{i}</li>" for i in items)\r\n'
        "\r\n\r\n\r\n"
        "    return html  # a &amp; b\r\n"
        "```"
    )
    text = f"<p>Here&nbsp;is the code:</p>\r\n\r\n\r\n\r\n{code}\r\n\r\n<br>Done.   "
    cleaned, kinds = clean_text(text, CleanConfig())
    assert cleaned == "Here is the code:\n\n" + code.replace("\r\n", "\n") + "\n\nDone."
    assert kinds == ["clean.html", "clean.whitespace"]


def test_all_steps_run_in_order() -> None:
    text = "  <p>CafÃ©\u200b &amp; Cafe\u0301</p>\n\n\n<|endoftext|>  "
    assert clean_text(text, CleanConfig()) == (
        "Café & Café",
        [
            "clean.mojibake",
            "clean.unicode_normalized",
            "clean.control_chars",
            "clean.html",
            "clean.end_of_text_marker",
            "clean.whitespace",
        ],
    )


def test_everything_off_changes_nothing() -> None:
    text = "  <p>CafÃ©\u200b</p>\r\n<|endoftext|>"
    assert clean_text(text, CleanConfig(**ONLY)) == (text, [])
    assert clean_text("", CleanConfig()) == ("", [])


def test_stage_cleans_every_text_field_and_counts_per_field() -> None:
    rows = [
        record("CafÃ© <b>menu</b>", "Sure!<|im_end|>", system="  Be brief.  ", context="x\r\ny"),
        record("Already clean.", "Nothing to do.", line=2),
        {**record("<b>dropped</b>", "CafÃ©", line=3), "drop_reason": "filter.too_short"},
    ]
    batch = rows_to_table(rows)
    out, counts = CleanText(CleanConfig()).run(batch)

    assert out.num_rows == 3 and out.schema == batch.schema
    first, second, dropped = out.to_pylist()
    assert first["system"] == "Be brief."
    assert first["context"] == "x\ny"
    assert [turn["content"] for turn in first["messages"]] == ["Café menu", "Sure!"]
    assert first["id"] != rows[0]["id"]
    assert first["id"] == record("Café menu", "Sure!", system="Be brief.", context="x\ny")["id"]
    assert second == rows[1]
    assert dropped == rows[2]
    assert counts.seen == 2 and counts.kept == 2 and not counts.dropped
    assert dict(counts.modified) == {
        "clean.mojibake": 1,
        "clean.html": 1,
        "clean.end_of_text_marker": 1,
        "clean.whitespace": 2,
    }


def test_stage_passes_a_fully_dropped_batch_through() -> None:
    batch = rows_to_table([{**record("<b>x</b>", "y"), "drop_reason": "filter.too_short"}])
    out, counts = CleanText(CleanConfig()).run(batch)
    assert out.equals(batch)
    assert counts.seen == 0 and not counts.modified


def test_config_is_strict() -> None:
    with pytest.raises(ValueError, match="normalization"):
        CleanConfig(normalization="NFD")
    with pytest.raises(ValueError, match="strip_htm"):
        CleanConfig(strip_htm=False)
    with pytest.raises(TypeError):
        CleanText(pa.table({}))  # type: ignore[arg-type]
