"""Converters: round trips, detection, columns, role tags and each conversion reason."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from pipeline.convert import (
    CONVERT_REASONS,
    FORMATS,
    ConversionError,
    detect_format,
    to_canonical,
)
from pipeline.convert_back import from_canonical
from pipeline.schema import QUARANTINE_PREFIXES, rows_to_table

ALPACA = [
    {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
    {"instruction": "Summarise.", "input": "A long text.", "output": "Short."},
    {"instruction": "No input key.", "output": "Fine."},
    {"instruction": "x", "input": None, "output": "y", "system": None},
    {"instruction": "x", "input": "", "output": "y", "system": "Be terse.", "id": 7},
    {"instruction": "x", "input": "", "output": "y", "system": "", "history": []},
    {
        "instruction": "And now?",
        "input": "",
        "output": "Three.",
        "history": [["One?", "One."], ["Two?", "Two."]],
        "source": {"name": "demo", "n": [1]},
    },
    {"instruction": "", "input": "Only input.", "output": "", "tools": '[{"name": "f"}]'},
    {"instruction": "t", "output": "o", "tools": [{"name": "f", "parameters": {}}]},
    {"instruction": "t", "output": "o", "_roundtrip": "a user key that clashes", "template": 1},
    {"instruction": "中文指令", "input": "输入", "output": "输出 😀"},
]

SHAREGPT = [
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
    {
        "conversations": [
            {"from": "human", "value": "weather?"},
            {"from": "function_call", "value": '{"name": "weather"}'},
            {"from": "observation", "value": '{"temp": 20}'},
            {"from": "gpt", "value": "20 degrees"},
        ],
        "tools": '[{"name": "weather"}]',
        "system": "You call tools.",
    },
    {
        "conversations": [
            {"from": "system", "value": "Leading system turn."},
            {"from": "human", "value": "q"},
            {"from": "gpt", "value": "a", "weight": 0.0},
        ],
    },
    {
        "conversations": [{"from": "system", "value": ""}, {"from": "human", "value": "q"}],
        "chosen": {"from": "gpt", "value": "good"},
        "rejected": {"from": "gpt", "value": "bad"},
    },
    {
        "system": "",
        "conversations": [
            {"from": "system", "value": "a second system turn stays a turn"},
            {"from": "human", "value": "q"},
            {"from": "gpt", "value": "a"},
        ],
        "tools": None,
    },
]

MESSAGES = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ],
        "kto_tag": True,
    },
    {
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "20C"},
            {"role": "assistant", "content": "It is 20C."},
        ],
        "tools": [{"type": "function", "function": {"name": "weather"}}],
    },
    {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                ],
            },
            {"role": "assistant", "content": "A cat.", "name": "bot"},
        ],
    },
    {
        "messages": [
            {"role": "developer", "content": "Developer instructions."},
            {"role": "user", "content": "q"},
            {"role": "function", "name": "f", "content": "result"},
            {"role": "assistant", "tool_calls": []},
        ],
    },
    {
        "system": "Top-level system key.",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    },
    {
        "messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ],
    },
]


def turns(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [(turn["role"], turn["content"]) for turn in row["messages"]]


def round_trip(value: dict[str, Any], fmt: str, **options: Any) -> dict[str, Any]:
    row = to_canonical(value, fmt, source_file="f.jsonl", source_line=3, **options)
    rows_to_table([row])  # every converted row fits the FLOW schema
    return from_canonical(row, fmt, role_tags=options.get("role_tags"))


@pytest.mark.parametrize("value", ALPACA)
def test_alpaca_round_trip(value: dict[str, Any]) -> None:
    assert round_trip(value, "alpaca") == value


@pytest.mark.parametrize("value", SHAREGPT)
def test_sharegpt_round_trip(value: dict[str, Any]) -> None:
    assert round_trip(value, "sharegpt") == value


@pytest.mark.parametrize("value", MESSAGES)
def test_messages_round_trip(value: dict[str, Any]) -> None:
    assert round_trip(value, "messages") == value


ABSENT = object()
OPTIONAL = {
    "system": [ABSENT, None, "", "Be brief."],
    "tools": [ABSENT, None, "", '[{"name": "f"}]', [], [{"name": "f"}]],
}


def variants(base: dict[str, Any], optional: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of optional keys being absent, null, empty or set."""
    shapes = []
    for states in itertools.product(*optional.values()):
        value = dict(base)
        value.update({k: v for k, v in zip(optional, states, strict=True) if v is not ABSENT})
        shapes.append(value)
    return shapes


