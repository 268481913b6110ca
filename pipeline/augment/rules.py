"""Rule-based augmentation, no model: instruction templates and EDA-style word edits.

- **template**: the first line of an instruction that matches a known request form is
  rewritten into its twin ("Explain X." <-> "Can you explain X?", "Write X." <-> "Please
  write X.", "请解释X" <-> "你能解释一下X吗？", ...). It changes the instruction only.
- **swap / delete / insert** (EDA, Wei & Zou 2019): swap two words n times, delete each word
  with probability ``alpha``, or insert a copy of one of the text's words n times, with
  n = max(1, round(alpha * words)). EDA's synonym replacement needs WordNet, which is not
  available offline, so inserting a copy replaces inserting a synonym. Words are
  whitespace-separated runs, or single characters in CJK text. Protected spans (code, URLs,
  numbers, placeholders) are never edited.

Each chosen ``(record, variant)`` makes one record: variant 0 uses the template when one
matches, other variants (and records no template matches) one EDA edit drawn by a
generator seeded from the unit's hash, so the same record always gets the same edit.
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar, Literal, NamedTuple, cast

from pydantic import Field, model_validator

from pipeline.augment.guard import CJK_RANGES, check_fields
from pipeline.augment.protect import protect, restore
from pipeline.augment.selection import (
    AugmentConfig,
    GlobalAugment,
    SelectiveAugment,
    field_text,
    unit_hash,
    with_field,
)
from pipeline.stage import Candidate, Drop, StageConfig, StageCounts

EditName = Literal["swap", "delete", "insert"]
MethodName = Literal["template", "swap", "delete", "insert"]
EDA_METHODS: tuple[EditName, ...] = ("swap", "delete", "insert")
WORD = re.compile(rf"XPH\d+X|[{CJK_RANGES}]|[^\s{CJK_RANGES}]+")
CJK_CHARACTER = re.compile(f"[{CJK_RANGES}]")
END = r"\s*[.?!。？！]*\s*"


class Template(NamedTuple):
    name: str
    pattern: re.Pattern[str]
    rewrite: str


def template(name: str, pattern: str, rewrite: str) -> Template:
    return Template(name, re.compile(pattern + END, re.IGNORECASE | re.DOTALL), rewrite)


TEMPLATES = (
    template("en.explain", r"explain\s+(?P<x>.+?)", "Can you explain {x}?"),
    template("en.can_you_explain", r"can you explain\s+(?P<x>.+?)", "Explain {x}."),
    template("en.write", r"write\s+(?P<x>.+?)", "Please write {x}."),
    template("en.please_write", r"please write\s+(?P<x>.+?)", "Write {x}."),
    template("en.describe", r"describe\s+(?P<x>.+?)", "Could you describe {x}?"),
    template("en.could_you_describe", r"could you describe\s+(?P<x>.+?)", "Describe {x}."),
    template("en.list", r"list\s+(?P<x>.+?)", "Give me a list of {x}."),
    template("en.give_me_a_list", r"give me a list of\s+(?P<x>.+?)", "List {x}."),
    template("en.what_is", r"what is\s+(?P<x>.+?)", "Tell me what {x} is."),
    template("en.tell_me_what", r"tell me what\s+(?P<x>.+?)\s+is", "What is {x}?"),
    template("zh.explain", r"请解释(?P<x>.+?)", "你能解释一下{x}吗？"),
    template("zh.can_you_explain", r"你能解释一下(?P<x>.+?)吗", "请解释{x}。"),
    template("zh.write", r"写(?P<x>.+?)", "请写{x}。"),
    template("zh.please_write", r"请写(?P<x>.+?)", "写{x}。"),
    template("zh.what_is", r"什么是(?P<x>.+?)", "请告诉我{x}是什么。"),
    template("zh.tell_me_what", r"请告诉我(?P<x>.+?)是什么", "什么是{x}？"),
    template("zh.list", r"列出(?P<x>.+?)", "请列举{x}。"),
    template("zh.please_list", r"请列举(?P<x>.+?)", "列出{x}。"),
)


def template_paraphrase(instruction: str) -> tuple[str, str] | None:
    """``(template name, rewritten instruction)`` if the first line matches a template."""
    first, newline, rest = instruction.partition("\n")
    for candidate in TEMPLATES:
        match = candidate.pattern.fullmatch(first.strip())
        if match:
            return candidate.name, candidate.rewrite.format(x=match.group("x")) + newline + rest
    return None


class Words(NamedTuple):
    """A text as words and the exact text before and between them, for lossless rebuilds."""

    prefix: str
    words: list[str]
    gaps: list[str]  # gaps[i] follows words[i]

    def text(self) -> str:
        return self.prefix + "".join(w + g for w, g in zip(self.words, self.gaps, strict=True))


def split_words(text: str) -> Words:
    matches = list(WORD.finditer(text))
    if not matches:
        return Words(text, [], [])
    ends = [m.start() for m in matches[1:]] + [len(text)]
    gaps = [text[m.end() : end] for m, end in zip(matches, ends, strict=True)]
    return Words(text[: matches[0].start()], [m.group(0) for m in matches], gaps)


def editable(word: str) -> bool:
    return not word.startswith("XPH") and any(character.isalnum() for character in word)


def eda_edit(text: str, method: EditName, alpha: float, rng: random.Random) -> tuple[str, int]:
    """``text`` with one EDA operation applied (on masked text), and how many edits it made."""
    parts = split_words(text)
    words, gaps = list(parts.words), list(parts.gaps)
    slots = [index for index, word in enumerate(words) if editable(word)]
    edits = max(1, round(alpha * len(slots)))
    if method == "swap" and len(slots) >= 2:
        for _ in range(edits):
            first, second = rng.sample(slots, 2)
            words[first], words[second] = words[second], words[first]
    elif method == "delete" and len(slots) >= 2:
        doomed = {index for index in slots if rng.random() < alpha}
        doomed = doomed or {rng.choice(slots)}
        if len(doomed) == len(slots):  # keep one word, as Wei & Zou do
            doomed.discard(rng.choice(sorted(doomed)))
        edits = len(doomed)
        for index in sorted(doomed, reverse=True):
            # The deleted word's gap replaces the one before it, unless that one breaks a line.
            if index and gaps[index].count("\n") >= gaps[index - 1].count("\n"):
                gaps[index - 1] = gaps[index]
            del words[index], gaps[index]
    elif method == "insert" and slots:
        for _ in range(edits):
            word = words[rng.choice(slots)]
            position = rng.randrange(len(words) + 1)
            space = "" if CJK_CHARACTER.fullmatch(word) else " "
            words.insert(position, word)
            if position:  # the copy goes after the previous word, before what followed it
                gaps.insert(position, gaps[position - 1])
                gaps[position - 1] = space
            else:
                gaps.insert(0, space)
            slots = [index for index, item in enumerate(words) if editable(item)]
    else:
        edits = 0
    return Words(parts.prefix, words, gaps).text(), edits


class RuleAugmentConfig(AugmentConfig):
    methods: tuple[MethodName, ...] = Field(("template", "swap", "delete", "insert"), min_length=1)
    variants: int = Field(1, ge=1, le=8)
    alpha: float = Field(0.1, gt=0.0, le=0.5)

    @model_validator(mode="after")
    def _methods_can_make_the_variants(self) -> RuleAugmentConfig:
        if not set(self.methods) & set(EDA_METHODS):
            if self.variants > 1:
                raise ValueError("variants > 1 needs an EDA method: a template has one rewrite")
            if self.fields == "response":
                raise ValueError("fields: response needs an EDA method: templates edit requests")
        return self

    def edit_methods(self) -> tuple[EditName, ...]:
        return tuple(method for method in EDA_METHODS if method in self.methods)


class RuleAugmentBatches(SelectiveAugment):
    name: ClassVar[str] = "rule_augment"
    Config: ClassVar[type[StageConfig]] = RuleAugmentConfig
    config: RuleAugmentConfig

    @classmethod
    def unit_names(cls, config: AugmentConfig) -> tuple[str, ...]:
        return tuple(f"v{index}" for index in range(cast(RuleAugmentConfig, config).variants))

    @classmethod
    def eligible(cls, batch: Any, config: AugmentConfig) -> list[bool]:
        """With templates as the only method, only instructions a template matches."""
        base = super().eligible(batch, config)
        if cast(RuleAugmentConfig, config).edit_methods():
            return base
        conversations = batch.column("messages").to_pylist()
        return [
            ok and template_paraphrase(field_text(turns, "instruction")) is not None
            for ok, turns in zip(base, conversations, strict=True)
        ]

    def candidates(self, batch: Any, counts: StageCounts) -> list[Candidate]:
        conversations = batch.column("messages").to_pylist()
        systems = batch.column("system").to_pylist()
        contexts = batch.column("context").to_pylist()
        parents = zip(
            batch.column("id").to_pylist(),
            batch.column("source_file").to_pylist(),
            batch.column("source_line").to_pylist(),
            strict=True,
        )
        keys = list(parents)
        candidates = []
        for row, unit in self.chosen_units(batch):
            rng = random.Random(unit_hash(self.selection, keys[row], unit))
            turns, augmentation, drop = self.rewrite(conversations[row], unit, rng)
            candidates.append(
                Candidate(row, systems[row], turns, contexts[row], augmentation, drop)
            )
        return candidates

    def rewrite(
        self, turns: list[dict[str, Any]], unit: str, rng: random.Random
    ) -> tuple[list[dict[str, Any]], dict[str, Any], Drop | None]:
        """One unit's new turns, provenance and guard verdict."""
        config = self.config
        fields = config.changed_fields()
        found = None
        if unit == "v0" and "template" in config.methods and "instruction" in fields:
            found = template_paraphrase(field_text(turns, "instruction"))
        changes: dict[str, tuple[str, str, int]] = {}
        if found is not None:
            method, edits, details = "template", 1, {"rule": found[0]}
            changes["instruction"] = (field_text(turns, "instruction"), found[1], 0)
        else:
            method = rng.choice(config.edit_methods())
            edits, details = 0, {"alpha": config.alpha}
            for name in fields:
                original = field_text(turns, name)
                masked = protect(original)
                edited, made = eda_edit(masked.text, method, config.alpha, rng)
                text, lost = restore(edited, masked.spans)
                changes[name] = (original, text, lost)
                edits += made
        for name, (_, text, _) in changes.items():
            turns = with_field(turns, name, text)
        scores, drop = check_fields(changes, config.guard)
        augmentation = {
            "method": method if method == "template" else f"eda.{method}",
            **details,
            "edits": edits,
            "variant": int(unit[1:]),
            "fields": list(changes),
            "guard": scores,
        }
        return turns, augmentation, drop


class RuleAugment(GlobalAugment):
    name: ClassVar[str] = "rule_augment"
    Config: ClassVar[type[StageConfig]] = RuleAugmentConfig
    worker: ClassVar[type[SelectiveAugment]] = RuleAugmentBatches
