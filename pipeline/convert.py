"""Format converters: one input record to the canonical schema, and back for export.

Direct formats map fields: alpaca, sharegpt, messages (OpenAI), prompt_completion, dolly,
self_instruct (Self-Instruct's seed tasks).
Template formats (qa, classification, text) build the conversation from FLAN-style templates
through a ``TemplateRenderer`` (``pipeline.templates``); this module only reads their fields.

Nothing is lost: top-level keys a converter does not consume travel in ``meta``, message keys
other than role and content travel in the message's ``extra``, and the little that the
canonical form cannot say by itself (a missing ``input`` key, a null ``system``, tools given
as a list) is noted in ``meta["_roundtrip"]``. That is what makes
``from_canonical(to_canonical(x, f), f) == x`` hold for alpaca, sharegpt and messages
(``from_canonical`` is in ``pipeline.convert_back``, which builds on this module).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from pipeline.schema import make_record, message

FORMATS = (
    "alpaca",
    "sharegpt",
    "messages",
    "prompt_completion",
    "dolly",
    "text",
    "qa",
    "classification",
    "self_instruct",
)
# Feedback formats: converted by ``pipeline.convert_pairs`` (one source record may give
# several pairs); only their names and signatures live here, for detection.
PAIR_FORMATS = ("pairwise", "ultrafeedback", "hh", "kto")
TEMPLATE_FORMATS = ("text", "qa", "classification")
ROUNDTRIP_FORMATS = ("alpaca", "sharegpt", "messages")
CONVERT_REASONS = (
    "convert.missing_field",
    "convert.wrong_type",
    "convert.empty_conversation",
    "convert.unknown_role",
    "convert.unknown_format",
    "convert.text_too_short",
    "convert.no_reply",
    "convert.mismatched_pair",
)
SHAREGPT_ROLE_TAGS = {
    "human": "user",
    "gpt": "assistant",
    "system": "system",
    "function_call": "tool_call",
    "observation": "tool",
}
MESSAGES_ROLE_TAGS = {
    "system": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
    "developer": "system",
}
# Checked before the instruction formats, so that a pair's or a label's extra keys win over
# the conversation they hold; a shape test settles the two key sets that two formats share.
_PAIR_SIGNATURES = (
    ("ultrafeedback", ("instruction", "completions")),
    ("ultrafeedback", ("prompt", "completions")),
    ("pairwise", ("conversations", "chosen", "rejected")),
    ("pairwise", ("messages", "chosen", "rejected")),
    ("pairwise", ("prompt", "chosen", "rejected")),
    ("pairwise", ("instruction", "chosen", "rejected")),
    ("hh", ("chosen", "rejected")),  # transcripts as text; TRL's implicit prompt has lists
    ("pairwise", ("chosen", "rejected")),
    ("kto", ("messages", "kto_tag")),
    ("kto", ("conversations", "kto_tag")),
    ("kto", ("messages", "label")),  # only with a true/false label
    ("kto", ("prompt", "completion", "label")),  # TRL's unpaired preference, likewise
)
# Detected on a full match only, so that a record with some of these keys is still reported
# against the common formats it is more likely meant to be (an alpaca record missing output).
_WHOLE_SIGNATURES = (("self_instruct", ("instruction", "instances")),)
ROUNDTRIP_KEY = "_roundtrip"
SHADOWED_KEY = "_shadowed"
_SIGNATURES = (
    ("sharegpt", ("conversations",)),
    ("messages", ("messages",)),
    ("alpaca", ("instruction", "output")),
    ("dolly", ("instruction", "response")),
    ("prompt_completion", ("prompt", "completion")),
    ("qa", ("question", "answers")),
    ("qa", ("question", "answer")),
    ("classification", ("text", "label")),
    ("text", ("text",)),
)


class ConversionError(ValueError):
    """A record that does not fit its format; ``reason`` is one of CONVERT_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in CONVERT_REASONS:
            raise RuntimeError(f"{reason!r} is not in CONVERT_REASONS")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Rendered(NamedTuple):
    prompt: str
    response: str
    template_id: str
    task: str
    language: str
    meta: dict[str, Any]  # source data the prompt does not show (extra answers, a label index)


class TemplateRenderer(Protocol):
    """Reads a template format's fields from the record and renders one of its templates."""

    def render(self, fmt: str, source: SourceRecord, language: str) -> Rendered: ...


