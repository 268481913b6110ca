"""Clean records and the language mix: ``generate_records`` yields alpaca records, with the
dirt of a ``DirtConfig`` drawn from a random stream of its own."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from bench.corpora.banks import Language, check_rate, cumulative_weights
from bench.corpora.chinese import CHINESE
from bench.corpora.dirt import DirtConfig, DirtInjector
from bench.corpora.english import ENGLISH
from bench.corpora.tasks import TASKS, explain_task

LANGUAGES = ("en", "zh")


DEFAULT_LANGUAGE_MIX: Mapping[str, float] = MappingProxyType({"en": 0.7, "zh": 0.3})


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
    check_rate("system_rate", system_rate)
    check_rate("history_rate", history_rate)
    return _records(n, seed, languages, cumulative, dirt, system_rate, history_rate)


def _language_weights(mix: Mapping[str, float]) -> tuple[list[Language], list[float]]:
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
    cumulative = cumulative_weights([weight for _, weight in weights])
    return [_LANGUAGE_PACKS[code] for code, _ in weights], cumulative


def _records(
    n: int,
    seed: int,
    languages: list[Language],
    cumulative: list[float],
    dirt: DirtConfig | None,
    system_rate: float,
    history_rate: float,
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    injector = DirtInjector(dirt, seed) if dirt is not None and dirt.any_dirt() else None
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
    lang: Language, rng: random.Random, system_rate: float, history_rate: float
) -> dict[str, Any]:
    task = lang.task_names[bisect.bisect_right(lang.task_cumulative, rng.random())]
    topic = lang.programming if task in ("code", "explain_code") else rng.choice(lang.topics)
    instruction, input_text, output = TASKS[task](lang, topic, rng)
    record: dict[str, Any] = {"instruction": instruction, "input": input_text, "output": output}
    if rng.random() < system_rate:
        system = rng.choice(lang.systems)
        if task in _TOPICLESS_TASKS and "{label}" in system:
            system = lang.systems[0]  # a review or an e-mail has no subject-matter expert
        record["system"] = system.format(label=topic.label)
    if rng.random() < history_rate:
        turns = [list(explain_task(lang, topic, rng)[::2]) for _ in range(rng.randint(1, 2))]
        record["history"] = turns
        if rng.random() < 0.5:
            record["instruction"] = rng.choice(lang.follow_ups) + lang.joiner + instruction
    return record


_LANGUAGE_PACKS = {"en": ENGLISH, "zh": CHINESE}
