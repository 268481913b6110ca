import pytest
from pydantic import ValidationError

from pipeline.filters.language import LanguageConfig, LanguageFilter
from pipeline.schema import rows_to_table
from tests.pipeline.filters.helpers import (
    check_filter,
    check_passes_dropped_rows_through,
    record,
)
from tests.pipeline.filters.samples import EN_ANSWER, EN_CODE_ANSWER, ZH_ANSWER

FR_ANSWER = (
    "La photosynthèse est le processus par lequel les plantes vertes utilisent la "
    "lumière du soleil pour transformer le dioxyde de carbone et l'eau en glucose."
)
DE_ANSWER = (
    "Die Photosynthese ist der Vorgang, bei dem grüne Pflanzen mit Hilfe von "
    "Sonnenlicht aus Kohlendioxid und Wasser Traubenzucker und Sauerstoff herstellen."
)


@pytest.fixture(scope="module")
def stage():
    return LanguageFilter(LanguageConfig(allow=("en", "zh")))


def test_allowed_languages_are_kept_and_labelled(stage):
    row = check_filter(stage, "Explain photosynthesis.", EN_ANSWER, None)
    assert row["language"] == "en"
    row = check_filter(stage, "解释一下光合作用。", ZH_ANSWER, None)
    assert row["language"] == "zh"


@pytest.mark.parametrize(
    "instruction, response, language",
    [
        ("Explique la photosynthèse.", FR_ANSWER, "fr"),
        ("Erkläre die Photosynthese.", DE_ANSWER, "de"),
    ],
)
def test_other_languages_are_not_allowed(stage, instruction, response, language):
    row = check_filter(stage, instruction, response, "filter.language_not_allowed")
    assert row["language"] == language
    detail = row["drop_detail"]
    assert detail["language"] == detail["detected"] == language
    assert detail["probability"] > 0.9 and detail["allow"] == ["en", "zh"]


def test_code_is_left_out_of_detection(stage):
    row = check_filter(stage, "Write a word counter in Java.", EN_CODE_ANSWER, None)
    assert row["language"] == "en"


def test_declared_language_is_trusted_unless_overwrite(stage):
    row = check_filter(stage, "Explique la photosynthèse.", FR_ANSWER, None, language="en")
    assert row["language"] == "en"
    overwrite = LanguageFilter(LanguageConfig(allow=("en", "zh"), overwrite=True))
    row = check_filter(
        overwrite,
        "Explique la photosynthèse.",
        FR_ANSWER,
        "filter.language_not_allowed",
        language="en",
    )
    assert row["language"] == "fr"


def test_uncertain_detection_of_a_long_enough_text():
    strict = LanguageFilter(LanguageConfig(min_confidence=0.99))
    instruction = "Translate into French: I like green apples."
    row = check_filter(
        strict, instruction, "J'aime les pommes vertes.", "filter.language_uncertain"
    )
    assert row["drop_detail"]["min"] == 0.99 and row["drop_detail"]["probability"] < 0.99


def test_chinese_varieties_are_folded_into_zh(stage):
    # py3langid alone says "yue" (0.42) for this standard Chinese sentence.
    row = check_filter(stage, "你喜欢吃什么水果？", "我喜欢吃苹果。", None)
    assert row["language"] == "zh"


def test_short_text_skips_the_confidence_check():
    strict = LanguageFilter(LanguageConfig(min_confidence=0.99, min_chars_for_confidence=20))
    check_filter(strict, "你好", "你好！", None)


def test_text_without_letters_is_kept_unlabelled(stage):
    row = check_filter(stage, "1 + 1 = ?", "2", None)
    assert row["language"] == ""


def test_all_languages_allowed_by_default():
    check_filter(LanguageFilter(LanguageConfig()), "Explique la photosynthèse.", FR_ANSWER, None)


def test_labels_are_counted_as_modifications(stage):
    rows = [
        record("Explain photosynthesis.", EN_ANSWER),
        record("解释一下光合作用。", ZH_ANSWER, language="zh"),
    ]
    table, counts = stage.run(rows_to_table(rows))
    assert table.column("language").to_pylist() == ["en", "zh"]
    assert counts.modified == {"language.labelled": 1} and counts.kept == 2


def test_decide_works_without_annotate(stage):
    table = rows_to_table([record("Explique la photosynthèse.", FR_ANSWER)])
    assert [drop.reason for drop in stage.decide(table)] == ["filter.language_not_allowed"]


def test_config_is_validated():
    with pytest.raises(ValidationError):
        LanguageConfig(allow=("English",))
    with pytest.raises(ValidationError):
        LanguageConfig(model="fasttext")
    with pytest.raises(ValidationError, match=r"allow \['zh'\]"):
        LanguageConfig(allow=("en", "yue"))
    with pytest.raises(ValidationError):
        LanguageConfig(min_confidence=1.5)


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "Explique.", FR_ANSWER)
