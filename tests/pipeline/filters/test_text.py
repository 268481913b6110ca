from pipeline.text import (
    char_ngrams,
    is_cjk,
    jaccard,
    language_code,
    lines,
    normalized,
    paragraphs,
    spaced_words,
    without_code_blocks,
    words,
)


def test_words_split_cjk_characters_and_strip_edge_punctuation():
    assert words("你好，世界! Hello, world... (Python语言) “C++”") == [
        "你",
        "好",
        "世",
        "界",
        "Hello",
        "world",
        "Python",
        "语",
        "言",
        "C++",
    ]
    assert words("カタカナ・ひらがな 한국어") == [
        "カ",
        "タ",
        "カ",
        "ナ",
        "ひ",
        "ら",
        "が",
        "な",
        "한",
        "국",
        "어",
    ]
    assert words("... ，。 ---") == []


def test_is_cjk_covers_han_kana_hangul_not_punctuation():
    assert all(is_cjk(char) for char in "中文かなカナ한々")
    assert not any(is_cjk(char) for char in "a1，。・ ")


def test_spaced_words_keep_hangul_words_whole():
    assert spaced_words("안녕하세요, 세계! 학교에서.") == ["안녕하세요", "세계", "학교에서"]


def test_lines_and_paragraphs():
    text = "a\n  b  \n\n \t\nc\n\n\nd\n"
    assert lines(text) == ["a", "b", "c", "d"]
    assert paragraphs(text) == ["a\n  b", "c", "d"]


def test_without_code_blocks_removes_fenced_blocks_even_unclosed():
    text = "Intro\n```python\nx = 1\n}\n```\nMiddle\n~~~\nopen fence to the end"
    assert words(without_code_blocks(text)) == ["Intro", "Middle"]


def test_normalized_ngrams_jaccard_language_code():
    assert normalized("  Hello,   WORLD!! 你好。") == "hello world 你好"
    assert char_ngrams("abcd", 3) == {"abc", "bcd"}
    assert char_ngrams("ab", 3) == {"ab"}
    assert char_ngrams("", 3) == set()
    assert jaccard({"a", "b"}, {"b", "c"}) == 1 / 3
    assert jaccard(set(), set()) == 0.0
    assert [language_code(tag) for tag in ("zh-Hans", "pt_BR", "EN", "")] == ["zh", "pt", "en", ""]
