"""Verifiable instruction-following checks, one pure function per IFEval constraint kind.

IFEval: Zhou et al. 2023, "Instruction-Following Evaluation for Large Language Models"
(arXiv:2311.07911); kinds, argument keys and semantics follow its ``instructions.py`` and
``evaluation_lib.py`` (google-research/instruction_following_eval), so its own prompt file
scores here too. Every checker is ``(response, args, prompt) -> Check``: ``passed``, a
``score`` of 1.0 or 0.0, and ``details``, the measured quantities a log shows to say why.
``check`` validates the arguments (unknown kinds and keys, missing or ill-typed values all
raise, naming the kind, the key and what is allowed) and ``check_loose`` is IFEval's loose
mode. As in IFEval, a blank response follows no instruction.

Where this departs from IFEval, and why:

- Sentences are counted by the rule-based splitter of ``train.rewards.text`` (punkt's data
  cannot be downloaded here); ``change_case:capital_word_frequency`` tokenises with NLTK's
  Treebank tokenizer over those sentences instead of ``word_tokenize``.
- Language is identified with py3langid, not langdetect. The case kinds classify the
  lower-cased text and count the language check as passed when it has fewer than
  ``MIN_LETTERS_TO_CLASSIFY`` letters ("NO WAY" is "kik" to the classifier); IFEval passes
  only when langdetect raises. ``language:response_language`` passes a response with no
  letters at all, as IFEval does when langdetect finds no features.
- Keywords are literal strings (``re.escape``), not regular expressions; existence and
  frequency still match substrings case-insensitively ("cat" counts in "category"), and
  forbidden words still match whole words, as in IFEval.
- ``detectable_format:number_bullet_lists`` counts lines starting with ``* `` or ``- ``
  (marker then white space), so ``*emphasis* first`` and a ``---`` rule are not bullets.
- ``detectable_format:multiple_sections`` needs exactly ``num_sections`` sections (the
  contract's reading; IFEval accepts at least), each a line starting with the splitter and a
  number (markdown ``#``/``*`` before it allowed), so "see Section 2" in a sentence is not one.
- ``length_constraints:nth_paragraph_first_word`` splits on blank lines (several, or with
  spaces, count as one) and strips curly quotes as well as straight ones off the first word.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import py3langid as langid

from pipeline.constraints import CONSTRAINED_RESPONSE_OPTIONS, KINDS, RELATIONS
from train.rewards.text import (
    count_sentences,
    count_words,
    letter_count,
    split_blank_line_paragraphs,
    split_on_divider,
    word_tokens,
)

Details = dict[str, float | int | str | bool]

MIN_LETTERS_TO_CLASSIFY = 10  # below this py3langid guesses (see the module docstring)
# The kinds and their fixed phrases are the data engine's (pipeline.constraints attaches them).
CONSTRAINED_RESPONSES = CONSTRAINED_RESPONSE_OPTIONS

# The argument keys of each kind, as in IFEval's input_data.jsonl kwargs.
ARG_KEYS: dict[str, tuple[str, ...]] = {
    "keywords:existence": ("keywords",),
    "keywords:frequency": ("keyword", "frequency", "relation"),
    "keywords:forbidden_words": ("forbidden_words",),
    "keywords:letter_frequency": ("letter", "let_frequency", "let_relation"),
    "language:response_language": ("language",),
    "length_constraints:number_sentences": ("num_sentences", "relation"),
    "length_constraints:number_paragraphs": ("num_paragraphs",),
    "length_constraints:number_words": ("num_words", "relation"),
    "length_constraints:nth_paragraph_first_word": (
        "num_paragraphs",
        "nth_paragraph",
        "first_word",
    ),
    "detectable_content:number_placeholders": ("num_placeholders",),
    "detectable_content:postscript": ("postscript_marker",),
    "detectable_format:number_bullet_lists": ("num_bullets",),
    "detectable_format:constrained_response": (),
    "detectable_format:number_highlighted_sections": ("num_highlights",),
    "detectable_format:multiple_sections": ("section_spliter", "num_sections"),
    "detectable_format:json_format": (),
    "detectable_format:title": (),
    "combination:two_responses": (),
    "combination:repeat_prompt": ("prompt_to_repeat",),
    "startend:end_checker": ("end_phrase",),
    "startend:quotation": (),
    "change_case:capital_word_frequency": ("capital_frequency", "capital_relation"),
    "change_case:english_capital": (),
    "change_case:english_lowercase": (),
    "punctuation:no_comma": (),
}


@dataclass(frozen=True)
class Check:
    """One constraint judged on one response."""

    passed: bool
    score: float  # 1.0 when passed, else 0.0
    details: Details = field(default_factory=dict)


class UnknownConstraint(ValueError):
    """A constraint kind no checker knows; the message lists the known kinds."""


class InvalidConstraintArgs(ValueError):
    """A constraint's arguments are missing, unknown or of the wrong type or value."""


