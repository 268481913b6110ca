import pytest
from pydantic import ValidationError

from pipeline.filters.characters import (
    CharacterRatioConfig,
    CharacterRatioFilter,
    symbol_char_fraction,
    symbol_counts,
)
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through
from tests.pipeline.filters.samples import EN_ANSWER, EN_CODE_ANSWER, ZH_ANSWER


@pytest.fixture
def stage():
    return CharacterRatioFilter(CharacterRatioConfig())


def test_natural_answers_are_kept(stage):
    check_filter(stage, "Explain photosynthesis.", EN_ANSWER, None)
    check_filter(stage, "解释一下光合作用。", ZH_ANSWER, None)


def test_markdown_headings_are_not_hash_symbols(stage):
    response = "## Summary\n\nPlants make sugar from light.\n\n### Details\n\nIt happens in leaves."
    check_filter(stage, "Explain.", response, None)


def test_hashtag_spam_is_too_many_symbols(stage):
    response = "Great day at the beach with friends #summer #sun #beach #fun #love"
    row = check_filter(stage, "Caption?", response, "filter.too_many_symbols")
    assert row["drop_detail"] == {
        "field": "response",
        "symbol_to_word_ratio": 0.4167,
        "max": 0.1,
        "symbol": "#",
    }


def test_ellipses_count_once_per_run_in_any_script(stage):
    response = "他说……然后……我们走了……天黑了……后来呢……"
    row = check_filter(stage, "然后呢？", response, "filter.too_many_symbols")
    assert row["drop_detail"]["symbol"] == "..."
    assert symbol_counts("wait... what...... ok…") == {"#": 0, "...": 3}


def test_numbers_and_symbols_without_words_are_too_few_letters(stage):
    response = "12 34 56 78 90 11 22 33 then 44"
    row = check_filter(stage, "Numbers?", response, "filter.too_few_letters")
    assert row["drop_detail"] == {"field": "response", "alphabetic_word_fraction": 0.1, "min": 0.8}


def test_symbol_soup_is_too_many_symbols(stage):
    # Every word holds a letter, so only the character-level ratio catches this decoration.
    response = "♥♥love♥♥ ★★joy★★ ♥♥peace♥♥ ★★hope★★ ♥♥fun♥♥ ★★sun★★"
    row = check_filter(stage, "Art?", response, "filter.too_many_symbols")
    assert row["drop_detail"] == {"field": "response", "symbol_char_fraction": 0.5217, "max": 0.5}


def test_code_blocks_are_left_out_of_the_ratios(stage):
    check_filter(stage, "Write a word counter in Java.", EN_CODE_ANSWER, None)
    only_code = "```\n#!/bin/sh\n# $1 ... $2 #### {} [] <<>> ||| &&&\n```"
    check_filter(stage, "Shell?", only_code, None)


def test_short_texts_are_not_judged(stage):
    check_filter(stage, "Total?", "42", None)
    check_filter(stage, "Tags?", "#a #b #c", None)


def test_symbol_char_fraction_ignores_spaces_and_punctuation():
    assert symbol_char_fraction("Hello, world! 你好，世界。") == 0.0
    assert symbol_char_fraction("a = b") == pytest.approx(1 / 3)
    assert symbol_char_fraction("   ") == 0.0


def test_config_is_validated():
    with pytest.raises(ValidationError):
        CharacterRatioConfig(min_alphabetic_word_fraction=2)
    with pytest.raises(ValidationError):
        CharacterRatioConfig(max_symbol_to_word_ratio=-0.1)


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "Q", "#a #b #c #d #e #f #g #h")
