import pytest
from pydantic import ValidationError

from pipeline.filters.repetition import (
    RepetitionConfig,
    RepetitionFilter,
    duplicate_ngram_chars,
    duplicates,
    top_ngram_chars,
)
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through
from tests.pipeline.filters.samples import EN_ANSWER, EN_CODE_ANSWER, ZH_ANSWER


@pytest.fixture
def stage():
    # The mechanics below use short texts; the default min_words (50) is tested separately.
    return RepetitionFilter(RepetitionConfig(min_words=20))


def test_defaults_keep_short_answers_that_reuse_a_phrase():
    default = RepetitionFilter(RepetitionConfig())
    answer = (
        "Most scientists would tell you to test one variable at a time. Whenever possible, "
        "repeat the measurement several times. Good experiments change only one thing at a time."
    )
    check_filter(default, "How do I run a good experiment?", answer, None)
    email = (
        "主题：项目上线时间调整\n\n各位同事：\n\n由于测试中发现了几个问题，项目上线时间需要推迟一周。"
        "新的上线时间定在下周二。给大家带来的不便，敬请谅解。\n\n谢谢！\n赵磊"
    )
    check_filter(default, "写一封推迟上线的邮件。", email, None)
    looping = "I think that " + "it is a very good idea and " * 12 + "we should do it."
    check_filter(default, "What do you think?", looping, "filter.repeated_ngrams")


def test_natural_answers_are_kept(stage):
    check_filter(stage, "Explain photosynthesis.", EN_ANSWER, None)
    check_filter(stage, "解释一下光合作用。", ZH_ANSWER, None)
    check_filter(stage, "Write a word counter in Java.", EN_CODE_ANSWER, None)


def test_repeated_paragraphs(stage):
    paragraph = "The weather today is sunny with a light breeze from the west."
    response = "\n\n".join([paragraph] * 3 + ["Enjoy your day outside and stay hydrated."])
    row = check_filter(stage, "Weather?", response, "filter.repeated_paragraphs")
    assert row["drop_detail"] == {
        "field": "response",
        "duplicate_paragraph_fraction": 0.5,
        "max": 0.3,
    }


def test_repeated_lines(stage):
    response = "\n".join(
        [
            "Step one: open the lid.",
            "Step two: add the water.",
            "Stir well.",
            "Stir well.",
            "Stir well.",
            "Step three: close the lid and wait ten minutes before serving.",
        ]
    )
    row = check_filter(stage, "How?", response, "filter.repeated_lines")
    assert row["drop_detail"]["duplicate_line_fraction"] == pytest.approx(2 / 6, abs=1e-4)


def test_looping_english_phrase_is_repeated_ngrams(stage):
    response = "I think that " + "it is a very good idea and " * 6 + "we should do it."
    row = check_filter(stage, "What do you think?", response, "filter.repeated_ngrams")
    assert row["drop_detail"]["field"] == "response"


def test_looping_chinese_without_spaces_is_repeated_ngrams(stage):
    response = "我认为这个方案" + "非常好而且很有意义，" * 6 + "我们应该去做。"
    check_filter(stage, "你怎么看？", response, "filter.repeated_ngrams")


def test_top_bigram_dominating_is_repeated_ngrams():
    stage = RepetitionFilter(RepetitionConfig(min_words=20, max_duplicate_ngram_char_fraction={}))
    response = " ".join(["very good"] * 5 + [f"word{i}" for i in range(15)])
    row = check_filter(stage, "Rate it.", response, "filter.repeated_ngrams")
    assert "top_2gram_char_fraction" in row["drop_detail"]


def test_short_texts_are_not_judged(stage):
    check_filter(stage, "Say it thrice.", "Yes.\nYes.\nYes.", None)
    check_filter(stage, "说三遍。", "好的。\n好的。\n好的。", None)


def test_only_configured_fields_are_judged():
    looping = "\n\n".join(["Please repeat after me, every single word of it."] * 4)
    check_filter(RepetitionFilter(RepetitionConfig(min_words=20)), looping, EN_ANSWER, None)
    both = RepetitionFilter(RepetitionConfig(min_words=20, fields=("instruction", "response")))
    row = check_filter(both, looping, EN_ANSWER, "filter.repeated_paragraphs")
    assert row["drop_detail"]["field"] == "instruction"


def test_measures_follow_gopher():
    assert duplicates(["a", "bb", "a", "bb", "c"]) == (2, 3)
    tokens = ["x", "y", "x", "y", "x", "y"]
    assert top_ngram_chars(tokens, 2) == 2 * 3  # "x y" three times, two characters each
    # First "xy" is new; the repeats at 2 and 4 are counted once each, skipping ahead.
    assert duplicate_ngram_chars(tokens, 2) == 4
    assert top_ngram_chars(["a"], 2) == 0


@pytest.mark.parametrize(
    "options",
    [
        {"max_duplicate_line_fraction": 1.5},
        {"max_top_ngram_char_fraction": {0: 0.2}},
        {"fields": ()},
        {"fields": ("system",)},
    ],
)
def test_config_is_validated(options):
    with pytest.raises(ValidationError):
        RepetitionConfig(**options)


def test_config_survives_a_json_round_trip():
    config = RepetitionConfig(max_top_ngram_char_fraction={2: 0.3})
    assert RepetitionConfig.model_validate(config.model_dump(mode="json")) == config


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "Q", "\n\n".join(["same paragraph here"] * 9))
