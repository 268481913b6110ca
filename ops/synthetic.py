"""Deterministic synthetic instruction data for benchmarks, tests and the quickstart.

Records are assembled from hand-written English and Chinese word banks and sentence
templates (no external data), so the same seed always yields the same records, on any
machine. Dirt (duplicates, PII, refusals, mojibake, ...) is injected at the rates of a
``DirtConfig`` to give the pipeline's filters something real to catch; with
``mark_dirt=True`` every record says what it got in ``"_dirt"``, which makes the generated
corpus its own ground truth.

    from ops.synthetic import DirtConfig, write_corpus
    write_corpus("bench/alpaca.jsonl.gz", 100_000, seed=0, dirt=DirtConfig.typical())

Public API: ``DirtConfig``, ``generate_records``, ``to_format``, ``write_records``,
``write_corpus``, ``write_quality_corpus`` (good and bad records for a quality model),
``generate_qa`` (extractive QA rows) and ``generate_paragraphs`` (raw English prose).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import gzip
import io
import json
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE_MIX: Mapping[str, float] = MappingProxyType({"en": 0.7, "zh": 0.3})
FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "dolly")
FILE_TYPES = ("jsonl", "json", "csv")
# CSV columns per format; nested values (history, conversations, messages) are JSON strings.
FORMAT_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "alpaca": ("instruction", "input", "output", "system", "history"),
        "sharegpt": ("conversations",),
        "messages": ("messages",),
        "prompt_completion": ("prompt", "completion"),
        "dolly": ("instruction", "context", "response", "category"),
    }
)

# Kinds that replace a duplicate of an earlier record, the response, or decorate the text.
DUPLICATE_KINDS = ("exact_duplicate", "near_duplicate")
RESPONSE_KINDS = (
    "empty_response",
    "refusal",
    "wrong_language",
    "repetition",
    "copied_instruction",
    "too_long",
)
DECORATION_KINDS = ("pii", "html", "mojibake", "endoftext")
DIRT_KINDS = DUPLICATE_KINDS + RESPONSE_KINDS + DECORATION_KINDS
# The dirt a learned quality model should catch: records with one of these are "bad".
QUALITY_BAD_KINDS = frozenset(("empty_response", "refusal", "repetition", "copied_instruction"))

_DIRT_SEED_SALT = 0x5EED_D1A7
_RECENT_RECORDS = 4096


@dataclass(frozen=True)
class DirtConfig:
    """Per-record probabilities of each kind of dirt.

    Duplicates replace the record with a copy of an earlier one (and so inherit its dirt).
    The response kinds are mutually exclusive (their rates must sum to at most 1); the
    decoration kinds (PII, HTML, mojibake, end-of-text markers) are drawn independently.
    """

    exact_duplicate: float = 0.0
    near_duplicate: float = 0.0
    pii: float = 0.0
    empty_response: float = 0.0
    refusal: float = 0.0
    wrong_language: float = 0.0
    mojibake: float = 0.0
    html: float = 0.0
    endoftext: float = 0.0
    repetition: float = 0.0
    copied_instruction: float = 0.0
    too_long: float = 0.0
    # Adds "_dirt": [kinds...] to every record; off by default so inputs look natural.
    mark_dirt: bool = False

    def __post_init__(self) -> None:
        for kind in DIRT_KINDS:
            _check_rate(f"DirtConfig.{kind}", getattr(self, kind))
        for group in (DUPLICATE_KINDS, RESPONSE_KINDS):
            total = sum(getattr(self, kind) for kind in group)
            if total > 1.0:
                raise ValueError(
                    f"DirtConfig: the rates of {', '.join(group)} sum to {total:g}; "
                    "they are exclusive, so the sum must be at most 1"
                )

    @classmethod
    def typical(cls, *, mark_dirt: bool = False) -> DirtConfig:
        """A plausible mix for a scraped instruction corpus (about 25% of records dirty)."""
        return cls(
            exact_duplicate=0.05,
            near_duplicate=0.03,
            pii=0.04,
            empty_response=0.01,
            refusal=0.02,
            wrong_language=0.02,
            mojibake=0.02,
            html=0.02,
            endoftext=0.01,
            repetition=0.01,
            copied_instruction=0.01,
            too_long=0.005,
            mark_dirt=mark_dirt,
        )

    @classmethod
    def low_quality(cls, *, mark_dirt: bool = False) -> DirtConfig:
        """About half the records damaged the ways a quality model should learn to spot
        (``QUALITY_BAD_KINDS``)."""
        return cls(
            empty_response=0.1,
            refusal=0.15,
            repetition=0.15,
            copied_instruction=0.1,
            mark_dirt=mark_dirt,
        )

    def any_dirt(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in DIRT_KINDS)


def generate_records(
    n: int,
    *,
    seed: int,
    language_mix: Mapping[str, float] = DEFAULT_LANGUAGE_MIX,
    dirt: DirtConfig | None = None,
    system_rate: float = 0.1,
    history_rate: float = 0.05,
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` alpaca records: ``instruction``, ``input``, ``output``, and sometimes
    ``system`` (``system_rate``) and ``history`` (``history_rate``, earlier turns as
    ``[instruction, output]`` pairs).

    The clean content depends only on ``seed`` and ``language_mix``: dirt is drawn from its
    own random stream, so record ``i`` is either clean record ``i``, a damaged version of it,
    or a duplicate of an earlier record, whatever the ``dirt`` rates.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    languages, cumulative = _language_weights(language_mix)
    _check_rate("system_rate", system_rate)
    _check_rate("history_rate", history_rate)
    return _records(n, seed, languages, cumulative, dirt, system_rate, history_rate)


def to_format(record: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """Re-shape an alpaca record into ``fmt`` (one of ``FORMATS``); ``_dirt`` is kept.

    ``input`` joins the instruction as ``instruction + "\\n\\n" + input`` where a format has
    no place for it; prompt/completion has no place for ``system`` or ``history`` and drops
    them. The dolly ``category`` is guessed from the instruction's wording.
    """
    if fmt not in _FORMATTERS:
        raise ValueError(f"fmt={fmt!r} is not a known format; choose one of {', '.join(FORMATS)}")
    shaped = _FORMATTERS[fmt](record)
    if "_dirt" in record:
        shaped["_dirt"] = record["_dirt"]
    return shaped


def write_records(
    path: str | Path,
    records: Iterable[Mapping[str, Any]],
    *,
    file_type: str = "jsonl",
    columns: tuple[str, ...] | None = None,
    indent: int | None = None,
) -> int:
    """Stream ``records`` to ``path`` as JSON lines, a JSON array or CSV; returns the count.

    A path ending in ``.gz`` is gzip-compressed with a zero timestamp, so the same records
    give the same bytes. CSV columns default to the first record's keys; nested values are
    written as JSON strings and a key outside ``columns`` is an error, never silently lost.
    """
    if file_type not in _WRITERS:
        raise ValueError(
            f"file_type={file_type!r} is not supported; choose one of {', '.join(FILE_TYPES)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_text(path) as handle:
        if file_type == "csv":
            return _write_csv(handle, records, columns)
        return _WRITERS[file_type](handle, records, indent)


def write_corpus(
    path: str | Path,
    n: int,
    *,
    seed: int,
    fmt: str = "alpaca",
    file_type: str = "jsonl",
    dirt: DirtConfig | None = None,
    language_mix: Mapping[str, float] = DEFAULT_LANGUAGE_MIX,
) -> int:
    """Generate ``n`` records in ``fmt`` and stream them to ``path`` (see ``write_records``)."""
    if fmt not in _FORMATTERS:
        raise ValueError(f"fmt={fmt!r} is not a known format; choose one of {', '.join(FORMATS)}")
    records = generate_records(n, seed=seed, language_mix=language_mix, dirt=dirt)
    columns = FORMAT_COLUMNS[fmt] + (("_dirt",) if dirt is not None and dirt.mark_dirt else ())
    shaped = (to_format(record, fmt) for record in records)
    return write_records(path, shaped, file_type=file_type, columns=columns)


def write_quality_corpus(directory: str | Path, records: int, *, seed: int) -> tuple[Path, Path]:
    """Labelled records for a quality classifier: ``good.jsonl`` (clean) and ``bad.jsonl``
    (records with a kind of ``QUALITY_BAD_KINDS``), alpaca, under ``directory``; about half
    bad (``DirtConfig.low_quality``)."""
    good, bad = [], []
    for record in generate_records(records, seed=seed, dirt=DirtConfig.low_quality(mark_dirt=True)):
        kinds = set(record.pop("_dirt"))
        (bad if kinds & QUALITY_BAD_KINDS else good).append(record)
    directory = Path(directory)
    write_records(directory / "good.jsonl", good)
    write_records(directory / "bad.jsonl", bad)
    return directory / "good.jsonl", directory / "bad.jsonl"


def generate_qa(n: int, *, seed: int) -> Iterator[dict[str, Any]]:
    """Yield extractive QA rows ``{"question", "context", "answers": [text]}`` about fictional
    towns, rivers, companies and people; every answer is a span of its context."""
    rng = random.Random(seed)
    for _ in range(n):
        context_template, questions = rng.choice(_QA_FRAMES)
        slots = _qa_slots(rng)
        question, answer = rng.choice(questions)
        yield {
            "question": question.format(**slots),
            "context": context_template.format(**slots),
            "answers": [answer.format(**slots)],
        }


def generate_paragraphs(
    n: int, *, seed: int, min_chars: int = 250, max_chars: int = 600
) -> Iterator[str]:
    """Yield ``n`` paragraphs of blog-like English prose, each ``min_chars`` to
    ``max_chars`` long (sentences are never cut)."""
    if not 0 < min_chars < max_chars:
        raise ValueError(f"need 0 < min_chars < max_chars, got {min_chars}, {max_chars}")
    rng = random.Random(seed)
    for _ in range(n):
        yield _web_paragraph(_EN, rng, min_chars, max_chars)


# ---------------------------------------------------------------------------------------
# Validation


def _check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")


def _language_weights(mix: Mapping[str, float]) -> tuple[list[_Language], list[float]]:
    unknown = sorted(set(mix) - set(LANGUAGES))
    if unknown:
        raise ValueError(
            f"language_mix has unknown languages {unknown}; choose from {', '.join(LANGUAGES)}"
        )
    weights = [(code, float(weight)) for code, weight in mix.items() if weight]
    if any(weight < 0 for _, weight in weights) or not weights:
        raise ValueError(
            f"language_mix needs non-negative weights with a positive sum, got {dict(mix)}"
        )
    cumulative = _cumulative([weight for _, weight in weights])
    return [_LANGUAGE_PACKS[code] for code, _ in weights], cumulative


def _cumulative(weights: list[float]) -> list[float]:
    """Normalised running sums, for ``bisect`` on a uniform draw; the last is exactly 1."""
    total, running, sums = sum(weights), 0.0, []
    for weight in weights:
        running += weight / total
        sums.append(running)
    sums[-1] = 1.0
    return sums


# ---------------------------------------------------------------------------------------
# Banks: the shapes that hold the hand-written words (the words themselves are at the end).


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split("|") if part.strip())


@dataclass(frozen=True)
class _Topic:
    name: str
    label: str
    practitioners: str
    subjects: tuple[str, ...]
    asks: tuple[str, ...]
    contexts: tuple[str, ...]
    actions: tuple[str, ...]
    benefits: tuple[str, ...]
    mistakes: tuple[str, ...]
    tools: tuple[str, ...]
    facts: tuple[str, ...]


def _topic(name: str, *, label: str, practitioners: str, **banks: str) -> _Topic:
    return _Topic(name, label, practitioners, **{key: _split(text) for key, text in banks.items()})


_LANGUAGE_SCALARS = frozenset(
    ("code", "joiner", "stop", "email_layout", "story_theme", "story_first", "story_cast")
)


class _Language:
    """One language's banks as attributes; ``|``-separated strings become tuples."""

    code: str
    joiner: str
    stop: str

    def __init__(self, **banks: Any) -> None:
        for key, value in banks.items():
            keep = key in _LANGUAGE_SCALARS
            setattr(self, key, value if keep or not isinstance(value, str) else _split(value))
        self.task_names = tuple(name for name, _ in banks["task_weights"])
        self.task_cumulative = _cumulative([weight for _, weight in banks["task_weights"]])
        self.programming = next(topic for topic in banks["topics"] if topic.name == "programming")
        self.pii_templates = {kind: _split(text) for kind, text in banks["pii_templates"]}


@dataclass(frozen=True)
class _Snippet:
    language: str
    fence: str
    kind: str
    names: str
    args: str
    desc: str
    code: str
    explanation: str

    def render(self, rng: random.Random) -> tuple[str, str, str]:
        """The code, the description and the name, with a random name and argument."""
        name = rng.choice(_split(self.names))
        arg = rng.choice(_split(self.args))
        code = self.code.replace("@name@", name).replace("@arg@", arg)
        return code, self.desc.replace("@name@", name).replace("@arg@", arg), name


@dataclass(frozen=True)
class _Constraint:
    """An explicit constraint in the instruction, which the response then honours."""

    text: str = ""
    bullets: int = 0
    numbered: bool = False
    sentences: int = 0
    max_units: int = 0


_NO_CONSTRAINT = _Constraint()


# ---------------------------------------------------------------------------------------
# Clean records