def test_alpaca_round_trips_every_shape_of_optional_keys() -> None:
    optional = {
        **OPTIONAL,
        "input": [ABSENT, None, "", "ctx"],
        "history": [ABSENT, None, [], [["q", "a"], ["q2", ""]]],
    }
    for value in variants({"instruction": "i", "output": "o", "n": 1}, optional):
        assert round_trip(value, "alpaca") == value


def test_conversation_formats_round_trip_every_shape() -> None:
    for leading, extra in itertools.product([False, True], [{}, {"weight": 1}]):
        turns = [{"from": "human", "value": "q", **extra}, {"from": "gpt", "value": "a"}]
        if leading:
            turns.insert(0, {"from": "system", "value": "lead"})
        for value in variants({"conversations": turns}, OPTIONAL):
            assert round_trip(value, "sharegpt") == value
    contents = ["text", None, [{"type": "text", "text": "t"}], ABSENT]
    for leading, content in itertools.product([False, True], contents):
        reply = {"role": "assistant", "tool_calls": []}
        if content is not ABSENT:
            reply["content"] = content
        turns = [{"role": "user", "content": "q"}, reply]
        if leading:
            turns.insert(0, {"role": "system", "content": "lead"})
        for value in variants({"messages": turns}, OPTIONAL):
            assert round_trip(value, "messages") == value


def test_alpaca_canonical_fields() -> None:
    row = to_canonical(ALPACA[6], "alpaca", source_file="f", source_line=2, domain="math")
    assert [(t["role"], t["content"]) for t in row["messages"]] == [
        ("user", "One?"),
        ("assistant", "One."),
        ("user", "Two?"),
        ("assistant", "Two."),
        ("user", "And now?"),
        ("assistant", "Three."),
    ]
    assert row["source_format"] == "alpaca" and row["source_line"] == 2 and row["domain"] == "math"
    assert json.loads(row["meta"]) == {"source": {"name": "demo", "n": [1]}}
    assert row["drop_reason"] is None and len(row["id"]) == 32
    with_input = to_canonical(ALPACA[1], "alpaca")
    assert with_input["context"] == "A long text."
    assert with_input["messages"][0]["content"] == "Summarise."


def test_sharegpt_canonical_fields() -> None:
    row = to_canonical(SHAREGPT[1], "sharegpt")
    assert [t["role"] for t in row["messages"]] == ["user", "tool_call", "tool", "assistant"]
    assert row["system"] == "You call tools." and row["tools"] == '[{"name": "weather"}]'
    lifted = to_canonical(SHAREGPT[2], "sharegpt")
    assert lifted["system"] == "Leading system turn."
    assert json.loads(lifted["messages"][1]["extra"]) == {"weight": 0.0}


def test_messages_canonical_fields() -> None:
    row = to_canonical(MESSAGES[2], "messages")
    call = row["messages"][1]
    assert call["role"] == "assistant" and call["content"] == ""
    assert json.loads(call["extra"])["tool_calls"][0]["id"] == "c1"
    assert json.loads(row["tools"]) == MESSAGES[2]["tools"]
    parts = to_canonical(MESSAGES[3], "messages")
    assert parts["messages"][0]["content"] == "What is this?"
    assert to_canonical(MESSAGES[1], "messages")["system"] == "Be kind."
    assert json.loads(to_canonical(MESSAGES[1], "messages")["meta"]) == {"kto_tag": True}


