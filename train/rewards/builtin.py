"""The built-in rewards other than the instruction-following checks: length, format, a
reward model (a sequence-classifier checkpoint) and a user's own Python function.

Every reward is a batch callable ``(samples: list[Sample]) -> list[Score]``; ``Score.score``
is None where the reward does not apply to a sample (an ``ifeval`` reward on a prompt without
constraints), which is counted, never read as 0. ``train.rewards.runner`` calls them under a
timeout and counts failures by reward name.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One completion and what a reward may judge it against."""

    prompt: str  # the instruction (the last user turn), constraint sentences included
    completion: str
    constraints: tuple[dict[str, Any], ...] = ()  # the record's (pipeline.constraints)
    reference: str = ""  # the record's first reply, "" when it has none


@dataclass(frozen=True)
class Score:
    score: float | None  # None: the reward does not apply to this sample
    details: dict[str, Any] = field(default_factory=dict)


class RewardSetupError(ValueError):
    """A reward's options are wrong or what it loads is missing; the message says which."""


Reward = Callable[[Sequence[Sample]], list[Score]]


def word_count(text: str) -> int:
    return len(re.findall(r"\w+", text))


def length_reward(options: dict[str, Any]) -> Reward:
    """1 inside [min, max] words (or characters with ``unit: characters``), falling
    linearly to 0 at ``slack`` x the bound outside it (default 1: 0 at twice the max or
    zero length); ``target`` with ``tolerance`` is the range target +- tolerance."""
    known = {"min", "max", "target", "tolerance", "unit", "slack"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RewardSetupError(f"length: unknown options {unknown}; known: {sorted(known)}")
    unit = options.get("unit", "words")
    if unit not in ("words", "characters"):
        raise RewardSetupError(f"length: unit {unit!r}: choose words or characters")
    if "target" in options:
        tolerance = float(options.get("tolerance", 0))
        low = float(options["target"]) - tolerance
        high = float(options["target"]) + tolerance
    else:
        low, high = float(options.get("min", 0)), float(options.get("max", math.inf))
    if not (0 <= low <= high) or (low == 0 and high == math.inf):
        raise RewardSetupError(
            f"length: give max, min, or target (with tolerance); got min {low:g}, max {high:g}"
        )
    slack = float(options.get("slack", 1.0))
    if slack <= 0:
        raise RewardSetupError(f"length: slack must be > 0, got {slack:g}")

    def score(samples: Sequence[Sample]) -> list[Score]:
        scores = []
        for sample in samples:
            size = word_count(sample.completion) if unit == "words" else len(sample.completion)
            if size < low:
                value = max(0.0, 1 - (low - size) / (slack * low))
            elif size > high:
                value = max(0.0, 1 - (size - high) / (slack * max(high, 1)))
            else:
                value = 1.0
            scores.append(Score(value, {unit: size}))
        return scores

    return score


def format_reward(options: dict[str, Any]) -> Reward:
    """1 when the completion matches ``pattern`` (a Python regular expression; ``match``:
    search, fullmatch (default) or prefix), else 0. E.g. DeepSeek-R1's format reward is
    ``pattern: "<think>.*?</think>\\s*<answer>.*?</answer>"``."""
    if "pattern" not in options:
        raise RewardSetupError("format: options.pattern (a regular expression) is required")
    try:
        pattern = re.compile(options["pattern"], re.DOTALL)
    except re.error as error:
        raise RewardSetupError(f"format: pattern {options['pattern']!r}: {error}") from None
    mode = options.get("match", "fullmatch")
    matcher = {"search": pattern.search, "fullmatch": pattern.fullmatch, "prefix": pattern.match}
    if mode not in matcher:
        raise RewardSetupError(f"format: match {mode!r}: choose one of {sorted(matcher)}")
    match = matcher[mode]

    def score(samples: Sequence[Sample]) -> list[Score]:
        return [Score(float(match(sample.completion.strip()) is not None)) for sample in samples]

    return score


def ifeval_reward(options: dict[str, Any]) -> Reward:
    """The records' constraints (``train.rewards.ifeval``): 1 when all are followed, or with
    ``partial: true`` the fraction followed; ``mode: loose`` uses IFEval's loose check.
    Samples without constraints: not applicable."""
    from train.rewards.ifeval import score_record

    known = {"mode", "partial"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RewardSetupError(f"ifeval: unknown options {unknown}; known: {sorted(known)}")
    mode = options.get("mode", "strict")
    if mode not in ("strict", "loose"):
        raise RewardSetupError(f"ifeval: mode {mode!r}: choose strict or loose")
    partial = bool(options.get("partial", False))

    def score(samples: Sequence[Sample]) -> list[Score]:
        scores = []
        for sample in samples:
            if not sample.constraints:
                scores.append(Score(None))
                continue
            try:
                result = score_record(list(sample.constraints), sample.completion, sample.prompt)
            except Exception as error:  # a malformed constraint fails this sample only
                scores.append(Score(None, {"error": f"{type(error).__name__}: {error}"}))
                continue
            items = result["constraints"]
            followed = [item[mode] for item in items]
            value = sum(followed) / len(followed) if partial else float(all(followed))
            # Sub-scores: each kind's pass rate, and the seen and held-out kinds' overall.
            details: dict[str, float] = {}
            for item in items:
                details[item["kind"]] = float(item[mode])
            for split, held_out in (("seen", False), ("held_out", True)):
                mine = [item[mode] for item in items if item["held_out"] == held_out]
                if mine:
                    details[split] = sum(mine) / len(mine)
            scores.append(Score(value, details))
        return scores

    return score


def model_reward(options: dict[str, Any], device: Any = "cpu") -> Reward:
    """A sequence-classifier checkpoint (``AutoModelForSequenceClassification``, e.g. a
    trained reward model): the prompt and completion rendered with its tokenizer's chat
    template (or joined by a new line without one); the score is the logit of a one-label
    head, or the probability of label 1 of a two-label head, optionally squashed
    (``normalise: sigmoid``). Options: path, max_length (512), batch_size (16)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = options.get("path")
    if not path:
        raise RewardSetupError("model: options.path (a sequence-classifier checkpoint) is required")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    except (OSError, ValueError) as error:
        raise RewardSetupError(f"model: cannot load {path}: {str(error).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    labels = model.config.num_labels
    if labels not in (1, 2):
        raise RewardSetupError(f"model: {path} has {labels} labels; a reward model has 1 or 2")
    max_length = int(options.get("max_length", 512))
    batch_size = int(options.get("batch_size", 16))
    normalise = options.get("normalise", "none")
    if normalise not in ("none", "sigmoid"):
        raise RewardSetupError(f"model: normalise {normalise!r}: choose none or sigmoid")

    def text(sample: Sample) -> str:
        if getattr(tokenizer, "chat_template", None):
            turns = [
                {"role": "user", "content": sample.prompt},
                {"role": "assistant", "content": sample.completion},
            ]
            return tokenizer.apply_chat_template(turns, tokenize=False)
        return f"{sample.prompt}\n{sample.completion}"

    def score(samples: Sequence[Sample]) -> list[Score]:
        values: list[float] = []
        for start in range(0, len(samples), batch_size):
            chunk = [text(sample) for sample in samples[start : start + batch_size]]
            encoded = tokenizer(
                chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            with torch.no_grad():
                logits = model(**encoded).logits.float()
            if labels == 2:
                values.extend(torch.softmax(logits, dim=-1)[:, 1].tolist())
            else:
                raw = logits[:, 0]
                values.extend((torch.sigmoid(raw) if normalise == "sigmoid" else raw).tolist())
        return [Score(value) for value in values]

    return score


def load_function(reference: str) -> Callable[..., Any]:
    """``package.module:name`` or ``path/to/file.py:name`` -> the function."""
    module_name, _, attribute = reference.rpartition(":")
    if not module_name or not attribute:
        raise RewardSetupError(
            f"python: function {reference!r}: write module:name or path/to/file.py:name"
        )
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise RewardSetupError(f"python: {module_name}: no such file")
            spec = importlib.util.spec_from_file_location(
                f"instructflow_reward_{abs(hash(module_name))}", module_name
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except RewardSetupError:
        raise
    except Exception as error:  # the user's module failed to import: say so, with its error
        raise RewardSetupError(
            f"python: importing {module_name} failed: {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise RewardSetupError(f"python: {module_name} has no function {attribute!r}")
    return function


def python_reward(options: dict[str, Any]) -> Reward:
    """A user's function named by ``options.function``, called TRL's way:
    ``function(prompts=[...], completions=[...], constraints=[...], references=[...],
    **options.kwargs) -> list[float | None]`` (None: not applicable to that sample), one
    value per completion."""
    if "function" not in options:
        raise RewardSetupError("python: options.function (module:name or file.py:name) is required")
    function = load_function(str(options["function"]))
    extra = dict(options.get("kwargs", {}))

    def score(samples: Sequence[Sample]) -> list[Score]:
        values = function(
            prompts=[sample.prompt for sample in samples],
            completions=[sample.completion for sample in samples],
            constraints=[list(sample.constraints) for sample in samples],
            references=[sample.reference for sample in samples],
            **extra,
        )
        values = list(values)
        if len(values) != len(samples):
            raise ValueError(
                f"returned {len(values)} values for {len(samples)} completions; return one each"
            )
        scores = []
        for value in values:
            if value is not None and not isinstance(value, int | float):
                raise TypeError(f"returned {type(value).__name__}; return floats (or None)")
            if value is not None and not math.isfinite(value):
                raise ValueError(f"returned {value}; rewards must be finite")
            scores.append(Score(None if value is None else float(value)))
        return scores

    return score


def build_reward(kind: str, options: dict[str, Any], device: Any = "cpu") -> Reward:
    if kind == "ifeval":
        return ifeval_reward(options)
    if kind == "length":
        return length_reward(options)
    if kind == "format":
        return format_reward(options)
    if kind == "model":
        return model_reward(options, device)
    if kind == "python":
        return python_reward(options)
    raise RewardSetupError(f"reward kind {kind!r}: choose ifeval, length, format, model or python")


__all__ = ["RewardSetupError", "Sample", "Score", "build_reward", "load_function"]
