"""Verifiable instruction-following constraints: the phrasing side of IFEval's kinds.

Zhou et al. 2023 (IFEval, arXiv:2311.07911) define 25 constraint kinds whose compliance a
program can check; Tülu 3 (Lambert et al. 2024, RLVR) appends them to ordinary prompts to make
RL prompts with a verifiable reward. This module turns a kind into the sentence a user would
write and the arguments its checker reads. Names and argument keys follow IFEval's
``instruction_id_list`` / ``kwargs`` (the contract with ``train.rewards.ifeval``, which checks
them), so IFEval's own prompt file scores with the same checker.

- ``phrase(kind, rng, instruction)``: one of 2-4 templates per kind (IFEval's descriptions,
  reworded) with arguments drawn from ``rng``; ``(sentence, args)``.
- ``CONFLICTS``: kinds that must not share a record. IFEval's table
  (``instructions_registry.INSTRUCTION_CONFLICTS``), made symmetric, plus pairs whose
  checkers contradict each other here (``EXTRA_CONFLICTS``, each with its reason).
- ``choose_kinds(rng, pool, count)``: ``count`` mutually compatible kinds from ``pool``.
- ``constrain_instruction(rng, instruction, kinds, position)``: the instruction with every
  sentence attached, and each kind's arguments. ``combination:repeat_prompt`` is attached
  last (``append``) or first (``prepend``), so the request it asks to repeat is the rest of
  the text, other constraints included, exactly as its ``prompt_to_repeat`` holds it.

Everything is a pure function of its inputs and the generator's state: the same seed gives
the same sentences and arguments on any machine (``random.Random`` is specified bit for bit).
Arguments are drawn so that combinations stay satisfiable: keywords come from the
instruction's own words or ``KEYWORD_VOCABULARY``, forbidden words from a disjoint filler
vocabulary minus the instruction's words; a "less than" bound leaves room for the structure
other kinds ask for (at least 50 words, 6 sentences, 8 capitalised words).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, Literal

import stopwordsiso

KINDS = (
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "startend:quotation",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
)
REPEAT_PROMPT = "combination:repeat_prompt"
Position = Literal["append", "prepend"]

# IFEval's two comparison relations.
RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")
SECTION_SPLITTERS = ("Section", "SECTION")
# No commas, so that punctuation:no_comma can share a record with them.
END_PHRASES = (
    "Is there anything else I can help with?",
    "Any other questions?",
    "Let me know if you have additional questions.",
    "Hope this helps!",
    "That is all for now.",
)
# ISO 639-1 codes py3langid identifies, with the name the sentence uses. English is left out:
# asked of an English corpus it constrains nothing.
RESPONSE_LANGUAGES = {
    "ar": "Arabic",
    "de": "German",
    "el": "Greek",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "hi": "Hindi",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
# Topic words for keywords when the instruction has too few of its own.
KEYWORD_VOCABULARY = tuple(
    (
        "balance bridge community curiosity energy evidence future garden history journey "
        "memory morning network ocean pattern planet practice question river science season "
        "signal system window"
    ).split()
)
# Filler words a reply can always do without; disjoint from every keyword source.
FORBIDDEN_VOCABULARY = tuple(
    (
        "actually amazing awesome basically clearly definitely essentially extremely honestly "
        "incredibly literally obviously really simply stuff thing totally very"
    ).split()
)
PARAGRAPH_OPENERS = tuple(
    "first however finally moreover today overall imagine meanwhile therefore next".split()
)
# letter_frequency "less than": rare letters, so a few keywords cannot break the bound.
RARE_LETTERS = "jqxz"
INSTRUCTION_WORD = re.compile(r"[A-Za-z]{5,}")

_KEYWORD, _LANGUAGE, _LENGTH = "keywords:", "language:", "length_constraints:"
_CONTENT, _FORMAT, _COMBINATION = "detectable_content:", "detectable_format:", "combination:"
_STARTEND, _CASE, _PUNCTUATION = "startend:", "change_case:", "punctuation:"


def _all_but(*kept: str) -> frozenset[str]:
    return frozenset(KINDS) - set(kept)


# IFEval's INSTRUCTION_CONFLICTS, one-sided as it writes it; CONFLICTS makes it symmetric.
IFEVAL_CONFLICTS: dict[str, frozenset[str]] = {
    _LANGUAGE + "response_language": frozenset(
        {
            _FORMAT + "multiple_sections",
            _KEYWORD + "existence",
            _KEYWORD + "frequency",
            _KEYWORD + "forbidden_words",
            _STARTEND + "end_checker",
            _CASE + "english_capital",
            _CASE + "english_lowercase",
        }
    ),
    _LENGTH + "number_paragraphs": frozenset(
        {_LENGTH + "nth_paragraph_first_word", _LENGTH + "number_sentences"}
    ),
    _FORMAT + "constrained_response": frozenset(KINDS),
    _FORMAT + "multiple_sections": frozenset({_FORMAT + "number_highlighted_sections"}),
    _FORMAT + "json_format": _all_but(_KEYWORD + "forbidden_words", _KEYWORD + "existence"),
    _COMBINATION + "two_responses": _all_but(
        _KEYWORD + "forbidden_words",
        _KEYWORD + "existence",
        _LANGUAGE + "response_language",
        _FORMAT + "title",
        _PUNCTUATION + "no_comma",
    ),
    _COMBINATION + "repeat_prompt": _all_but(
        _KEYWORD + "existence", _FORMAT + "title", _PUNCTUATION + "no_comma"
    ),
    _CASE + "capital_word_frequency": frozenset(
        {_CASE + "english_lowercase", _CASE + "english_capital"}
    ),
    _CASE + "english_lowercase": frozenset({_CASE + "english_capital"}),
    _STARTEND + "quotation": frozenset({_FORMAT + "title"}),
}
# Pairs IFEval allows whose checkers contradict each other or cannot be met together.
EXTRA_CONFLICTS: dict[str, frozenset[str]] = {
    # Word, sentence and letter counts, capitals and an English first word assume English
    # (or at least Latin) script: Chinese has no spaces, no capitals and no letter "e".
    _LANGUAGE + "response_language": frozenset(
        {
            _LENGTH + "number_words",
            _LENGTH + "number_sentences",
            _LENGTH + "nth_paragraph_first_word",
            _KEYWORD + "letter_frequency",
            _CASE + "capital_word_frequency",
        }
    ),
    # The section marker is matched case-sensitively ("Section 1" is not lower case), and a
    # paragraph that opens with it cannot open with the required first word.
    _FORMAT + "multiple_sections": frozenset(
        {
            _CASE + "english_lowercase",
            _CASE + "english_capital",
            _LENGTH + "nth_paragraph_first_word",
        }
    ),
    # The title is the first paragraph's first word: <<...>> is not the required word.
    _FORMAT + "title": frozenset({_LENGTH + "nth_paragraph_first_word"}),
}


def _symmetric(*tables: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    pairs: dict[str, set[str]] = {kind: {kind} for kind in KINDS}
    for table in tables:
        for kind, others in table.items():
            for other in others:
                pairs[kind].add(other)
                pairs[other].add(kind)
    return {kind: frozenset(others) for kind, others in pairs.items()}


# Every kind conflicts with itself: a record asks for each kind at most once.
CONFLICTS = _symmetric(IFEVAL_CONFLICTS, EXTRA_CONFLICTS)


def conflict(first: str, second: str) -> bool:
    return second in CONFLICTS[first]


def compatible(kinds: Sequence[str]) -> bool:
    """No two of ``kinds`` conflict (and none repeats)."""
    return not any(
        conflict(first, second)
        for index, first in enumerate(kinds)
        for second in kinds[index + 1 :]
    )


def choose_kinds(rng: random.Random, pool: Sequence[str], count: int) -> list[str]:
    """Up to ``count`` mutually compatible kinds from ``pool``, in contract order.

    Each pick is uniform over the kinds compatible with those chosen so far, preferring kinds
    that still leave a compatible one for the picks to come (so ``constrained_response``,
    which combines with nothing, is drawn only when one kind is wanted). Fewer come back only
    when the pool has no more compatible kinds.
    """
    chosen: list[str] = []
    wanted = set(pool)
    candidates = [kind for kind in KINDS if kind in wanted]
    while len(chosen) < count:
        candidates = [kind for kind in candidates if not any(conflict(kind, c) for c in chosen)]
        if not candidates:
            break
        if len(chosen) + 1 < count:
            roomy = [
                kind
                for kind in candidates
                if any(not conflict(kind, other) for other in candidates if other != kind)
            ]
            candidates = roomy or candidates
        chosen.append(candidates[rng.randrange(len(candidates))])
    return [kind for kind in KINDS if kind in chosen]


def args_json(args: dict[str, Any]) -> str:
    """The stored form of a constraint's arguments: JSON, sorted keys."""
    return json.dumps(args, ensure_ascii=False, sort_keys=True)