def test_prompt_completion_and_dolly() -> None:
    row = to_canonical({"prompt": "p", "completion": "c", "score": 1}, "prompt_completion")
    assert turns(row) == [("user", "p"), ("assistant", "c")]
    assert json.loads(row["meta"]) == {"score": 1}
    dolly = {"instruction": "i", "context": "ctx", "response": "r", "category": "open_qa"}
    row = to_canonical(dolly, "dolly", task="ignored when the record names one")
    assert row["task"] == "open_qa" and row["context"] == "ctx" and row["meta"] == "{}"
    assert to_canonical({"instruction": "i", "response": "r"}, "dolly", task="t")["task"] == "t"


def test_identical_content_gets_identical_ids() -> None:
    one = to_canonical({"instruction": "a", "output": "b", "k": 1}, "alpaca", source_line=1)
    two = to_canonical(
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
        "sharegpt",
    )
    assert one["id"] == two["id"]


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ({"conversations": [], "system": "s"}, "sharegpt"),
        ({"conversations": [], "instruction": "i", "output": "o"}, "sharegpt"),
        ({"messages": [{"role": "user", "content": "x"}]}, "messages"),
        ({"instruction": "i", "input": "", "output": "o"}, "alpaca"),
        ({"instruction": "i", "context": "", "response": "r", "category": "c"}, "dolly"),
        ({"prompt": "p", "completion": "c"}, "prompt_completion"),
        ({"question": "q", "answers": ["a"]}, "qa"),
        ({"question": "q", "answer": "a"}, "qa"),
        ({"text": "t", "label": "l"}, "classification"),
        ({"text": "t", "meta": 1}, "text"),
        ("a paragraph of a text file", "text"),
    ],
)
def test_detect_format(value: Any, fmt: str) -> None:
    assert detect_format(value) == fmt


def test_detect_format_names_the_keys_it_saw() -> None:
    with pytest.raises(ConversionError) as caught:
        detect_format({"instances": [], "name": "x"})
    assert caught.value.reason == "convert.unknown_format"
    assert "instances, name" in caught.value.detail


def test_detect_format_reports_a_partial_match_as_missing_fields() -> None:
    with pytest.raises(ConversionError) as caught:
        detect_format({"instruction": "What is the capital of Canada?", "input": ""})
    assert caught.value.reason == "convert.missing_field"
    assert "'output'" in caught.value.detail and "alpaca" in caught.value.detail
    with pytest.raises(ConversionError, match="'answers'"):
        detect_format({"question": "q?", "id": 1})


def test_custom_columns() -> None:
    value = {"prompt_text": "Q?", "answer_text": "A.", "note": "kept"}
    columns = {"instruction": "prompt_text", "output": "answer_text"}
    assert detect_format(value, columns) == "alpaca"
    row = to_canonical(value, "alpaca", columns=columns)
    assert [t["content"] for t in row["messages"]] == ["Q?", "A."]
    assert json.loads(row["meta"]) == {"note": "kept", "_roundtrip": {"absent": ["input"]}}
    dialog = {"dialog": [{"speaker": "human", "text": "hi"}, {"speaker": "gpt", "text": "yo"}]}
    columns = {"conversations": "dialog", "from": "speaker", "value": "text"}
    row = to_canonical(dialog, "sharegpt", columns=columns)
    assert turns(row) == [("user", "hi"), ("assistant", "yo")]


def test_role_tags_add_to_the_defaults_and_round_trip() -> None:
    value = {
        "conversations": [
            {"from": "user", "value": "hi"},
            {"from": "bot", "value": "yo"},
            {"from": "human", "value": "again"},
            {"from": "gpt", "value": "ok"},
        ]
    }
    role_tags = {"user": "user", "bot": "assistant"}
    row = to_canonical(value, "sharegpt", role_tags=role_tags)
    assert [t["role"] for t in row["messages"]] == ["user", "assistant", "user", "assistant"]
    assert round_trip(value, "sharegpt", role_tags=role_tags) == value
    row = to_canonical(SHAREGPT[0], "sharegpt")
    exported = from_canonical(row, "sharegpt", role_tags=role_tags)
    assert [turn["from"] for turn in exported["conversations"]] == ["user", "bot"]


