"""The shapes that hold the synthetic corpora's hand-written words: topics, language packs,
code snippets, constraints; and the small helpers every generator module shares."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


def check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")


def cumulative_weights(weights: list[float]) -> list[float]:
    """Normalised running sums, for ``bisect`` on a uniform draw; the last is exactly 1."""
    total, running, sums = sum(weights), 0.0, []
    for weight in weights:
        running += weight / total
        sums.append(running)
    sums[-1] = 1.0
    return sums


def split_bank(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split("|") if part.strip())


@dataclass(frozen=True)
class Topic:
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


def make_topic(name: str, *, label: str, practitioners: str, **banks: str) -> Topic:
    return Topic(
        name, label, practitioners, **{key: split_bank(text) for key, text in banks.items()}
    )


_LANGUAGE_SCALARS = frozenset(
    ("code", "joiner", "stop", "email_layout", "story_theme", "story_first", "story_cast")
)


class Language:
    """One language's banks as attributes; ``|``-separated strings become tuples."""

    code: str
    joiner: str
    stop: str

    def __init__(self, **banks: Any) -> None:
        for key, value in banks.items():
            keep = key in _LANGUAGE_SCALARS
            setattr(self, key, value if keep or not isinstance(value, str) else split_bank(value))
        self.task_names = tuple(name for name, _ in banks["task_weights"])
        self.task_cumulative = cumulative_weights([weight for _, weight in banks["task_weights"]])
        self.programming = next(topic for topic in banks["topics"] if topic.name == "programming")
        self.pii_templates = {kind: split_bank(text) for kind, text in banks["pii_templates"]}


@dataclass(frozen=True)
class Snippet:
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
        name = rng.choice(split_bank(self.names))
        arg = rng.choice(split_bank(self.args))
        code = self.code.replace("@name@", name).replace("@arg@", arg)
        return code, self.desc.replace("@name@", name).replace("@arg@", arg), name


@dataclass(frozen=True)
class Constraint:
    """An explicit constraint in the instruction, which the response then honours."""

    text: str = ""
    bullets: int = 0
    numbered: bool = False
    sentences: int = 0
    max_units: int = 0


NO_CONSTRAINT = Constraint()