Checker = Callable[[str, Mapping[str, Any], str], Check]
CHECKS: dict[str, Checker] = {}


def _verdict(passed: bool, **details: float | int | str | bool) -> Check:
    return Check(passed=bool(passed), score=1.0 if passed else 0.0, details=details)


def _checker(kind: str) -> Callable[[Checker], Checker]:
    """Registers a checker under ``kind``, failing a blank response as IFEval's evaluation
    does (after the checker ran, so its arguments are validated all the same)."""

    def register(function: Checker) -> Checker:
        @functools.wraps(function)
        def checked(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
            result = function(response, args, prompt)
            if response.strip():
                return result
            return Check(False, 0.0, {**result.details, "empty_response": True})

        CHECKS[kind] = checked
        return checked

    return register


# -- arguments ---------------------------------------------------------------------------


def _arg(kind: str, args: Mapping[str, Any], key: str) -> Any:
    if key not in args or args[key] is None:
        raise InvalidConstraintArgs(f"{kind}: args.{key} is missing; args given: {dict(args)}")
    return args[key]


def _int_arg(kind: str, args: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = _arg(kind, args, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidConstraintArgs(
            f"{kind}: args.{key} = {value!r}: needs an integer >= {minimum}"
        )
    return value


def _str_arg(kind: str, args: Mapping[str, Any], key: str) -> str:
    value = _arg(kind, args, key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidConstraintArgs(f"{kind}: args.{key} = {value!r}: needs a non-empty string")
    return value


def _words_arg(kind: str, args: Mapping[str, Any], key: str) -> list[str]:
    value = _arg(kind, args, key)
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(word, str) and word.strip() for word in value)
    ):
        raise InvalidConstraintArgs(
            f"{kind}: args.{key} = {value!r}: needs a non-empty list of non-empty strings"
        )
    return [word.strip() for word in value]


def _relation_arg(kind: str, args: Mapping[str, Any], key: str) -> str:
    value = _arg(kind, args, key)
    if value not in RELATIONS:
        raise InvalidConstraintArgs(f"{kind}: args.{key} = {value!r}: choose one of {RELATIONS}")
    return value


def _relation_holds(measured: int, relation: str, threshold: int) -> bool:
    return measured < threshold if relation == "less than" else measured >= threshold


def _count_check(measured_key: str, measured: int, relation: str, threshold: int) -> Check:
    return _verdict(
        _relation_holds(measured, relation, threshold),
        **{measured_key: measured, "relation": relation, "threshold": threshold},
    )


# -- keywords ------------------------------------------------------------------------------


@_checker("keywords:existence")
def keywords_existence(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """Every keyword appears, case-insensitively, as a substring."""
    keywords = _words_arg("keywords:existence", args, "keywords")
    missing = [word for word in keywords if not re.search(re.escape(word), response, re.I)]
    return _verdict(
        not missing,
        found=len(keywords) - len(missing),
        keywords=len(keywords),
        missing=", ".join(missing),
    )


@_checker("keywords:frequency")
def keywords_frequency(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """The keyword's case-insensitive occurrences (substrings) against the relation."""
    kind = "keywords:frequency"
    keyword = _str_arg(kind, args, "keyword").strip()
    frequency = _int_arg(kind, args, "frequency")
    relation = _relation_arg(kind, args, "relation")
    occurrences = len(re.findall(re.escape(keyword), response, re.I))
    return _count_check("occurrences", occurrences, relation, frequency)


@_checker("keywords:forbidden_words")
def keywords_forbidden_words(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """None of the words appears as a whole word, case-insensitively."""
    words = _words_arg("keywords:forbidden_words", args, "forbidden_words")
    used = [word for word in words if re.search(rf"\b{re.escape(word)}\b", response, re.I)]
    return _verdict(not used, used=", ".join(used), forbidden=len(words))


@_checker("keywords:letter_frequency")
def keywords_letter_frequency(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """The letter's occurrences in either case against the relation."""
    kind = "keywords:letter_frequency"
    letter = _str_arg(kind, args, "letter").strip().lower()
    if len(letter) != 1 or not letter.isalpha():
        raise InvalidConstraintArgs(f"{kind}: args.letter = {args['letter']!r}: needs one letter")
    frequency = _int_arg(kind, args, "let_frequency")
    relation = _relation_arg(kind, args, "let_relation")
    occurrences = Counter(response.lower())[letter]
    return _count_check("occurrences", occurrences, relation, frequency)


# -- language and case -----------------------------------------------------------------------


def _language(text: str) -> str:
    language, _ = langid.classify(text)
    return language


@_checker("language:response_language")
def response_language(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """py3langid's language of the whole response is ``language`` (ISO 639-1)."""
    kind = "language:response_language"
    expected = _str_arg(kind, args, "language").strip()
    if not re.fullmatch(r"[a-z]{2,3}", expected):
        raise InvalidConstraintArgs(
            f"{kind}: args.language = {expected!r}: needs an ISO 639-1 code such as 'en'"
        )
    letters = letter_count(response)
    if not letters:
        return _verdict(True, detected="", expected=expected, letters=0, classified=False)
    detected = _language(response)
    return _verdict(
        detected == expected,
        detected=detected,
        expected=expected,
        letters=letters,
        classified=True,
    )


def _english_check(response: str, case_follows: bool) -> Check:
    letters = letter_count(response)
    if letters < MIN_LETTERS_TO_CLASSIFY:
        return _verdict(
            case_follows,
            case=case_follows,
            english=True,
            letters=letters,
            detected="",
            classified=False,
        )
    detected = _language(response.lower())
    return _verdict(
        case_follows and detected == "en",
        case=case_follows,
        english=detected == "en",
        letters=letters,
        detected=detected,
        classified=True,
    )


@_checker("change_case:english_capital")
def english_capital(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """All cased characters upper case (``str.isupper``) and the text English."""
    return _english_check(response, response.isupper())


@_checker("change_case:english_lowercase")
def english_lowercase(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """All cased characters lower case (``str.islower``) and the text English."""
    return _english_check(response, response.islower())


@_checker("change_case:capital_word_frequency")
def capital_word_frequency(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """Tokens in all capitals ("I" and "A" included, as in IFEval) against the relation."""
    kind = "change_case:capital_word_frequency"
    frequency = _int_arg(kind, args, "capital_frequency")
    relation = _relation_arg(kind, args, "capital_relation")
    capital_words = sum(token.isupper() for token in word_tokens(response))
    return _count_check("capital_words", capital_words, relation, frequency)


# -- length --------------------------------------------------------------------------------


@_checker("length_constraints:number_sentences")
def number_sentences(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    kind = "length_constraints:number_sentences"
    threshold = _int_arg(kind, args, "num_sentences")
    relation = _relation_arg(kind, args, "relation")
    return _count_check("sentences", count_sentences(response), relation, threshold)


@_checker("length_constraints:number_words")
def number_words(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    kind = "length_constraints:number_words"
    threshold = _int_arg(kind, args, "num_words")
    relation = _relation_arg(kind, args, "relation")
    return _count_check("words", count_words(response), relation, threshold)


@_checker("length_constraints:number_paragraphs")
def number_paragraphs(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """Exactly ``num_paragraphs`` paragraphs between ``***`` dividers; an empty paragraph
    between two dividers fails."""
    expected = _int_arg("length_constraints:number_paragraphs", args, "num_paragraphs", 1)
    paragraphs = split_on_divider(response)
    empty = sum(not paragraph.strip() for paragraph in paragraphs)
    return _verdict(
        not empty and len(paragraphs) == expected,
        paragraphs=len(paragraphs) - empty,
        empty_paragraphs=empty,
        expected=expected,
    )


def _first_word(paragraph: str) -> str:
    """IFEval's first word: the first token without leading quotes, cut at punctuation."""
    word = paragraph.split()[0].lstrip("'\"“‘") if paragraph.split() else ""
    return re.split(r"[.,?!'\"“”‘’]", word, maxsplit=1)[0].lower()


@_checker("length_constraints:nth_paragraph_first_word")
def nth_paragraph_first_word(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """Exactly ``num_paragraphs`` blank-line paragraphs, paragraph ``nth_paragraph`` (from 1)
    starting with ``first_word`` (case-insensitive)."""
    kind = "length_constraints:nth_paragraph_first_word"
    expected = _int_arg(kind, args, "num_paragraphs", 1)
    nth = _int_arg(kind, args, "nth_paragraph", 1)
    first_word = _str_arg(kind, args, "first_word").strip().lower()
    paragraphs = split_blank_line_paragraphs(response)
    found = _first_word(paragraphs[nth - 1]) if nth <= len(paragraphs) else ""
    return _verdict(
        len(paragraphs) == expected and found == first_word,
        paragraphs=len(paragraphs),
        expected=expected,
        nth_paragraph=nth,
        first_word=found,
        expected_first_word=first_word,
    )


# -- detectable content and format -------------------------------------------------------------


@_checker("detectable_content:number_placeholders")
def number_placeholders(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """At least ``num_placeholders`` square-bracketed spans such as [address]."""
    minimum = _int_arg("detectable_content:number_placeholders", args, "num_placeholders")
    placeholders = len(re.findall(r"\[.*?\]", response))
    return _verdict(placeholders >= minimum, placeholders=placeholders, minimum=minimum)


@_checker("detectable_content:postscript")
def postscript(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """A line containing the marker, case-insensitively; "P.S." and "P.P.S" allow a space
    after each point ("p. p. s")."""
    marker = _str_arg("detectable_content:postscript", args, "postscript_marker").strip()
    if marker == "P.P.S":
        pattern = r"p\.\s?p\.\s?s"
    elif marker == "P.S.":
        pattern = r"p\.\s?s\."
    else:
        pattern = re.escape(marker.lower())
    found = re.search(pattern, response.lower()) is not None
    return _verdict(found, marker=marker)


@_checker("detectable_format:number_bullet_lists")
def number_bullet_lists(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """Exactly ``num_bullets`` markdown bullets: lines starting ``* `` or ``- ``."""
    expected = _int_arg("detectable_format:number_bullet_lists", args, "num_bullets")
    bullets = len(re.findall(r"^[ \t]*[*-][ \t]+\S", response, flags=re.MULTILINE))
    return _verdict(bullets == expected, bullets=bullets, expected=expected)


@_checker("detectable_format:constrained_response")
def constrained_response(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """One of IFEval's three answers ("My answer is yes." ...) appears in the response."""
    matched = next((option for option in CONSTRAINED_RESPONSES if option in response), "")
    return _verdict(bool(matched), matched=matched)


@_checker("detectable_format:number_highlighted_sections")
def number_highlighted_sections(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """At least ``num_highlights`` non-empty *single* or **double** asterisk spans on one line."""
    minimum = _int_arg("detectable_format:number_highlighted_sections", args, "num_highlights")
    single = [span for span in re.findall(r"\*[^\n*]*\*", response) if span.strip("*").strip()]
    double = [span for span in re.findall(r"\*\*[^\n*]*\*\*", response) if span[2:-2].strip()]
    highlights = len(single) + len(double)
    return _verdict(highlights >= minimum, highlights=highlights, minimum=minimum)


@_checker("detectable_format:multiple_sections")
def multiple_sections(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """At least ``num_sections`` lines starting with the splitter and a number ("SECTION 1"),
    as IFEval counts them (its prompts say "must have N sections")."""
    kind = "detectable_format:multiple_sections"
    splitter = _str_arg(kind, args, "section_spliter").strip()
    expected = _int_arg(kind, args, "num_sections", 1)
    heading = rf"^[ \t#*_]*{re.escape(splitter)}\s?(\d+)"
    numbers = re.findall(heading, response, flags=re.MULTILINE)
    return _verdict(
        len(numbers) >= expected,
        sections=len(numbers),
        expected=expected,
        numbers=",".join(numbers),
    )


_JSON_FENCE_OPENINGS = ("```json", "```Json", "```JSON", "```")


@_checker("detectable_format:json_format")
def json_format(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """The whole response parses as JSON, optionally inside one ``` fence."""
    text = response.strip()
    fenced = text.startswith("```")
    for opening in _JSON_FENCE_OPENINGS:
        if text.startswith(opening):
            text = text.removeprefix(opening)
            break
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError as error:
        return _verdict(False, fenced=fenced, error=str(error))
    return _verdict(True, fenced=fenced, error="")


@_checker("detectable_format:title")
def title(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """A non-empty title in double angular brackets on one line, <<poem of joy>>."""
    titles = [
        found.strip("<>").strip()
        for found in re.findall(r"<<[^\n]+>>", response)
        if found.strip("<>").strip()
    ]
    return _verdict(bool(titles), title=titles[0] if titles else "")


# -- combination, start and end, punctuation ----------------------------------------------------


@_checker("combination:two_responses")
def two_responses(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """Two different non-empty responses separated by ******; nothing else but white space
    before the first or after the last."""
    pieces = response.split("******")
    inner_empty = any(not piece.strip() for piece in pieces[1:-1])
    answers = [piece.strip() for piece in pieces if piece.strip()]
    identical = len(answers) == 2 and answers[0] == answers[1]
    return _verdict(
        not inner_empty and len(answers) == 2 and not identical,
        responses=len(answers),
        identical=identical,
        empty_between=inner_empty,
    )


@_checker("combination:repeat_prompt")
def repeat_prompt(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """The response starts with ``prompt_to_repeat`` (case-insensitive, as in IFEval)."""
    request = _str_arg("combination:repeat_prompt", args, "prompt_to_repeat").strip().lower()
    repeated = response.strip().lower().startswith(request)
    return _verdict(repeated, request_characters=len(request))


@_checker("startend:end_checker")
def end_checker(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """The response ends with ``end_phrase`` (case-insensitive; a closing '"' is ignored)."""
    phrase = _str_arg("startend:end_checker", args, "end_phrase").strip().lower()
    ending = response.strip().strip('"').lower()
    return _verdict(ending.endswith(phrase), ending=ending[-len(phrase) :], end_phrase=phrase)


@_checker("startend:quotation")
def quotation(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    """The stripped response starts and ends with a straight double quote."""
    text = response.strip()
    return _verdict(
        len(text) > 1 and text[0] == '"' and text[-1] == '"', first=text[:1], last=text[-1:]
    )


@_checker("punctuation:no_comma")
def no_comma(response: str, args: Mapping[str, Any], prompt: str = "") -> Check:
    commas = response.count(",")
    return _verdict(commas == 0, commas=commas)


# -- entry points ------------------------------------------------------------------------------


def parse_args(kind: str, args: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A constraint's arguments as a dict: JSON text parsed, None-valued keys dropped (the
    Hugging Face copy of IFEval carries every kind's keys, null where unused), keys the kind
    does not take rejected."""
    if kind not in CHECKS:
        raise UnknownConstraint(f"constraint kind {kind!r} is unknown; known kinds: {list(KINDS)}")
    if args is None or args == "":
        parsed: Any = {}
    elif isinstance(args, str):
        try:
            parsed = json.loads(args)
        except ValueError as error:
            raise InvalidConstraintArgs(f"{kind}: args {args!r} is not JSON: {error}") from error
    else:
        parsed = args
    if not isinstance(parsed, Mapping):
        raise InvalidConstraintArgs(f"{kind}: args {parsed!r}: needs a JSON object")
    present = {key: value for key, value in parsed.items() if value is not None}
    unknown = sorted(set(present) - set(ARG_KEYS[kind]))
    if unknown:
        raise InvalidConstraintArgs(
            f"{kind}: unknown args {unknown}; this kind takes {list(ARG_KEYS[kind])}"
        )
    return present


def check(
    kind: str, response: str, args: str | Mapping[str, Any] | None, prompt: str = ""
) -> Check:
    """Strict check of one constraint (IFEval's ``test_instruction_following_strict``)."""
    parsed = parse_args(kind, args)
    return CHECKS[kind](response, parsed, prompt)


def loose_variants(response: str) -> list[tuple[str, str]]:
    """IFEval's loose-mode rewrites of a response, named: the response, without its first
    line, its last line or both, and each of these with every '*' removed."""
    lines = response.split("\n")
    variants = [
        ("response", response),
        ("without_first_line", "\n".join(lines[1:]).strip()),
        ("without_last_line", "\n".join(lines[:-1]).strip()),
        ("without_first_and_last_lines", "\n".join(lines[1:-1]).strip()),
    ]
    return variants + [(f"{name}_no_asterisks", text.replace("*", "")) for name, text in variants]


def check_loose(
    kind: str, response: str, args: str | Mapping[str, Any] | None, prompt: str = ""
) -> Check:
    """Loose check: passes when any of ``loose_variants`` passes; details are that variant's,
    plus ``variant`` (its name, or "none" with the unmodified response's details)."""
    parsed = parse_args(kind, args)
    checker = CHECKS[kind]
    for name, variant in loose_variants(response):
        result = checker(variant, parsed, prompt)
        if result.passed:
            return Check(True, 1.0, {**result.details, "variant": name})
    strict = checker(response, parsed, prompt)
    return Check(False, 0.0, {**strict.details, "variant": "none"})


def score_record(constraints: list[dict[str, Any]], response: str, prompt: str) -> dict[str, Any]:
    """All of a record's constraints judged on one response, strict and loose.

    ``constraints`` items are ``{"kind", "args" (JSON text or dict), "held_out"}``. Returns
    ``strict`` / ``loose`` (prompt level: every constraint followed), ``strict_fraction`` /
    ``loose_fraction`` (instruction level) and ``constraints``: per constraint its kind,
    held_out, strict, loose and the strict and loose details.
    """
    if not constraints:
        raise ValueError("score_record: no constraints to score; a record without any has none")
    results = []
    for index, constraint in enumerate(constraints):
        if "kind" not in constraint:
            raise InvalidConstraintArgs(f"constraints[{index}] has no 'kind': {constraint!r}")
        kind, args = constraint["kind"], constraint.get("args")
        strict, loose = (
            check(kind, response, args, prompt),
            check_loose(kind, response, args, prompt),
        )
        results.append(
            {
                "kind": kind,
                "held_out": bool(constraint.get("held_out", False)),
                "strict": strict.passed,
                "loose": loose.passed,
                "strict_details": strict.details,
                "loose_details": loose.details,
            }
        )
    return {
        "strict": all(item["strict"] for item in results),
        "loose": all(item["loose"] for item in results),
        "strict_fraction": sum(item["strict"] for item in results) / len(results),
        "loose_fraction": sum(item["loose"] for item in results) / len(results),
        "constraints": results,
    }
