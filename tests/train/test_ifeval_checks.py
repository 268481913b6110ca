"""The IFEval checks of train.rewards.ifeval and the text helpers of train.rewards.text:
for every kind, hand-written responses that follow the constraint and ones that do not."""

from __future__ import annotations

import json

import pytest

from train.rewards.ifeval import (
    ARG_KEYS,
    CHECKS,
    KINDS,
    Check,
    InvalidConstraintArgs,
    UnknownConstraint,
    check,
    check_loose,
    loose_variants,
    score_record,
)
from train.rewards.text import (
    count_sentences,
    count_words,
    split_blank_line_paragraphs,
    split_on_divider,
    split_sentences,
)

ENGLISH = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch "
    "and drinks his morning coffee"
)


def passes(kind: str, response: str, **args: object) -> bool:
    result = check(kind, response, args)
    assert result.score == (1.0 if result.passed else 0.0)
    return result.passed


# -- registry ------------------------------------------------------------------------------


def test_kinds_are_the_contracts_25_each_with_a_checker_and_arg_keys() -> None:
    assert len(KINDS) == 25 and len(set(KINDS)) == 25
    assert set(CHECKS) == set(KINDS)
    assert set(ARG_KEYS) == set(KINDS)
    assert KINDS[0] == "keywords:existence" and KINDS[-1] == "punctuation:no_comma"


def test_unknown_kind_names_it_and_lists_the_known_kinds() -> None:
    with pytest.raises(UnknownConstraint, match="keywords:existance") as caught:
        check("keywords:existance", "hello", {})
    assert "keywords:existence" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(UnknownConstraint):
        check_loose("no:such", "hello", {})


def test_args_as_json_text_and_dict_agree() -> None:
    args = {"keyword": "cat", "frequency": 2, "relation": "at least"}
    as_text = check("keywords:frequency", "cat cat", json.dumps(args, sort_keys=True))
    assert as_text == check("keywords:frequency", "cat cat", args)
    assert as_text.details == {"occurrences": 2, "relation": "at least", "threshold": 2}


def test_none_valued_keys_are_ignored_as_in_the_hugging_face_ifeval() -> None:
    args = {"num_words": 3, "relation": "less than", "keywords": None, "language": None}
    assert check("length_constraints:number_words", "one two", args).passed


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("keywords:frequency", {"keyword": "cat", "frequency": 2}, "args.relation is missing"),
        (
            "keywords:frequency",
            {"keyword": "cat", "frequency": 2, "relation": "at most"},
            "at most",
        ),
        ("length_constraints:number_words", {"num_words": "50", "relation": "at least"}, "'50'"),
        ("length_constraints:number_words", {"num_words": True, "relation": "at least"}, "True"),
        (
            "keywords:letter_frequency",
            {"letter": "ab", "let_frequency": 1, "let_relation": "at least"},
            "one letter",
        ),  # noqa: E501
        ("punctuation:no_comma", {"commas": 0}, "unknown args ['commas']"),
        ("keywords:existence", {"keywords": []}, "non-empty list"),
        ("language:response_language", {"language": "English"}, "ISO 639-1"),
        ("punctuation:no_comma", "{not json", "not JSON"),
        ("punctuation:no_comma", "[1, 2]", "JSON object"),
    ],
)
def test_bad_args_raise_naming_the_kind_and_the_key(kind: str, args: object, message: str) -> None:
    with pytest.raises(InvalidConstraintArgs, match=kind) as caught:
        check(kind, "some response", args)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_bad_args_raise_even_on_a_blank_response() -> None:
    with pytest.raises(InvalidConstraintArgs):
        check("length_constraints:number_words", "", {"num_words": 5})


