import pytest
from pydantic import ValidationError

from pipeline.filters.copy import CopyConfig, CopyFilter
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through
from tests.pipeline.filters.samples import EN_ANSWER, ZH_ANSWER


@pytest.fixture(scope="module")
def stage():
    return CopyFilter(CopyConfig())


def test_answers_are_kept(stage):
    check_filter(stage, "Explain photosynthesis in a few sentences.", EN_ANSWER, None)
    check_filter(stage, "请用几句话解释光合作用。", ZH_ANSWER, None)


def test_echoed_instruction_is_a_copy(stage):
    instruction = "Rewrite the following sentence in the passive voice: The cat chased the mouse."
    row = check_filter(
        stage,
        instruction,
        "rewrite the following sentence in the PASSIVE voice!",
        "filter.response_copies_instruction",
    )
    assert row["drop_detail"] == {"copied_chars": 51, "min": 20}


def test_near_copy_is_caught_by_similarity(stage):
    instruction = "Summarize the main causes of the French Revolution in two sentences."
    response = "Summarize the main causes of the French Revolution in 2 sentences"
    row = check_filter(stage, instruction, response, "filter.response_copies_instruction")
    assert row["drop_detail"]["max"] == 0.8 and row["drop_detail"]["similarity"] >= 0.8


def test_chinese_copy(stage):
    instruction = "请把下面这句话翻译成英文：今天天气很好，我们吃完午饭以后一起去公园散步吧。"
    check_filter(
        stage,
        instruction,
        "今天天气很好，我们吃完午饭以后一起去公园散步吧！",
        "filter.response_copies_instruction",
    )
    # Under min_copied_chars (20) and too different from the whole instruction: kept.
    check_filter(stage, instruction, "我们一起去公园散步吧", None)
    check_filter(
        stage, instruction, "The weather is nice today; let's take a walk in the park.", None
    )


def test_short_quoted_answers_are_kept(stage):
    check_filter(stage, "Is Paris or Lyon the capital of France?", "Paris", None)
    check_filter(stage, "北京和上海哪个是中国的首都？", "北京", None)


def test_config_is_validated():
    with pytest.raises(ValidationError):
        CopyConfig(max_similarity=1.2)
    with pytest.raises(ValidationError):
        CopyConfig(ngram_chars=0)


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "Say hello to the world.", "Say hello to the world.")
