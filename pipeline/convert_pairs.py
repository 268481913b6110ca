"""Feedback converters: preference pairs and binary feedback in the canonical schema.

A pair is an ordinary record whose ``messages`` are the prompt turns followed by the chosen
reply (the last assistant turn), with ``rejected`` holding the turns that replace that reply
on the rejected side and ``chosen_score``/``rejected_score`` the raters' scores, if any. A
binary record is a conversation whose last assistant turn carries a ``feedback`` label (true:
desirable). Formats (``format:`` in a recipe input; ``auto`` finds each by its keys):

- ``pairwise``: LLaMA-Factory's ranking data, a sharegpt ``conversations`` or OpenAI
  ``messages`` prompt, or an alpaca ``instruction`` (+ ``input``, ``system``), with ``chosen``
  and ``rejected`` each a message ({from, value} or {role, content}) or text; and TRL's
  ``prompt``/``chosen``/``rejected`` (text or message lists; without ``prompt``, the shared
  leading turns of chosen and rejected are the prompt). Optional scores: ``score_chosen``
  and ``score_rejected`` (UltraFeedback-binarized) or ``chosen_score`` and ``rejected_score``.
- ``ultrafeedback``: a prompt (``instruction`` or ``prompt``) and ``completions``, each with a
  ``response`` and a rating (``preference.rating``: ``overall_score``, ``fine-grained_score``
  or the mean of the numeric ``annotations.*.Rating``). ``preference.pairs`` makes one pair of
  the best and the worst completion (``best_vs_worst``), or every pair whose scores differ by
  at least ``preference.margin`` (``all_pairs``): one source record, several rows.
- ``hh``: Anthropic HH-RLHF, ``chosen`` and ``rejected`` full transcripts
  (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``) that differ only in the last assistant turn.
- ``kto``: binary feedback, LLaMA-Factory's ``messages`` (or ``conversations``) with a true or
  false ``kto_tag`` (or ``label``), and TRL's unpaired ``prompt``/``completion``/``label``.

Well-formed pairs that teach nothing are rejects, not quarantine: ``pair.identical`` (chosen
and rejected are the same text once whitespace runs are collapsed), ``pair.tie`` (equal
scores) and ``pair.below_margin`` (the chosen side scored less than ``margin`` above the
rejected one, or below it). An ultrafeedback record that gives no pair becomes one such
reject (its best and worst completions), so every source record leaves at least one row.

Nothing is lost but the unchosen completions' texts: unconsumed keys travel in ``meta``, and an
ultrafeedback row keeps, under ``meta["_pair"]``, the indexes of its two completions (which
also tells dedup's row keys apart the rows of one record) and their other keys (model,
annotations, critique).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.convert import (
    MESSAGES_ROLE_TAGS,
    PAIR_FORMATS,
    SHAREGPT_ROLE_TAGS,
    ConversionError,
    SourceRecord,
    TemplateRenderer,
    _conversation,
    _messages_turn,
    _meta,
    _sharegpt_turn,
    _tools,
    _typed,
    preferred_tags,
    to_canonical,
)
from pipeline.schema import make_record, message

PAIR_REASONS = ("pair.identical", "pair.tie", "pair.below_margin")
PAIR_KEY = "_pair"
SCORE_KEYS = (("score_chosen", "score_rejected"), ("chosen_score", "rejected_score"))
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class PreferenceOptions(BaseModel):
    """How feedback sources become pairs (a recipe input's ``preference`` key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # ultrafeedback: the best completion against the worst, or every pair above the margin.
    pairs: Literal["best_vs_worst", "all_pairs"] = "best_vs_worst"
    # The least score difference a pair must have; pairs whose sides tie are always rejects.
    margin: float = Field(default=0.0, ge=0.0)
    # ultrafeedback: which rating of a completion is its score.
    rating: Literal["overall_score", "fine-grained_score", "annotations"] = "overall_score"


def canonical_rows(
    value: dict[str, Any] | str,
    fmt: str,
    *,
    preference: PreferenceOptions | None = None,
    columns: Mapping[str, str] | None = None,
    role_tags: Mapping[str, str] | None = None,
    source_file: str = "",
    source_line: int = 0,
    task: str = "",
    domain: str = "",
    language: str = "",
    templates: TemplateRenderer | None = None,
) -> list[dict[str, Any]]:
    """The FLOW rows of one source record (several for ultrafeedback ``all_pairs``), or
    ConversionError. Instruction formats go to ``convert.to_canonical``."""
    provenance = {
        "source_file": source_file,
        "source_line": source_line,
        "task": task,
        "domain": domain,
        "language": language,
    }
    if fmt not in PAIR_FORMATS:
        record = to_canonical(
            value, fmt, columns=columns, role_tags=role_tags, templates=templates, **provenance
        )
        return [record]
    if not isinstance(value, dict):
        raise ConversionError("convert.wrong_type", f"a {fmt} record is a {type(value).__name__}")
    source = SourceRecord(value, columns or {})
    options = preference or PreferenceOptions()
    rows = _CONVERTERS[fmt](source, role_tags or {}, options)
    return [_finished(row, source, fmt, provenance) for row in rows]


def _finished(
    parts: dict[str, Any], source: SourceRecord, fmt: str, provenance: dict[str, Any]
) -> dict[str, Any]:
    reject = parts.pop("reject", None)
    meta = _meta(source.rest(), parts.pop("meta", {}))
    row = make_record(**parts, source_format=fmt, meta=meta, **provenance)
    if reject is not None:
        row["drop_reason"], detail = reject
        row["drop_detail"] = json.dumps(detail, ensure_ascii=False, sort_keys=True)
    return row


def pair_verdict(
    chosen: str,
    rejected: str,
    chosen_score: float | None,
    rejected_score: float | None,
    margin: float,
) -> tuple[str, dict[str, Any]] | None:
    """Why a well-formed pair teaches nothing (``PAIR_REASONS``), or None if it is a pair."""
    if " ".join(chosen.split()) == " ".join(rejected.split()):
        return "pair.identical", {"chars": len(chosen)}
    if chosen_score is None or rejected_score is None:
        return None
    scores = {"chosen_score": chosen_score, "rejected_score": rejected_score}
    if chosen_score == rejected_score:
        return "pair.tie", scores
    if chosen_score - rejected_score < margin:
        return "pair.below_margin", {**scores, "margin": margin}
    return None


def _pair_row(
    prompt: dict[str, Any],
    chosen: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    scores: tuple[float | None, float | None],
    margin: float,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pair from its prompt parts (messages, system, context, tools) and the two sides."""
    verdict = pair_verdict(_texts(chosen), _texts(rejected), scores[0], scores[1], margin)
    return {
        **prompt,
        "messages": [*prompt["messages"], *chosen],
        "rejected": rejected,
        "chosen_score": scores[0],
        "rejected_score": scores[1],
        "meta": meta or {},
        "reject": verdict,
    }


def _texts(turns: list[dict[str, Any]]) -> str:
    return "\n".join(turn["content"] for turn in turns)


# --- reading turns ----------------------------------------------------------------------


def _turn(source: SourceRecord, turn: Any, where: str, role_tags: Mapping[str, str]) -> dict:
    """One message in either shape: sharegpt {from, value} or OpenAI {role, content}."""
    if isinstance(turn, dict) and source.key("from") in turn:
        defaults = SHAREGPT_ROLE_TAGS
        read = _sharegpt_turn
    else:
        defaults = MESSAGES_ROLE_TAGS
        read = _messages_turn
    tags = {**defaults, **role_tags}
    return read(source, turn, where, tags, preferred_tags(defaults, role_tags))


def _side(source: SourceRecord, name: str, role_tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """``chosen`` or ``rejected`` (or a prompt or completion): text (one assistant turn, or
    a user turn for a prompt), one message, or a list of messages."""
    value = source.take(name, (str, dict, list))
    key = source.key(name)
    if isinstance(value, str):
        return [message("user" if name == "prompt" else "assistant", value)]
    if isinstance(value, dict):
        return [_turn(source, value, key, role_tags)]
    return [_turn(source, turn, f"{key}[{i}]", role_tags) for i, turn in enumerate(value)]


def _same_turns(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> bool:
    return [(t["role"], t["content"]) for t in left] == [(t["role"], t["content"]) for t in right]


def _after(side: list[dict[str, Any]], prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A side without the prompt turns it repeats (TRL sides often hold the whole dialogue)."""
    if len(side) > len(prompt) and _same_turns(side[: len(prompt)], prompt):
        return side[len(prompt) :]
    return side


def _split_sides(
    prompt: list[dict[str, Any]], chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Prompt, chosen reply and rejected turns. Sides that repeat the prompt lose it; with
    no prompt, the turns both sides share are the prompt (TRL's implicit prompt, HH)."""
    if prompt:
        chosen, rejected = _after(chosen, prompt), _after(rejected, prompt)
    else:
        shared = 0
        limit = min(len(chosen), len(rejected)) - 1
        while shared < limit and _same_turns(
            chosen[shared : shared + 1], rejected[shared : shared + 1]
        ):
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if len(chosen) != 1 or chosen[0]["role"] != "assistant":
        roles = [turn["role"] for turn in chosen]
        raise ConversionError(
            "convert.mismatched_pair",
            f"the chosen side after the prompt is {roles}, not one assistant turn",
        )
    if not rejected or rejected[-1]["role"] != "assistant":
        roles = [turn["role"] for turn in rejected]
        raise ConversionError(
            "convert.mismatched_pair",
            f"the rejected side after the prompt is {roles}, not ending in an assistant turn",
        )
    if not any(turn["role"] != "system" for turn in prompt):
        raise ConversionError("convert.empty_conversation", "the pair has no prompt turns")
    return prompt, chosen, rejected


def _lift_system(turns: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A leading system turn of a message list becomes the record's system prompt."""
    if turns and turns[0]["role"] == "system" and turns[0]["extra"] is None:
        return turns[0]["content"], turns[1:]
    return "", turns


def _prompt_parts(source: SourceRecord, role_tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The prompt of a pairwise or kto record, as make_record arguments; None when the
    record has no prompt key (the sides hold it)."""
    if source.has("prompt"):
        system, turns = _lift_system(_side(source, "prompt", role_tags))
        return {"messages": turns, "system": system}
    for list_key, defaults, system_as in (
        ("conversations", SHAREGPT_ROLE_TAGS, "key"),
        ("messages", MESSAGES_ROLE_TAGS, "turn"),
    ):
        if source.has(list_key):
            parts = _conversation(source, role_tags, list_key, defaults, system_as)
            # The export notes of the instruction formats do not apply here.
            source.notes.clear()
            return {"messages": parts.messages, "system": parts.system, "tools": parts.tools}
    if source.has("instruction"):
        instruction = source.take("instruction")
        return {
            "messages": [message("user", instruction)],
            "system": source.optional("system", "", shown_when_empty=True),
            "context": source.optional("input", "", shown_when_empty=True),
            "tools": _tools(source),
        }
    return None


def _scores(source: SourceRecord) -> tuple[float | None, float | None]:
    for chosen_key, rejected_key in SCORE_KEYS:
        if source.has(chosen_key) and source.has(rejected_key):
            return (
                float(source.take(chosen_key, (int, float))),
                float(source.take(rejected_key, (int, float))),
            )
    return None, None


# --- the formats ------------------------------------------------------------------------


def _pairwise(
    source: SourceRecord, role_tags: Mapping[str, str], options: PreferenceOptions
) -> list[dict[str, Any]]:
    prompt = _prompt_parts(source, role_tags)
    chosen, rejected = _side(source, "chosen", role_tags), _side(source, "rejected", role_tags)
    turns, chosen, rejected = _split_sides(prompt["messages"] if prompt else [], chosen, rejected)
    if prompt is None:
        system, turns = _lift_system(turns)
        prompt = {"system": system}
    prompt = {**prompt, "messages": turns}
    return [_pair_row(prompt, chosen, rejected, _scores(source), options.margin)]


def _hh(
    source: SourceRecord, role_tags: Mapping[str, str], options: PreferenceOptions
) -> list[dict[str, Any]]:
    chosen = _transcript(source.take("chosen"), source.key("chosen"))
    rejected = _transcript(source.take("rejected"), source.key("rejected"))
    turns, chosen, rejected = _split_sides([], chosen, rejected)
    if len(rejected) != 1:
        raise ConversionError(
            "convert.mismatched_pair",
            f"the transcripts differ in {len(rejected)} turns, not only in the last reply",
        )
    return [_pair_row({"messages": turns}, chosen, rejected, (None, None), options.margin)]


def _transcript(text: str, key: str) -> list[dict[str, Any]]:
    """An HH transcript's turns: ``\\n\\nHuman: `` and ``\\n\\nAssistant: `` open each one."""
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise ConversionError(
            "convert.wrong_type", f"{key!r} is not a transcript of Human: and Assistant: turns"
        )
    return [
        message(_HH_ROLES[tag], content)
        for tag, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def _kto(
    source: SourceRecord, role_tags: Mapping[str, str], options: PreferenceOptions
) -> list[dict[str, Any]]:
    label_key = "kto_tag" if source.has("kto_tag") else "label"
    prompt = _prompt_parts(source, role_tags)
    if prompt is None:
        raise ConversionError("convert.missing_field", "no 'messages', 'conversations' or 'prompt'")
    if source.has("completion"):
        prompt["messages"] = [*prompt["messages"], *_side(source, "completion", role_tags)]
    label = source.take(label_key, bool)
    turns = prompt["messages"]
    if not turns or turns[-1]["role"] != "assistant" or len(turns) < 2:
        raise ConversionError(
            "convert.no_reply", f"the {label_key!r} needs a conversation ending in a reply"
        )
    return [{**prompt, "feedback": label}]


def _ultrafeedback(
    source: SourceRecord, role_tags: Mapping[str, str], options: PreferenceOptions
) -> list[dict[str, Any]]:
    instruction = source.take("instruction" if source.has("instruction") else "prompt")
    rated = _rated_completions(source, options.rating)
    prompt = {"messages": [message("user", instruction)]}
    candidates = [
        (best, worst)
        for best in rated
        for worst in rated
        if rated[best][1] - rated[worst][1] >= options.margin and rated[best][1] > rated[worst][1]
    ]
    if options.pairs == "best_vs_worst" or not candidates:
        # All pairs fall short: the best against the worst says why, as one reject.
        candidates = [_best_and_worst(rated)]
    return [
        _pair_row(
            prompt,
            [message("assistant", rated[best][0])],
            [message("assistant", rated[worst][0])],
            (rated[best][1], rated[worst][1]),
            options.margin,
            {
                PAIR_KEY: {
                    "chosen": _completion_meta(source, best),
                    "rejected": _completion_meta(source, worst),
                }
            },
        )
        for best, worst in candidates
    ]


def _best_and_worst(rated: dict[int, tuple[str, float]]) -> tuple[int, int]:
    """The first best and the first worst completion (two different ones when all tie)."""
    order = sorted(rated, key=lambda index: (-rated[index][1], index))
    worst = min(rated, key=lambda index: (rated[index][1], index))
    return order[0], worst if worst != order[0] else order[1]


def _rated_completions(source: SourceRecord, rating: str) -> dict[int, tuple[str, float]]:
    """Completion index -> (response, score), for the completions that have a score."""
    completions = source.take("completions", list)
    response_key = source.key("response")
    rated = {}
    for index, completion in enumerate(completions):
        where = f"completions[{index}]"
        if not isinstance(completion, dict):
            raise ConversionError("convert.wrong_type", f"{where} is a {type(completion).__name__}")
        if response_key not in completion:
            raise ConversionError("convert.missing_field", f"{where} has no {response_key!r}")
        text = _typed(completion[response_key], str, f"{where}.{response_key}")
        score = _completion_score(completion, rating)
        if score is not None:
            rated[index] = (text, score)
    if len(rated) < 2:
        raise ConversionError(
            "convert.missing_field",
            f"{len(rated)} of {len(completions)} completions have a {rating!r}; a pair needs two",
        )
    return rated


def _completion_score(completion: dict[str, Any], rating: str) -> float | None:
    if rating != "annotations":
        return _number(completion.get(rating))
    annotations = completion.get("annotations")
    if not isinstance(annotations, dict):
        return None
    ratings = [
        _number(aspect.get("Rating")) for aspect in annotations.values() if isinstance(aspect, dict)
    ]
    known = [value for value in ratings if value is not None]
    return sum(known) / len(known) if known else None


def _number(value: Any) -> float | None:
    """A score from a number or numeric text ("5"); None for "N/A", null or anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _completion_meta(source: SourceRecord, index: int) -> dict[str, Any]:
    completion = source.value[source.key("completions")][index]
    rest = {key: value for key, value in completion.items() if key != source.key("response")}
    return {"index": index, **rest}


_CONVERTERS = {
    "pairwise": _pairwise,
    "ultrafeedback": _ultrafeedback,
    "hh": _hh,
    "kto": _kto,
}