@pytest.mark.parametrize("kind", KINDS)
def test_a_blank_response_follows_nothing(kind: str) -> None:
    args = {
        "keywords:forbidden_words": {"forbidden_words": ["x"]},
        "length_constraints:number_words": {"num_words": 5, "relation": "less than"},
        "keywords:letter_frequency": {
            "letter": "a", "let_frequency": 1, "let_relation": "less than"
        },
        "change_case:capital_word_frequency": {
            "capital_frequency": 1, "capital_relation": "less than"
        },
        "length_constraints:number_sentences": {"num_sentences": 1, "relation": "less than"},
        "keywords:frequency": {"keyword": "x", "frequency": 1, "relation": "less than"},
        "detectable_content:number_placeholders": {"num_placeholders": 0},
        "detectable_format:number_bullet_lists": {"num_bullets": 0},
        "detectable_format:number_highlighted_sections": {"num_highlights": 0},
        "keywords:existence": {"keywords": ["x"]},
        "language:response_language": {"language": "en"},
        "length_constraints:number_paragraphs": {"num_paragraphs": 1},
        "length_constraints:nth_paragraph_first_word": {
            "num_paragraphs": 1, "nth_paragraph": 1, "first_word": "x"
        },
        "detectable_content:postscript": {"postscript_marker": "P.S."},
        "detectable_format:multiple_sections": {"section_spliter": "Section", "num_sections": 1},
        "combination:repeat_prompt": {"prompt_to_repeat": "x"},
        "startend:end_checker": {"end_phrase": "x"},
    }.get(kind, {})  # fmt: skip
    result = check(kind, "  \n ", args)
    assert not result.passed and result.details["empty_response"] is True


# -- keywords ------------------------------------------------------------------------------


def test_keywords_existence() -> None:
    kind = "keywords:existence"
    assert passes(kind, "I love Python and RUST.", keywords=["python", "rust"])
    result = check(kind, "I love Python.", {"keywords": ["python", "rust"]})
    assert not result.passed
    assert result.details == {"found": 1, "keywords": 2, "missing": "rust"}
    # Substrings count, as in IFEval; keywords are literal text, not regular expressions.
    assert passes(kind, "a category", keywords=["cat"])
    assert passes(kind, "costs $5 (a.k.a. cheap)", keywords=["$5 (a.k.a."])
    assert passes(kind, "a.c", keywords=["a.c"])
    assert not passes(kind, "abc", keywords=["a.c"])


@pytest.mark.parametrize(
    ("response", "relation", "frequency", "expected"),
    [
        ("dog dog dog", "at least", 3, True),  # the boundary: 3 >= 3
        ("dog dog", "at least", 3, False),
        ("dog dog", "less than", 3, True),
        ("dog dog dog", "less than", 3, False),  # the boundary: 3 < 3 fails
        ("Dog DOG dog", "at least", 3, True),  # case-insensitive
        ("hotdogs and dogs", "at least", 2, True),  # substrings, as in IFEval
        ("no such word", "less than", 1, True),
    ],
)
def test_keywords_frequency(response: str, relation: str, frequency: int, expected: bool) -> None:
    args = {"keyword": "dog", "frequency": frequency, "relation": relation}
    assert passes("keywords:frequency", response, **args) is expected


def test_keywords_forbidden_words_match_whole_words_only() -> None:
    kind = "keywords:forbidden_words"
    assert passes(kind, "A category of cats.", forbidden_words=["cat"])
    result = check(kind, "The Cat sat. A dog too.", {"forbidden_words": ["cat", "dog", "cow"]})
    assert not result.passed and result.details == {"used": "cat, dog", "forbidden": 3}


@pytest.mark.parametrize(
    ("response", "relation", "frequency", "expected"),
    [
        ("banana", "at least", 3, True),
        ("bAnAna", "at least", 3, True),  # either case
        ("banana", "at least", 4, False),
        ("banana", "less than", 3, False),  # 3 < 3 fails
        ("banana", "less than", 4, True),
    ],
)
def test_keywords_letter_frequency(
    response: str, relation: str, frequency: int, expected: bool
) -> None:
    args = {"letter": "A", "let_frequency": frequency, "let_relation": relation}
    assert passes("keywords:letter_frequency", response, **args) is expected


# -- language and case ----------------------------------------------------------------------


def test_response_language() -> None:
    kind = "language:response_language"
    german = "Das Wetter ist heute sehr schön und ich gehe mit meinem Hund im Park spazieren."
    assert passes(kind, german, language="de")
    result = check(kind, ENGLISH, {"language": "de"})
    assert not result.passed and result.details["detected"] == "en"
    assert passes(
        kind, "Bonjour, je voudrais un café et un croissant, s'il vous plaît.", language="fr"
    )
    # No letters at all: unclassifiable, followed (langdetect raises and IFEval passes).
    assert check(kind, "12345 678", {"language": "de"}).details["classified"] is False
    assert passes(kind, "12345 678", language="de")


def test_english_capital() -> None:
    kind = "change_case:english_capital"
    assert passes(kind, ENGLISH.upper())
    assert not passes(kind, ENGLISH)  # not capitals
    german = "DAS WETTER IST HEUTE SEHR SCHÖN UND ICH GEHE MIT MEINEM HUND IM PARK SPAZIEREN."
    result = check(kind, german, {})
    assert (
        not result.passed and result.details["case"] is True and result.details["english"] is False
    )
    # Too few letters to classify: only the case is judged (documented in the module).
    assert passes(kind, "NO WAY")
    assert not passes(kind, "No way")


