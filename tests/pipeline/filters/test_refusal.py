import pytest
from pydantic import ValidationError

from pipeline.filters.refusal import RefusalConfig, RefusalFilter
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through
from tests.pipeline.filters.samples import EN_ANSWER, ZH_ANSWER


@pytest.fixture(scope="module")
def stage():
    return RefusalFilter(RefusalConfig())


@pytest.mark.parametrize(
    "response",
    [
        "As an AI language model, I do not have personal opinions.",
        "As an AI, I don't have feelings, but I can explain.",
        "I'm sorry, but I cannot help with that.",
        "I’m sorry, but I can’t share that.",
        "I am sorry but I won't write that.",
        "I cannot fulfill this request because it is harmful.",
        "Unfortunately, I am unable to provide real-time stock prices.",
        "作为一个AI语言模型，我没有个人观点。",
        "作为一个人工智能，我无法访问互联网。",
        "抱歉，我无法回答这个问题。",
        "对不起，我不能提供这类信息。",
        "很抱歉，但我无法完成这个请求。",
    ],
)
def test_refusals_and_disclaimers(stage, response):
    check_filter(stage, "Question?", response, "filter.refusal")


@pytest.mark.parametrize(
    "response",
    [
        "<nooutput>",
        "< No Output >",
        "N/A",
        "n/a.",
        "No output.",
        "None",
        "none。",
        "TODO",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "Sorry, I don't know.",
        "无",
        "暂无。",
        "  null  ",
    ],
)
def test_placeholder_responses_are_boilerplate(stage, response):
    check_filter(stage, "Question?", response, "filter.boilerplate_response")


@pytest.mark.parametrize(
    "response",
    [
        EN_ANSWER,
        ZH_ANSWER,
        "None of the listed numbers is prime.",
        "无论如何，先把问题描述清楚。",
        "As an AI researcher, you should first define the evaluation metric.",
        "作为人工智能领域的专家，他提出了三个建议。",
        "Sorry for the wait! Here is the list you asked for.",
    ],
)
def test_helpful_answers_are_kept(stage, response):
    check_filter(stage, "Question?", response, None)


def test_refusal_outside_the_window_is_not_a_refusal(stage):
    late = EN_ANSWER + " " + EN_ANSWER + " As an AI language model, I simplified this."
    assert late.index("As an AI") > 300
    check_filter(stage, "Explain photosynthesis.", late, None)
    early = RefusalFilter(RefusalConfig(refusal_window_chars=2000))
    row = check_filter(early, "Explain photosynthesis.", late, "filter.refusal")
    assert row["drop_detail"]["match"] == "As an AI language model"
    assert row["drop_detail"]["at_char"] == late.index("As an AI")


def test_patterns_are_configurable():
    custom = RefusalFilter(
        RefusalConfig(refusal_patterns=(r"\bno comment\b",), boilerplate_patterns=(r"-+",))
    )
    check_filter(custom, "Q?", "No comment at this time.", "filter.refusal")
    check_filter(custom, "Q?", "---", "filter.boilerplate_response")
    check_filter(custom, "Q?", "N/A", None)


def test_invalid_pattern_is_rejected_at_validation():
    with pytest.raises(ValidationError, match="is not a valid regex"):
        RefusalConfig(refusal_patterns=("(unclosed",))


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "Q?", "N/A")
