"""Ingest: files to FLOW batches, one row per unit, bad input quarantined with its reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from pipeline.ingest import INGEST_REASONS, InputConfig, ingest_file, unit_row
from pipeline.read import Unit, list_input_files
from pipeline.schema import FLOW_SCHEMA, is_quarantine_reason, rows_to_table
from pipeline.templates import TemplateRenderer

LONG_TEXT = (
    "The committee met on Tuesday to review the budget. Several members raised concerns about "
    "the cost of the new library. After a long discussion, they agreed to delay the vote. The "
    "chair promised a revised proposal within a month. Residents welcomed the decision."
)


def ingest(path: Path, batch_rows: int = 1000, seed: int = 0, **options) -> pa.Table:
    config = InputConfig(path=str(path), **options)
    tables = []
    for input_file in list_input_files(config.path):
        tables.extend(ingest_file(input_file, config, seed=seed, batch_rows=batch_rows))
    for table in tables:
        assert table.schema == FLOW_SCHEMA and table.num_rows <= batch_rows
    return pa.concat_tables(tables) if tables else FLOW_SCHEMA.empty_table()


def outcomes(table: pa.Table) -> list[tuple[int, str | None]]:
    return list(
        zip(
            table.column("source_line").to_pylist(),
            table.column("drop_reason").to_pylist(),
            strict=True,
        )
    )


def test_mixed_file_every_line_is_one_row(tmp_path: Path) -> None:
    lines = [
        json.dumps({"instruction": "Add 1 and 1.", "input": "", "output": "2"}),
        '{"instruction": "truncated',
        "",
        json.dumps(
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
        ),
        json.dumps({"instruction": "i", "output": 5}),
        json.dumps({"conversations": [{"from": "alien", "value": "zz"}]}),
        json.dumps({"weird": 1}),
        "[1, 2]",
        json.dumps(
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
        ),
    ]
    path = tmp_path / "mixed.jsonl"
    bad_utf8 = b'{"instruction": "\xff", "output": ""}\n'
    path.write_bytes(("\n".join(lines) + "\n").encode() + bad_utf8)
    table = ingest(path, batch_rows=3)
    assert outcomes(table) == [
        (1, None),
        (2, "read.invalid_json"),
        (4, None),
        (5, "convert.wrong_type"),
        (6, "convert.unknown_role"),
        (7, "convert.unknown_format"),
        (8, "read.not_an_object"),
        (9, None),
        (10, "read.invalid_utf8"),
    ]
    rows = table.to_pylist()
    assert [r["source_format"] for r in rows if r["drop_reason"] is None] == [
        "alpaca",
        "sharegpt",
        "messages",
    ]
    assert all(r["source_file"] == str(path) for r in rows)
    bad = rows[3]
    assert bad["raw"] == '{"instruction": "i", "output": 5}' and bad["source_format"] == "alpaca"
    assert "'output' is int" in json.loads(bad["drop_detail"])["message"]
    assert rows[1]["raw"] == '{"instruction": "truncated' and rows[1]["id"] == ""


def test_fixed_format_and_config_labels(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    records = [{"q": "What?", "a": "That.", "extra": i} for i in range(5)]
    path.write_text(json.dumps(records), encoding="utf-8")
    table = ingest(
        path,
        format="alpaca",
        columns={"instruction": "q", "output": "a"},
        task="chat",
        domain="general",
        language="en",
    )
    rows = table.to_pylist()
    assert len(rows) == 5 and all(r["drop_reason"] is None for r in rows)
    assert {(r["task"], r["domain"], r["language"]) for r in rows} == {("chat", "general", "en")}
    assert [r["source_line"] for r in rows] == [1, 2, 3, 4, 5]
    assert json.loads(rows[2]["meta"])["extra"] == 2
    path.write_text(json.dumps([{"q": "no answer"}]), encoding="utf-8")
    table = ingest(path, format="alpaca", columns={"instruction": "q", "output": "a"})
    assert outcomes(table) == [(1, "convert.missing_field")]


def test_text_file_through_templates(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(f"{LONG_TEXT}\n\ntoo short\n\n{LONG_TEXT} Extra sentence.\n", encoding="utf-8")
    table = ingest(path, seed=5)
    assert outcomes(table) == [(1, None), (3, "convert.text_too_short"), (5, None)]
    row = table.to_pylist()[0]
    assert row["task"] == "text_continuation" and row["source_format"] == "text"
    assert json.loads(row["meta"])["template"].startswith("text_en")
    again = ingest(path, seed=5).to_pylist()[0]
    assert again["meta"] == row["meta"] and again["id"] == row["id"]


def test_csv_qa_with_columns(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("q,ans,ctx\nWho?,Me,\nWhere?,Here,The map.\nbroken\n", encoding="utf-8")
    table = ingest(path, format="qa", columns={"question": "q", "answers": "ans", "context": "ctx"})
    assert outcomes(table) == [(1, None), (2, None), (3, "read.invalid_csv_row")]
    assert table.column("task").to_pylist()[:2] == ["qa", "qa"]


def test_whole_file_problems_are_one_row_each(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "image.json").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    (tmp_path / "good.jsonl.gz").write_bytes(gzip.compress(b'{"prompt": "p", "completion": "c"}\n'))
    table = ingest(tmp_path)
    by_file = {
        Path(f).name: (line, reason)
        for f, line, reason in zip(
            table.column("source_file").to_pylist(),
            table.column("source_line").to_pylist(),
            table.column("drop_reason").to_pylist(),
            strict=True,
        )
    }
    assert by_file == {
        "bad.jsonl.gz": (0, "read.corrupt_stream"),
        "empty.jsonl": (0, "read.empty_file"),
        "good.jsonl.gz": (1, None),
        "image.json": (0, "read.binary_file"),
    }


def test_oversized_record_with_a_small_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps({"instruction": "x" * 500, "output": "y"})
        + "\n"
        + json.dumps({"instruction": "x", "output": "y"})
        + "\n",
        encoding="utf-8",
    )
    table = ingest(path, max_record_bytes=100)
    assert outcomes(table) == [(1, "read.record_too_large"), (2, None)]
    assert len(table.column("raw").to_pylist()[0]) <= 2000


def test_batches_cover_every_unit(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"p{i}", "completion": "c"}) + "\n" for i in range(2500)),
        encoding="utf-8",
    )
    config = InputConfig(path=str(path))
    (input_file,) = list_input_files(str(path))
    sizes = [t.num_rows for t in ingest_file(input_file, config, seed=0, batch_rows=1000)]
    assert sizes == [1000, 1000, 500]


def test_reasons_are_all_quarantine() -> None:
    assert len(set(INGEST_REASONS)) == len(INGEST_REASONS)
    assert all(is_quarantine_reason(reason) for reason in INGEST_REASONS)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "yaml"}, "format"),
        ({"file_type": "xml"}, "file_type"),
        ({"max_record_bytes": 0}, "max_record_bytes"),
        ({"csv_delimiter": ";;"}, "csv_delimiter"),
        ({"colums": {}}, "colums"),
        ({"columns": {"instrucion": "x"}}, "instrucion"),
        ({"role_tags": {"bot": "robot"}}, "robot"),
        ({"templates": ["/no/such/file.yaml"]}, "/no/such/file.yaml"),
    ],
)
def test_input_config_rejects_bad_values(options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        InputConfig(path="data/", **options)


def test_input_config_compiles_user_templates_up_front(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("task: qa\ntemplates:\n  - {id: oops, prompt: '{{ q', response: a}\n")
    with pytest.raises(ValidationError, match="oops"):
        InputConfig(path="x", templates=(str(path),))
    config = InputConfig(path="x")
    assert config.format == "auto" and config.text_unit == "auto"
    assert config.max_record_bytes == 4_000_000
    with pytest.raises(ValidationError):
        config.model_copy(update={}).__setattr__("path", "y")
    assert InputConfig.model_validate(config.model_dump(mode="json")) == config


def test_too_deep_values_are_quarantined_never_raised(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    good = json.dumps({"prompt": "p", "completion": "c"})
    deep = '{"prompt": "p", "completion": "c", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    path.write_text(f"{good}\n{deep}\n{good}\n", encoding="utf-8")
    assert outcomes(ingest(path)) == [(1, None), (2, "read.nesting_too_deep"), (3, None)]


def test_unit_row_quarantines_a_value_too_deep_to_convert() -> None:
    # A reader keeps JSON within MAX_NESTING; this is what any deeper value would meet.
    deep: list = []
    innermost = deep
    for _ in range(5000):
        innermost.append([])
        innermost = innermost[0]
    unit = Unit(7, {"instruction": "i", "output": "o", "extra": deep})
    config = InputConfig(path="x")
    row = unit_row(unit, "f.jsonl", config, TemplateRenderer((), seed=0))
    assert (row["source_line"], row["drop_reason"]) == (7, "read.nesting_too_deep")
    assert row["source_file"] == "f.jsonl"
    assert rows_to_table([row]).num_rows == 1