def test_english_lowercase() -> None:
    kind = "change_case:english_lowercase"
    assert passes(kind, ENGLISH.lower())
    assert not passes(kind, ENGLISH)  # one capital T
    assert not passes(kind, "das wetter ist heute sehr schön und ich gehe im park spazieren.")
    assert passes(kind, "ok sure")
    assert not passes(kind, "123 456")  # no cased character: str.islower is False, as in IFEval


@pytest.mark.parametrize(
    ("response", "relation", "frequency", "expected"),
    [
        ("THIS is VERY important", "at least", 2, True),
        ("THIS is very important", "at least", 2, False),
        ("THIS is VERY important", "less than", 2, False),  # 2 < 2 fails
        ("I think so", "at least", 1, True),  # "I" counts, as in IFEval
        ("a well-KNOWN-FACT", "less than", 1, True),  # mixed case hyphenated: one token
    ],
)
def test_capital_word_frequency(
    response: str, relation: str, frequency: int, expected: bool
) -> None:
    args = {"capital_frequency": frequency, "capital_relation": relation}
    assert passes("change_case:capital_word_frequency", response, **args) is expected


# -- length --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "relation", "threshold", "expected"),
    [
        ("One. Two. Three.", "at least", 3, True),
        ("One. Two. Three.", "less than", 3, False),
        ("One. Two.", "less than", 3, True),
        ("Mr. Smith met Dr. Jones at 3.14 p.m. today. It rained.", "less than", 3, True),
        ("Is it? Yes! Fine.", "at least", 3, True),
    ],
)
def test_number_sentences(response: str, relation: str, threshold: int, expected: bool) -> None:
    args = {"num_sentences": threshold, "relation": relation}
    assert passes("length_constraints:number_sentences", response, **args) is expected


def test_number_sentences_details_show_the_count() -> None:
    args = {"num_sentences": 2, "relation": "less than"}
    result = check("length_constraints:number_sentences", "One. Two. Three.", args)
    assert result.details == {"sentences": 3, "relation": "less than", "threshold": 2}


@pytest.mark.parametrize(
    ("words", "relation", "threshold", "expected"),
    [(50, "at least", 50, True), (49, "at least", 50, False), (49, "less than", 50, True),
     (50, "less than", 50, False)],
)  # fmt: skip
def test_number_words_boundaries(words: int, relation: str, threshold: int, expected: bool) -> None:
    response = " ".join(["word"] * words)
    args = {"num_words": threshold, "relation": relation}
    result = check("length_constraints:number_words", response, args)
    assert result.passed is expected
    assert result.details["words"] == words and result.details["threshold"] == threshold


def test_number_words_counts_word_runs_like_the_regexp_tokenizer() -> None:
    args = {"num_words": 6, "relation": "at least"}
    # don't -> don, t; state-of-the-art -> 4; 3.14 -> 3, 14
    assert check("length_constraints:number_words", "don't state-of-the-art", args).passed
    assert count_words("It costs 3.14, ok?") == 5


def test_number_paragraphs_with_the_divider() -> None:
    kind = "length_constraints:number_paragraphs"
    assert passes(kind, "First.\n***\nSecond.\n***\nThird.", num_paragraphs=3)
    assert passes(kind, "First. *** Second.", num_paragraphs=2)
    assert passes(kind, "***\nFirst.\n***\nSecond.\n***", num_paragraphs=2)  # ends: dropped
    assert not passes(kind, "First.\n***\nSecond.", num_paragraphs=3)
    assert not passes(kind, "First.\n\nSecond.\n\nThird.", num_paragraphs=3)  # no dividers
    result = check(kind, "First.\n***\n\n***\nSecond.", {"num_paragraphs": 2})
    assert not result.passed and result.details["empty_paragraphs"] == 1