# --- phrasing, one function per kind: (rng, instruction) -> (sentence, args) -----------------

Phraser = Callable[[random.Random, str], tuple[str, dict[str, Any]]]


def _template(rng: random.Random, templates: Sequence[str], **values: Any) -> str:
    return templates[rng.randrange(len(templates))].format(**values)


def _quoted(words: Iterable[str]) -> str:
    return ", ".join(f'"{word}"' for word in words)


@cache
def _english_stopwords() -> frozenset[str]:
    return frozenset(stopwordsiso.stopwords("en"))


def instruction_keywords(instruction: str) -> list[str]:
    """Content words of the instruction (five letters or more, no stop words, no filler
    words), lower-cased, in first-seen order."""
    stopwords = _english_stopwords()
    seen: dict[str, None] = {}
    for match in INSTRUCTION_WORD.finditer(instruction):
        word = match.group(0).lower()
        if word not in stopwords and word not in FORBIDDEN_VOCABULARY:
            seen.setdefault(word, None)
    return list(seen)


def _keywords(rng: random.Random, instruction: str, count: int) -> list[str]:
    # Half the time the instruction's own words (a reply on topic can use them), else topic
    # words it must work in.
    own = instruction_keywords(instruction)
    source = own if len(own) >= count and rng.random() < 0.5 else list(KEYWORD_VOCABULARY)
    return rng.sample(source, count)


