import pytest
from pydantic import ValidationError

from pipeline.filters.stopwords import (
    StopwordConfig,
    StopwordFilter,
    forward_maximum_match,
    unspaced_tokens,
)
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through
from tests.pipeline.filters.samples import EN_ANSWER, ZH_ANSWER

EN_NOUNS = "apple banana cherry grape mango orange pear peach plum kiwi lemon lime melon"
ZH_NOUNS = "苹果、香蕉、葡萄、西瓜、草莓、芒果、菠萝、橙子、柠檬、樱桃、荔枝、桃子、石榴"
ZH_KEYWORDS = (
    "手机壳 苹果手机壳 防摔 硅胶 透明 全包 新款 男女 情侣 卡通 可爱 创意 个性 潮牌 磨砂 软壳 保护套"
)


@pytest.fixture(scope="module")
def stage():
    return StopwordFilter(StopwordConfig())


def test_english_prose_is_kept_and_a_noun_list_is_dropped(stage):
    check_filter(stage, "Explain photosynthesis.", EN_ANSWER, None, language="en")
    row = check_filter(stage, "Fruits?", EN_NOUNS, "filter.too_few_stopwords", language="en")
    assert row["drop_detail"] == {
        "field": "response",
        "language": "en",
        "stopword_ratio": 0.0,
        "min": 0.06,
    }


def test_chinese_prose_is_kept_and_lists_are_dropped(stage):
    check_filter(stage, "解释一下光合作用。", ZH_ANSWER, None, language="zh")
    row = check_filter(stage, "水果？", ZH_NOUNS, "filter.too_few_stopwords", language="zh")
    assert row["drop_detail"]["min"] == 0.1
    check_filter(stage, "标题？", ZH_KEYWORDS, "filter.too_few_stopwords", language="zh")


def test_region_tags_are_reduced_to_the_language(stage):
    check_filter(stage, "水果？", ZH_NOUNS, "filter.too_few_stopwords", language="zh-CN")


def test_empty_language_falls_back_to_a_guess(stage):
    check_filter(stage, "Explain photosynthesis.", EN_ANSWER, None)
    row = check_filter(stage, "水果？", ZH_NOUNS + "、" + ZH_NOUNS, "filter.too_few_stopwords")
    assert row["drop_detail"]["language"] == "zh"


def test_short_texts_and_unknown_languages_are_not_judged(stage):
    check_filter(stage, "Fruits?", "apple banana cherry", None, language="en")
    check_filter(stage, "Fruits?", EN_NOUNS, None, language="xx")


def test_only_listed_languages_are_judged():
    only_zh = StopwordFilter(StopwordConfig(languages=("zh",)))
    check_filter(only_zh, "Fruits?", EN_NOUNS, None, language="en")
    check_filter(only_zh, "水果？", ZH_NOUNS, "filter.too_few_stopwords", language="zh")


def test_per_language_override():
    lenient = StopwordFilter(StopwordConfig(min_ratio_by_language={"EN": 0.0}))
    check_filter(lenient, "Fruits?", EN_NOUNS, None, language="en")


def test_forward_maximum_match_prefers_the_longest_stopword():
    stopwords = frozenset({"因为", "因", "所以", "的"})
    assert forward_maximum_match("因为天气的原因所以", stopwords, 2) == [
        "因为",
        "天",
        "气",
        "的",
        "原",
        "因",
        "所以",
    ]
    tokens = unspaced_tokens("我用Python 3写的程序", frozenset({"的", "我"}), 1)
    assert tokens == ["我", "用", "Python", "3", "写", "的", "程", "序"]


def test_config_is_validated():
    with pytest.raises(ValidationError, match="no stop-word list for"):
        StopwordConfig(languages=("klingon",))
    with pytest.raises(ValidationError):
        StopwordConfig(min_stopword_ratio=1.5)
    assert StopwordConfig(languages=("ZH-cn",)).languages == ("zh",)


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "Fruits?", EN_NOUNS)