def _records(
    n: int,
    seed: int,
    languages: list[_Language],
    cumulative: list[float],
    dirt: DirtConfig | None,
    system_rate: float,
    history_rate: float,
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    injector = _DirtInjector(dirt, seed) if dirt is not None and dirt.any_dirt() else None
    mark = dirt is not None and dirt.mark_dirt
    single = languages[0] if len(languages) == 1 else None
    for _ in range(n):
        lang = single or languages[bisect.bisect_right(cumulative, rng.random())]
        record = _clean_record(lang, rng, system_rate, history_rate)
        kinds: tuple[str, ...] = ()
        if injector is not None:
            record, kinds = injector.inject(record, lang)
        if mark:
            record["_dirt"] = list(kinds)
        yield record


_TOPICLESS_TASKS = frozenset(("grammar", "sentiment", "email", "story"))


def _clean_record(
    lang: _Language, rng: random.Random, system_rate: float, history_rate: float
) -> dict[str, Any]:
    task = lang.task_names[bisect.bisect_right(lang.task_cumulative, rng.random())]
    topic = lang.programming if task in ("code", "explain_code") else rng.choice(lang.topics)
    instruction, input_text, output = _TASKS[task](lang, topic, rng)
    record: dict[str, Any] = {"instruction": instruction, "input": input_text, "output": output}
    if rng.random() < system_rate:
        system = rng.choice(lang.systems)
        if task in _TOPICLESS_TASKS and "{label}" in system:
            system = lang.systems[0]  # a review or an e-mail has no subject-matter expert
        record["system"] = system.format(label=topic.label)
    if rng.random() < history_rate:
        turns = [list(_explain_task(lang, topic, rng)[::2]) for _ in range(rng.randint(1, 2))]
        record["history"] = turns
        if rng.random() < 0.5:
            record["instruction"] = rng.choice(lang.follow_ups) + lang.joiner + instruction
    return record


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _units(lang: _Language, text: str) -> int:
    """Length as a reader counts it: words in English, characters in Chinese."""
    return len(text.split()) if lang.joiner else len(text)


def _pick_constraint(lang: _Language, rng: random.Random) -> _Constraint:
    if rng.random() < 0.45:
        return _NO_CONSTRAINT
    template, kind = rng.choice(lang.constraints)
    if kind == "bullets":
        count = rng.randint(3, 5)
        return _Constraint(template.format(n=lang.numerals[count]), bullets=count)
    if kind == "words":
        limit = rng.choice(lang.word_limits)
        return _Constraint(template.format(w=limit), max_units=limit)
    if kind == "numbered":
        return _Constraint(template, numbered=True)
    if kind.startswith("sentences"):
        return _Constraint(template, sentences=int(kind[-1]))
    return _Constraint(template.format(audience=rng.choice(lang.audiences)))


def _dress(lang: _Language, ask: str, constraint: _Constraint, rng: random.Random) -> str:
    """The ask plus its constraint, sometimes with a greeting or a word about the asker."""
    text = ask + lang.joiner + constraint.text if constraint.text else ask
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(lang.personas) + lang.joiner + text
    if roll < 0.22:
        return text + lang.joiner + rng.choice(lang.personas)
    if roll < 0.38:
        prefix = rng.choice(lang.prefixes)
        if lang.joiner and prefix[-1] in ",:" and not text.startswith(("I ", "I'")):
            text = text[:1].lower() + text[1:]
        return prefix + lang.joiner + text
    return text


class _Deck:
    """Deals bank items for one response, avoiding repeats so no action is given twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def deal(self, bank: tuple[str, ...]) -> str:
        item = self.rng.choice(bank)
        for _ in range(3):
            if item not in self.used:
                break
            item = self.rng.choice(bank)
        self.used.add(item)
        return item


def _action_sentence(lang: _Language, topic: _Topic, deck: _Deck, action: str) -> str:
    template = deck.rng.choice(lang.action_templates)
    benefit = deck.deal(topic.benefits)
    return _cap(template.format(a=action, b=benefit, p=topic.practitioners))


def _advice_sentence(lang: _Language, topic: _Topic, deck: _Deck) -> str:
    rng = deck.rng
    roll = rng.random()
    if roll < 0.45:
        return _action_sentence(lang, topic, deck, deck.deal(topic.actions))
    if roll < 0.65:
        template = rng.choice(lang.mistake_templates)
        return _cap(template.format(m=deck.deal(topic.mistakes), c=rng.choice(lang.consequences)))
    if roll < 0.85:
        return deck.deal(topic.facts)
    template = rng.choice(lang.tool_templates)
    return _cap(template.format(t=deck.deal(topic.tools), p=topic.practitioners))


def _opener(lang: _Language, subject: str, rng: random.Random) -> str:
    return _cap(rng.choice(lang.openers).format(s=subject, S=_cap(subject)))


def _body(
    lang: _Language, topic: _Topic, subject: str, rng: random.Random, count: int, framing: bool
) -> list[str]:
    """``count`` distinct sentences of advice; with ``framing``, maybe an opener and closer."""
    sentences: list[str] = []
    deck = _Deck(rng)
    if framing and count >= 3 and rng.random() < 0.5:
        sentences.append(_opener(lang, subject, rng))
    closer = rng.choice(lang.closers) if framing and count >= 3 and rng.random() < 0.4 else None
    goal = count - (closer is not None)
    for _ in range(goal * 4):
        if len(sentences) >= goal:
            break
        sentence = _advice_sentence(lang, topic, deck)
        if sentence not in sentences:
            sentences.append(sentence)
    if closer:
        sentences.append(closer)
    return sentences


def _point(lang: _Language, topic: _Topic, deck: _Deck) -> str:
    template = deck.rng.choice(lang.point_templates)
    # Deal only what the template uses, so unused items stay available for later points.
    slots = {}
    for key, bank in (("a", topic.actions), ("b", topic.benefits), ("m", topic.mistakes)):
        if "{" + key + "}" in template:
            slots[key] = deck.deal(bank)
    if "{t}" in template:
        slots["t"] = deck.deal(topic.tools)
    return _cap(template.format(**slots))


def _point_list(
    lang: _Language, topic: _Topic, rng: random.Random, count: int, numbered: bool
) -> str:
    points: list[str] = []
    deck = _Deck(rng)
    for _ in range(count * 4):
        if len(points) >= count:
            break
        point = _point(lang, topic, deck)
        if point not in points:
            points.append(point)
    bullet = rng.choice(("- ", "- ", "* ", "• "))
    lines = [f"{i}. {p}" if numbered else bullet + p for i, p in enumerate(points, start=1)]
    text = "\n".join(lines)
    if rng.random() < 0.6:
        text = rng.choice(lang.list_intros) + "\n" + text
    if rng.random() < 0.25:
        text += "\n\n" + rng.choice(lang.closers)
    return text


def _trim(lang: _Language, sentences: list[str], max_units: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for sentence in sentences:
        used += _units(lang, sentence)
        if kept and used >= max_units:
            break
        kept.append(sentence)
    return kept


def _paragraphs(lang: _Language, sentences: list[str], rng: random.Random) -> str:
    if len(sentences) >= 4 and rng.random() < 0.35:
        cut = rng.randint(2, len(sentences) - 1)
        return lang.joiner.join(sentences[:cut]) + "\n\n" + lang.joiner.join(sentences[cut:])
    return lang.joiner.join(sentences)


def _shaped_response(
    lang: _Language, topic: _Topic, subject: str, constraint: _Constraint, rng: random.Random
) -> str:
    if constraint.bullets:
        return _point_list(lang, topic, rng, constraint.bullets, numbered=False)
    if constraint.numbered:
        return _point_list(lang, topic, rng, rng.randint(3, 6), numbered=True)
    if constraint.sentences:
        return lang.joiner.join(_body(lang, topic, subject, rng, constraint.sentences, False))
    if not constraint.max_units and rng.random() < 0.12:
        return _point_list(lang, topic, rng, rng.randint(3, 5), numbered=rng.random() < 0.4)
    sentences = _body(lang, topic, subject, rng, rng.randint(1, 6), framing=True)
    if constraint.max_units:
        return lang.joiner.join(_trim(lang, sentences, constraint.max_units))
    return _paragraphs(lang, sentences, rng)


# ---------------------------------------------------------------------------------------
# Tasks: each returns (instruction, input, output).

_Task = tuple[str, str, str]


def _explain_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    asks = topic.asks if rng.random() < 0.7 else lang.generic_asks
    ask = rng.choice(asks).format(
        subject=subject, context=rng.choice(topic.contexts), audience=rng.choice(lang.audiences)
    )
    constraint = _pick_constraint(lang, rng)
    output = _shaped_response(lang, topic, subject, constraint, rng)
    return _dress(lang, ask, constraint, rng), "", output


def _steps_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    ask = rng.choice(lang.step_asks).format(subject=subject, context=rng.choice(topic.contexts))
    count = rng.randint(3, 6)
    if rng.random() < 0.5:
        ask += lang.joiner + rng.choice(lang.step_counts).format(n=lang.numerals[count])
    lines = []
    for number, action in enumerate(rng.sample(topic.actions, count), start=1):
        line = f"{number}. {_cap(action)}{lang.stop}"
        if rng.random() < 0.25:
            line += lang.joiner + rng.choice(lang.step_benefits).format(
                b=rng.choice(topic.benefits)
            )
        lines.append(line)
    output = "\n".join(lines)
    if rng.random() < 0.7:
        output = rng.choice(lang.step_intros) + "\n\n" + output
    if rng.random() < 0.3:
        output += "\n\n" + rng.choice(lang.closers)
    return _dress(lang, ask, _NO_CONSTRAINT, rng), "", output


def _compare_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    first, second = rng.sample(topic.subjects, 2)
    first_action, second_action = rng.sample(topic.actions, 2)
    slots = {
        "s1": first,
        "S1": _cap(first),
        "s2": second,
        "a1": first_action,
        "a2": second_action,
        "m": rng.choice(topic.mistakes),
        "audience": rng.choice(lang.audiences),
    }
    ask = rng.choice(lang.compare_asks).format(**slots)
    sentences = [rng.choice(lang.compare_openers).format(**slots)]
    sentences += [t.format(**slots) for t in rng.sample(lang.compare_middles, rng.randint(1, 2))]
    if rng.random() < 0.5:
        deck = _Deck(rng)
        deck.used.update((first_action, second_action))
        sentences.append(_advice_sentence(lang, topic, deck))
    sentences.append(rng.choice(lang.compare_closers))
    return _dress(lang, ask, _NO_CONSTRAINT, rng), "", lang.joiner.join(sentences)


def _summarize_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    first, second = rng.sample(topic.actions, 2)
    deck = _Deck(rng)
    deck.used.update((first, second))
    sentences = [
        _opener(lang, subject, rng),
        _action_sentence(lang, topic, deck, first),
        deck.deal(topic.facts),
        _action_sentence(lang, topic, deck, second),
    ]
    if rng.random() < 0.5:
        sentences.insert(3, _advice_sentence(lang, topic, deck))
    summary = rng.choice(lang.summary_templates).format(
        a1=first, a2=second, b=rng.choice(topic.benefits), p=topic.practitioners
    )
    ask = rng.choice(lang.summarize_asks).format(subject=subject)
    instruction, text = _place_input(lang, ask, lang.joiner.join(sentences), rng)
    return instruction, text, _cap(summary)


_GRAMMAR_ERRORS = {
    "the": "teh",
    "their": "there",
    "you": "u",
    "your": "you're",
    "because": "becuase",
    "which": "wich",
    "before": "befor",
    "different": "diffrent",
    "until": "untill",
    "is": "are",
    "are": "is",
    "to": "too",
    "than": "then",
    "it's": "its",
    "every": "evry",
    "usually": "usualy",
    "a": "an",
    "and": "an",
    "with": "whit",
    "always": "allways",
    "little": "litle",
}
_GRAMMAR_ASKS = (
    "Correct the grammar in the following sentence.",
    "Fix any spelling or grammar mistakes in this text.",
    "Proofread this and return the corrected version.",
    "Can you fix the errors in the text below?",
)


def _grammar_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    correct = lang.joiner.join(_body(lang, topic, "", rng, rng.randint(1, 2), framing=False))
    words = correct.split(" ")
    positions = [i for i, word in enumerate(words) if word.lower() in _GRAMMAR_ERRORS]
    for i in rng.sample(positions, min(len(positions), rng.randint(1, 3))):
        words[i] = _GRAMMAR_ERRORS[words[i].lower()]
    broken = " ".join(words)
    if broken == correct:
        broken = correct[:1].lower() + correct[1:].rstrip(".")
    output = correct if rng.random() < 0.7 else "Here is the corrected version:\n\n" + correct
    instruction, text = _place_input(lang, rng.choice(_GRAMMAR_ASKS), broken, rng)
    return instruction, text, output


def _place_input(lang: _Language, ask: str, text: str, rng: random.Random) -> tuple[str, str]:
    """(instruction, input): the text as alpaca ``input``, or inline after the ask."""
    instruction = _dress(lang, ask, _NO_CONSTRAINT, rng)
    if rng.random() < 0.7:
        return instruction + "\n\n" + text, ""
    return instruction, text


def _sentiment_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    product, span = rng.choice(lang.products), rng.choice(lang.spans)
    mood = "pos" if rng.random() < 0.5 else "neg"
    details = getattr(lang, f"{mood}_details")
    sentences = [rng.choice(getattr(lang, f"{mood}_openings")).format(x=product, w=span)]
    sentences += rng.sample(details, rng.randint(1, 2))
    if rng.random() < 0.5:
        sentences.append(rng.choice(getattr(lang, f"{mood}_closings")))
    labels = lang.positive_labels if mood == "pos" else lang.negative_labels
    ask = rng.choice(lang.sentiment_asks).format(x=product)
    instruction, review = _place_input(lang, ask, lang.joiner.join(sentences), rng)
    return instruction, review, rng.choice(labels).format(x=product)


_TITLE_SMALL_WORDS = frozenset("a an the and or of in on at to for with by from".split())


def _title_case(subject: str) -> str:
    words = subject.split()
    if words[0].lower() in ("a", "an", "the") and len(words) > 1:
        words = words[1:]
    titled = [
        word if (i and word in _TITLE_SMALL_WORDS) or not word.islower() else _cap(word)
        for i, word in enumerate(words)
    ]
    return " ".join(titled)


def _titles_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    count = rng.randint(3, 5)
    ask = rng.choice(lang.title_asks).format(subject=subject, n=lang.numerals[count])
    shown = _title_case(subject) if lang.joiner else subject
    titles = [
        template.format(S=shown, k=lang.numerals[rng.randint(3, 9)])
        for template in rng.sample(lang.title_templates, count)
    ]
    output = "\n".join(f"{i}. {title}" for i, title in enumerate(titles, start=1))
    if rng.random() < 0.5:
        output = rng.choice(lang.title_intros) + "\n\n" + output
    return _dress(lang, ask, _NO_CONSTRAINT, rng), "", output


def _email_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    purpose, subject_line, body = rng.choice(lang.email_purposes)
    slots = {"day": rng.choice(lang.days), "time": rng.choice(lang.times)}
    slots["sender"] = rng.choice(lang.senders)
    ask = rng.choice(lang.email_asks).format(
        r=rng.choice(lang.recipients), purpose=purpose.format(**slots)
    )
    if rng.random() < 0.6:
        ask += lang.joiner + rng.choice(lang.email_extras).format(**slots)
    output = lang.email_layout.format(
        subject=subject_line.format(**slots),
        greeting=rng.choice(lang.greetings).format(name=rng.choice(lang.names)),
        body=lang.joiner.join(sentence.format(**slots) for sentence in body),
        signoff=rng.choice(lang.signoffs),
        sender=slots["sender"],
    )
    return _dress(lang, ask, _NO_CONSTRAINT, rng), "", output


def _story_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    character, gender = rng.choice(lang.story_characters)
    name = rng.choice(lang.names_female if gender == "f" else lang.names_male)
    pron, poss = lang.pronouns[:2] if gender == "f" else lang.pronouns[2:]
    slots = {
        "name": name,
        "pron": pron,
        "Pron": _cap(pron),
        "poss": poss,
        "object": rng.choice(lang.story_objects),
        "place": rng.choice(lang.story_places),
        "opening": rng.choice(lang.story_openings),
    }
    slots["character"] = character.format(name=name)
    theme = lang.story_theme.format(**slots)
    sentences = [
        lang.story_first.format(**slots),
        rng.choice(lang.story_wishes).format(**slots),
        rng.choice(lang.story_middles).format(**slots),
    ]
    if rng.random() < 0.7:
        sentences.append(rng.choice(lang.story_twists).format(**slots))
    sentences.append(rng.choice(lang.story_endings).format(**slots))
    ask = rng.choice(lang.story_asks).format(theme=theme, **slots)
    if rng.random() < 0.6:
        ask += lang.joiner + lang.story_cast.format(character=slots["character"])
    return _dress(lang, ask, _NO_CONSTRAINT, rng), "", _paragraphs(lang, sentences, rng)


def _code_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    snippet = rng.choice(_SNIPPETS)
    code, desc, name = snippet.render(rng)
    slots = {"language": snippet.language, "kind": snippet.kind, "desc": desc}
    ask = rng.choice(_CODE_ASKS).format(**slots)
    if rng.random() < 0.5:
        ask += " " + rng.choice(_CODE_NAMING[snippet.kind]).format(name=name)
    if rng.random() < 0.5:
        ask += " " + rng.choice(_CODE_EXTRAS)
    output = (
        rng.choice(_CODE_INTROS).format(**slots)
        + f"\n\n```{snippet.fence}\n{code}\n```\n\n"
        + snippet.explanation
        + rng.choice(_CODE_OUTROS)
    )
    return _dress(lang, ask, _NO_CONSTRAINT, rng), "", output


def _explain_code_task(lang: _Language, topic: _Topic, rng: random.Random) -> _Task:
    snippet = rng.choice(_SNIPPETS)
    code, desc, _ = snippet.render(rng)
    ask = rng.choice(_EXPLAIN_CODE_ASKS).format(language=snippet.language, kind=snippet.kind)
    opening = rng.choice(_EXPLAIN_CODE_OPENINGS).format(kind=snippet.kind, desc=desc)
    output = f"{opening} {snippet.explanation}{rng.choice(_CODE_OUTROS)}"
    instruction = _dress(lang, ask, _NO_CONSTRAINT, rng)
    if rng.random() < 0.5:
        return f"{instruction}\n\n```{snippet.fence}\n{code}\n```", "", output
    return instruction, code, output


_TASKS = {
    "explain": _explain_task,
    "steps": _steps_task,
    "compare": _compare_task,
    "summarize": _summarize_task,
    "grammar": _grammar_task,
    "sentiment": _sentiment_task,
    "titles": _titles_task,
    "email": _email_task,
    "story": _story_task,
    "code": _code_task,
    "explain_code": _explain_code_task,
}


def _web_paragraph(lang: _Language, rng: random.Random, min_chars: int, max_chars: int) -> str:
    topic = rng.choice(lang.topics)
    subject = rng.choice(topic.subjects)
    target = rng.randint(min_chars, max_chars)
    sentences = [rng.choice(_WEB_OPENERS).format(s=subject)]
    size = len(sentences[0])
    deck = _Deck(rng)
    for _ in range(40):
        if size >= target:
            break
        sentence = _advice_sentence(lang, topic, deck)
        if sentence in sentences or size + 1 + len(sentence) > max_chars:
            continue
        sentences.append(sentence)
        size += 1 + len(sentence)
    if size < min_chars:  # rare: every candidate was too long; try again from scratch
        return _web_paragraph(lang, rng, min_chars, max_chars)
    return " ".join(sentences)


def _qa_slots(rng: random.Random) -> dict[str, str]:
    slots = {key: rng.choice(values) for key, values in _QA_SLOTS.items()}
    first_names, pronoun, possessive = rng.choice(_QA_PEOPLE)
    slots["person"] = f"{rng.choice(first_names)} {rng.choice(_QA_SURNAMES)}"
    slots["Pronoun"], slots["possessive"] = pronoun, possessive
    year = rng.randint(1850, 1960)
    slots["year"], slots["year2"] = str(year), str(year + rng.randint(8, 45))
    return slots


# ---------------------------------------------------------------------------------------
# Dirt


def _copy_record(record: Mapping[str, Any]) -> dict[str, Any]:
    copy = dict(record)
    if "history" in copy:
        copy["history"] = [list(turn) for turn in copy["history"]]
    return copy


class _DirtInjector:
    """Damages records at the configured rates, from a random stream of its own."""

    def __init__(self, dirt: DirtConfig, seed: int) -> None:
        self.rng = random.Random(seed ^ _DIRT_SEED_SALT)
        self.exact = dirt.exact_duplicate
        self.duplicates = dirt.exact_duplicate + dirt.near_duplicate
        self.response_kinds = [(k, getattr(dirt, k)) for k in RESPONSE_KINDS if getattr(dirt, k)]
        self.decorations = [(k, getattr(dirt, k)) for k in DECORATION_KINDS if getattr(dirt, k)]
        # Originals for duplicates: a bounded window, so memory stays flat for any n.
        self.recent: list[tuple[dict[str, Any], tuple[str, ...], str]] = []
        self.seen = 0

    def inject(
        self, record: dict[str, Any], lang: _Language
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        rng = self.rng
        if self.duplicates and self.recent:
            roll = rng.random()
            if roll < self.duplicates:
                original, kinds, code = rng.choice(self.recent)
                if roll < self.exact:
                    return _copy_record(original), kinds + ("exact_duplicate",)
                return _near_copy(original, code, rng), kinds + ("near_duplicate",)
        kinds = self._damage(record, lang)
        if self.duplicates:
            self._remember((_copy_record(record), kinds, lang.code))
        return record, kinds

    def _damage(self, record: dict[str, Any], lang: _Language) -> tuple[str, ...]:
        rng = self.rng
        kinds = []
        if self.response_kinds:
            roll, threshold = rng.random(), 0.0
            for kind, rate in self.response_kinds:
                threshold += rate
                if roll < threshold:
                    _RESPONSE_DAMAGE[kind](record, lang, rng)
                    kinds.append(kind)
                    break
        for kind, rate in self.decorations:
            if rng.random() < rate:
                _DECORATE[kind](record, lang, rng)
                kinds.append(kind)
        return tuple(kinds)

    def _remember(self, entry: tuple[dict[str, Any], tuple[str, ...], str]) -> None:
        if len(self.recent) < _RECENT_RECORDS:
            self.recent.append(entry)
        else:
            self.recent[self.seen % _RECENT_RECORDS] = entry
        self.seen += 1


def _near_copy(record: Mapping[str, Any], code: str, rng: random.Random) -> dict[str, Any]:
    """A copy with one small edit, in the longer of instruction and output."""
    copy = _copy_record(record)
    field = "output" if len(copy["output"]) >= len(copy["instruction"]) else "instruction"
    edit = _edit_english if code == "en" else _edit_chinese
    copy[field] = edit(copy[field], rng)
    return copy


def _edit_english(text: str, rng: random.Random) -> str:
    """A contraction, a synonym, or a changed final punctuation mark: one small local edit."""
    present = [(pattern, new) for pattern, new in _EN_EDITS if pattern.search(text)]
    if present and rng.random() < 0.85:
        pattern, new = rng.choice(present)
        return pattern.sub(new, text, count=1)
    stripped = text.rstrip()
    if stripped.endswith("."):
        return stripped[:-1] + "!"
    if stripped.endswith(("?", "!")):
        return stripped[:-1]
    return stripped + "."


def _edit_chinese(text: str, rng: random.Random) -> str:
    present = [(old, new) for old, new in _ZH_SYNONYMS if old in text]
    if present and rng.random() < 0.7:
        old, new = rng.choice(present)
        return text.replace(old, new, 1)
    stop = text.rfind("。")
    if stop >= 0:
        return text[:stop] + "！" + text[stop + 1 :]
    return text + "哦"


def _empty_response(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    record["output"] = rng.choice(("", "", "", " ", "\n", "  \n  "))


def _refusal(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    record["output"] = rng.choice(lang.refusals).format(
        v=rng.choice(lang.refusal_verbs), o=rng.choice(lang.refusal_offers)
    )


def _wrong_language(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    joiner, instructions, responses = _FOREIGN[rng.choice(tuple(_FOREIGN))]
    record["instruction"] = rng.choice(instructions)
    record["input"] = ""
    record["output"] = joiner.join(rng.sample(responses, rng.randint(2, 4)))
    record.pop("system", None)
    record.pop("history", None)


_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
_BOUNDARY = re.compile(r"[.!?。！？]\s*")


def _repetition(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    output = record["output"]
    sentences = [match.group().strip() for match in _SENTENCE.finditer(output)] or [output]
    roll = rng.random()
    if roll < 0.5:
        record["output"] = lang.joiner.join([rng.choice(sentences)] * rng.randint(8, 20))
    elif roll < 0.8:
        record["output"] = "\n\n".join([output] * rng.randint(4, 8))
    else:
        tail = " ".join(output.rstrip(".!?。").split()[-3:]) if lang.joiner else output[-6:-1]
        tail = tail or output
        record["output"] = output + lang.joiner + lang.joiner.join([tail] * rng.randint(10, 30))


def _copied_instruction(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    copy = record["instruction"]
    if record["input"] and rng.random() < 0.4:
        copy += "\n\n" + record["input"]
    record["output"] = copy


def _too_long(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    target = rng.randint(16_000, 40_000) if lang.joiner else rng.randint(8_000, 20_000)
    topic = rng.choice(lang.topics)
    parts, size = [record["output"]], len(record["output"])
    while size < target:
        sentences = _body(lang, topic, "", rng, rng.randint(4, 7), framing=False)
        parts.append(lang.joiner.join(sentences))
        size += len(parts[-1]) + 2
    record["output"] = "\n\n".join(parts)


_RESPONSE_DAMAGE = {
    "empty_response": _empty_response,
    "refusal": _refusal,
    "wrong_language": _wrong_language,
    "repetition": _repetition,
    "copied_instruction": _copied_instruction,
    "too_long": _too_long,
}


def _text_field(record: Mapping[str, Any]) -> str:
    return "output" if record["output"].strip() else "instruction"


def _pii(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    """One or two PII-bearing sentences, in the output, the instruction or the input."""
    for _ in range(1 if rng.random() < 0.8 else 2):
        kind = rng.choice(lang.pii_kinds)
        sentence = rng.choice(lang.pii_templates[kind]).format(v=_PII_VALUES[kind](lang, rng))
        roll = rng.random()
        field = "input" if roll < 0.15 else "instruction" if roll < 0.4 else _text_field(record)
        text = record[field]
        joiner = "\n\n" if field == "output" and rng.random() < 0.3 else lang.joiner
        record[field] = text + joiner + sentence if text.strip() else sentence


def _email_address(lang: _Language, rng: random.Random) -> str:
    if lang.code == "zh":
        if rng.random() < 0.3:
            return f"{rng.randint(10_000_000, 2_999_999_999)}@qq.com"
        suffix = str(rng.randint(1, 99)) if rng.random() < 0.6 else ""
        return f"{rng.choice(_ZH_PINYIN_NAMES)}{suffix}@{rng.choice(_ZH_MAIL_DOMAINS)}"
    first, last = rng.choice(_EN_FIRST_NAMES), rng.choice(_EN_LAST_NAMES)
    local = rng.choice(
        (f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}_{last}")
    )
    if rng.random() < 0.4:
        local += str(rng.randint(1, 99))
    return f"{local}@{rng.choice(_EN_MAIL_DOMAINS)}"


def _us_phone(lang: _Language, rng: random.Random) -> str:
    area, exchange, line = rng.choice(_US_AREA_CODES), rng.randint(200, 999), rng.randint(0, 9999)
    style = rng.randrange(3)
    if style == 0:
        return f"({area}) {exchange}-{line:04d}"
    if style == 1:
        return f"{area}-{exchange}-{line:04d}"
    return f"+1 {area} {exchange} {line:04d}"


def _cn_mobile(lang: _Language, rng: random.Random) -> str:
    prefix, rest = rng.choice(_CN_MOBILE_PREFIXES), rng.randint(0, 99_999_999)
    number = f"{prefix}{rest:08d}"
    style = rng.random()
    if style < 0.7:
        return number
    if style < 0.85:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    return f"+86 {number}"


def _ipv4(lang: _Language, rng: random.Random) -> str:
    if rng.random() < 0.4:
        return f"192.168.{rng.randint(0, 20)}.{rng.randint(2, 254)}"
    first = rng.choice((23, 45, 61, 81, 101, 114, 118, 172, 185, 203, 210, 220))
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _luhn_check_digit(partial: str) -> int:
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:  # these digits sit at odd positions once the check digit is added
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


def _credit_card(lang: _Language, rng: random.Random) -> str:
    prefix = rng.choice(("4", "4", "51", "52", "53", "54", "55"))
    partial = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    number = partial + str(_luhn_check_digit(partial))
    separator = rng.choice(("", " ", " ", "-"))
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def _cn_resident_id(lang: _Language, rng: random.Random) -> str:
    """An 18-digit ID with a valid GB 11643 check character."""
    body = (
        f"{rng.choice(_CN_AREA_CODES)}{rng.randint(1960, 2004)}{rng.randint(1, 12):02d}"
        f"{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    )
    checksum = sum(int(char) * weight for char, weight in zip(body, _CN_ID_WEIGHTS, strict=True))
    return body + _CN_ID_CHECK[checksum % 11]


_PII_VALUES = {
    "email": _email_address,
    "phone": _us_phone,
    "cn_mobile": _cn_mobile,
    "ipv4": _ipv4,
    "credit_card": _credit_card,
    "cn_id": _cn_resident_id,
}


def _html(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    field = _text_field(record)
    text = record[field]
    style = rng.randrange(4)
    if style == 0:
        paragraphs = text.split("\n\n")
        text = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in paragraphs)
    elif style == 1:
        text = '<div class="answer">\n' + text.replace("\n", "<br>\n") + "\n</div>"
    elif style == 2:
        first, _, rest = text.partition(lang.stop)
        link = f'<a href="https://www.example.com/articles/{rng.randint(100, 9999)}">'
        text = f"<b>{first}{lang.stop}</b>{rest} {link}Read more</a>"
    else:
        text = text.replace(" and ", " &amp; ").replace("'", "&#39;")
        text = f'<span style="font-size:14px">{text}</span>&nbsp;'
    record[field] = text


def _latin1_to_cp1252() -> dict[int, str]:
    """How the C1 range reads when the bytes are taken as cp1252 instead of latin-1."""
    table = {}
    for byte in range(0x80, 0xA0):
        with contextlib.suppress(UnicodeDecodeError):  # five bytes are undefined in cp1252
            table[byte] = bytes([byte]).decode("cp1252")
    return table


_LATIN1_TO_CP1252 = _latin1_to_cp1252()


def _mojibake(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    """UTF-8 bytes read back as cp1252 (or latin-1), from a sentence start to the end."""
    field = _text_field(record)
    text = record[field]
    if text.isascii():
        text = text.replace("'", "’").replace(" - ", " — ")
        if text.isascii():
            text = text + " " + rng.choice(_EN.mojibake_sentences)
    last_special = max(i for i, char in enumerate(text) if ord(char) > 127)
    starts = [0] + [m.end() for m in _BOUNDARY.finditer(text) if m.end() <= last_special]
    cut = rng.choice(starts)
    garbled = text[cut:].encode("utf-8").decode("latin-1")
    if rng.random() < 0.8:
        garbled = garbled.translate(_LATIN1_TO_CP1252)
    record[field] = text[:cut] + garbled


def _endoftext(record: dict[str, Any], lang: _Language, rng: random.Random) -> None:
    output = record["output"]
    token = rng.choice(_EOT_TOKENS)
    roll = rng.random()
    if roll < 0.6 or not output.strip():
        record["output"] = output + token
    elif roll < 0.8:
        record["output"] = output + token + rng.choice(_EOT_TAILS)
    else:
        middle = output.find(lang.stop, len(output) // 3)
        at = middle + 1 if middle >= 0 else len(output)
        record["output"] = output[:at] + token + output[at:]


_DECORATE = {"pii": _pii, "html": _html, "mojibake": _mojibake, "endoftext": _endoftext}


# ---------------------------------------------------------------------------------------
# Formats and writers


def _prompt(record: Mapping[str, Any]) -> str:
    extra = record.get("input", "")
    return f"{record['instruction']}\n\n{extra}" if extra else record["instruction"]


def _turn_pairs(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(user, assistant) for user, assistant in record.get("history", [])] + [
        (_prompt(record), record["output"])
    ]


def _to_alpaca(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in _copy_record(record).items() if key != "_dirt"}


def _to_sharegpt(record: Mapping[str, Any]) -> dict[str, Any]:
    turns = [{"from": "system", "value": record["system"]}] if record.get("system") else []
    for user, assistant in _turn_pairs(record):
        turns += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    return {"conversations": turns}


def _to_messages(record: Mapping[str, Any]) -> dict[str, Any]:
    turns = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    for user, assistant in _turn_pairs(record):
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": turns}


def _to_prompt_completion(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"prompt": _prompt(record), "completion": record["output"]}


# First matching cue wins; the cues are the wording our own instructions (and most
# human-written ones) use for each dolly category.
_DOLLY_CUES = (
    (("summar", "sum up", "main idea", "概括", "总结", "要点", "核心意思"), "summarization"),
    (
        ("sentiment", "positive or negative", "happy or unhappy", "正面还是负面", "情感", "积极"),
        "classification",
    ),
    (("story", "poem", "email", "message to", "故事", "邮件"), "creative_writing"),
    (("title", "headline", "ideas", "标题"), "brainstorming"),
    (("correct", "fix", "proofread", "extract"), "information_extraction"),
)


def _dolly_category(record: Mapping[str, Any]) -> str:
    instruction = record["instruction"].lower()
    for cues, category in _DOLLY_CUES:
        if any(cue in instruction for cue in cues):
            return category
    if record.get("input"):
        return "closed_qa"
    return "open_qa" if instruction.rstrip().endswith(("?", "？")) else "general_qa"


def _to_dolly(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "instruction": record["instruction"],
        "context": record.get("input", ""),
        "response": record["output"],
        "category": _dolly_category(record),
    }


_FORMATTERS = {
    "alpaca": _to_alpaca,
    "sharegpt": _to_sharegpt,
    "messages": _to_messages,
    "prompt_completion": _to_prompt_completion,
    "dolly": _to_dolly,
}


@contextlib.contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    if path.suffix != ".gz":
        with open(path, "w", encoding="utf-8", newline="") as handle:
            yield handle
        return
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed,
        io.TextIOWrapper(packed, encoding="utf-8", newline="") as handle,
    ):
        yield handle


def _write_jsonl(handle: TextIO, records: Iterable[Mapping[str, Any]], indent: int | None) -> int:
    count = 0
    for record in records:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_json_array(
    handle: TextIO, records: Iterable[Mapping[str, Any]], indent: int | None
) -> int:
    count = 0
    handle.write("[")
    pad = "\n" + " " * (indent or 0)
    for record in records:
        text = json.dumps(record, ensure_ascii=False, indent=indent)
        handle.write(("," if count else "") + pad + text.replace("\n", pad))
        count += 1
    handle.write("\n]\n")
    return count


def _write_csv(
    handle: TextIO, records: Iterable[Mapping[str, Any]], columns: tuple[str, ...] | None
) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    count = 0
    for record in records:
        if columns is None:
            columns = tuple(record)
        if count == 0:
            writer.writerow(columns)
        unknown = set(record) - set(columns)
        if unknown:
            raise ValueError(
                f"record {count} has keys {sorted(unknown)} outside the CSV columns {list(columns)}"
            )
        writer.writerow([_csv_cell(record.get(column, "")) for column in columns])
        count += 1
    if count == 0 and columns:
        writer.writerow(columns)
    return count


def _csv_cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_WRITERS = {"jsonl": _write_jsonl, "json": _write_json_array, "csv": _write_csv}


# ---------------------------------------------------------------------------------------
# Word banks. Hand-written for this project; nothing here is copied from any corpus.

_EN_TOPICS = (
    _topic(
        "cooking",
        label="home cooking",
        practitioners="experienced cooks",
        subjects="banana bread|vegetable stir-fry|homemade pizza dough|chicken noodle soup|"
        "a simple tomato sauce|sourdough bread|fluffy pancakes|roasted vegetables|a lentil curry|"
        "chocolate chip cookies|fried rice|a Greek salad|grilled salmon|mushroom risotto|"
        "apple pie|beef stew|guacamole|scrambled eggs|vegetable lasagna|garlic butter shrimp",
        asks="How do I make {subject} at home?|"
        "What is the easiest way to cook {subject} {context}?|Give me a simple recipe for "
        "{subject}.|Why does my {subject} never turn out the way I want?|How can I make "
        "{subject} a little healthier?|What should I serve with {subject}?|"
        "Can you explain how to prepare {subject} without special equipment?",
        contexts="on a busy weeknight|for a family of four|for a dinner party|when I only have "
        "thirty minutes|on a tight budget|for meal prep on Sunday|in a small apartment kitchen|"
        "for a picnic|as a beginner cook|with ingredients from a regular supermarket",
        actions="preheat the oven before you start mixing anything|measure the flour with a "
        "kitchen scale instead of cups|let the dough rest for at least thirty minutes|season the "
        "dish a little at a time and taste as you go|cut the vegetables into pieces of the same "
        "size|heat the pan properly before adding the oil|use ripe ingredients for a deeper "
        "flavor|keep the heat at a gentle simmer|read the whole recipe once before you begin|"
        "prepare all the ingredients before turning on the stove|add a splash of lemon juice at "
        "the end|let the meat rest for a few minutes before slicing it|toast the spices briefly "
        "to wake up their aroma|save a cup of pasta water for the sauce|store the leftovers in an "
        "airtight container",
        benefits="a more even texture|a richer flavor|a crisp golden crust|less time spent "
        "cleaning up|more consistent results|a dish that tastes good the next day too|a lighter "
        "and fluffier result|better control over the seasoning",
        mistakes="overcrowding the pan|opening the oven door too often|adding all the salt at "
        "the very beginning|using cold butter when the recipe asks for soft butter|skipping the "
        "resting time|cooking everything on the highest heat|guessing the measurements for baking",
        tools="a cast iron skillet|a digital kitchen scale|a sharp chef's knife|an instant-read "
        "thermometer|a heavy-bottomed pot|a silicone spatula|a sheet pan|a good cutting board",
        facts="Baking is closer to chemistry than everyday cooking, so small changes in the "
        "amounts matter.|Salt does more than make food salty; it also brings out sweetness and "
        "balances bitterness.|Most home ovens run a little hotter or cooler than the dial "
        "suggests.|Resting dough gives the gluten time to relax, which makes it easier to shape.|"
        "Fresh herbs are best added near the end, while dried herbs need time to release their "
        "flavor.|A squeeze of lemon can brighten a dish that tastes flat.|Browning food in a hot "
        "pan creates many of the flavors we think of as savory.|Overripe bananas are perfect for "
        "baking because they are sweeter and softer.",
    ),
    _topic(
        "programming",
        label="software development",
        practitioners="experienced developers",
        subjects="recursion|unit testing|Git branching|list comprehensions in Python|asynchronous "
        "programming|SQL joins|regular expressions|object-oriented design|REST APIs|hash tables|"
        "code reviews|Docker containers|dependency management|error handling|binary search|"
        "database indexes|type hints in Python|memory leaks|continuous integration|big O notation",
        asks="Explain {subject} {audience}.|What are the main benefits of {subject}?|When should "
        "I use {subject} in a real project?|How do I get better at {subject}?|What is a good way "
        "to learn {subject} {context}?|Can you give me a practical introduction to {subject}?|"
        "What problems does {subject} solve?",
        contexts="in my spare time|while working full time|in a small team|before a job "
        "interview|for a side project|in a legacy codebase|on a tight deadline|as a self-taught "
        "developer",
        actions="write a small test before changing the code|read the error message carefully "
        "from top to bottom|break the problem into smaller functions|use meaningful variable "
        "names|commit your work in small, focused steps|reproduce the bug before you try to fix "
        "it|check the official documentation first|profile the code before optimizing anything|"
        "keep functions short and focused on one task|add logging around the part that fails|"
        "pair with a colleague on the tricky parts|review your own diff before asking others to "
        "review it|pin the versions of your dependencies|write down the expected output before "
        "running the code",
        benefits="code that is easier to maintain|fewer bugs in production|faster feedback while "
        "you work|a clearer picture of what the program does|more confidence when you refactor|"
        "shorter code reviews|a smoother start for new teammates",
        mistakes="optimizing code before measuring it|copying code from the internet without "
        "understanding it|ignoring compiler warnings|writing one giant function that does "
        "everything|catching every exception and silently moving on|skipping tests because the "
        "change looks small|pushing directly to the main branch",
        tools="a debugger|a linter|a version control system|a good code editor|an automated test "
        "suite|a profiler|a continuous integration service|a code formatter",
        facts="Most bugs are found faster by reading the code slowly than by guessing.|A test "
        "that fails for the right reason is worth more than ten tests that always pass.|Readable "
        "code is usually easier to speed up later than clever code.|Version control lets you "
        "experiment freely because you can always go back.|Naming things well is one of the "
        "hardest and most valuable skills in programming.|Small pull requests get reviewed "
        "faster and contain fewer mistakes.|Many performance problems come from doing the same "
        "work more than once.|Documentation is most useful when it explains why the code exists, "
        "not only what it does.",
    ),
    _topic(
        "history",
        label="history",
        practitioners="historians",
        subjects="the fall of the Roman Empire|the Industrial Revolution|the Silk Road|the French "
        "Revolution|the Renaissance|the printing press|the Cold War|ancient Egypt|the Ming "
        "dynasty|the age of exploration|the invention of writing|the American civil rights "
        "movement|the Meiji Restoration|the Black Death|the Byzantine Empire|the first Olympic "
        "Games|the spread of the railway|the Hanseatic League",
        asks="Summarize the main causes of {subject}.|Why is {subject} considered a turning point "
        "in history?|What was daily life like during {subject}?|How did {subject} change the way "
        "people lived?|What are the most common myths about {subject}?|Describe the long-term "
        "effects of {subject}.|How do historians study {subject} today?|What should I read about "
        "{subject} {context}?",
        contexts="for a school presentation|for a history podcast|before a museum visit|for an "
        "essay I am writing|for a trivia night|before I travel to the region",
        actions="compare several sources before drawing a conclusion|look at the economic "
        "pressures of the period|read letters and diaries written by ordinary people|place the "
        "events on a simple timeline|ask who wrote each source and why|consider how geography "
        "shaped the events|pay attention to what the sources leave out|connect the events to "
        "what happened in neighboring regions|separate long-term causes from immediate triggers|"
        "check when each account was written",
        benefits="a clearer picture of the period|a more balanced understanding of the events|a "
        "better sense of cause and effect|an essay that is harder to argue against|a deeper "
        "appreciation of the people involved",
        mistakes="judging past events only by modern standards|relying on a single source|"
        "treating legends as established facts|assuming that change happened overnight|ignoring "
        "the lives of ordinary people|mixing up correlation and cause",
        tools="a detailed timeline|a good historical atlas|a collection of primary sources|a "
        "well-reviewed general history|a museum archive|an online library catalogue",
        facts="Historians rarely agree on a single cause for any major event.|Many changes that "
        "look sudden in textbooks took several generations to unfold.|Trade routes spread ideas, "
        "religions and diseases as well as goods.|Primary sources tell us what people believed at "
        "the time, even when they were wrong.|The history of ordinary people is often "
        "reconstructed from tax records and court documents.|New archaeological finds regularly "
        "change the story we thought we knew.|Maps from a period reveal how people saw the world, "
        "not just where things were.",
    ),
    _topic(
        "science",
        label="science",
        practitioners="scientists",
        subjects="photosynthesis|black holes|the water cycle|plate tectonics|vaccines|climate "
        "change|DNA replication|the theory of evolution|quantum entanglement|the greenhouse "
        "effect|antibiotic resistance|the periodic table|ocean currents|solar eclipses|the human "
        "immune system|renewable energy|gravity|the speed of light|volcanoes|the nitrogen cycle",
        asks="Explain {subject} {audience}.|What is {subject} and why does it matter?|How does "
        "{subject} actually work?|Give me a simple experiment that demonstrates {subject}.|What do "
        "scientists still not understand about {subject}?|Why is {subject} important for everyday "
        "life?|What is a common misconception about {subject}?|How would you teach {subject} "
        "{context}?",
        contexts="for a science fair project|for a middle school class|to a curious child|for a "
        "university exam|for a popular science blog",
        actions="start with a simple model before adding details|draw a diagram of each step|"
        "test one variable at a time|write down your prediction before the experiment|repeat the "
        "measurement several times|compare your results with a reliable source|ask what evidence "
        "would change your mind|use everyday examples to explain abstract ideas",
        benefits="a clearer mental model|results that you can trust|an explanation that sticks|a "
        "better feel for the numbers involved|more interesting questions to explore next",
        mistakes="confusing a theory with a guess|changing several variables at once|trusting a "
        "single surprising result|memorizing terms without understanding them|ignoring the units "
        "in a calculation",
        tools="a simple notebook for observations|a reliable textbook|an online simulation|a "
        "basic microscope|a spreadsheet for your measurements|a small telescope",
        facts="In science, a theory is a well-tested explanation, not a wild guess.|Good "
        "experiments change only one thing at a time.|Plants turn light, water and carbon dioxide "
        "into sugar and oxygen.|The same physical laws apply on Earth and in distant galaxies.|"
        "Most scientific progress comes from many small steps rather than sudden breakthroughs.|"
        "Measurements always come with some uncertainty, and good scientists report it.|Models "
        "are simplifications, and each one is useful for some questions and not others.",
    ),
    _topic(
        "travel",
        label="travel planning",
        practitioners="experienced travelers",
        subjects="a weekend in Lisbon|backpacking through Southeast Asia|a road trip along the "
        "coast|a first trip to Japan|traveling with young children|a budget trip to Iceland|a "
        "train journey across Europe|a hiking holiday in the Alps|visiting national parks|a city "
        "break in Rome|solo travel|a week in Mexico City|a beach holiday in Greece|traveling with "
        "a pet|a ski trip|a long-haul flight",
        asks="Help me plan {subject}.|What should I pack for {subject}?|How much should I budget "
        "for {subject}?|What are the best tips for {subject}?|What mistakes should I avoid on "
        "{subject}?|Is {subject} a good idea {context}?|Create a simple three-day itinerary for "
        "{subject}.",
        contexts="in the off season|with a limited budget|in the middle of summer|with elderly "
        "parents|for the first time|during a public holiday|on short notice",
        actions="book the first and last night of accommodation in advance|pack one outfit fewer "
        "than you think you need|download offline maps before you leave|keep digital copies of "
        "your documents|travel outside peak season when you can|learn a few polite phrases in the "
        "local language|leave some free time in the schedule|check the entry requirements a few "
        "weeks ahead|buy travel insurance as soon as you book|carry a small amount of local cash|"
        "use public transport instead of taxis when possible",
        benefits="a more relaxed trip|lower costs overall|fewer unpleasant surprises|more time to "
        "enjoy the places you visit|better conversations with local people",
        mistakes="packing a different pair of shoes for every day|planning every hour of the "
        "trip|exchanging money at the airport|forgetting to check the passport expiry date|"
        "booking the cheapest flight without looking at the arrival time|trying to see five "
        "cities in one week",
        tools="a lightweight backpack|a rail pass|a packing list app|a reusable water bottle|a "
        "universal power adapter|a good guidebook",
        facts="Flights in the middle of the week are often cheaper than weekend flights.|Many "
        "museums offer free entry on certain days of the month.|Walking tours are one of the "
        "easiest ways to get to know a new city.|Jet lag is usually easier to handle when you "
        "travel west than east.|Local markets are a great place to try regional food at a fair "
        "price.|Booking directly with a small hotel sometimes gets you a better rate.",
    ),
    _topic(
        "finance",
        label="personal finance",
        practitioners="financial planners",
        subjects="building an emergency fund|paying off credit card debt|saving for retirement|"
        "index funds|creating a monthly budget|buying a first home|compound interest|student "
        "loans|investing in bonds|improving a credit score|saving for a child's education|cutting "
        "monthly expenses|a high-yield savings account|diversification|inflation|negotiating a "
        "salary",
        asks="Explain {subject} {audience}.|What should I know about {subject}?|How does "
        "{subject} work in practice?|What are the pros and cons of {subject}?|Give me a simple "
        "plan for {subject}.|What is a realistic first step toward {subject}?|How should I think "
        "about {subject} {context}?",
        contexts="on a modest income|in my twenties|as a freelancer|with a growing family|after "
        "losing my job|close to retirement|while renting in an expensive city",
        actions="track every expense for one month|set up an automatic transfer on payday|pay "
        "off the debt with the highest interest first|keep three to six months of expenses in "
        "savings|review your subscriptions once a year|compare fees before choosing a fund|avoid "
        "checking your investments every day|write down a clear goal with a deadline|increase "
        "your savings rate whenever you get a raise|read the fine print before signing anything",
        benefits="less stress about money|more flexibility when something unexpected happens|"
        "steady progress toward your goals|lower fees over the long run|a clearer picture of "
        "where your money goes",
        mistakes="trying to time the market|carrying a balance on a high-interest card|buying "
        "things to keep up with friends|putting all your savings into a single stock|ignoring "
        "small recurring charges|borrowing money for short-term wants",
        tools="a simple spreadsheet|a budgeting app|a low-cost index fund|an automatic savings "
        "plan|a retirement calculator|a separate savings account",
        facts="Small amounts saved regularly can grow significantly thanks to compound interest.|"
        "High fees quietly eat into long-term returns.|An emergency fund keeps a surprise bill "
        "from turning into debt.|Most people underestimate how much they spend on small daily "
        "purchases.|Diversification reduces risk because different investments rarely fall at "
        "the same time.|Inflation means that money kept in cash slowly loses purchasing power.",
    ),
    _topic(
        "health",
        label="health and fitness",
        practitioners="doctors",
        subjects="getting better sleep|starting a running routine|eating more vegetables|"
        "managing stress|strength training at home|drinking enough water|reducing screen time|"
        "improving posture|a balanced breakfast|stretching after exercise|healthy snacks|walking "
        "every day|mindful breathing|recovering after a workout|cutting back on sugar|staying "
        "active while working from home",
        asks="Give me some practical tips for {subject}.|How can I get started with {subject} "
        "{context}?|What are the benefits of {subject}?|Create a simple weekly plan for "
        "{subject}.|What is the most common mistake people make with {subject}?|How long does it "
        "take to see results from {subject}?|Why is {subject} so hard to stick with?",
        contexts="with a busy schedule|as a beginner|after a long break|without a gym "
        "membership|as someone over fifty|with two small children at home|while working night "
        "shifts",
        actions="go to bed at roughly the same time every night|start with ten minutes a day and "
        "build up slowly|keep a bottle of water on your desk|plan your meals for the week on "
        "Sunday|take a short walk after lunch|warm up for a few minutes before exercising|write "
        "down how you feel each day|put your phone in another room at night|add one extra "
        "portion of vegetables to dinner|rest at least one day a week",
        benefits="more energy during the day|better sleep|a calmer mood|steady progress without "
        "injuries|habits that last longer than a few weeks",
        mistakes="doing too much in the first week|skipping the warm-up|relying only on "
        "motivation|comparing your progress with other people|ignoring pain that keeps coming "
        "back|cutting out entire food groups overnight",
        tools="a simple habit tracker|a pair of comfortable running shoes|a reusable water "
        "bottle|a yoga mat|a basic set of resistance bands|a sleep diary",
        facts="Regular sleep and wake times are one of the most effective ways to sleep better.|"
        "Short, frequent activity is better than one long workout followed by a week on the "
        "couch.|Most adults benefit from at least a little strength training each week.|Thirst "
        "is not always a reliable sign of how much water you need.|Small changes that you can "
        "keep up beat dramatic changes that last a week.|If the symptoms do not go away, it is a "
        "good idea to talk to a doctor.",
    ),
    _topic(
        "writing",
        label="writing",
        practitioners="editors",
        subjects="a cover letter|a short story|a persuasive essay|a product description|a "
        "personal blog post|a wedding speech|a thank-you note|a research abstract|a newsletter "
        "introduction|a book review|a social media post for a bakery|a professional profile|a "
        "conference talk proposal|a children's story about friendship",
        asks="Give me tips for writing {subject}.|How do I start {subject} when I have writer's "
        "block?|What makes {subject} memorable?|Help me outline {subject} {context}.|What are the "
        "most common problems in {subject}?|How long should {subject} be?",
        contexts="for a job application|for a school assignment|for my company blog|for a local "
        "newspaper|for a family event|for a writing competition",
        actions="write a messy first draft without stopping to edit|read your text out loud|cut "
        "every sentence that does not add something new|open with a concrete detail instead of "
        "a general statement|keep your reader in mind the whole time|use active verbs wherever "
        "you can|leave the draft alone for a day before revising|end with a clear call to "
        "action|replace vague words with specific ones|ask a friend to read it and tell you what "
        "they remember",
        benefits="a text that is easier to read|a stronger first impression|a clearer message|a "
        "voice that sounds like you|fewer rounds of revision",
        mistakes="trying to sound impressive instead of clear|editing every sentence while "
        "drafting|using three adjectives where one would do|burying the main point in the last "
        "paragraph|ignoring the length limit|repeating the same opening phrase",
        tools="a simple outline|a style guide|a thesaurus used with care|a timer for focused "
        "writing sessions|a notes app for collecting ideas",
        facts="Most good writing is rewriting.|Short sentences are easier to follow, but a mix of "
        "lengths keeps the rhythm interesting.|Readers remember stories and examples far better "
        "than abstract claims.|The first sentence has one job: to make the reader want to read "
        "the second.|Clear writing usually comes from clear thinking about what you want to say.",
    ),
    _topic(
        "gardening",
        label="gardening",
        practitioners="gardeners",
        subjects="growing tomatoes|a small balcony garden|composting at home|caring for "
        "houseplants|growing herbs indoors|planting spring bulbs|keeping slugs away|raised garden "
        "beds|pruning fruit trees|starting seeds indoors|watering during a heatwave|growing "
        "strawberries in pots|attracting bees to the garden|a low-maintenance lawn",
        asks="How do I get started with {subject}?|What are the best tips for {subject} "
        "{context}?|What mistakes do beginners make with {subject}?|Give me a simple plan for "
        "{subject}.|Which tools do I need for {subject}?|Is {subject} worth the effort "
        "{context}?",
        contexts="in a shady yard|in a cold climate|on a small balcony|in heavy clay soil|with "
        "very little time|in a rented flat",
        actions="water deeply but less often|check the soil with your finger before watering|"
        "add a layer of mulch around the plants|choose varieties that suit your climate|rotate "
        "crops from year to year|remove dead leaves regularly|start small and expand next "
        "season|plant in the early morning or evening|feed the soil with compost|give seedlings "
        "plenty of light",
        benefits="stronger roots|healthier plants|a bigger harvest|less time spent weeding|a "
        "garden that looks good all year",
        mistakes="overwatering|planting too close together|using pots without drainage holes|"
        "buying plants that need more sun than you have|pruning at the wrong time of year",
        tools="a sturdy trowel|a watering can with a fine rose|a compost bin|a pair of sharp "
        "pruning shears|a soil thermometer|a few good pots",
        facts="Most houseplants die from too much water rather than too little.|Healthy soil is "
        "full of life, from earthworms to fungi.|Many herbs grow better when you harvest them "
        "often.|Plants grown in pots dry out faster than plants in the ground.|Native flowers "
        "tend to attract more pollinators than exotic ones.",
    ),
    _topic(
        "career",
        label="careers and the workplace",
        practitioners="hiring managers",
        subjects="preparing for a job interview|asking for a raise|changing careers|working "
        "remotely|giving feedback to a colleague|running an effective meeting|managing a small "
        "team|networking at a conference|writing a strong resume|negotiating a job offer|dealing "
        "with burnout|learning a new skill at work|presenting to senior leaders|onboarding a new "
        "employee",
        asks="Give me advice on {subject}.|How should I approach {subject} {context}?|What are "
        "the most common mistakes in {subject}?|Create a short checklist for {subject}.|What do "
        "experts recommend for {subject}?|How can I feel more confident about {subject}?",
        contexts="after five years in the same role|at a small startup|in a large company|as a "
        "new manager|after a layoff|while working remotely|as an introvert",
        actions="prepare three concrete examples of your achievements|research the company "
        "before the conversation|write down your goals for the next year|ask for feedback "
        "regularly, not only at review time|keep a simple record of your wins|practice your "
        "answers out loud|follow up with a short thank-you message|set a clear agenda and share "
        "it in advance|block time in your calendar for focused work|ask open questions and "
        "listen to the answers",
        benefits="stronger relationships with your colleagues|a better negotiating position|less "
        "stress in the weeks before a review|meetings that end on time|a clearer path to your "
        "next role",
        mistakes="talking only about duties instead of results|accepting the first offer "
        "without discussion|waiting for your manager to notice your work|saying yes to every "
        "request|sending long emails when a short call would do|ignoring the signs of burnout",
        tools="a one-page resume|a simple project tracker|a shared meeting agenda|a professional "
        "profile online|a weekly planning routine",
        facts="Most hiring managers spend less than a minute on the first read of a resume.|"
        "Specific numbers make achievements far more convincing.|People remember how a meeting "
        "made them feel as much as what was decided.|Feedback is easier to hear when it is about "
        "behavior rather than personality.|Many good jobs are filled through personal "
        "recommendations.",
    ),
)

_ZH_TOPICS = (
    _topic(
        "cooking",
        label="家常烹饪",
        practitioners="有经验的厨师",
        subjects="红烧肉|番茄炒蛋|酸辣土豆丝|宫保鸡丁|麻婆豆腐|可乐鸡翅|蛋炒饭|手工饺子|清蒸鱼|"
        "糖醋排骨|皮蛋瘦肉粥|葱油饼|红豆汤|凉拌黄瓜|鱼香肉丝|鸡蛋灌饼|小米粥|蒜蓉西兰花",
        asks="如何在家里制作{subject}？|做{subject}有什么小窍门？|请给我一个简单的{subject}做法。|"
        "为什么我做的{subject}总是不好吃？|{context}做{subject}，需要准备哪些食材？|"
        "怎样才能让{subject}更健康一些？|新手第一次做{subject}，要注意什么？",
        contexts="工作日的晚上|周末在家|只有半小时的时候|家里来客人的时候|预算有限的时候|"
        "第一次下厨的时候",
        actions="先把所有食材准备好再开火|把蔬菜切成大小差不多的块|先把锅烧热再倒油|"
        "调味的时候少量多次，边做边尝|用小火慢慢炖|肉下锅前先用料酒腌一会儿|出锅前再撒葱花|"
        "面团揉好后盖上湿布醒二十分钟|炒青菜时保持大火快炒|最后把多余的汤汁收干",
        benefits="口感更好|味道更香|受热更均匀|颜色更好看|营养流失更少|剩菜第二天也好吃",
        mistakes="一次往锅里放太多食材|油温还没上来就下锅|一开始就放很多盐|炖的时候频繁掀锅盖|"
        "用大火煮需要慢炖的菜",
        tools="一口不粘锅|一把锋利的菜刀|一个厨房秤|一个砂锅|一个电饭煲",
        facts="炒菜时火候往往比调料更重要。|盐放得太早，蔬菜容易出水变软。|"
        "肉煮好后放一会儿再切，肉汁会更均匀。|新鲜的食材本身就有很好的味道，不需要太多调料。|"
        "醋和糖的比例决定了糖醋味道是否平衡。",
    ),
    _topic(
        "programming",
        label="软件开发",
        practitioners="有经验的程序员",
        subjects="递归|单元测试|Git分支管理|列表推导式|异步编程|数据库连接查询|正则表达式|"
        "面向对象设计|接口设计|哈希表|代码评审|容器技术|异常处理|二分查找|数据库索引|内存泄漏|"
        "持续集成",
        asks="请用通俗的语言解释一下{subject}。|{subject}有什么优点和缺点？|"
        "在实际项目中什么时候应该使用{subject}？|怎样才能更快地掌握{subject}？|"
        "{context}学习{subject}，有什么好的方法？|初学者学习{subject}最容易遇到哪些问题？",
        contexts="业余时间|工作之余|准备面试的时候|在小团队里|时间很紧的时候",
        actions="修改代码之前先写一个小测试|从头到尾仔细阅读错误信息|把大问题拆成几个小函数|"
        "给变量起一个有意义的名字|每次只提交一小部分改动|先复现问题再动手修复|遇到问题先查官方文档|"
        "优化之前先做性能分析|让每个函数只做一件事|在出错的地方加上日志",
        benefits="代码更容易维护|线上问题更少|排查问题更快|重构时更有信心|新同事更容易上手",
        mistakes="还没测量就开始优化|复制网上的代码却不理解它|忽略编译器的警告|"
        "把所有逻辑写进一个巨大的函数|捕获所有异常却不做任何处理",
        tools="调试器|代码检查工具|版本控制系统|自动化测试|性能分析工具",
        facts="很多问题仔细读代码比盲目猜测更快找到原因。|可读性好的代码以后也更容易优化。|"
        "有了版本控制，你可以放心地尝试新的写法。|小的代码改动更容易被评审，也更少出错。|"
        "好的文档不仅说明代码做了什么，还说明为什么这样做。",
    ),
    _topic(
        "history",
        label="历史",
        practitioners="历史学家",
        subjects="丝绸之路|秦始皇统一六国|唐朝的对外交流|宋朝的商业发展|郑和下西洋|工业革命|"
        "文艺复兴|造纸术的传播|明朝的海禁政策|罗马帝国的衰落|科举制度|大运河的修建|法国大革命|"
        "印刷术的发明",
        asks="请简要介绍一下{subject}。|{subject}对后世产生了哪些影响？|"
        "为什么说{subject}是历史上的一个转折点？|{subject}的主要原因是什么？|"
        "关于{subject}，有哪些常见的误解？|如果要{context}讲{subject}，应该从哪里讲起？",
        contexts="在课堂上|给孩子|在读书会上|在博物馆里|在论文里",
        actions="多看几种不同的史料再下结论|把重要事件按时间顺序排列出来|注意当时的经济和地理条件|"
        "想一想史料的作者是谁、为什么这样写|把这件事和同时期其他地区的情况做比较|"
        "区分长期原因和直接导火索",
        benefits="对那个时代有更清晰的认识|看问题更加全面|更容易理解事件之间的因果关系|"
        "写出的文章更有说服力",
        mistakes="用今天的标准简单评判古人|只依赖一种史料|把传说当成史实|以为重大变化是一夜之间发生的",
        tools="一份详细的大事年表|一本历史地图集|一套原始史料汇编|一本口碑好的通史",
        facts="历史学家很少会把一件大事归结为单一原因。|"
        "很多在课本里看起来很突然的变化，其实经历了好几代人。|贸易路线不仅运送货物，也传播思想和技术。|"
        "新的考古发现常常会改变我们原有的认识。|普通人的生活往往要从账簿、契约和诉讼记录中还原。",
    ),
    _topic(
        "science",
        label="科学",
        practitioners="科学家",
        subjects="光合作用|黑洞|水循环|板块运动|疫苗|气候变化|DNA复制|进化论|温室效应|"
        "抗生素耐药性|元素周期表|洋流|日食|人体免疫系统|可再生能源|万有引力",
        asks="请用简单的话解释{subject}。|{subject}是什么？它为什么重要？|{subject}到底是怎么回事？|"
        "能不能设计一个简单的小实验来演示{subject}？|关于{subject}，有哪些常见的误解？|"
        "{subject}和我们的日常生活有什么关系？|给{audience}讲解{subject}时，应该怎么讲？",
        contexts="准备科学课的时候|给小学生讲解的时候|准备考试的时候|写科普文章的时候",
        actions="先从最简单的模型讲起|把每一步画成示意图|一次只改变一个变量|做实验前先写下你的预测|"
        "多重复几次测量|用生活中的例子解释抽象的概念",
        benefits="理解得更透彻|结果更可靠|记得更牢|更容易讲给别人听",
        mistakes="把科学理论当成随便的猜测|一次改变好几个变量|只相信一次意外的结果|"
        "死记硬背名词却不理解含义",
        tools="一本观察笔记|一本可靠的教科书|一个在线模拟实验|一台简单的显微镜",
        facts="在科学里，理论是经过反复检验的解释，而不是随便的猜测。|"
        "植物利用光、水和二氧化碳制造糖和氧气。|好的实验一次只改变一个条件。|"
        "测量总是存在误差，认真的研究者会把误差写清楚。|大多数科学进步来自许多小步积累，而不是突然的突破。",
    ),
    _topic(
        "travel",
        label="旅行规划",
        practitioners="经常出门的旅行者",
        subjects="去云南自由行|第一次去日本旅游|带孩子出门旅行|周末去杭州|自驾游|去西藏旅行|"
        "穷游东南亚|坐火车游欧洲|一个人旅行|春节出游|去海边度假|带父母出去玩",
        asks="帮我规划一下{subject}的行程。|{subject}需要带些什么东西？|{subject}大概需要多少预算？|"
        "{subject}有哪些需要注意的地方？|{context}{subject}合适吗？|请给{subject}做一个三天的简单安排。",
        contexts="淡季的时候|预算不多的时候|夏天最热的时候|第一次出国的时候|节假日期间",
        actions="提前订好第一晚和最后一晚的住处|出发前下载离线地图|把证件拍照存一份在手机里|"
        "尽量避开旅游旺季|学几句当地的常用语|行程里留出一些空闲时间|提前查好签证和入境要求|"
        "尽量坐公共交通",
        benefits="旅途更轻松|花费更少|少遇到意外情况|有更多时间享受风景",
        mistakes="每天的行程都排得满满的|在机场兑换外币|出发前才发现护照快过期了|一周之内跑五个城市|"
        "只看价格订最便宜的航班",
        tools="一个轻便的双肩包|一个万能转换插头|一个可重复使用的水杯|一张交通卡|一本好的旅行指南",
        facts="工作日的机票往往比周末便宜。|很多博物馆每个月都有免费开放日。|"
        "跟着当地的步行导览走一圈，是了解一座城市最简单的方法。|当地的菜市场是品尝地道小吃的好地方。",
    ),
    _topic(
        "finance",
        label="个人理财",
        practitioners="理财规划师",
        subjects="存应急资金|还信用卡欠款|为退休做准备|指数基金|制定月度预算|买第一套房子|复利|"
        "定期存款|提高信用评分|给孩子存教育金|减少每月开支|分散投资|通货膨胀",
        asks="请用通俗的语言解释{subject}。|关于{subject}，新手需要知道什么？|"
        "{subject}在实际生活中是怎么运作的？|{subject}有哪些好处和风险？|"
        "请帮我制定一个关于{subject}的简单计划。|{context}，应该怎么考虑{subject}？",
        contexts="收入不高的情况下|刚参加工作的时候|作为自由职业者|家里刚添了孩子|快要退休的时候",
        actions="连续一个月记录每一笔开支|发工资当天自动转一部分钱到储蓄账户|优先还利率最高的欠款|"
        "留出三到六个月的生活费作为备用金|每年检查一次自动续费的订阅|买基金之前先比较一下费用|"
        "不要每天查看投资账户|给自己定一个有期限的明确目标",
        benefits="对钱更有安全感|遇到意外时更从容|离目标越来越近|长期下来少付很多费用",
        mistakes="试图预测市场的最高点和最低点|信用卡长期只还最低还款额|为了面子跟风消费|"
        "把所有积蓄都押在一只股票上|忽视每个月的小额扣费",
        tools="一张简单的记账表格|一个记账软件|一只低费率的指数基金|一个单独的储蓄账户",
        facts="定期存下的小钱，在复利的作用下也能变成一笔可观的数目。|"
        "看起来不高的管理费，时间长了会吃掉不少收益。|有了应急资金，突如其来的账单就不会变成债务。|"
        "很多人低估了自己在日常小额消费上的支出。",
    ),
    _topic(
        "health",
        label="健康与运动",
        practitioners="医生",
        subjects="改善睡眠|开始跑步|多吃蔬菜|缓解压力|在家做力量训练|每天喝够水|减少看手机的时间|"
        "改善坐姿|吃一顿营养均衡的早餐|运动后拉伸|每天散步|少吃糖",
        asks="关于{subject}，能给我一些实用的建议吗？|{context}，怎样才能坚持{subject}？|"
        "{subject}有哪些好处？|请帮我制定一个{subject}的一周计划。|大家在{subject}时最常犯的错误是什么？|"
        "{subject}多久才能看到效果？",
        contexts="工作特别忙的时候|刚开始的时候|很久没有运动之后|没有办健身卡的情况下|年纪大了以后",
        actions="每天尽量在同一时间睡觉和起床|从每天十分钟开始，慢慢增加|在桌上放一瓶水|"
        "周日提前计划好一周的饭菜|午饭后出去走一走|运动前先热身几分钟|晚上把手机放在另一个房间|"
        "每周至少休息一天",
        benefits="白天更有精神|睡得更好|心情更平稳|进步稳定又不容易受伤|习惯更容易坚持下去",
        mistakes="第一周就练得太猛|跳过热身直接开始|完全依靠一时的热情|总拿自己和别人比较|"
        "身体反复疼痛却不当回事",
        tools="一个简单的打卡表|一双合脚的跑鞋|一张瑜伽垫|一套弹力带",
        facts="规律的作息是改善睡眠最有效的方法之一。|短时间但经常的运动，比偶尔一次高强度锻炼更有用。|"
        "能长期坚持的小改变，比只坚持一周的大改变更有效。|如果症状一直没有好转，最好及时去医院看医生。",
    ),
    _topic(
        "writing",
        label="写作",
        practitioners="有经验的编辑",
        subjects="求职信|短篇小说|议论文|产品介绍|个人博客|婚礼致辞|感谢信|读书笔记|公众号文章|"
        "演讲稿|工作总结|旅行游记",
        asks="写{subject}有什么技巧？|{context}，{subject}应该怎么开头？|怎样才能让{subject}更吸引人？|"
        "请帮我列一个{subject}的提纲。|写{subject}时最常见的问题有哪些？",
        contexts="找工作的时候|写学校作业的时候|给公司写稿的时候|参加征文比赛的时候",
        actions="先不管好坏，把初稿一口气写完|写完以后大声读一遍|删掉没有新信息的句子|"
        "用一个具体的细节开头|始终想着你的读者是谁|放一天再回头修改|请朋友读一读，说说记住了什么",
        benefits="文章读起来更顺畅|给人留下更好的第一印象|表达更清楚|更有个人风格",
        mistakes="为了显得高深而堆砌辞藻|一边写一边反复修改|把最重要的观点藏在最后一段|忽略字数要求",
        tools="一个简单的提纲|一本写作风格手册|一个随手记录灵感的笔记软件",
        facts="好文章大多是改出来的。|读者对故事和例子的记忆，远比对抽象道理深刻。|"
        "第一句话的任务，就是让读者想读第二句。|想清楚要说什么，文章自然就写清楚了。",
    ),
    _topic(
        "gardening",
        label="园艺",
        practitioners="有经验的园丁",
        subjects="种番茄|阳台种菜|在家堆肥|养绿萝|室内种香草|种多肉植物|防治蚜虫|种草莓|"
        "给果树修剪|用种子育苗",
        asks="{subject}应该怎么开始？|{context}，{subject}有什么技巧？|新手{subject}最容易犯哪些错误？|"
        "请给我一个{subject}的简单计划。|{subject}需要准备哪些工具？",
        contexts="阳台很小的情况下|光照不足的情况下|北方的冬天|工作很忙的情况下",
        actions="浇水要浇透，但不要太频繁|浇水前先用手指摸一摸土|在植物周围铺一层覆盖物|"
        "选择适合本地气候的品种|及时清理枯叶|先从少量开始，明年再扩大|给幼苗足够的光照",
        benefits="根系更强壮|植物更健康|收成更好|少花时间除草",
        mistakes="浇水太多|种得太密|用没有排水孔的花盆|在错误的季节修剪",
        tools="一把结实的小铲子|一个细嘴喷壶|一个堆肥桶|一把锋利的修枝剪",
        facts="很多盆栽植物是被浇死的，而不是被渴死的。|健康的土壤里充满了生命，从蚯蚓到各种微生物。|"
        "很多香草越摘越旺盛。|盆栽比地栽干得快。",
    ),
    _topic(
        "career",
        label="职场发展",
        practitioners="有经验的招聘经理",
        subjects="准备面试|向老板提加薪|转行|远程办公|给同事提意见|开一个高效的会议|管理一个小团队|"
        "写一份好简历|谈工作待遇|应对职业倦怠|在工作中学习新技能|向领导汇报工作",
        asks="关于{subject}，你有什么建议？|{context}，应该怎样{subject}？|{subject}时最常见的错误有哪些？|"
        "请帮我列一个{subject}的清单。|怎样才能在{subject}时更有信心？",
        contexts="在同一个岗位干了五年之后|在创业公司|在大公司|刚当上管理者|性格比较内向的话",
        actions="准备三个能体现成绩的具体例子|事先了解一下公司的情况|写下未来一年的目标|"
        "经常主动寻求反馈|简单记录自己完成的工作|提前把议程发给大家|在日历上留出专注工作的时间|"
        "多问开放式问题，认真倾听",
        benefits="和同事的关系更好|谈判时更有底气|考核前压力更小|会议能按时结束",
        mistakes="只说职责却不讲结果|第一次报价就直接接受|等着领导自己发现你的成绩|什么请求都答应|"
        "忽视职业倦怠的信号",
        tools="一份一页纸的简历|一个简单的任务清单|一份共享的会议议程",
        facts="招聘经理第一次看简历的时间往往不到一分钟。|具体的数字能让成绩更有说服力。|"
        "针对行为的反馈，比针对个人的评价更容易被接受。|很多好工作是通过熟人推荐找到的。",
    ),
)

# Code snippets for the programming tasks. @name@ and @arg@ are replaced (not str.format:
# the code itself is full of braces).
_SNIPPETS = (
    _Snippet(
        "Python",
        "python",
        "function",
        "is_palindrome|is_mirror_word|reads_same_backwards",
        "text|word|phrase",
        "checks whether a string is a palindrome",
        'def @name@(@arg@: str) -> bool:\n    cleaned = "".join(ch.lower() for ch in @arg@ if '
        "ch.isalnum())\n    return cleaned == cleaned[::-1]",
        "It removes spaces and punctuation, lowercases the text and compares it with its reverse.",
    ),
    _Snippet(
        "Python",
        "python",
        "function",
        "count_words|word_frequencies|tally_words",
        "text|document|sentence",
        "counts how often each word appears in a text",
        "from collections import Counter\n\n\ndef @name@(@arg@: str) -> dict[str, int]:\n"
        "    return dict(Counter(@arg@.lower().split()))",
        "Counter does the counting, and lowercasing first makes capitalized and lowercase "
        "words count as the same word.",
    ),
    _Snippet(
        "Python",
        "python",
        "function",
        "mean_of|average|safe_mean",
        "values|numbers|scores",
        "computes the average of a list while skipping missing values",
        "def @name@(@arg@: list[float | None]) -> float:\n    present = [x for x in @arg@ if x "
        "is not None]\n    return sum(present) / len(present) if present else 0.0",
        "Missing values are filtered out first, and an empty list returns zero instead of "
        "raising an error.",
    ),
    _Snippet(
        "Python",
        "python",
        "function",
        "fibonacci|fib|nth_fibonacci",
        "n|count|index",
        "returns the n-th Fibonacci number",
        "def @name@(@arg@: int) -> int:\n    a, b = 0, 1\n    for _ in range(@arg@):\n"
        "        a, b = b, a + b\n    return a",
        "It uses a simple loop instead of recursion, so it stays fast even for large inputs.",
    ),
    _Snippet(
        "Python",
        "python",
        "function",
        "chunks|batched|split_into_chunks",
        "items|rows|values",
        "splits a list into chunks of a given size",
        "def @name@(@arg@: list, size: int) -> list[list]:\n    return [@arg@[i : i + size] for "
        "i in range(0, len(@arg@), size)]",
        "The slice steps through the list in jumps of the chunk size, and the last chunk may be "
        "shorter.",
    ),
    _Snippet(
        "Python",
        "python",
        "function",
        "load_config|read_settings|load_json",
        "path|filename|config_path",
        "reads a JSON file and returns its contents",
        'import json\n\n\ndef @name@(@arg@: str) -> dict:\n    with open(@arg@, encoding="utf-8") '
        "as handle:\n        return json.load(handle)",
        "The with block makes sure the file is closed again, even if parsing fails.",
    ),
    _Snippet(
        "Python",
        "python",
        "function",
        "to_fahrenheit|celsius_to_fahrenheit|convert_temperature",
        "celsius|degrees|temp_c",
        "converts a temperature from Celsius to Fahrenheit",
        "def @name@(@arg@: float) -> float:\n    return @arg@ * 9 / 5 + 32",
        "It applies the usual formula: multiply by nine fifths and add thirty-two.",
    ),
    _Snippet(
        "Python",
        "python",
        "function",
        "unique|dedupe|remove_duplicates",
        "items|names|values",
        "removes duplicates from a list while keeping the original order",
        "def @name@(@arg@: list) -> list:\n    seen = set()\n    result = []\n    for item in "
        "@arg@:\n        if item not in seen:\n            seen.add(item)\n            "
        "result.append(item)\n    return result",
        "The set remembers what has already been seen, and the list keeps the first occurrence "
        "of each item in order.",
    ),
    _Snippet(
        "JavaScript",
        "javascript",
        "function",
        "debounce|delayCall|debounced",
        "wait|delayMs|ms",
        "delays a callback until the user stops typing",
        "function @name@(fn, @arg@) {\n  let timer;\n  return (...args) => {\n    "
        "clearTimeout(timer);\n    timer = setTimeout(() => fn(...args), @arg@);\n  };\n}",
        "Every new call cancels the previous timer, so the callback only runs once the calls "
        "have stopped for the given delay.",
    ),
    _Snippet(
        "JavaScript",
        "javascript",
        "function",
        "titleCase|capitalizeWords|toTitle",
        "text|str|title",
        "capitalizes the first letter of every word",
        'function @name@(@arg@) {\n  return @arg@\n    .split(" ")\n    .map((word) => '
        'word.charAt(0).toUpperCase() + word.slice(1))\n    .join(" ");\n}',
        "It splits the string on spaces, upper-cases the first character of each word and joins "
        "the words again.",
    ),
    _Snippet(
        "JavaScript",
        "javascript",
        "function",
        "sumAll|total|sumValues",
        "numbers|values|items",
        "adds up all the numbers in an array",
        "const @name@ = (@arg@) => @arg@.reduce((sum, x) => sum + x, 0);",
        "reduce walks through the array once and carries the running total, starting from zero.",
    ),
    _Snippet(
        "SQL",
        "sql",
        "query",
        "orders|payments|sales",
        "5|10|20",
        "finds the @arg@ customers who spent the most in the @name@ table",
        "SELECT customer_id, SUM(amount) AS total_spent\nFROM @name@\nGROUP BY customer_id\n"
        "ORDER BY total_spent DESC\nLIMIT @arg@;",
        "It groups the rows by customer, adds up the amounts and keeps only the top rows.",
    ),
    _Snippet(
        "SQL",
        "sql",
        "query",
        "users|accounts|members",
        "created_at|signup_date|joined_at",
        "counts how many @name@ signed up on each day",
        "SELECT DATE(@arg@) AS day, COUNT(*) AS signups\nFROM @name@\nGROUP BY DATE(@arg@)\n"
        "ORDER BY day;",
        "DATE() drops the time part, so all sign-ups from the same day fall into one group.",
    ),
    _Snippet(
        "Bash",
        "bash",
        "command",
        ".|/var/log|~/Downloads",
        "100|50|500",
        "lists files larger than @arg@ MB in @name@, biggest last",
        "find @name@ -type f -size +@arg@M -exec ls -lh {} + | sort -k5 -h",
        "find selects the large files, ls prints their sizes in a readable form and sort orders "
        "them by size.",
    ),
)
_CODE_ASKS = (
    "Write a {language} {kind} that {desc}.",
    "Can you show me a {language} {kind} that {desc}?",
    "I need a short {language} {kind} that {desc}.",
    "Implement a {language} {kind} that {desc}.",
)
_CODE_NAMING = {
    "function": ("Call it `{name}`.", "Name the function `{name}`.", "Use `{name}` as the name."),
    "query": ("The table is called `{name}`.", "Assume the data is in a table named `{name}`."),
    "command": ("Start the search in `{name}`.", "Run it from `{name}`."),
}
_CODE_EXTRAS = (
    "Please keep it short.",
    "Add a short explanation after the code.",
    "I'm using it in a small side project.",
    "It's for a coding interview tomorrow.",
    "Make it easy to read for a beginner.",
    "No external libraries, please.",
    "I'm still learning, so keep it simple.",
)
_CODE_INTROS = (
    "Here is a simple {language} {kind} that {desc}:",
    "Sure! This {kind} {desc}:",
    "You can do it like this:",
    "Here is one way to write it:",
)
_CODE_OUTROS = (
    "",
    " You can adapt it to your own data easily.",
    " Let me know if you need a version with tests.",
    " It is short, but it handles the common cases well.",
    " Try it with a few small inputs to see how it behaves.",
    " Feel free to rename things to match your project.",
)
_EXPLAIN_CODE_OPENINGS = (
    "This {kind} {desc}.",
    "The {kind} above {desc}.",
    "In short, this {kind} {desc}.",
    "Put simply, the {kind} {desc}.",
)
_EXPLAIN_CODE_ASKS = (
    "Explain what this {language} code does.",
    "What does the following {kind} do?",
    "Can you walk me through this code?",
    "Describe the purpose of this snippet in plain English.",
    "I found this {language} {kind} in an old project. What is it for?",
    "A colleague sent me this {kind}. Could you explain it in a few sentences?",
)

# Near-duplicate edits: a synonym swap or a small filler change.
_EN_EDITS = tuple(
    (re.compile(rf"\b{re.escape(old)}\b"), new)
    for old, new in (
        ("do not", "don't"),
        ("don't", "do not"),
        ("it is", "it's"),
        ("It is", "It's"),
        ("you will", "you'll"),
        ("You will", "You'll"),
        ("I am", "I'm"),
        ("I'm", "I am"),
        ("does not", "doesn't"),
        ("is not", "isn't"),
        ("that is", "that's"),
        ("easy", "simple"),
        ("simple", "easy"),
        ("quick", "fast"),
        ("big", "large"),
        ("small", "little"),
        ("start", "begin"),
        ("often", "frequently"),
        ("usually", "generally"),
        ("good", "great"),
        ("great", "good"),
        ("important", "essential"),
        ("choose", "pick"),
        ("whole", "entire"),
        ("a lot of", "lots of"),
        ("help you", "let you"),
        ("Make sure", "Be sure"),
    )
)
_ZH_SYNONYMS = (
    ("非常", "特别"),
    ("可以", "能够"),
    ("因为", "由于"),
    ("如果", "假如"),
    ("首先", "第一步"),
    ("建议", "推荐"),
    ("简单", "容易"),
    ("很多", "许多"),
    ("最好", "最好是"),
    ("一些", "一点"),
)

# Wrong-language dirt: hand-written sentences, so language ID has something real to catch.
_FOREIGN = {
    "fr": (
        " ",
        (
            "Explique-moi comment préparer une bonne soupe à l'oignon.",
            "Quels sont les avantages de faire du vélo tous les jours ?",
            "Peux-tu me donner quelques conseils pour mieux dormir ?",
            "Écris un court paragraphe sur l'histoire de Paris.",
            "Comment puis-je économiser de l'argent chaque mois ?",
            "Résume les causes principales de la Révolution française.",
            "Quelle est la meilleure façon d'apprendre une nouvelle langue ?",
            "Donne-moi des idées pour un week-end en Bretagne.",
        ),
        (
            "C'est une excellente question, et la réponse dépend surtout de vos habitudes.",
            "Il vaut mieux commencer doucement et augmenter l'effort petit à petit.",
            "La plupart des gens constatent une différence après quelques semaines.",
            "N'oubliez pas de prendre votre temps et de noter vos progrès.",
            "Il est aussi utile de demander l'avis de personnes qui ont de l'expérience.",
            "Enfin, gardez à l'esprit que chaque situation est différente.",
            "Pour commencer, il faut préparer tous les ingrédients à l'avance.",
            "Le plus important est de rester régulier, même quand on manque de motivation.",
            "Vous pouvez aussi trouver de nombreuses ressources gratuites à la bibliothèque.",
            "Avec un peu de patience, les résultats arrivent plus vite qu'on ne le pense.",
        ),
    ),
    "de": (
        " ",
        (
            "Erkläre mir, wie man ein einfaches Brot backt.",
            "Was sind die Vorteile von regelmäßigem Sport?",
            "Kannst du mir ein paar Tipps zum Sparen geben?",
            "Schreibe einen kurzen Absatz über die Geschichte Berlins.",
            "Wie kann ich meine Zeit bei der Arbeit besser einteilen?",
            "Welche Sehenswürdigkeiten sollte man in München besuchen?",
            "Wie lerne ich am besten eine neue Programmiersprache?",
            "Fasse die wichtigsten Ursachen der Industrialisierung zusammen.",
        ),
        (
            "Das ist eine gute Frage, und die Antwort hängt vor allem von deinen Zielen ab.",
            "Am besten fängst du klein an und steigerst dich langsam.",
            "Die meisten Menschen merken schon nach wenigen Wochen einen Unterschied.",
            "Vergiss nicht, regelmäßige Pausen einzulegen.",
            "Es hilft auch, sich mit anderen auszutauschen, die mehr Erfahrung haben.",
            "Zum Schluss solltest du geduldig bleiben, denn gute Ergebnisse brauchen Zeit.",
            "Zuerst solltest du alle Zutaten bereitlegen und genau abwiegen.",
            "Wichtig ist vor allem, dass du dranbleibst, auch wenn die Motivation einmal fehlt.",
            "In der Stadtbibliothek findest du viele kostenlose Bücher zu diesem Thema.",
            "Mit etwas Übung wird das schnell zur Gewohnheit.",
        ),
    ),
    "es": (
        " ",
        (
            "Explícame cómo preparar una tortilla de patatas.",
            "¿Cuáles son los beneficios de caminar todos los días?",
            "Dame algunos consejos para ahorrar dinero cada mes.",
            "Escribe un párrafo breve sobre la historia de Madrid.",
            "¿Cómo puedo aprender a programar desde cero?",
            "¿Qué debo llevar en la maleta para un viaje a la playa?",
            "Resume las causas principales de la independencia de México.",
            "¿Cuál es la mejor manera de dormir mejor?",
        ),
        (
            "Es una muy buena pregunta, y la respuesta depende sobre todo de tus hábitos.",
            "Lo mejor es empezar poco a poco y aumentar el esfuerzo con el tiempo.",
            "La mayoría de las personas notan la diferencia después de unas semanas.",
            "No olvides tomarte tu tiempo y anotar tus avances.",
            "También es útil pedir consejo a personas con más experiencia.",
            "Por último, recuerda que cada situación es diferente.",
            "Primero, prepara todos los ingredientes antes de encender el fuego.",
            "Lo más importante es ser constante, incluso cuando falta la motivación.",
            "En la biblioteca de tu barrio puedes encontrar muchos libros gratuitos sobre el tema.",
            "Con un poco de paciencia, los resultados llegan antes de lo que piensas.",
        ),
    ),
    "ja": (
        "",
        (
            "家でおいしいカレーを作る方法を教えてください。",
            "毎日散歩をすることのメリットは何ですか？",
            "お金を上手に貯めるコツを教えてください。",
            "京都の歴史について短い文章を書いてください。",
            "プログラミングを独学で始めるにはどうすればいいですか？",
            "よく眠るためのアドバイスをください。",
            "初めての海外旅行で気をつけることは何ですか？",
            "仕事の効率を上げる方法を三つ教えてください。",
        ),
        (
            "とても良い質問ですね。答えは主に目標によって変わります。",
            "まずは無理をせず、少しずつ始めるのがおすすめです。",
            "多くの人は数週間で違いを感じるようになります。",
            "ときどき休憩を取ることも忘れないでください。",
            "経験のある人に相談してみるのも役に立ちます。",
            "最後に、焦らずに続けることが一番大切です。",
            "最初に材料をすべて準備しておくと、作業がずっと楽になります。",
            "図書館には、このテーマについての本がたくさんあります。",
            "少しずつ練習すれば、すぐに習慣になりますよ。",
            "分からないことがあれば、いつでも聞いてくださいね。",
        ),
    ),
}

_EN_FIRST_NAMES = _split(
    "john|mary|james|linda|robert|susan|michael|karen|david|lisa|daniel|emma|olivia|noah|liam|"
    "sophia|ethan|ava|lucas|mia"
)
_EN_LAST_NAMES = _split(
    "smith|johnson|lee|brown|garcia|miller|davis|wilson|taylor|clark|walker|young|hall|allen|"
    "king|wright|turner|parker"
)
_EN_MAIL_DOMAINS = _split(
    "gmail.com|outlook.com|yahoo.com|hotmail.com|icloud.com|proton.me|mail.example.com|example.org"
)
_ZH_PINYIN_NAMES = _split(
    "zhangwei|wangfang|liuyang|chenjing|lina|zhaolei|huangli|yangfan|zhoujie|wumin|xuqiang|sunli"
)
_ZH_MAIL_DOMAINS = _split("163.com|qq.com|126.com|sina.com|foxmail.com|aliyun.com")
_US_AREA_CODES = (212, 213, 312, 415, 503, 512, 617, 646, 702, 206, 303, 404)
_CN_MOBILE_PREFIXES = (
    130,
    131,
    132,
    133,
    135,
    136,
    137,
    138,
    139,
    150,
    151,
    152,
    155,
    156,
    158,
    159,
    166,
    176,
    177,
    180,
    181,
    186,
    187,
    188,
    189,
    199,
)
# Real county-level division codes, so the 18-digit IDs look like the real thing.
_CN_AREA_CODES = (
    110101,
    110105,
    310101,
    310115,
    440106,
    440305,
    330106,
    320102,
    510107,
    420106,
    610113,
    500103,
    370102,
    210102,
)
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"

_EOT_TOKENS = ("<|endoftext|>",) * 6 + ("<|im_end|>", "</s>")
_EOT_TAILS = ("\n\nHuman: thanks!", "\n\nUser: Can you say more?", "\n\n### Instruction:")

# Extractive QA frames: every answer is a span of its context.
_QA_FRAMES = (
    (
        "The {town} Public Library opened in {year} in a former {building}. It holds about "
        "{count} books and is open every day except {weekday}. The building was renovated by "
        "the architect {person}, who also designed the town's railway station.",
        (
            ("When did the {town} Public Library open?", "{year}"),
            (
                "What kind of building did the {town} Public Library move into?",
                "a former {building}",
            ),
            ("On which day is the {town} Public Library closed?", "{weekday}"),
            ("Who renovated the {town} Public Library?", "{person}"),
        ),
    ),
    (
        "Every {month}, {town} hosts a {festival} festival that attracts around {visitors} "
        "visitors. The first festival was organised in {year} by a group of local {organisers}. "
        "The highlight is a {highlight} on the final evening, which usually draws the biggest "
        "crowd.",
        (
            ("In which month is the {festival} festival held in {town}?", "{month}"),
            ("Who organised the first {festival} festival?", "a group of local {organisers}"),
            (
                "What is the highlight of the {festival} festival in {town}?",
                "a {highlight} on the final evening",
            ),
            ("How many visitors does the {town} {festival} festival attract?", "around {visitors}"),
        ),
    ),
    (
        "The {river} River is about {length} kilometres long and flows through {regions} "
        "regions before reaching the {sea}. Its largest tributary is the {tributary}. During "
        "the {century} century the river was an important route for shipping {goods}.",
        (
            ("How long is the {river} River?", "about {length} kilometres"),
            ("What is the largest tributary of the {river} River?", "the {tributary}"),
            ("What goods were shipped on the {river} River?", "{goods}"),
            ("Where does the {river} River end?", "the {sea}"),
        ),
    ),
    (
        "{company} was founded in {year} by {person} in {town}. The company started by making "
        "{product} in a small workshop and now employs about {employees} people. In {year2} it "
        "moved its headquarters to {city}.",
        (
            ("Who founded {company}?", "{person}"),
            ("What did {company} make when it started?", "{product}"),
            ("Where is the headquarters of {company} today?", "{city}"),
            ("In which year was {company} founded?", "{year}"),
        ),
    ),
    (
        "{person} was a {field} researcher born in {town} in {year}. {Pronoun} spent most of "
        "{possessive} career studying {study}, and {possessive} best-known book, {book}, was "
        "published in {year2}. Today a small museum in {town} tells the story of {possessive} "
        "work.",
        (
            ("Where was {person} born?", "{town}"),
            ("What did {person} spend most of the career studying?", "{study}"),
            ("What is the title of {person}'s best-known book?", "{book}"),
            ("When was {book} published?", "{year2}"),
        ),
    ),
)
_QA_SLOTS = {
    "town": _split(
        "Millbrook|Harwick|Eastdale|Stonebridge|Larkfield|Redcliff|Ashford Vale|"
        "Pinecrest|Cobham Bay|Westmere|Thornbury|Elmstead"
    ),
    "city": _split("Northport|Kingsmere|Brackenridge|Lowell Falls|Saltmarsh|Greyhaven"),
    "building": _split(
        "wool warehouse|railway hotel|grain store|town hall|village school|fire station"
    ),
    "count": _split("12,000|25,000|48,000|80,000|150,000"),
    "weekday": _split("Monday|Tuesday|Wednesday|Sunday"),
    "month": _split("March|May|June|August|September|October"),
    "festival": _split("kite|lantern|folk music|cheese|jazz|apple|storytelling"),
    "visitors": _split("5,000|12,000|30,000|60,000"),
    "organisers": _split("farmers|teachers|musicians|fishermen|students|shopkeepers"),
    "highlight": _split(
        "lantern parade|fireworks display|open-air concert|boat race|torchlight procession"
    ),
    "river": _split("Corran|Velling|Ostra|Harl|Dunmere|Tessel|Brenn|Lisk|Oden|Wyreth"),
    "length": _split("120|240|380|515|760"),
    "regions": _split("two|three|four|five"),
    "sea": _split("North Sea|Bay of Ardel|Grey Sea|Lake Morrow"),
    "tributary": _split("Little Ashe|Tane Brook|Selby Water|Mill Run"),
    "century": _split("17th|18th|19th"),
    "goods": _split("timber|salt|wool|grain|coal"),
    "company": _split(
        "Northwind Tools|Bright Harbor Foods|Kestrel Bicycles|Oakline Furniture|Bluestone Paper|"
        "Redfern Looms|Foxglove Press|Harbor Lane Ceramics"
    ),
    "product": _split("bicycle bells|wooden toys|canned fish|garden tools|paper lanterns"),
    "employees": _split("300|1,200|4,500|9,000"),
    "field": _split("marine biology|soil science|astronomy|linguistics|botany"),
    "study": _split(
        "tidal pools along the northern coast|the migration of songbirds|how clay "
        "soils hold water|the dialects of mountain villages|the light of variable "
        "stars"
    ),
    "book": _split(
        "The Quiet Shore|Notes on Small Things|Roots and Rain|A Map of Voices|Lights in the North"
    ),
}
_QA_PEOPLE = (
    (_split("Clara|Edith|Margaret|Helen|Agnes|Ruth"), "She", "her"),
    (_split("Arthur|Walter|Henry|George|Albert|Edwin"), "He", "his"),
)
_QA_SURNAMES = _split("Whitfield|Marsh|Okafor|Lindqvist|Pereira|Hartley|Brandt|Castell")

_WEB_OPENERS = (
    "Last spring I finally decided to look into {s}, and I learned more than I expected.",
    "If you have ever wondered about {s}, you are not alone.",
    "A reader wrote in this week with a question about {s}.",
    "Every few months someone asks me about {s}, so here is what I tell them.",
    "I used to think {s} was complicated, but it turned out to be surprisingly simple.",
)

_EN = _Language(
    code="en",
    joiner=" ",
    stop=".",
    topics=_EN_TOPICS,
    numerals=("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    word_limits=(40, 50, 60, 80, 100),
    task_weights=(
        ("explain", 0.44),
        ("steps", 0.10),
        ("compare", 0.06),
        ("summarize", 0.07),
        ("grammar", 0.04),
        ("sentiment", 0.04),
        ("titles", 0.04),
        ("email", 0.06),
        ("story", 0.05),
        ("code", 0.06),
        ("explain_code", 0.04),
    ),
    constraints=(
        ("Answer in {n} bullet points.", "bullets"),
        ("Use {n} bullet points.", "bullets"),
        ("List {n} key points.", "bullets"),
        ("Keep it under {w} words.", "words"),
        ("Please keep the answer under {w} words.", "words"),
        ("Answer in fewer than {w} words.", "words"),
        ("Answer in one sentence.", "sentences1"),
        ("Use exactly two sentences.", "sentences2"),
        ("Please reply in three sentences.", "sentences3"),
        ("Use a numbered list.", "numbered"),
        ("Present the answer as a numbered list.", "numbered"),
        ("Use simple language.", "style"),
        ("Keep the tone friendly.", "style"),
        ("Avoid technical jargon.", "style"),
        ("Be concise.", "style"),
        ("Explain it {audience}.", "style"),
    ),
    prefixes="Hi!|Hello,|Quick question:|Can you help me?|Hey,|Please help:|Good morning!",
    personas="I'm a complete beginner.|I'm a college student.|I work full time and have little "
    "free time.|I'm a retired teacher.|I'm preparing for an exam next week.|I'm new to this "
    "topic.|I'm a parent of two young kids.|My friend asked me about this and I didn't know what "
    "to say.|I'm trying to learn something new this year.|I run a small business.",
    audiences="to a complete beginner|to a ten-year-old|in plain English|to a busy "
    "professional|to a first-year student|to my grandmother|to someone with no background in "
    "the field|in simple terms|to a curious teenager|for a general audience",
    generic_asks="Tell me something interesting about {subject}.|Write a short paragraph about "
    "{subject}.|What should a beginner know about {subject}?|Share some useful advice about "
    "{subject} {context}.|Why do so many people find {subject} difficult?|What are a few "
    "common mistakes related to {subject}?|I'd like to learn more about {subject}. Where "
    "should I start?",
    step_asks="Give me a step-by-step plan for {subject}.|What steps should I follow for "
    "{subject} {context}?|Break {subject} down into simple steps for me.|Walk me through "
    "{subject} step by step.|Outline the steps involved in {subject}.",
    compare_asks="What is the difference between {s1} and {s2}?|Compare {s1} and {s2} "
    "{audience}.|Which is better for a beginner: {s1} or {s2}?|How does {s1} compare to {s2}?|"
    "Should I focus on {s1} or {s2} first?",
    action_templates="Try to {a}.|It helps to {a}.|Make sure to {a}; it gives you {b}.|For "
    "best results, {a}.|Most {p} would tell you to {a}.|A simple habit is to {a}.|You will get "
    "{b} if you {a}.|Whenever possible, {a}.|It is worth taking the time to {a}.|Don't forget "
    "to {a}.|One useful trick is to {a}, which leads to {b}.|If you {a}, you will notice {b} "
    "quite quickly.|First, {a}.|Another good idea is to {a}.|In my experience, it pays to {a}.|"
    "{a}, and you will usually end up with {b}.|Remember to {a} so that you get {b}.",
    mistake_templates="Avoid {m}, which {c}.|A common mistake is {m}; it {c}.|Many beginners "
    "end up {m}, and that {c}.|Try not to fall into the habit of {m}.|Be careful about {m}, "
    "because it {c}.|{m} is tempting, but it {c}.|One thing to watch out for is {m}.",
    consequences="often leads to disappointing results|wastes time you could spend on "
    "something else|makes the whole process harder than it needs to be|can undo a lot of your "
    "earlier work|is one of the main reasons people give up|usually causes more problems than "
    "it solves",
    tool_templates="{t} can make a big difference here.|If you have {t}, use it.|It is worth "
    "investing in {t}.|{t} is not essential, but it makes things easier.|Many {p} swear by {t}.|"
    "Having {t} at hand saves a lot of time.",
    point_templates="{a}.|{a}.|{a}.|{a} to get {b}.|Avoid {m}.|Use {t} if you have one.|{a}, "
    "which leads to {b}.|Don't skip this one: {a}.|Watch out for {m}.",
    openers="{S} is easier than it looks once you understand the basics.|When it comes to {s}, "
    "the basics matter more than clever tricks.|There are a few things worth knowing about "
    "{s}.|Good question! {S} comes up a lot.|Sure, here is a short overview of {s}.|{S} can "
    "feel overwhelming at first, but it does not have to be.|Great question. Let me break {s} "
    "down for you.|Many people are curious about {s}, and for good reason.",
    closers="With a bit of practice, it quickly becomes second nature.|Take it one step at a "
    "time and you will see progress.|I hope this helps, and good luck!|Feel free to ask if you "
    "want more detail on any of these points.|Above all, be patient with yourself.|Small "
    "improvements add up faster than you might expect.|Most importantly, enjoy the process.",
    list_intros="Here are a few points to keep in mind:|Sure! Here is a quick summary:|Here is "
    "what I would suggest:|These are the key points:|A few ideas to get you started:",
    step_intros="Here is a simple plan:|Sure! Try these steps:|You can follow these steps:|Here "
    "is one way to approach it:|Follow this order and you will be fine:",
    step_counts="Give me {n} steps.|Keep it to {n} steps.|Use exactly {n} steps.",
    step_benefits="This gives you {b}.|That way you get {b}.|It leads to {b}.",
    systems="You are a helpful assistant.|You are a friendly and knowledgeable assistant who "
    "specializes in {label}.|You are an expert in {label}. Give clear, practical answers.|Answer "
    "the user's questions accurately and concisely.|You are a patient tutor. Explain things "
    "step by step.|You are a helpful assistant. Keep your answers short and friendly.",
    follow_ups="Thanks!|That helps.|Great, one more question.|OK.|Thanks, that was useful.",
    summarize_asks="Summarize the following text in one sentence.|Give me a short summary of "
    "this paragraph.|What is the main idea of the text below?|Summarize this for a busy "
    "reader.|Can you sum up the following passage?|Summarize this paragraph about {subject} in "
    "one sentence.|Read the text below on {subject} and tell me its main point.|Here is a "
    "short note about {subject}. Can you summarize it?|I found this advice about {subject} "
    "online. What does it boil down to?",
    summary_templates="The text recommends that you {a1} and {a2}, which leads to {b}.|In "
    "short: {a1} and {a2} if you want {b}.|The main idea is that {p} {a1} and {a2} to get {b}.|"
    "The passage argues that it pays to {a1} and to {a2}.",
    compare_openers="{S1} and {s2} have a lot in common, but they are not the same thing.|Both "
    "{s1} and {s2} are worth understanding, and they suit different situations.|This is a "
    "common question, because {s1} and {s2} are often mentioned together.|The short answer is "
    "that it depends on what you want to achieve.",
    compare_middles="{S1} tends to reward people who {a1}, while {s2} is easier if you {a2}.|"
    "With {s1}, the main risk is {m}.|If your goal is to {a1}, {s1} is probably the better "
    "place to start.|{S1} usually asks for more patience, whereas {s2} gives you results a "
    "little sooner.",
    compare_closers="In the end, the right choice depends on your goals and how much time you "
    "have.|Many people try both and then settle on the one that fits their routine.|If you are "
    "unsure, start with whichever one feels more interesting to you.",
    title_asks="Suggest {n} catchy titles for a blog post about {subject}.|Give me {n} title "
    "ideas for an article about {subject}.|Come up with {n} headlines for a newsletter about "
    "{subject}.",
    title_templates="A Beginner's Guide to {S}|{k} Things Nobody Tells You About {S}|Why {S} Is "
    "Easier Than You Think|The Simple Truth About {S}|{S}: Common Mistakes and How to Avoid "
    "Them|Everything I Wish I Had Known About {S}|{S} in {k} Simple Steps|How to Get Better at "
    "{S} This Year|Stop Overthinking {S}|The Lazy Person's Approach to {S}",
    title_intros="Here are a few ideas:|Sure! Some options:|How about these?",
    sentiment_asks="Classify the sentiment of this review as positive or negative.|Is the "
    "following review positive or negative?|Determine whether the customer who wrote this "
    "review is happy or unhappy.|What is the sentiment of this product review?|Is this review "
    "of a {x} positive or negative?|Read this customer review of a {x} and label it as "
    "positive or negative.|Did the customer like the {x}? Answer positive or negative.",
    products="blender|pair of headphones|backpack|desk lamp|coffee maker|pair of running "
    "shoes|phone case|keyboard|vacuum cleaner|water bottle|rice cooker|office chair|suitcase|"
    "electric kettle",
    spans="last week|a month ago|two months ago|in the spring|for my birthday|during the "
    "holiday sale",
    pos_openings="I bought this {x} {w} and I am really happy with it.|The {x} arrived "
    "quickly and it was well packed.|I have used this {x} every day since I got it {w}.|Great "
    "value for the price.|Honestly the best {x} I have owned.|This is my second {x} from this "
    "brand.",
    pos_details="It works exactly as described.|The quality is better than I expected.|It still "
    "looks brand new.|Setup took two minutes.|My whole family loves it.|It is quiet, light and "
    "easy to clean.|Customer service answered my question within an hour.|It feels solid and "
    "well made.",
    pos_closings="I would buy it again.|Highly recommended!|Five stars from me.|No complaints "
    "at all.",
    neg_openings="I bought this {x} {w}, and honestly it was a waste of money.|The {x} stopped "
    "working after two weeks.|Very disappointed with this {x}.|I wanted to like this {x}, but "
    "it let me down.|The {x} arrived with a broken part.|I returned the {x} {w}.",
    neg_details="Customer support never replied to my emails.|It looks nothing like the photos "
    "and feels cheap.|It is loud, slow and hard to clean.|The replacement had the same "
    "problem.|The instructions were missing and the parts did not fit.|It broke the second time "
    "I used it.|It smells of plastic even after a week.",
    neg_closings="I would not recommend it.|Save your money.|I am returning it.|Two stars, and "
    "that is generous.",
    positive_labels="Positive|Positive.|The sentiment is positive.|The review is positive: the "
    "customer is happy with the {x}.",
    negative_labels="Negative|Negative.|The sentiment is negative.|The review is negative: the "
    "customer is unhappy with the {x}.",
    email_asks="Write a short email to {r} {purpose}.|Draft a polite email to {r} {purpose}.|"
    "Help me write a brief message to {r} {purpose}.|Can you write an email to {r} {purpose}?",
    recipients="my manager|a client|my landlord|my team|a professor|a new colleague|a "
    "recruiter|our neighbors",
    email_purposes=(
        (
            "asking to move our meeting to {day}",
            "Rescheduling our meeting",
            (
                "Would it be possible to move our meeting to {day}?",
                "Something came up on my side, "
                "and I want to give our discussion my full attention.",
                "Any time after {time} works well for me.",
            ),
        ),
        (
            "thanking them for their help last week",
            "Thank you",
            (
                "I just wanted to say thank you for your help last week.",
                "Your advice on the project saved me a lot of time.",
                "Please let me know if I can ever return the favor.",
            ),
        ),
        (
            "asking for an extension on the report",
            "Request for a short extension",
            (
                "I am writing to ask whether I could have a few more days to finish the report.",
                "I "
                "have collected most of the data, but I want to double-check the numbers before "
                "sending it.",
                "Would {day} be acceptable?",
            ),
        ),
        (
            "about a leaking kitchen tap",
            "Leaking kitchen tap",
            (
                "I wanted to let you know that the kitchen tap has started leaking.",
                "It drips constantly, even when it is fully closed.",
                "Could you arrange for someone to take a look this week?",
            ),
        ),
        (
            "following up after a job interview",
            "Thank you for the interview",
            (
                "Thank you for taking the time to speak with me on {day}.",
                "I enjoyed learning more about the team and the role.",
                "I am very interested in the position and look forward to hearing from you.",
            ),
        ),
        (
            "announcing that the office will be closed on {day}",
            "Office closed on {day}",
            (
                "Please note that the office will be closed on {day} for maintenance.",
                "If you need anything urgent, you can reach me by phone.",
                "Normal hours resume the following morning.",
            ),
        ),
        (
            "inviting them to a team lunch on {day}",
            "Team lunch on {day}",
            (
                "I would like to invite you to a team lunch on {day} at {time}.",
                "It is a good chance to catch up before the busy season starts.",
                "Please let me know by tomorrow if you can join.",
            ),
        ),
        (
            "asking about the status of an order",
            "Question about my order",
            (
                "I placed an order two weeks ago and have not received a shipping update yet.",
                "Could you let me know when I can expect it to arrive?",
                "Thank you in advance for your help.",
            ),
        ),
        (
            "introducing myself as the new project coordinator",
            "Hello from your new project coordinator",
            (
                "My name is {sender} and I have just joined as the new project coordinator.",
                "I will be your main contact for scheduling and updates from now on.",
                "I look forward to working with you.",
            ),
        ),
        (
            "requesting feedback on a draft proposal",
            "Feedback on the draft proposal",
            (
                "I have attached the first draft of the proposal.",
                "I would really appreciate your feedback, especially on the budget section.",
                "Could you send me your comments by {day}?",
            ),
        ),
    ),
    names="Alex|Maria|James|Priya|Daniel|Sofia|Michael|Hannah|David|Aisha|Thomas|Emma|Lucas|"
    "Grace|Omar|Chloe|Ryan|Nina|Samuel|Laura|Kevin|Rachel|Peter|Julia",
    senders="Alex|Maria|James|Priya|Daniel|Sofia|Michael|Hannah|David|Aisha|Thomas|Emma",
    greetings="Hi {name},|Dear {name},|Hello {name},",
    signoffs="Best regards,|Thanks,|Kind regards,|All the best,|Many thanks,",
    days="Monday|Tuesday|Wednesday|Thursday|Friday|next Monday|next Wednesday",
    times="10 a.m.|11:30 a.m.|noon|2 p.m.|3:30 p.m.|4 p.m.",
    email_extras="Keep it polite but brief.|Use a friendly tone.|Make it sound professional.|"
    "It should be no longer than a few sentences.|Sign it as {sender}.|My name is {sender}.",
    email_layout="Subject: {subject}\n\n{greeting}\n\n{body}\n\n{signoff}\n{sender}",
    story_asks="Write a short story about {theme}.|Tell me a short story about {theme}.|Write a "
    "very short bedtime story about {theme}.|Can you write a five-sentence story about {theme}?",
    story_characters=(
        ("a retired teacher named {name}", "f"),
        ("a shy boy called {name}", "m"),
        ("an old fisherman named {name}", "m"),
        ("a young baker named {name}", "f"),
        ("a curious girl called {name}", "f"),
        ("a tired night-shift nurse named {name}", "m"),
    ),
    names_female="Clara|Rosa|Mia|Elena|Ruth|Lily|Ada|Nora",
    names_male="Leo|Sam|Henry|Oscar|Felix|Arthur|Ben|Theo",
    pronouns=("she", "her", "he", "his"),
    story_objects="a lost umbrella|an old map|a stray cat|a letter with no name on it|a broken "
    "bicycle|a forgotten diary|a tiny wooden boat|a mysterious key|a box of old photographs|a "
    "shy puppy",
    story_places="the train station|the attic|the bakery on the corner|the village library|the "
    "park by the river|the school garden|the harbor|an empty classroom",
    story_theme="{object} found at {place}",
    story_cast="The main character should be {character}.",
    story_openings="One rainy morning|Late one evening|On the first day of spring|One quiet "
    "Sunday|Just before sunset|On a cold winter afternoon",
    story_first="{opening}, {character} found {object} at {place}.",
    story_wishes="{Pron} had always wanted a little adventure.|{Pron} had always kept to the "
    "same quiet routine.|{Pron} had always been too shy to talk to the neighbors.|{Pron} had "
    "always wondered what lay beyond the hills.|{Pron} had always loved a good mystery.",
    story_middles="At first, {pron} did not know what to do, so {pron} asked the neighbors for "
    "help.|Nobody on the street seemed to know where it had come from.|The next day, {pron} "
    "went back to {place} and waited.|{Pron} put up a small handwritten sign and hoped someone "
    "would answer.",
    story_twists="To {poss} surprise, the owner turned out to be an old friend from school.|By "
    "the end of the week, the whole street was talking about it.|A few days later, a little "
    "girl knocked on the door with a thank-you note.|Slowly, {name} realized that the small "
    "mystery had changed {poss} whole week.",
    story_endings="From that day on, {name} never walked past {place} without smiling.|It was "
    "the beginning of a friendship that would last for years.|Sometimes, {name} thought, the "
    "best adventures start with something small.|And every spring after that, {name} told the "
    "story to anyone who would listen.",
    refusals="As an AI language model, I cannot {v}.|As an AI language model, I cannot {v}. "
    "However, I can {o}.|I'm sorry, but I can't help with that.|I'm sorry, but as an AI "
    "developed to be helpful and harmless, I cannot {v}.|I apologize, but I am not able to "
    "{v}.|As an AI, I do not have personal opinions, so I cannot {v}.",
    refusal_verbs="provide personal opinions on this topic|help with that request|browse the "
    "internet or access real-time information|give advice on this matter|complete this task|"
    "share that kind of information",
    refusal_offers="suggest some general resources that might be useful|explain the general "
    "principles involved|help you think through the question yourself|point you to reliable "
    "sources of information",
    pii_kinds=("email", "phone", "ipv4", "credit_card"),
    pii_templates=(
        (
            "email",
            "You can reach me at {v} if you have questions.|Send the details to {v} and I "
            "will take a look.|My email is {v}, by the way.",
        ),
        (
            "phone",
            "Call me at {v} if anything is unclear.|My phone number is {v}.|You can text "
            "me at {v} after six.",
        ),
        (
            "ipv4",
            "The server is at {v}, so connect to it over SSH.|My router's address is {v}, "
            "in case that matters.|The logs show requests coming from {v}.",
        ),
        (
            "credit_card",
            "My card number is {v}, please keep it safe.|I paid with card {v} and "
            "the charge still shows as pending.|Here is my card: {v}, expiry 09/27.",
        ),
    ),
    mojibake_sentences="It’s worth the effort — really.|That’s the “secret”, if there is one.|"
    "Honestly, it’s easier than it sounds…|Café owners know this trick — and they’re right.",
)

_ZH = _Language(
    code="zh",
    joiner="",
    stop="。",
    topics=_ZH_TOPICS,
    numerals=("零", "一", "两", "三", "四", "五", "六", "七", "八", "九"),
    word_limits=(60, 80, 100, 150),
    task_weights=(
        ("explain", 0.52),
        ("steps", 0.12),
        ("compare", 0.07),
        ("summarize", 0.08),
        ("sentiment", 0.04),
        ("titles", 0.05),
        ("email", 0.07),
        ("story", 0.05),
    ),
    constraints=(
        ("请分{n}点回答。", "bullets"),
        ("请用{n}点概括。", "bullets"),
        ("字数控制在{w}字以内。", "words"),
        ("回答不要超过{w}个字。", "words"),
        ("请用一句话回答。", "sentences1"),
        ("请用两句话回答。", "sentences2"),
        ("请分步骤说明。", "numbered"),
        ("请按步骤列出来。", "numbered"),
        ("语言尽量通俗易懂。", "style"),
        ("请用轻松的语气回答。", "style"),
        ("回答尽量简洁。", "style"),
        ("请讲给{audience}听。", "style"),
    ),
    prefixes="你好，|请问，|我想请教一下：|麻烦问一下，|老师好，",
    personas="我是一个新手。|我是一名大学生。|我平时工作比较忙。|我刚退休，时间比较多。|"
    "我下周要考试了。|我对这方面不太了解。|我是两个孩子的家长。|朋友问了我这个问题，我答不上来。",
    audiences="小学生|刚入门的新手|完全不懂的人|家里的老人|中学生",
    generic_asks="请简单介绍一下{subject}。|关于{subject}，新手最容易犯哪些错误？|"
    "能给我一些关于{subject}的建议吗？|请写一段关于{subject}的短文。|为什么很多人觉得{subject}很难？|"
    "{context}，关于{subject}有什么要注意的？",
    step_asks="关于{subject}，请给我一个分步骤的计划。|请把{subject}拆分成几个简单的步骤。|"
    "{context}，{subject}应该按什么步骤来？|请一步一步地讲讲{subject}。",
    compare_asks="请比较一下{s1}和{s2}。|{s1}和{s2}有什么区别？|{s1}和{s2}，哪个更适合新手？|"
    "应该先了解{s1}还是{s2}？",
    action_templates="首先，{a}。|可以试着{a}。|最好{a}，这样{b}。|建议{a}。|{p}通常会建议你{a}。|"
    "一个简单的习惯是{a}。|如果能{a}，就会{b}。|记得{a}。|另外，{a}也很重要。|不妨{a}，你会发现{b}。|"
    "平时尽量{a}。",
    mistake_templates="尽量不要{m}，否则{c}。|很多人一开始会{m}，{c}。|一个常见的错误是{m}。|"
    "千万别{m}。|要注意避免{m}。",
    consequences="结果往往事倍功半|很容易前功尽弃|反而浪费了更多时间|效果会大打折扣|最后很难坚持下去",
    tool_templates="{t}会很有帮助。|如果有{t}，事情会简单很多。|可以考虑准备{t}。|很多{p}都离不开{t}。",
    point_templates="{a}。|{a}。|{a}。|{a}，这样{b}。|避免{m}。|可以准备{t}。|不要{m}。",
    openers="关于{s}，其实并没有想象中那么难。|{s}是很多人都关心的话题。|好的，下面简单说说{s}。|"
    "这是一个很好的问题。|关于{s}，有几点值得注意。|很多人对{s}很感兴趣，这很正常。",
    closers="只要多练习，很快就能掌握。|慢慢来，一步一步就会看到进步。|希望这些建议对你有帮助！|"
    "如果还有其他问题，欢迎继续问我。|最重要的是保持耐心。|小的改进积累起来，效果会超出你的想象。",
    list_intros="可以参考下面几点：|好的，简单总结如下：|我的建议是：|主要有以下几点：",
    step_intros="可以按照下面的步骤来：|好的，建议这样做：|一个简单的计划如下：",
    step_counts="请分{n}步说明。|控制在{n}个步骤以内。",
    step_benefits="这样{b}。|这样做会让你{b}。",
    systems="你是一个乐于助人的助手。|你是一名{label}方面的专家，请用简洁清晰的语言回答问题。|"
    "请准确、简洁地回答用户的问题。|你是一位耐心的老师，请一步一步地讲解。",
    follow_ups="谢谢！|明白了。|好的，还有一个问题：|很有帮助！",
    summarize_asks="请用一句话概括下面这段话。|请总结下面这段文字的主要内容。|下面这段话的核心意思是什么？|"
    "请帮我提炼一下这段话的要点。|请用一句话概括下面这段关于{subject}的文字。|"
    "下面是一段关于{subject}的介绍，请总结它的要点。|我在网上看到一段讲{subject}的话，它的核心意思是什么？",
    summary_templates="这段话主要是说，要{a1}，并且{a2}，这样{b}。|总的来说，作者建议{a1}，同时{a2}。|"
    "核心意思是：{p}建议{a1}，并且{a2}。",
    compare_openers="{s1}和{s2}有不少相似之处，但适用的情况不太一样。|{s1}和{s2}都值得了解，各有各的特点。|"
    "这是一个常见的问题，因为{s1}和{s2}经常被放在一起讨论。",
    compare_middles="{s1}更适合愿意{a1}的人，而{s2}更适合想要{a2}的人。|了解{s1}时，最大的问题往往是{m}。|"
    "如果你打算{a1}，可以先从{s1}入手。|相比之下，{s1}需要更多耐心，而{s2}见效会快一些。",
    compare_closers="总的来说，选哪一个取决于你的目标和时间。|很多人会两个都试一试，再选更适合自己的那个。|"
    "如果拿不定主意，就先从更感兴趣的那个开始。",
    title_asks="请为一篇关于{subject}的文章想{n}个标题。|给一篇介绍{subject}的公众号文章起{n}个标题。|"
    "帮我想{n}个关于{subject}的视频标题。",
    title_templates="{S}入门指南|关于{S}，没人告诉你的{k}件事|为什么{S}比你想象的简单|{S}常见误区及应对方法|"
    "我花了一年时间研究{S}，总结出这些经验|新手必看：{S}的{k}个小技巧|{S}，其实可以很轻松|从零开始：{S}全攻略",
    title_intros="可以参考下面几个：|好的，给你几个选择：|这几个标题供你参考：",
    sentiment_asks="判断下面这条评论是正面还是负面。|这条评论表达的情绪是积极的还是消极的？|"
    "请判断这条商品评价的情感倾向。|下面是一条关于{x}的评价，请判断它是正面还是负面。|"
    "顾客对这款{x}满意吗？请回答正面或负面。",
    products="电饭煲|蓝牙耳机|跑步鞋|保温杯|台灯|行李箱|键盘|空气净化器|书包|吹风机|电动牙刷|加湿器",
    spans="半个月|一个多月|三个月|两周",
    pos_openings="这个{x}用了{w}，非常满意。|{x}收到了，包装很仔细。|买给家里人用的{x}，大家都说好用。|"
    "第二次买这家的{x}了。|{x}用了{w}，一直很好用。",
    pos_details="质量很好，做工也比想象中精细。|物流很快，第二天就到了。|用起来很顺手，没有任何问题。|"
    "性价比很高。|客服态度很好，回复也很及时。|外观和图片一样，很好看。",
    pos_closings="会推荐给朋友。|值得购买。|好评！|下次还会再买。",
    neg_openings="这个{x}用了不到{w}就坏了。|{x}和图片上差别很大。|买的{x}让人很失望。|"
    "收到的{x}有明显的划痕。|{x}只用了{w}就出了问题。",
    neg_details="客服也一直不回复。|做工粗糙，细节处理得很差。|噪音很大，用起来很不方便。|"
    "换了一次还是有同样的问题。|说明书写得很乱，根本看不懂。|有一股很重的塑料味。",
    neg_closings="不推荐购买。|后悔买了。|已经申请退货了。|大家别踩坑。",
    positive_labels="正面|正面。|这条评论是正面的，用户对{x}很满意。",
    negative_labels="负面|负面。|这条评论是负面的，用户对{x}很不满意。",
    email_asks="请帮我写一封简短的邮件，{purpose}。|帮我给{r}写一封邮件，{purpose}。|请写一封邮件，{purpose}。|"
    "帮我起草一封给{r}的邮件，内容是{purpose}。|我想{purpose}，请帮我写一封邮件。",
    recipients="经理|客户|同事|老师|房东|团队成员",
    email_purposes=(
        (
            "向经理申请下周五请一天假",
            "请假申请",
            (
                "因为家里有些事情需要处理，我想申请下周五请一天假。",
                "手头的工作我会在周四之前安排好，不会影响项目进度。",
                "如有需要，我可以随时保持电话联系。",
            ),
        ),
        (
            "提醒客户下周{day}的会议",
            "会议时间提醒",
            (
                "提醒您一下，我们约定的会议在下周{day}{time}举行。",
                "会议地点在公司三楼的会议室。",
                "如果时间有变动，请提前告诉我。",
            ),
        ),
        (
            "感谢同事上周的帮助",
            "感谢你的帮助",
            (
                "非常感谢你上周在项目上给我的帮助。",
                "你的建议帮我节省了很多时间。",
                "以后有需要我帮忙的地方，尽管开口。",
            ),
        ),
        (
            "询问面试结果",
            "关于面试结果的询问",
            (
                "我是上周{day}参加面试的候选人。",
                "想冒昧问一下目前的面试进展。",
                "非常期待有机会加入贵公司。",
            ),
        ),
        (
            "通知团队项目上线时间推迟",
            "项目上线时间调整",
            (
                "由于测试中发现了几个问题，项目上线时间需要推迟一周。",
                "新的上线时间定在下周{day}。",
                "给大家带来的不便，敬请谅解。",
            ),
        ),
        (
            "邀请大家参加周五的团队聚餐",
            "周五团队聚餐",
            (
                "本周五晚上我们组织一次团队聚餐，地点在公司附近的餐厅。",
                "这也是大家放松一下、互相交流的好机会。",
                "请在周三之前回复是否参加。",
            ),
        ),
        (
            "向老师请教论文的修改意见",
            "请教论文修改意见",
            (
                "附件是我论文的初稿，想请您抽空看一下。",
                "我对第三部分的论证不太有把握，特别希望听听您的意见。",
                "麻烦您了，谢谢！",
            ),
        ),
    ),
    names="王经理|李老师|张总|刘主任|陈老师|各位同事",
    senders="张伟|王芳|李娜|刘洋|陈静|杨帆|赵磊|黄丽",
    greetings="{name}：|尊敬的{name}：|{name}，您好：",
    signoffs="祝好！|此致\n敬礼！|谢谢！",
    days="一|二|三|四|五",
    times="上午十点|下午两点|下午三点半|上午九点半",
    email_extras="语气要礼貌一些。|写得简短一点。|要显得专业一些。|署名写{sender}。|我叫{sender}。",
    email_layout="主题：{subject}\n\n{greeting}\n\n{body}\n\n{signoff}\n{sender}",
    story_asks="写一个关于{theme}的小故事。|给孩子讲一个关于{theme}的睡前故事。|请写一个很短的故事，主题是{theme}。|"
    "讲一个发生在{place}的小故事，故事里要有{object}。|以“{opening}”开头，写一个关于{theme}的短故事。",
    story_characters=(
        ("一位名叫{name}的退休老师", "f"),
        ("一个叫{name}的害羞男孩", "m"),
        ("一位名叫{name}的老渔夫", "m"),
        ("一个叫{name}的年轻面包师", "f"),
        ("一个叫{name}的好奇女孩", "f"),
    ),
    names_female="小雨|小梅|林芳|丽丽|阿珍",
    names_male="小明|阿强|老李|张磊|小军",
    pronouns=("她", "她", "他", "他"),
    story_objects="一把丢失的雨伞|一张旧地图|一只流浪猫|一封没有署名的信|一辆坏掉的自行车|一本被遗忘的日记|"
    "一把神秘的钥匙|一盒老照片",
    story_places="火车站|阁楼|街角的面包店|村里的图书馆|河边的公园|学校的花园|码头",
    story_theme="{object}",
    story_cast="主人公是{character}。",
    story_openings="一个下雨的早晨|一天傍晚|春天的第一天|一个安静的星期天|快要日落的时候",
    story_first="{opening}，{character}在{place}发现了{object}。",
    story_wishes="{pron}一直想来一场小小的冒险。|{pron}每天都过着一样平静的生活。|{pron}一直不太敢和邻居说话。|"
    "{pron}总是好奇山的那边是什么。|{pron}最喜欢听神秘的故事。",
    story_middles="一开始，{pron}不知道该怎么办，只好去问邻居。|街上的人谁也说不清它是从哪里来的。|"
    "第二天，{pron}又回到{place}，静静地等着。|{pron}写了一张小纸条贴在门口，希望有人能看到。",
    story_twists="没想到，它的主人竟然是{pron}多年前的老同学。|不到一个星期，整条街的人都在谈论这件事。|"
    "几天后，一个小女孩敲开了门，送来一张感谢卡。",
    story_endings="从那以后，{name}每次经过{place}，都会忍不住笑起来。|这成了一段持续多年的友谊的开始。|"
    "{name}常想，最好的冒险往往从一件小事开始。",
    refusals="抱歉，我无法{v}。|作为一个AI语言模型，我不能{v}。|很抱歉，这个问题我无法回答。|"
    "对不起，我没有办法{v}。不过，我可以{o}。|抱歉，作为人工智能助手，我不能{v}。",
    refusal_verbs="提供个人观点|访问互联网获取实时信息|完成这个请求|提供这方面的具体建议|回答这个问题",
    refusal_offers="为你介绍一些基本原则|提供一些一般性的参考资料|帮你理清思路",
    pii_kinds=("email", "cn_mobile", "cn_id", "ipv4"),
    pii_templates=(
        ("email", "请把资料发到{v}。|我的邮箱是{v}，有问题可以发邮件给我。"),
        ("cn_mobile", "我的手机号是{v}，有问题可以随时联系我。|有事请打{v}找我。|联系电话：{v}。"),
        ("cn_id", "我的身份证号是{v}。|身份证号码：{v}，请帮我核对一下。"),
        ("ipv4", "服务器地址是{v}，一直登录不上去。|我家路由器的地址是{v}。"),
    ),
    mojibake_sentences="",
)

_LANGUAGE_PACKS = {"en": _EN, "zh": _ZH}
