"""Templates: built-in banks, deterministic choice, splitting, and user template files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipeline.convert import ConversionError, to_canonical
from pipeline.templates import (
    TEMPLATE_TASKS,
    TemplateBank,
    TemplateRenderer,
    detect_language,
    split_passage,
)

ENGLISH = (
    "The river rose quickly after the storm. Farmers moved their animals to higher ground. "
    "By evening the water had covered the lower fields. Nobody had seen a flood like it in "
    "thirty years. The next morning the sun came out again! Children played in the puddles."
)
CHINESE = (
    "今天早上下了一场大雨，街道上到处都是积水。人们撑着伞匆匆走过，公交车也比平时慢了很多。"
    "到了中午，雨终于停了，太阳从云层后面露了出来。孩子们跑到院子里踩水玩，笑声传得很远。"
    "傍晚的时候，天边出现了一道彩虹，很多人停下脚步拍照。这一天虽然开始得很糟糕，结束时却很美好！"
    "大家都说，这样的天气让人想起了小时候的夏天。晚饭以后，邻居们搬出椅子坐在门口聊天，"
    "有人讲起了多年前那场更大的洪水。老人们说，那时候没有天气预报，大家只能看云识天气。"
)


def test_built_in_banks_have_english_and_chinese_templates() -> None:
    for task in TEMPLATE_TASKS:
        languages = Counter(t.language for t in TemplateBank.load(task).templates)
        assert languages["en"] >= 4 and languages["zh"] >= 2, task


def test_same_record_same_template_and_spread_over_many() -> None:
    renderer = TemplateRenderer(seed=11)
    records = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(400)]
    first = [
        json.loads(to_canonical(r, "qa", templates=renderer)["meta"])["template"] for r in records
    ]
    fresh = TemplateRenderer(seed=11)
    again = [
        json.loads(to_canonical(r, "qa", templates=fresh)["meta"])["template"] for r in records
    ]
    assert first == again
    counts = Counter(first)
    assert set(counts) == {t.id for t in renderer.bank("qa").templates if t.language == "en"}
    assert min(counts.values()) > 400 / len(counts) / 2  # roughly even
    other_seed = TemplateRenderer(seed=12)
    changed = [
        json.loads(to_canonical(r, "qa", templates=other_seed)["meta"])["template"] for r in records
    ]
    assert changed != first


def test_language_picks_templates() -> None:
    renderer = TemplateRenderer()
    zh = to_canonical(
        {"question": "天空为什么是蓝色的？", "answers": ["因为瑞利散射。"]},
        "qa",
        templates=renderer,
    )
    assert zh["language"] == "zh" and json.loads(zh["meta"])["template"].startswith("qa_zh")
    forced = to_canonical(
        {"question": "Why?", "answer": "Because."}, "qa", templates=renderer, language="zh"
    )
    assert json.loads(forced["meta"])["template"].startswith("qa_zh")
    french = to_canonical(
        {"question": "Pourquoi?", "answer": "Parce que."}, "qa", templates=renderer, language="fr"
    )  # no fr templates: any template
    assert french["language"] == "fr" and json.loads(french["meta"])["template"].startswith("qa_")


def test_detect_language() -> None:
    assert detect_language(CHINESE) == "zh"
    assert detect_language(ENGLISH) == "en"
    assert detect_language("") == "en"


def test_qa_record() -> None:
    value = {
        "question": "Capital of France?",
        "context": "France is in Europe.",
        "answers": ["Paris", "paris"],
        "id": "q1",
    }
    row = to_canonical(value, "qa", templates=TemplateRenderer(), source_line=4)
    prompt, response = (t["content"] for t in row["messages"])
    assert "Capital of France?" in prompt and "France is in Europe." in prompt
    assert response == "Paris" and row["task"] == "qa" and row["context"] == ""
    meta = json.loads(row["meta"])
    assert meta["id"] == "q1" and meta["answers"] == ["Paris", "paris"] and "template" in meta
    squad = {"question": "q?", "answers": {"text": ["a"], "answer_start": [0]}}
    row = to_canonical(squad, "qa", templates=TemplateRenderer())
    assert row["messages"][1]["content"] == "a"
    assert json.loads(row["meta"])["answers"] == squad["answers"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"question": "q?", "answers": []}, "convert.missing_field"),
        ({"question": "q?", "answers": [1]}, "convert.wrong_type"),
        ({"question": "q?"}, "convert.missing_field"),
    ],
)
def test_qa_errors(value: dict, reason: str) -> None:
    with pytest.raises(ConversionError) as caught:
        to_canonical(value, "qa", templates=TemplateRenderer())
    assert caught.value.reason == reason


def test_classification_record() -> None:
    value = {"text": "I loved it.", "label": 1, "options": ["negative", "positive"]}
    row = to_canonical(value, "classification", templates=TemplateRenderer())
    assert row["messages"][1]["content"] == "positive" and row["task"] == "classification"
    assert json.loads(row["meta"])["label"] == 1
    assert "I loved it." in row["messages"][0]["content"]
    with pytest.raises(ConversionError, match="out of range"):
        to_canonical({**value, "label": 5}, "classification", templates=TemplateRenderer())
    plain = to_canonical(
        {"text": "t", "label": "spam"}, "classification", templates=TemplateRenderer()
    )
    assert plain["messages"][1]["content"] == "spam"


def test_text_continuation_record() -> None:
    row = to_canonical(ENGLISH, "text", templates=TemplateRenderer(), domain="news")
    prompt, response = (t["content"] for t in row["messages"])
    assert row["task"] == "text_continuation" and row["domain"] == "news"
    assert response and response in ENGLISH and response[0].isupper()
    prefix = ENGLISH[: ENGLISH.index(response)].strip()
    assert prefix in prompt and prefix.endswith((".", "!"))


def test_split_passage_cuts_at_a_sentence_near_the_middle() -> None:
    prefix, continuation = split_passage(ENGLISH)
    assert f"{prefix} {continuation}" == ENGLISH
    assert prefix.endswith(".") and abs(len(prefix) - len(ENGLISH) / 2) < 60
    prefix, continuation = split_passage(CHINESE)
    assert prefix + continuation == CHINESE
    assert prefix.endswith(("。", "！", "？")) and abs(len(prefix) - len(CHINESE) / 2) < 40


def test_a_long_article_becomes_a_task_on_its_lead_and_says_so() -> None:
    article = " ".join(f"Sentence number {n} of a long article about rivers." for n in range(400))
    record = to_canonical(
        {"text": article}, "text", templates=TemplateRenderer(max_passage_chars=1000)
    )
    prompt, reply = (m["content"] for m in record["messages"])
    meta = json.loads(record["meta"])
    assert meta["window"] == {"chars": len(article[: meta["window"]["chars"]]), "of": len(article)}
    assert meta["window"]["chars"] <= 1000 and article[: meta["window"]["chars"]].endswith(
        "rivers."
    )
    assert len(prompt) + len(reply) < 1200  # the template's words besides the passage
    short = to_canonical({"text": ENGLISH}, "text", templates=TemplateRenderer())
    assert "window" not in json.loads(short["meta"])


def test_split_passage_never_cuts_after_an_abbreviation_or_an_initial() -> None:
    # Every period near the middle belongs to "Mrs.", "No.", "Dr.", "J." or "e.g.": the cut
    # is at a real sentence end, however far from the middle.
    text = (
        "The first sentence of this passage is a plain one about the garden in spring. "
        "Mrs. Smith of No. 5 Baker Street met Dr. J. R. Watson, e.g. on Mondays and "
        "Thursdays, and vs. the neighbours they always talked about the weather and roses. "
        "The last sentence is also plain."
    )
    prefix, continuation = split_passage(text, min_chars=100)
    assert f"{prefix} {continuation}" == text
    assert prefix.endswith("in spring.") or prefix.endswith("and roses."), prefix


def test_split_passage_without_punctuation_falls_back_to_spaces() -> None:
    text = " ".join(f"word{i}" for i in range(60))
    prefix, continuation = split_passage(text)
    assert f"{prefix} {continuation}" == text and prefix and continuation


def test_short_text_cannot_be_split() -> None:
    with pytest.raises(ConversionError) as caught:
        split_passage("Too short. Really.")
    assert caught.value.reason == "convert.text_too_short"
    with pytest.raises(ConversionError):
        to_canonical({"text": "Short."}, "text", templates=TemplateRenderer())
    assert split_passage("A. B.", min_chars=4) == ("A.", "B.")


USER_TEMPLATES = """
task: qa
templates:
  - id: qa_en_read_passage
    language: en
    prompt: "OVERRIDDEN {{ question }}"
    response: "{{ answer }}"
  - id: my_pirate
    language: en
    prompt: "Arr, answer me this: {{ question }}"
    response: "{{ answer }}, matey"