def test_nth_paragraph_first_word() -> None:
    kind = "length_constraints:nth_paragraph_first_word"
    response = 'Intro here.\n\nSecond one.\n\n"Finally, the end."'
    args = {"num_paragraphs": 3, "first_word": "finally"}
    assert passes(kind, response, nth_paragraph=3, **args)
    assert passes(kind, response, num_paragraphs=3, nth_paragraph=2, first_word="Second")
    result = check(kind, response, {"nth_paragraph": 2, **args})
    assert not result.passed and result.details["first_word"] == "second"
    assert not passes(kind, response, num_paragraphs=2, nth_paragraph=3, first_word="finally")
    assert not passes(kind, response, num_paragraphs=4, nth_paragraph=4, first_word="finally")
    # Several blank lines count as one break; punctuation after the word is cut off.
    assert passes(kind, "Hello.\n\n\n\nWorld, again.", num_paragraphs=2, nth_paragraph=2,
                  first_word="world")  # fmt: skip
    # "**Hello**" is not "hello" strictly; loose mode removes the asterisks.
    bold = {"num_paragraphs": 1, "nth_paragraph": 1, "first_word": "hello"}
    assert not check(kind, "**Hello** there.", bold).passed
    assert check_loose(kind, "**Hello** there.", bold).passed


# -- detectable content ------------------------------------------------------------------------


def test_number_placeholders() -> None:
    kind = "detectable_content:number_placeholders"
    assert passes(kind, "Dear [name], see you at [address] on [date].", num_placeholders=3)
    assert passes(kind, "[a] [b] [c] [d]", num_placeholders=3)  # at least
    result = check(kind, "Dear [name], see you soon.", {"num_placeholders": 2})
    assert not result.passed and result.details == {"placeholders": 1, "minimum": 2}


def test_postscript() -> None:
    kind = "detectable_content:postscript"
    assert passes(kind, "Bye.\n\nP.S. I miss you.", postscript_marker="P.S.")
    assert passes(kind, "Bye.\np.s. lower case works", postscript_marker="P.S.")
    assert not passes(kind, "Bye.\nPS I miss you.", postscript_marker="P.S.")
    assert passes(kind, "Bye.\nP.P.S don't forget", postscript_marker="P.P.S")
    assert passes(kind, "Bye.\nP. P. S. don't forget", postscript_marker="P.P.S")
    assert not passes(kind, "Bye.\nP.S. only one", postscript_marker="P.P.S")


# -- detectable format -------------------------------------------------------------------------


def test_number_bullet_lists_counts_star_and_dash_bullets() -> None:
    kind = "detectable_format:number_bullet_lists"
    assert passes(kind, "Here:\n* one\n* two\n- three", num_bullets=3)
    assert passes(kind, "  * indented\n\t- tabbed", num_bullets=2)
    assert not passes(kind, "* one\n* two\n* three", num_bullets=2)  # exactly
    # Not bullets: emphasis at a line start, a rule, a number, bold text.
    not_bullets = "*emphasis* here\n---\n-5 degrees\n**bold** line\n1. numbered"
    result = check(kind, not_bullets, {"num_bullets": 0})
    assert result.passed and result.details["bullets"] == 0


def test_constrained_response() -> None:
    kind = "detectable_format:constrained_response"
    assert passes(kind, "After thinking: My answer is maybe.")
    assert passes(kind, "My answer is no.")
    assert not passes(kind, "My answer is yes")  # the point is part of the option
    assert not passes(kind, "my answer is yes.")


def test_number_highlighted_sections() -> None:
    kind = "detectable_format:number_highlighted_sections"
    assert passes(kind, "This is *one* and **two** and *three*.", num_highlights=3)
    assert not passes(kind, "This is *one* and ** ** empty.", num_highlights=2)
    assert not passes(kind, "*not\nacross lines*", num_highlights=1)
    assert passes(kind, "*a* *b* *c* *d*", num_highlights=3)  # at least


def test_multiple_sections_at_least_and_at_line_starts() -> None:
    kind = "detectable_format:multiple_sections"
    response = "SECTION 1\nIntro.\nSECTION 2\nBody.\n\nSECTION 3\nEnd, as in SECTION 1."
    result = check(kind, response, {"section_spliter": "SECTION", "num_sections": 3})
    assert result.passed and result.details["numbers"] == "1,2,3"
    assert passes(kind, response, section_spliter="SECTION", num_sections=2)  # at least
    assert not passes(kind, response, section_spliter="SECTION", num_sections=4)
    assert not passes(kind, response, section_spliter="Section", num_sections=3)  # case
    markdown = "## Section 1: Why\ntext\n**Section 2**\ntext"
    assert passes(kind, markdown, section_spliter="Section", num_sections=2)
    assert not passes(
        kind, "See Section 1 and Section 2.", section_spliter="Section", num_sections=2
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ('{"a": 1, "b": [1, 2]}', True),
        ('```json\n{"a": 1}\n```', True),
        ('```JSON\n{"a": 1}\n```', True),
        ("```\n[1, 2, 3]\n```", True),
        ('Here is the JSON:\n```json\n{"a": 1}\n```', False),
        ('{"a": 1,}', False),
        ("{'a': 1}", False),
    ],
)
def test_json_format(response: str, expected: bool) -> None:
    assert passes("detectable_format:json_format", response) is expected