@dataclass
class _Parts:
    messages: list[dict[str, Any]]
    system: str = ""
    context: str = ""
    tools: str = ""
    task: str = ""
    language: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class SourceRecord:
    """A source record read through the user's column names; remembers what it consumed."""

    def __init__(self, value: dict[str, Any], columns: Mapping[str, str]) -> None:
        self.value, self.columns, self.consumed = value, columns, set()
        self.notes: dict[str, Any] = {}

    def key(self, name: str) -> str:
        return self.columns.get(name, name)

    def has(self, name: str) -> bool:
        return self.key(name) in self.value

    def take(self, name: str, kind: type | tuple[type, ...] = str) -> Any:
        key = self.key(name)
        if key not in self.value:
            raise ConversionError("convert.missing_field", f"no {key!r} field")
        self.consumed.add(key)
        return _typed(self.value[key], kind, key)

    def optional(self, name: str, empty: Any, shown_when_empty: bool) -> Any:
        """An optional field; notes absence, null or emptiness where export would differ."""
        key = self.key(name)
        if key not in self.value:
            if shown_when_empty:
                self.note("absent", name)
            return empty
        self.consumed.add(key)
        if self.value[key] is None:
            self.note("null", name)
            return empty
        value = _typed(self.value[key], type(empty), key)
        if not value and not shown_when_empty:
            self.note("empty", name)
        return value

    def note(self, kind: str, name: str) -> None:
        self.notes.setdefault(kind, []).append(name)

    def rest(self) -> dict[str, Any]:
        return {key: value for key, value in self.value.items() if key not in self.consumed}