def keywords_existence(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    keywords = _keywords(rng, instruction, rng.randint(1, 3))
    sentence = _template(
        rng,
        (
            "Include the keywords {words} in your response.",
            "Make sure your answer mentions {words}.",
            "Your response must contain the words {words}.",
        ),
        words=_quoted(keywords),
    )
    return sentence, {"keywords": keywords}


def keywords_frequency(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    (keyword,) = _keywords(rng, instruction, 1)
    relation = rng.choice(RELATIONS)
    # From 2: "less than 1" would forbid a word another kind may require.
    frequency = rng.randint(2, 4)
    sentence = _template(
        rng,
        (
            'In your response, the word "{word}" should appear {relation} {n} times.',
            'Use the word "{word}" {relation} {n} times in your answer.',
            'The word "{word}" must occur {relation} {n} times in your reply.',
        ),
        word=keyword,
        relation=relation,
        n=frequency,
    )
    return sentence, {"keyword": keyword, "frequency": frequency, "relation": relation}


def keywords_forbidden_words(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    present = {word.lower() for word in re.findall(r"[A-Za-z]+", instruction)}
    allowed = [word for word in FORBIDDEN_VOCABULARY if word not in present]
    forbidden = rng.sample(allowed, min(len(allowed), rng.randint(1, 3)))
    sentence = _template(
        rng,
        (
            "Do not include the keywords {words} in the response.",
            "Avoid using the words {words} anywhere in your answer.",
            "Your reply must not contain the words {words}.",
        ),
        words=_quoted(forbidden),
    )
    return sentence, {"forbidden_words": forbidden}


def keywords_letter_frequency(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    relation = rng.choice(RELATIONS)
    if relation == "less than":
        letter, frequency = rng.choice(RARE_LETTERS), rng.randint(4, 10)
    else:
        letter, frequency = chr(ord("a") + rng.randrange(26)), rng.randint(3, 12)
    sentence = _template(
        rng,
        (
            'In your response, the letter "{letter}" should appear {relation} {n} times.',
            'Use the letter "{letter}" {relation} {n} times in your answer.',
            'Make sure the letter "{letter}" appears {relation} {n} times in your reply.',
        ),
        letter=letter,
        relation=relation,
        n=frequency,
    )
    return sentence, {"letter": letter, "let_frequency": frequency, "let_relation": relation}


def language_response_language(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    code = rng.choice(sorted(RESPONSE_LANGUAGES))
    sentence = _template(
        rng,
        (
            "Your ENTIRE response should be in {name}, no other language is allowed.",
            "Respond only in {name}; do not use any other language.",
            "Write your whole answer in {name} and in no other language.",
        ),
        name=RESPONSE_LANGUAGES[code],
    )
    return sentence, {"language": code}


def length_number_sentences(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    relation = rng.choice(RELATIONS)
    count = rng.randint(6, 20) if relation == "less than" else rng.randint(2, 10)
    sentence = _template(
        rng,
        (
            "Your response should contain {relation} {n} sentences.",
            "Answer in {relation} {n} sentences.",
            "Use {relation} {n} sentences in your reply.",
        ),
        relation=relation,
        n=count,
    )
    return sentence, {"num_sentences": count, "relation": relation}


def length_number_paragraphs(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    count = rng.randint(2, 5)
    sentence = _template(
        rng,
        (
            "There should be {n} paragraphs. Paragraphs are separated with the markdown "
            "divider: ***",
            "Write exactly {n} paragraphs, separated from each other by the markdown divider ***.",
            "Your answer must have {n} paragraphs; put the markdown divider *** between them.",
        ),
        n=count,
    )
    return sentence, {"num_paragraphs": count}


def length_number_words(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    relation = rng.choice(RELATIONS)
    low = 50 if relation == "less than" else 20
    count = 10 * rng.randint(low // 10, 30)
    sentence = _template(
        rng,
        (
            "Answer with {relation} {n} words.",
            "Your response should be {relation} {n} words long.",
            "Use {relation} {n} words in your reply.",
            "Keep the answer to {relation} {n} words.",
        ),
        relation=relation,
        n=count,
    )
    return sentence, {"num_words": count, "relation": relation}


def length_nth_paragraph_first_word(
    rng: random.Random, instruction: str
) -> tuple[str, dict[str, Any]]:
    paragraphs = rng.randint(2, 5)
    nth = rng.randint(1, paragraphs)
    word = rng.choice(PARAGRAPH_OPENERS)
    sentence = _template(
        rng,
        (
            "There should be {n} paragraphs. Paragraphs and only paragraphs are separated "
            "with each other by two new lines. Paragraph {nth} must start with the word {word}.",
            "Write {n} paragraphs separated by blank lines (two new lines), and begin paragraph "
            "{nth} with the word {word}.",
            "Your answer must have exactly {n} paragraphs, separated by two new lines; the "
            "first word of paragraph {nth} must be {word}.",
        ),
        n=paragraphs,
        nth=nth,
        word=word,
    )
    return sentence, {"num_paragraphs": paragraphs, "nth_paragraph": nth, "first_word": word}


def content_number_placeholders(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    count = rng.randint(2, 4)
    sentence = _template(
        rng,
        (
            "The response must contain at least {n} placeholders represented by square "
            "brackets, such as [address].",
            "Include at least {n} placeholders in square brackets, like [name], in your answer.",
            "Leave at least {n} blanks for the reader as placeholders in square brackets, e.g. "
            "[date].",
        ),
        n=count,
    )
    return sentence, {"num_placeholders": count}


def content_postscript(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    marker = rng.choice(POSTSCRIPT_MARKERS)
    sentence = _template(
        rng,
        (
            "At the end of your response, please explicitly add a postscript (starting with "
            "{marker}).",
            "Close your reply with a postscript on its own line that begins with {marker} (for "
            "example: {marker} Thanks for reading).",
            "Add a postscript at the very end, starting with {marker} (not inside a sentence).",
        ),
        marker=marker,
    )
    return sentence, {"postscript_marker": marker}


def format_number_bullet_lists(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    count = rng.randint(2, 5)
    sentence = _template(
        rng,
        (
            "Your answer must contain exactly {n} bullet points. Use the markdown bullet "
            "points such as:\n* This is point 1.\n* This is point 2",
            "Give your answer as exactly {n} markdown bullet points (lines starting with * ).",
            "Format the reply as a markdown list of exactly {n} bullet points, each on its own "
            "line starting with * .",
        ),
        n=count,
    )
    return sentence, {"num_bullets": count}


def format_constrained_response(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    options = ", ".join(f'"{option}"' for option in CONSTRAINED_RESPONSE_OPTIONS)
    sentence = _template(
        rng,
        (
            "Answer with one of the following options: {options}",
            "Your reply must contain one of these exact phrases: {options}",
            "Respond with one of the following: {options}",
        ),
        options=f"({options})",
    )
    return sentence, {}


def format_number_highlighted_sections(
    rng: random.Random, instruction: str
) -> tuple[str, dict[str, Any]]:
    count = rng.randint(2, 4)
    sentence = _template(
        rng,
        (
            "Highlight at least {n} sections in your answer with markdown, i.e. "
            "*highlighted section*.",
            "Use markdown to highlight at least {n} parts of your reply, like *this part*.",
            "Mark at least {n} key phrases with single asterisks, such as *key phrase*.",
        ),
        n=count,
    )
    return sentence, {"num_highlights": count}


def format_multiple_sections(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    splitter = rng.choice(SECTION_SPLITTERS)
    count = rng.randint(2, 5)
    sentence = _template(
        rng,
        (
            "Your response must have {n} sections. Mark the beginning of each section with "
            "{s} X, such as:\n{s} 1\n[content of section 1]\n{s} 2\n[content of section 2]",
            "Split your answer into {n} sections, each starting with {s} X (X being its number: "
            "{s} 1, {s} 2, ...).",
            "Organise the reply in exactly {n} sections headed {s} 1, {s} 2 and so on.",
        ),
        n=count,
        s=splitter,
    )
    return sentence, {"section_spliter": splitter, "num_sections": count}


def format_json_format(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    sentence = _template(
        rng,
        (
            "Entire output should be wrapped in JSON format. You can use markdown ticks such "
            "as ```.",
            "Return your whole answer as valid JSON (markdown ``` fences are allowed).",
            "Format the entire response as a JSON object and nothing else.",
        ),
    )
    return sentence, {}


def format_title(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    sentence = _template(
        rng,
        (
            "Your answer must contain a title, wrapped in double angular brackets, such as "
            "<<poem of joy>>.",
            "Give your reply a title in double angular brackets, like <<my title>>.",
            "Include a title wrapped in << and >>, for example <<a short answer>>.",
        ),
    )
    return sentence, {}


def combination_two_responses(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    sentence = _template(
        rng,
        (
            "Give two different responses. Responses and only responses should be separated "
            "by 6 asterisk symbols: ******.",
            "Write two different answers, separated by a line of six asterisks (******) and "
            "nothing else.",
            "Provide two distinct replies; put exactly six asterisks ****** between them.",
        ),
    )
    return sentence, {}


def combination_repeat_prompt(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    """``instruction`` is the request as the user sees it without this sentence."""
    sentence = _template(
        rng,
        (
            "First repeat the request word for word without change, then give your answer (1. "
            "do not say any words or characters before repeating the request; 2. the request "
            "you need to repeat does not include this sentence)",
            "Before answering, repeat the request above exactly as written (not including this "
            "sentence), with nothing before it, then give your answer.",
            "Start your reply by copying the request word for word, leaving out this sentence "
            "and adding nothing before it; then answer.",
        ),
    )
    return sentence, {"prompt_to_repeat": instruction}


def startend_end_checker(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    phrase_ = rng.choice(END_PHRASES)
    sentence = _template(
        rng,
        (
            'Finish your response with this exact phrase "{p}". No other words should follow '
            "this phrase.",
            'End your answer with the exact words "{p}" and nothing after them.',
            'The very last words of your reply must be "{p}".',
        ),
        p=phrase_,
    )
    return sentence, {"end_phrase": phrase_}


def startend_quotation(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    sentence = _template(
        rng,
        (
            "Wrap your entire response with double quotation marks.",
            "Put your whole answer inside double quotation marks.",
            'Enclose the entire reply in double quotes ("...").',
        ),
    )
    return sentence, {}


def case_capital_word_frequency(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    relation = rng.choice(RELATIONS)
    # "I", section markers and "P.S." are capitalised words too: a less-than bound allows some.
    count = rng.randint(8, 20) if relation == "less than" else rng.randint(2, 10)
    sentence = _template(
        rng,
        (
            "In your response, words with all capital letters should appear {relation} {n} times.",
            "Use {relation} {n} words written entirely in capital letters.",
            "Your reply should have {relation} {n} words in ALL CAPS.",
        ),
        relation=relation,
        n=count,
    )
    return sentence, {"capital_frequency": count, "capital_relation": relation}


def case_english_capital(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    sentence = _template(
        rng,
        (
            "Your entire response should be in English, and in all capital letters.",
            "Write the whole answer in English using only capital letters.",
            "RESPOND IN ENGLISH, IN CAPITAL LETTERS ONLY.",
        ),
    )
    return sentence, {}


def case_english_lowercase(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    sentence = _template(
        rng,
        (
            "Your entire response should be in English, and in all lowercase letters. No "
            "capital letters are allowed.",
            "Write your whole reply in English using only lowercase letters.",
            "answer in english, in lowercase letters only, with no capitals at all.",
        ),
    )
    return sentence, {}


def punctuation_no_comma(rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    sentence = _template(
        rng,
        (
            "In your entire response, refrain from the use of any commas.",
            "Do not use any commas in your answer.",
            "Write your reply without a single comma.",
        ),
    )
    return sentence, {}


PHRASERS: dict[str, Phraser] = dict(
    zip(
        KINDS,
        (
            keywords_existence,
            keywords_frequency,
            keywords_forbidden_words,
            keywords_letter_frequency,
            language_response_language,
            length_number_sentences,
            length_number_paragraphs,
            length_number_words,
            length_nth_paragraph_first_word,
            content_number_placeholders,
            content_postscript,
            format_number_bullet_lists,
            format_constrained_response,
            format_number_highlighted_sections,
            format_multiple_sections,
            format_json_format,
            format_title,
            combination_two_responses,
            combination_repeat_prompt,
            startend_end_checker,
            startend_quotation,
            case_capital_word_frequency,
            case_english_capital,
            case_english_lowercase,
            punctuation_no_comma,
        ),
        strict=True,
    )
)


def phrase(kind: str, rng: random.Random, instruction: str) -> tuple[str, dict[str, Any]]:
    """The sentence asking for ``kind`` and its checker's arguments, drawn from ``rng``."""
    return PHRASERS[kind](rng, instruction)


def attach(instruction: str, sentences: Sequence[str], position: Position) -> str:
    """``instruction`` with the constraint sentences as a paragraph after (or before) it.

    Sentences share one line unless one of them spans lines (a format example), then each
    gets its own."""
    if not sentences:
        return instruction
    block = ("\n" if any("\n" in s for s in sentences) else " ").join(sentences)
    if position == "append":
        return f"{instruction.rstrip()}\n\n{block}"
    return f"{block}\n\n{instruction.lstrip()}"


def constrain_instruction(
    rng: random.Random, instruction: str, kinds: Sequence[str], position: Position
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The instruction with a sentence for each of ``kinds`` attached, and ``(kind, args)`` in
    the order of ``kinds``. ``kinds`` must be compatible (``choose_kinds`` gives such)."""
    if not compatible(kinds):
        raise ValueError(f"conflicting constraint kinds: {list(kinds)}")
    others = [kind for kind in kinds if kind != REPEAT_PROMPT]
    phrased = {kind: phrase(kind, rng, instruction) for kind in others}
    sentences = [phrased[kind][0] for kind in others]
    if REPEAT_PROMPT in kinds:
        # The request to repeat is everything else the user sees, so this sentence goes on
        # the outer edge: last when appended, first when prepended.
        request = attach(instruction, sentences, position).strip()
        phrased[REPEAT_PROMPT] = phrase(REPEAT_PROMPT, rng, request)
        repeat = phrased[REPEAT_PROMPT][0]
        sentences = [*sentences, repeat] if position == "append" else [repeat, *sentences]
    text = attach(instruction, sentences, position)
    return text, [(kind, phrased[kind][1]) for kind in kinds]
