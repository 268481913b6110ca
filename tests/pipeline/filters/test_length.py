import pytest
from pydantic import ValidationError

from pipeline.filters.length import LengthConfig, LengthFilter
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through


@pytest.fixture
def stage():
    return LengthFilter(
        LengthConfig(
            min_instruction_chars=3,
            max_instruction_chars=50,
            min_response_chars=5,
            max_response_chars=60,
        )
    )


def test_keeps_records_within_bounds(stage):
    check_filter(stage, "What is the capital of France?", "Paris is the capital.", None)
    check_filter(stage, "法国的首都是哪里？", "巴黎是法国的首都。", None)


def test_empty_or_blank_response_is_checked_first(stage):
    check_filter(stage, "Hi", "", "filter.empty_response")
    row = check_filter(stage, "What is the capital of France?", " \n\t ", "filter.empty_response")
    assert row["drop_detail"] == {"response_chars": 0}


def test_instruction_bounds(stage):
    row = check_filter(stage, "Hi", "Hello there!", "filter.instruction_too_short")
    assert row["drop_detail"] == {"instruction_chars": 2, "min": 3}
    row = check_filter(stage, "x" * 51, "Hello there!", "filter.instruction_too_long")
    assert row["drop_detail"] == {"instruction_chars": 51, "max": 50}


def test_response_bounds_count_characters_not_words(stage):
    row = check_filter(stage, "法国的首都？", "巴黎", "filter.response_too_short")
    assert row["drop_detail"] == {"response_chars": 2, "min": 5}
    check_filter(stage, "法国的首都？", "巴黎是首都", None)
    check_filter(stage, "Tell me a story.", "word " * 20, "filter.response_too_long")
    # Surrounding whitespace is not content.
    check_filter(stage, "Say it.", "  ok  \n\n", "filter.response_too_short")


def test_defaults_keep_a_one_character_answer():
    check_filter(LengthFilter(LengthConfig()), "1 + 1 = ?", "2", None)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"min_response_chars": 10, "max_response_chars": 5},
            "min_response_chars (10) must be <= max_response_chars (5)",
        ),
        (
            {"min_instruction_chars": 30, "max_instruction_chars": 20},
            "min_instruction_chars (30) must be <= max_instruction_chars (20)",
        ),
        ({"min_response_chars": -1}, "greater than or equal to 0"),
        ({"max_chars": 5}, "Extra inputs are not permitted"),
    ],
)
def test_bounds_are_validated(options, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LengthConfig(**options)


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "Hi", "")