def _typed(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        detail = f"{key!r} is {type(value).__name__}, not {expected}"
        raise ConversionError("convert.wrong_type", detail)
    return value


def detect_format(value: dict[str, Any] | str, columns: Mapping[str, str] | None = None) -> str:
    """The format a record's keys point to, read through ``columns``.

    A record that has some of a format's keys (an ``instruction`` without ``output``) is
    reported as missing the rest, which says more than "unknown format".
    """
    if isinstance(value, str):
        return "text"
    columns = columns or {}
    for fmt, needed in _PAIR_SIGNATURES:
        names = [columns.get(name, name) for name in needed]
        if all(name in value for name in names) and _shape_fits(fmt, value, names):
            return fmt
    for fmt, needed in _WHOLE_SIGNATURES:
        if all(columns.get(name, name) in value for name in needed):
            return fmt
    keys = [[columns.get(name, name) for name in needed] for _, needed in _SIGNATURES]
    present = [sum(key in value for key in needed) for needed in keys]
    for (fmt, _), count, needed in zip(_SIGNATURES, present, keys, strict=True):
        if count == len(needed):
            return fmt
    best = present.index(max(present))
    seen = ", ".join(sorted(map(str, value))[:20]) or "none"
    if present[best]:
        missing = [key for key in keys[best] if key not in value]
        detail = f"no {missing[0]!r}: the keys ({seen}) look like {_SIGNATURES[best][0]}"
        raise ConversionError("convert.missing_field", detail)
    raise ConversionError(
        "convert.unknown_format", f"no format fits the keys ({seen}); set `format` or `columns`"
    )


def _shape_fits(fmt: str, value: dict[str, Any], names: list[str]) -> bool:
    """The value test of the pair signatures whose keys another format shares."""
    if fmt == "hh":
        return isinstance(value[names[0]], str)
    if fmt == "kto" and names[-1] != "kto_tag":
        return isinstance(value[names[-1]], bool)
    return True


def to_canonical(
    value: dict[str, Any] | str,
    fmt: str,
    *,
    columns: Mapping[str, str] | None = None,
    role_tags: Mapping[str, str] | None = None,
    source_file: str = "",
    source_line: int = 0,
    task: str = "",
    domain: str = "",
    language: str = "",
    templates: TemplateRenderer | None = None,
) -> dict[str, Any]:
    """One FLOW row (``schema.make_record``) from one input record, or ConversionError."""
    if fmt not in FORMATS:
        raise ConversionError("convert.unknown_format", f"{fmt!r} is not one of {FORMATS}")
    columns = columns or {}
    if isinstance(value, str):
        value = {columns.get("text", "text"): value}
    if not isinstance(value, dict):
        raise ConversionError("convert.wrong_type", f"a record is a {type(value).__name__}")
    source = SourceRecord(value, columns)
    if fmt in TEMPLATE_FORMATS:
        if templates is None:
            raise TypeError(f"format {fmt!r} needs a TemplateRenderer (templates=...)")
        parts = _templated(source, fmt, templates, language)
    else:
        parts = _CONVERTERS[fmt](source, role_tags or {})
    return make_record(
        messages=parts.messages,
        system=parts.system,
        context=parts.context,
        tools=parts.tools,
        source_file=source_file,
        source_format=fmt,
        source_line=source_line,
        task=parts.task or task,
        domain=domain,
        language=parts.language or language,
        meta=_meta(source.rest(), {**parts.meta, **_roundtrip(fmt, source.notes)}),
    )


def _roundtrip(fmt: str, notes: dict[str, Any]) -> dict[str, Any]:
    # Only formats with an exporter need the notes; others would carry them for nothing.
    return {ROUNDTRIP_KEY: notes} if notes and fmt in ROUNDTRIP_FORMATS else {}


def _meta(rest: dict[str, Any], reserved: dict[str, Any]) -> dict[str, Any]:
    """Unconsumed keys plus bookkeeping; a source key that clashes is kept aside, not lost."""
    meta = dict(rest)
    for key, value in reserved.items():
        if key in meta:
            meta.setdefault(SHADOWED_KEY, {})[key] = meta[key]
        meta[key] = value
    return meta


def _alpaca(source: SourceRecord, role_tags: Mapping[str, str]) -> _Parts:
    instruction, output = source.take("instruction"), source.take("output")
    context = source.optional("input", "", shown_when_empty=True)
    system = source.optional("system", "", shown_when_empty=False)
    history = source.optional("history", [], shown_when_empty=False)
    messages = []
    for index, pair in enumerate(history):
        is_pair = isinstance(pair, list) and len(pair) == 2
        if not (is_pair and all(isinstance(turn, str) for turn in pair)):
            detail = f"history[{index}] is not a [query, answer] pair of text"
            raise ConversionError("convert.wrong_type", detail)
        messages += [message("user", pair[0]), message("assistant", pair[1])]
    messages += [message("user", instruction), message("assistant", output)]
    return _Parts(messages, system=system, context=context, tools=_tools(source))


def _tools(source: SourceRecord) -> str:
    raw = source.value.get(source.key("tools"))
    if isinstance(raw, (list, dict)):
        # Canonical tools are JSON text; remember the source held the structure itself.
        source.consumed.add(source.key("tools"))
        source.notes["tools_json"] = True
        return json.dumps(raw, ensure_ascii=False)
    return source.optional("tools", "", shown_when_empty=False)


def _dolly(source: SourceRecord, role_tags: Mapping[str, str]) -> _Parts:
    instruction, response = source.take("instruction"), source.take("response")
    context = source.optional("context", "", shown_when_empty=True)
    category = source.optional("category", "", shown_when_empty=True)
    messages = [message("user", instruction), message("assistant", response)]
    return _Parts(messages, context=context, task=category)


def _self_instruct(source: SourceRecord, role_tags: Mapping[str, str]) -> _Parts:
    """A Self-Instruct seed task: the instruction, with its first instance's input as context
    and output as the reply. ``id``, ``name`` and ``is_classification`` stay in meta as
    unconsumed keys; further instances go there too, as ``instances``."""
    instruction = source.take("instruction")
    instances = source.take("instances", list)
    if not instances:
        raise ConversionError("convert.no_reply", f"{source.key('instances')!r} is empty")
    first = instances[0]
    where = f"{source.key('instances')}[0]"
    if not isinstance(first, dict):
        raise ConversionError("convert.wrong_type", f"{where} is a {type(first).__name__}")
    output = _typed(_required(first, "output", where), str, f"{where}.output")
    context = _typed(first.get("input") or "", str, f"{where}.input")
    meta = {"instances": instances[1:]} if len(instances) > 1 else {}
    messages = [message("user", instruction), message("assistant", output)]
    return _Parts(messages, context=context, meta=meta)


def _prompt_completion(source: SourceRecord, role_tags: Mapping[str, str]) -> _Parts:
    prompt, completion = source.take("prompt"), source.take("completion")
    return _Parts([message("user", prompt), message("assistant", completion)])


def _sharegpt(source: SourceRecord, role_tags: Mapping[str, str]) -> _Parts:
    return _conversation(source, role_tags, "conversations", SHAREGPT_ROLE_TAGS, system_as="key")


def _messages(source: SourceRecord, role_tags: Mapping[str, str]) -> _Parts:
    return _conversation(source, role_tags, "messages", MESSAGES_ROLE_TAGS, system_as="turn")


def _conversation(
    source: SourceRecord,
    role_tags: Mapping[str, str],
    list_key: str,
    defaults: dict[str, str],
    system_as: str,
) -> _Parts:
    """sharegpt and messages: a list of turns, an optional system (key or leading turn)."""
    tags = {**defaults, **role_tags}
    turns = source.take(list_key, list)
    read_turn = _sharegpt_turn if list_key == "conversations" else _messages_turn
    preferred = preferred_tags(defaults, role_tags)
    messages = [
        read_turn(source, turn, f"{list_key}[{i}]", tags, preferred) for i, turn in enumerate(turns)
    ]
    has_system_key = source.has("system")
    system = source.optional("system", "", shown_when_empty=False)
    first = messages[0] if messages else None
    if not has_system_key and first and first["role"] == "system" and first["extra"] is None:
        messages, system = messages[1:], first["content"]
        if system_as != "turn":
            source.notes["system_as"] = "turn"
        if not system:
            source.note("empty", "system")
    elif has_system_key and system_as != "key":
        source.notes["system_as"] = "key"
    if not any(turn["role"] != "system" for turn in messages):
        raise ConversionError("convert.empty_conversation", f"{list_key!r} has no turns")
    return _Parts(messages, system=system, tools=_tools(source))


def preferred_tags(defaults: Mapping[str, str], role_tags: Mapping[str, str]) -> dict[str, str]:
    """For each canonical role, the tag export writes: the user's own tag first."""
    preferred: dict[str, str] = {}
    for tag, role in [*role_tags.items(), *{**defaults, **role_tags}.items()]:
        preferred.setdefault(role, tag)
    return preferred


def _role(turn: Any, where: str, role_key: str, tags: Mapping[str, str]) -> tuple[str, str]:
    if not isinstance(turn, dict):
        raise ConversionError("convert.wrong_type", f"{where} is a {type(turn).__name__}")
    tag = _typed(_required(turn, role_key, where), str, f"{where}.{role_key}")
    if tag not in tags:
        raise ConversionError(
            "convert.unknown_role",
            f"{where}.{role_key} is {tag!r}, not one of {sorted(tags)}; map it with role_tags",
        )
    return tag, tags[tag]


def _required(turn: dict[str, Any], key: str, where: str) -> Any:
    if key not in turn:
        raise ConversionError("convert.missing_field", f"{where} has no {key!r}")
    return turn[key]


def _sharegpt_turn(
    source: SourceRecord,
    turn: Any,
    where: str,
    tags: Mapping[str, str],
    preferred: dict[str, str],
) -> dict[str, Any]:
    role_key, content_key = source.key("from"), source.key("value")
    tag, role = _role(turn, where, role_key, tags)
    content = _typed(_required(turn, content_key, where), str, f"{where}.{content_key}")
    extra = {key: value for key, value in turn.items() if key not in (role_key, content_key)}
    if tag != preferred[role]:
        extra[role_key] = tag
    return message(role, content, extra)


def _messages_turn(
    source: SourceRecord,
    turn: Any,
    where: str,
    tags: Mapping[str, str],
    preferred: dict[str, str],
) -> dict[str, Any]:
    role_key, content_key = source.key("role"), source.key("content")
    tag, role = _role(turn, where, role_key, tags)
    extra = {key: value for key, value in turn.items() if key not in (role_key, content_key)}
    if tag != preferred[role]:
        extra[role_key] = tag
    content = turn.get(content_key)
    if content_key not in turn:
        extra["_absent"] = [content_key]
    elif isinstance(content, list):
        extra[content_key] = content
        content = "\n".join(_part_text(part) for part in content if _part_text(part))
    elif content is None:
        extra[content_key] = None
    elif not isinstance(content, str):
        kind = type(content).__name__
        raise ConversionError("convert.wrong_type", f"{where}.{content_key} is {kind}")
    return message(role, content or "", extra)


def _part_text(part: Any) -> str:
    """The text of one OpenAI content part ({"type": "text", "text": ...}); images have none."""
    if isinstance(part, str):
        return part
    text = part.get("text") if isinstance(part, dict) else None
    return text if isinstance(text, str) else ""


def _templated(
    source: SourceRecord, fmt: str, templates: TemplateRenderer, language: str
) -> _Parts:
    rendered = templates.render(fmt, source, language)
    messages = [message("user", rendered.prompt), message("assistant", rendered.response)]
    meta = {"template": rendered.template_id, **rendered.meta}
    return _Parts(messages, task=rendered.task, language=rendered.language, meta=meta)


_CONVERTERS: dict[str, Callable[[SourceRecord, Mapping[str, str]], _Parts]] = {
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "messages": _messages,
    "prompt_completion": _prompt_completion,
    "dolly": _dolly,
    "self_instruct": _self_instruct,
}