def test_json_format_failure_says_why_and_loose_mode_drops_a_preface() -> None:
    response = 'Sure, here it is:\n{"a": 1}'
    result = check("detectable_format:json_format", response, {})
    assert not result.passed and result.details["error"]
    loose = check_loose("detectable_format:json_format", response, {})
    assert loose.passed and loose.details["variant"] == "without_first_line"


def test_title() -> None:
    kind = "detectable_format:title"
    result = check(kind, "<<Poem of Joy>>\nRoses are red.", {})
    assert result.passed and result.details["title"] == "Poem of Joy"
    assert not passes(kind, "<< >> no title")
    assert not passes(kind, "<<split\ntitle>>")
    assert not passes(kind, "<Poem of Joy>")


# -- combination, start and end, punctuation ----------------------------------------------------


def test_two_responses() -> None:
    kind = "combination:two_responses"
    assert passes(kind, "First answer.\n******\nSecond answer.")
    assert passes(kind, "******\nFirst.\n******\nSecond.\n******")  # ends may be empty
    result = check(kind, "Same answer.\n******\n  Same answer.  ", {})
    assert not result.passed and result.details["identical"] is True
    assert not passes(kind, "Only one answer.")
    assert not passes(kind, "One.\n******\nTwo.\n******\nThree.")
    assert not passes(kind, "One.\n******\n\n******\nTwo.")  # an empty response between


def test_repeat_prompt() -> None:
    kind = "combination:repeat_prompt"
    request = "Write a haiku about the sea."
    assert passes(
        kind, "Write a haiku about the sea.\nWaves fold into foam.", prompt_to_repeat=request
    )
    assert passes(kind, "  write a HAIKU about the sea. Waves.", prompt_to_repeat=request)
    assert not passes(kind, "Sure! Write a haiku about the sea.", prompt_to_repeat=request)
    assert not passes(kind, "Write a haiku about a sea.", prompt_to_repeat=request)


def test_end_checker() -> None:
    kind = "startend:end_checker"
    phrase = "Is there anything else I can help with?"
    assert passes(kind, "Done.\nIs there anything else I can help with?", end_phrase=phrase)
    assert passes(kind, '"Done. is there anything else I can help with?"\n', end_phrase=phrase)
    result = check(kind, "Is there anything else I can help with? Bye.", {"end_phrase": phrase})
    assert not result.passed and result.details["ending"].endswith("bye.")


def test_quotation() -> None:
    kind = "startend:quotation"
    assert passes(kind, '  "The whole answer, "quoted" inside too."  ')
    assert not passes(kind, '"Only the start')
    assert not passes(kind, "“Curly quotes are not straight ones.”")
    assert not passes(kind, '"')


def test_no_comma() -> None:
    kind = "punctuation:no_comma"
    assert passes(kind, "No commas here. None at all!")
    result = check(kind, "One, two, three.", {})
    assert not result.passed and result.details == {"commas": 2}


# -- loose mode ----------------------------------------------------------------------------------


def test_loose_variants_are_ifevals_eight() -> None:
    variants = dict(loose_variants("Sure:\n*middle*\nBye"))
    assert len(variants) == 8
    assert variants["without_first_line"] == "*middle*\nBye"
    assert variants["without_last_line"] == "Sure:\n*middle*"
    assert variants["without_first_and_last_lines"] == "*middle*"
    assert variants["without_first_and_last_lines_no_asterisks"] == "middle"


def test_a_preface_line_fails_strict_and_passes_loose() -> None:
    kind = "change_case:english_lowercase"
    response = "Sure, here it is:\n" + ENGLISH.lower()
    assert not check(kind, response, {}).passed
    loose = check_loose(kind, response, {})
    assert loose.passed and loose.details["variant"] == "without_first_line"


def test_an_afterword_line_fails_strict_and_passes_loose() -> None:
    phrase = {"end_phrase": "That is all."}
    response = "The answer is four. That is all.\nLet me know if you need more!"
    assert not check("startend:end_checker", response, phrase).passed
    assert check_loose("startend:end_checker", response, phrase).details["variant"] == (
        "without_last_line"
    )