"""


def test_user_templates_extend_and_override(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(USER_TEMPLATES, encoding="utf-8")
    bank = TemplateBank.load("qa", [str(path)])
    ids = [t.id for t in bank.templates]
    assert "my_pirate" in ids and len(ids) == len(TemplateBank.load("qa").templates) + 1
    overridden = next(t for t in bank.templates if t.id == "qa_en_read_passage")
    assert overridden.prompt.startswith("OVERRIDDEN") and overridden.origin == str(path)
    renderer = TemplateRenderer([str(path)])
    used = Counter(
        json.loads(
            to_canonical({"question": f"q{i}?", "answer": "a"}, "qa", templates=renderer)["meta"]
        )["template"]
        for i in range(300)
    )
    assert used["my_pirate"] > 0
    # A file for another task leaves this one alone.
    assert [t.id for t in TemplateBank.load("text", [str(path)]).templates] == [
        t.id for t in TemplateBank.load("text").templates
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("task: qa\ntemplates: [unclosed", "not valid YAML"),
        ("templates: []", "needs `task:`"),
        ("task: qa\ntemplates: []", "non-empty `templates:`"),
        ("task: qa\ntemplates:\n  - id: t1\n    prompt: x\n", "missing ['response']"),
        ("task: qa\ntemplates:\n  - {id: t1, prompt: x, response: y, lang: en}", "unknown keys"),
        (
            "task: qa\ntemplates:\n  - {id: bad_one, prompt: '{{ question ', response: y}",
            "template 'bad_one': TemplateSyntaxError",
        ),
        (
            "task: qa\ntemplates:\n  - {id: undefined_one, prompt: '{{ nope }}', response: y}",
            "template 'undefined_one': UndefinedError",
        ),
        (
            "task: qa\ntemplates:\n  - {id: t, prompt: a, response: b}\n  - {id: t, prompt: a, "
            "response: b}",
            "'t' is repeated",
        ),
    ],
)
def test_bad_template_files_name_the_file_and_template(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        TemplateBank.load("qa", [str(path)])
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_templates_run_in_a_sandbox(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text(
        'task: qa\ntemplates:\n  - id: evil\n    prompt: "{{ question.__class__.__mro__ }}"\n'
        "    response: y\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="template 'evil'"):
        TemplateBank.load("qa", [str(path)])


def test_missing_template_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        TemplateBank.load("qa", [str(tmp_path / "absent.yaml")])