def test_cross_format_export() -> None:
    row = to_canonical(ALPACA[1], "alpaca")
    messages = from_canonical(row, "messages")
    assert messages["messages"][0] == {"role": "user", "content": "Summarise.\n\nA long text."}
    sharegpt = from_canonical(to_canonical(MESSAGES[1], "messages"), "sharegpt")
    assert sharegpt["system"] == "Be kind." and sharegpt["kto_tag"] is True
    with pytest.raises(ConversionError, match="alpaca holds only"):
        from_canonical(to_canonical(SHAREGPT[1], "sharegpt"), "alpaca")
    with pytest.raises(ConversionError) as caught:
        from_canonical(row, "dolly")
    assert caught.value.reason == "convert.unknown_format"


@pytest.mark.parametrize(
    ("value", "fmt", "reason", "detail"),
    [
        ({"instruction": "i"}, "alpaca", "convert.missing_field", "'output'"),
        (
            {"instruction": "i", "output": ["a", "b"]},
            "alpaca",
            "convert.wrong_type",
            "'output' is list",
        ),
        ({"instruction": 3, "output": "o"}, "alpaca", "convert.wrong_type", "'instruction' is int"),
        (
            {"instruction": "i", "output": "o", "history": [["q"]]},
            "alpaca",
            "convert.wrong_type",
            "history[0]",
        ),
        (
            {"instruction": "i", "output": "o", "input": 5},
            "alpaca",
            "convert.wrong_type",
            "'input'",
        ),
        ({"conversations": []}, "sharegpt", "convert.empty_conversation", "no turns"),
        (
            {"conversations": [{"from": "system", "value": "s"}]},
            "sharegpt",
            "convert.empty_conversation",
            "no turns",
        ),
        ({"conversations": "hi"}, "sharegpt", "convert.wrong_type", "'conversations' is str"),
        ({"conversations": ["hi"]}, "sharegpt", "convert.wrong_type", "conversations[0]"),
        (
            {"conversations": [{"from": "robot", "value": "x"}]},
            "sharegpt",
            "convert.unknown_role",
            "'robot'",
        ),
        ({"conversations": [{"value": "x"}]}, "sharegpt", "convert.missing_field", "'from'"),
        (
            {"conversations": [{"from": "gpt", "value": None}]},
            "sharegpt",
            "convert.wrong_type",
            "conversations[0].value",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages",
            "convert.wrong_type",
            "content",
        ),
        (
            {"messages": [{"role": "narrator", "content": "x"}]},
            "messages",
            "convert.unknown_role",
            "narrator",
        ),
        ({"prompt": "p"}, "prompt_completion", "convert.missing_field", "'completion'"),
        ({"prompt": "p", "completion": "c"}, "yaml", "convert.unknown_format", "'yaml'"),
        ("plain text", "alpaca", "convert.missing_field", "'instruction'"),
    ],
)
def test_conversion_errors(value: Any, fmt: str, reason: str, detail: str) -> None:
    with pytest.raises(ConversionError) as caught:
        to_canonical(value, fmt)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_template_formats_need_a_renderer() -> None:
    with pytest.raises(TypeError, match="TemplateRenderer"):
        to_canonical({"text": "t"}, "text")


def test_vocabularies() -> None:
    assert all(reason.startswith(QUARANTINE_PREFIXES) for reason in CONVERT_REASONS)
    assert set(FORMATS) >= {"alpaca", "sharegpt", "messages", "prompt_completion", "dolly"}
    with pytest.raises(RuntimeError):
        ConversionError("convert.made_up", "x")