def test_loose_mode_fails_with_the_unmodified_details_when_no_variant_passes() -> None:
    result = check_loose("punctuation:no_comma", "a, b\nc, d\ne, f", {})
    assert not result.passed and result.details == {"commas": 3, "variant": "none"}


# -- score_record --------------------------------------------------------------------------------


def test_score_record_prompt_and_instruction_level() -> None:
    constraints = [
        {"kind": "punctuation:no_comma", "args": "{}", "held_out": False},
        {
            "kind": "length_constraints:number_words",
            "args": json.dumps({"num_words": 5, "relation": "less than"}, sort_keys=True),
            "held_out": True,
        },
        {"kind": "startend:end_checker", "args": {"end_phrase": "Bye."}, "held_out": False},
    ]
    result = score_record(constraints, "Sure, here it is:\nHello there.\nBye.", prompt="Hi.")
    # The preface line breaks no_comma and the word limit; loose mode drops it.
    assert result["strict"] is False and result["loose"] is True
    assert result["strict_fraction"] == pytest.approx(1 / 3)
    assert result["loose_fraction"] == 1.0
    no_comma, words, end = result["constraints"]
    assert no_comma == {
        "kind": "punctuation:no_comma",
        "held_out": False,
        "strict": False,
        "loose": True,
        "strict_details": {"commas": 1},
        "loose_details": {"commas": 0, "variant": "without_first_line"},
    }
    assert words["held_out"] is True and words["strict"] is False and words["loose"] is True
    assert words["strict_details"]["words"] == 7 and words["loose_details"]["words"] == 3
    assert end["strict"] is True and end["loose_details"]["variant"] == "response"
    assert score_record(constraints[2:], "Bye.", "")["strict"] is True


def test_score_record_rejects_no_constraints_and_a_constraint_without_kind() -> None:
    with pytest.raises(ValueError, match="no constraints"):
        score_record([], "hi", "")
    with pytest.raises(InvalidConstraintArgs, match=r"constraints\[0\]"):
        score_record([{"args": "{}"}], "hi", "")


def test_check_is_a_frozen_dataclass() -> None:
    result = check("punctuation:no_comma", "hi", {})
    assert isinstance(result, Check)
    with pytest.raises(AttributeError):
        result.passed = False  # type: ignore[misc]


# -- text helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Mr. Smith went to Washington. He met Dr. Jones.",
         ["Mr. Smith went to Washington.", "He met Dr. Jones."]),
        ("I live in the U.S. They do not. The U.S. Army is big.",
         ["I live in the U.S.", "They do not.", "The U.S. Army is big."]),
        ("Use tools, e.g. hammers, i.e. simple ones. Done.",
         ["Use tools, e.g. hammers, i.e. simple ones.", "Done."]),
        ("Pi is 3.14 roughly. Visit example.com today.",
         ["Pi is 3.14 roughly.", "Visit example.com today."]),
        ("Wait... what? No!", ["Wait... what?", "No!"]),
        ("He paused... Then he left.", ["He paused...", "Then he left."]),
        ('She said "Stop." Then she left.', ['She said "Stop."', "Then she left."]),
        ('"Why?" she asked. "Because!" He left.', ['"Why?" she asked.', '"Because!"', "He left."]),
        ("Really?! Yes.", ["Really?!", "Yes."]),
        ("1. Mix the flour.\n2. Bake it.\n3. Eat", ["1. Mix the flour.", "2. Bake it.", "3. Eat"]),
        ("J. K. Rowling wrote it. It sold well.", ["J. K. Rowling wrote it.", "It sold well."]),
        ("**Note.** This is bold.", ["**Note.**", "This is bold."]),
        ("It costs $5 (approx.) and more.", ["It costs $5 (approx.) and more."]),
        ("Apples, pears, etc. The list goes on.", ["Apples, pears, etc.", "The list goes on."]),
        ("A heading\nand a line without a point", ["A heading\nand a line without a point"]),
        ("", []),
        ("   \n ", []),
    ],
)  # fmt: skip
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences
    assert count_sentences(text) == len(sentences)


def test_paragraph_splitters() -> None:
    assert split_on_divider("a\n***\nb *** c") == ["a", "b", "c"]
    assert split_on_divider("***\na\n***\n\n***\nb\n***") == ["a", "", "b"]
    assert split_blank_line_paragraphs("a\n\n\n\nb\n \nc\nd") == ["a", "b", "c\nd"]
    assert split_blank_line_paragraphs("") == []
