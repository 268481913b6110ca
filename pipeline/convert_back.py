"""Back-conversion: canonical rows to alpaca, sharegpt or OpenAI messages records.

``from_canonical(to_canonical(x, f), f) == x`` for those three formats: unconsumed keys come
back from ``meta``, message keys from each turn's ``extra``, and the way optional keys were
written (absent, null, empty, tools as a list, system as a key or a leading turn) from the
notes ``to_canonical`` left in ``meta["_roundtrip"]``. This module builds on
``pipeline.convert``'s vocabulary; conversion never imports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.convert import (
    MESSAGES_ROLE_TAGS,
    ROUNDTRIP_KEY,
    SHADOWED_KEY,
    SHAREGPT_ROLE_TAGS,
    ConversionError,
    preferred_tags,
)
from pipeline.schema import message

Row = Mapping[str, Any]


def from_canonical(
    row: Mapping[str, Any], fmt: str, *, role_tags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The source-format record of a canonical row (alpaca, sharegpt, messages).

    The inverse of ``to_canonical`` for records it made; rows from other formats export too,
    with ``context`` joined to the last user turn where the target has no place for it.
    """
    if fmt not in _EXPORTERS:
        raise ConversionError(
            "convert.unknown_format", f"cannot export to {fmt!r}; one of {sorted(_EXPORTERS)}"
        )
    meta = json.loads(row["meta"] or "{}")
    notes = meta.pop(ROUNDTRIP_KEY, {})
    meta.update(meta.pop(SHADOWED_KEY, {}))
    return {**_EXPORTERS[fmt](row, notes, role_tags or {}), **meta}


def _emit(out: dict[str, Any], name: str, value: Any, notes: dict[str, Any], shown: bool) -> None:
    """Write an optional key the way the source had it: absent, null, empty or set."""
    if name in notes.get("null", ()):
        out[name] = None
    elif name not in notes.get("absent", ()) and (value or shown or name in notes.get("empty", ())):
        out[name] = value


def _emit_tools(out: dict[str, Any], tools: str, notes: dict[str, Any]) -> None:
    if notes.get("tools_json"):
        out["tools"] = json.loads(tools)
    else:
        _emit(out, "tools", tools, notes, shown=False)


def _to_alpaca(row: Row, notes: dict[str, Any], role_tags: Mapping[str, str]) -> dict[str, Any]:
    turns = row["messages"]
    expected = ("user", "assistant")
    if (
        len(turns) < 2
        or len(turns) % 2
        or any(
            turn["role"] != expected[index % 2] or turn["extra"] for index, turn in enumerate(turns)
        )
    ):
        raise ConversionError(
            "convert.unknown_role", "alpaca holds only user/assistant pairs without message extras"
        )
    out: dict[str, Any] = {"instruction": turns[-2]["content"]}
    _emit(out, "input", row["context"], notes, shown=True)
    out["output"] = turns[-1]["content"]
    _emit(out, "system", row["system"], notes, shown=False)
    pairs = zip(turns[:-2:2], turns[1:-2:2], strict=True)
    history = [[query["content"], answer["content"]] for query, answer in pairs]
    _emit(out, "history", history, notes, shown=False)
    _emit_tools(out, row["tools"], notes)
    return out


def _to_sharegpt(row: Row, notes: dict[str, Any], role_tags: Mapping[str, str]) -> dict[str, Any]:
    return _to_conversation(row, notes, role_tags, ("conversations", "from", "value"), "key")


def _to_messages(row: Row, notes: dict[str, Any], role_tags: Mapping[str, str]) -> dict[str, Any]:
    return _to_conversation(row, notes, role_tags, ("messages", "role", "content"), "turn")


def _to_conversation(
    row: Mapping[str, Any],
    notes: dict[str, Any],
    role_tags: Mapping[str, str],
    keys: tuple[str, str, str],
    system_as: str,
) -> dict[str, Any]:
    list_key, role_key, content_key = keys
    defaults = SHAREGPT_ROLE_TAGS if list_key == "conversations" else MESSAGES_ROLE_TAGS
    preferred = preferred_tags(defaults, role_tags)
    turns = [
        _export_turn(turn, preferred, role_key, content_key)
        for turn in _with_context(row["messages"], row["context"])
    ]
    out: dict[str, Any] = {list_key: turns}
    system = row["system"]
    if notes.get("system_as", system_as) == "key":
        _emit(out, "system", system, notes, shown=False)
    elif system or "system" in notes.get("empty", ()):
        turns.insert(0, {role_key: preferred["system"], content_key: system})
    _emit_tools(out, row["tools"], notes)
    return out


def _export_turn(
    turn: Mapping[str, Any], preferred: dict[str, str], role_key: str, content_key: str
) -> dict[str, Any]:
    if turn["role"] not in preferred:
        raise ConversionError("convert.unknown_role", f"no tag for role {turn['role']!r}")
    out = {role_key: preferred[turn["role"]], content_key: turn["content"]}
    if turn["extra"]:
        extra = json.loads(turn["extra"])
        for key in extra.pop("_absent", ()):
            out.pop(key, None)
        out.update(extra)
    return out


def _with_context(turns: list[dict[str, Any]], context: str) -> list[dict[str, Any]]:
    """Turns with ``context`` joined to the last user turn, as prompt renderers do."""
    if not context:
        return turns
    last_user = max((i for i, turn in enumerate(turns) if turn["role"] == "user"), default=None)
    if last_user is None:
        return [message("user", context), *turns]
    joined = {**turns[last_user], "content": f"{turns[last_user]['content']}\n\n{context}"}
    return [*turns[:last_user], joined, *turns[last_user + 1 :]]


_EXPORTERS = {"alpaca": _to_alpaca, "sharegpt": _to_sharegpt, "messages": _to_messages}
