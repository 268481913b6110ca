"""Readers: every file type, compression, listing, and each malformed input's exact reason."""

from __future__ import annotations

import bz2
import functools
import gzip
import http.server
import json
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline import read
from pipeline.read import (
    READ_REASONS,
    InputFile,
    InputNotFound,
    Unit,
    iter_units,
    list_input_files,
    open_filesystem,
)


def units_of(path: Path | str, **options) -> list[Unit]:
    (input_file,) = list_input_files(str(path))
    return list(iter_units(input_file, **options))


def summary(units: list[Unit]) -> list[tuple[int, str | None]]:
    """(line, reason) per unit: None for a record."""
    return [(unit.line, unit.error[0] if unit.error else None) for unit in units]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- file types -------------------------------------------------------------------------


def test_jsonl_lines_are_numbered_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\r\n{"a": 3}', encoding="utf-8")
    units = units_of(path)
    assert [(u.line, u.value) for u in units] == [(1, {"a": 1}), (4, {"a": 2}), (5, {"a": 3})]


def test_ndjson_extension_is_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.ndjson", [{"a": 1}, {"a": 2}])
    assert [u.value for u in units_of(path)] == [{"a": 1}, {"a": 2}]


def test_json_array_elements_are_numbered_by_index(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"a": 1}, {"a": [1, 2]}, {"a": "]}"}], indent=2), encoding="utf-8")
    units = units_of(path)
    expected = [(1, {"a": 1}), (2, {"a": [1, 2]}), (3, {"a": "]}"})]
    assert [(u.line, u.value) for u in units] == expected


def test_json_array_streams_in_small_chunks(tmp_path: Path, monkeypatch) -> None:
    records = [{"i": i, "text": "é" * (i % 7), "n": i * 1.5e3} for i in range(5000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(read, "CHUNK_BYTES", 61)  # cuts through numbers, strings, UTF-8
    units = units_of(path)
    assert [u.value for u in units] == records
    assert [u.line for u in units] == list(range(1, 5001))


def test_empty_json_array_has_no_units(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(" [ ] \n", encoding="utf-8")
    assert units_of(path) == []


def test_json_file_with_one_object_per_line_reads_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n', encoding="utf-8")
    # Read line by line, so the broken second line does not take the third with it.
    assert summary(units_of(path)) == [(1, None), (2, "read.invalid_json"), (3, None)]


def test_json_file_with_concatenated_pretty_objects(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"a": 1}, indent=2) + "\n" + json.dumps({"b": 2}, indent=2))
    units = units_of(path)
    assert [(u.line, u.value) for u in units] == [(1, {"a": 1}), (4, {"b": 2})]


def test_parquet_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    table = pa.table({"instruction": ["x", "y"], "n": [1, 2], "blob": [b"ab", b"cd"]})
    pq.write_table(table, path)
    units = units_of(path)
    assert [(u.line, u.value) for u in units] == [
        (1, {"instruction": "x", "n": 1, "blob": "ab"}),
        (2, {"instruction": "y", "n": 2, "blob": "cd"}),
    ]


def test_csv_rows_with_quoted_newlines_and_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('instruction,output\n"multi\nline",ok\nonly_one_field\n\nx,y\n', "utf-8")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, "read.invalid_csv_row"), (3, None)]
    assert units[0].value == {"instruction": "multi\nline", "output": "ok"}
    assert "line 4" in units[1].error[1] and units[1].raw == "only_one_field"


def test_tsv_uses_tabs(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv"
    path.write_text("prompt\tcompletion\nhi, you\tthere\n", encoding="utf-8")
    assert [u.value for u in units_of(path)] == [{"prompt": "hi, you", "completion": "there"}]


def test_csv_custom_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a;b\n1;2\n", encoding="utf-8")
    assert [u.value for u in units_of(path, csv_delimiter=";")] == [{"a": "1", "b": "2"}]


@pytest.mark.parametrize(
    ("text_unit", "expected"),
    [
        ("auto", [(1, "one\ntwo"), (4, "three")]),
        ("paragraph", [(1, "one\ntwo"), (4, "three")]),
        ("line", [(1, "one"), (2, "two"), (4, "three")]),
        ("file", [(1, "one\ntwo\n\nthree")]),
    ],
)
def test_text_units(tmp_path: Path, text_unit: str, expected: list) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one\ntwo\n\nthree\n\n", encoding="utf-8")
    assert [(u.line, u.value) for u in units_of(path, text_unit=text_unit)] == expected


def test_auto_takes_a_file_without_blank_lines_line_by_line(tmp_path: Path) -> None:
    # An article per line and no blank line between: paragraph makes one record of the
    # whole file (over max_record_bytes: quarantine); auto gives each line its own.
    from pipeline.read import AUTO_PARAGRAPH_BYTES

    article = "word " * 2000  # ~10 KB
    lines = [f"{n} {article}".strip() for n in range(12)]
    path = tmp_path / "wiki.txt"
    path.write_text("short lead\nparagraph\n\n" + "\n".join(lines) + "\n\nlast one\n", "utf-8")
    units = units_of(path)
    assert [u.line for u in units] == [1, *range(4, 16), 17]
    assert units[0].value == "short lead\nparagraph"  # a paragraph stays one
    assert [u.value for u in units[1:-1]] == lines and units[-1].value == "last one"
    assert all(len(u.value.encode()) < AUTO_PARAGRAPH_BYTES for u in units)
    (whole,) = [u for u in units_of(path, text_unit="paragraph") if u.line == 4]
    assert len(whole.value) > AUTO_PARAGRAPH_BYTES
    squeezed = units_of(path, text_unit="paragraph", max_record_bytes=50_000)
    assert [reason for line, reason in summary(squeezed) if line == 4] == ["read.record_too_large"]
    assert [u.line for u in units_of(path, max_record_bytes=50_000)] == [1, *range(4, 16), 17]


def test_markdown_is_text_and_unknown_extensions_are_sniffed(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\nBody.\n", encoding="utf-8")
    assert [u.value for u in units_of(tmp_path / "a.md")] == ["# Title", "Body."]
    (tmp_path / "records.data").write_text('[{"a": 1}]', encoding="utf-8")
    assert [u.value for u in units_of(tmp_path / "records.data")] == [{"a": 1}]
    pq.write_table(pa.table({"a": [1]}), tmp_path / "table.bin")
    assert [u.value for u in units_of(tmp_path / "table.bin")] == [{"a": 1}]


def test_explicit_file_type_overrides_the_extension(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "records.txt", [{"a": 1}])
    assert [u.value for u in units_of(path, file_type="jsonl")] == [{"a": 1}]
    with pytest.raises(ValueError, match="file_type"):
        units_of(path, file_type="xml")


# --- compression ------------------------------------------------------------------------

LINES = b'{"a": 1}\n{"a": 2}\n'


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [
        (".jsonl.gz", gzip.compress),
        (".jsonl.zst", lambda data: zstandard.ZstdCompressor().compress(data)),
        (".jsonl.zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
        (".jsonl.bz2", bz2.compress),
    ],
)
def test_compressed_jsonl(tmp_path: Path, suffix: str, compress) -> None:
    path = tmp_path / f"a{suffix}"
    path.write_bytes(compress(LINES))
    assert [u.value for u in units_of(path)] == [{"a": 1}, {"a": 2}]


def test_gzip_json_array_streams_across_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(read, "CHUNK_BYTES", 100)
    path = tmp_path / "a.json.gz"
    records = [{"i": i} for i in range(300)]
    path.write_bytes(gzip.compress(json.dumps(records).encode()))
    assert [u.value for u in units_of(path)] == records


def test_corrupt_gzip_is_a_corrupt_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(b"this is not gzip at all")
    (unit,) = units_of(path)
    assert summary([unit]) == [(0, "read.corrupt_stream")]
    assert "incorrect header check at compressed byte 0" in unit.error[1]


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(read, "CHUNK_BYTES", 64)
    data = gzip.compress(os.urandom(0) + b"".join(b'{"a": %d}\n' % i for i in range(2000)))
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    units = units_of(path)
    assert units[-1].error[0] == "read.corrupt_stream"
    assert "ends inside the gzip stream" in units[-1].error[1]
    assert all(u.error is None for u in units[:-1]) and len(units) > 100
    assert units[-1].line == units[-2].line + 1


# --- discovery ----------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in [
        "b.jsonl",
        "a.json",
        "sub/c.jsonl",
        "sub/deep/d.jsonl",
        "sub/e.txt",
        ".hidden.jsonl",
        "_SUCCESS",
        ".git/x.jsonl",
        "_tmp/y.jsonl",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"a": 1}\n', encoding="utf-8")
    return tmp_path


def names(files: list[InputFile], root: Path) -> list[str]:
    return [os.path.relpath(f.uri, root) for f in files]


def test_directory_listing_is_recursive_sorted_and_skips_hidden(tree: Path) -> None:
    files = list_input_files(str(tree))
    expected = ["a.json", "b.jsonl", "sub/c.jsonl", "sub/deep/d.jsonl", "sub/e.txt"]
    assert names(files, tree) == expected
    assert all(f.size == 9 and os.path.isabs(f.uri) for f in files)


def test_single_file_listing(tree: Path) -> None:
    assert list_input_files(str(tree / "b.jsonl")) == [InputFile(str(tree / "b.jsonl"), 9)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.jsonl", ["b.jsonl"]),
        ("?.json", ["a.json"]),
        ("sub/*", ["sub/c.jsonl", "sub/e.txt"]),
        ("**/*.jsonl", ["b.jsonl", "sub/c.jsonl", "sub/deep/d.jsonl"]),
        ("sub/**", ["sub/c.jsonl", "sub/deep/d.jsonl", "sub/e.txt"]),
    ],
)
def test_glob_listing(tree: Path, pattern: str, expected: list[str]) -> None:
    assert names(list_input_files(f"{tree}/{pattern}"), tree) == expected


def test_relative_glob(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree)
    assert names(list_input_files("sub/*.jsonl"), tree) == ["sub/c.jsonl"]


def test_missing_path_and_empty_glob_raise_input_not_found(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(InputNotFound, match="nope.jsonl"):
        list_input_files(missing)
    with pytest.raises(InputNotFound, match=r"\*\.parquet"):
        list_input_files(f"{tmp_path}/*.parquet")
    with pytest.raises(InputNotFound, match="no files"):
        list_input_files(str(tmp_path))
    assert issubclass(InputNotFound, ValueError)


def test_file_uri(tree: Path) -> None:
    files = list_input_files(f"file://{tree}/sub")
    expected = [f"file://{tree}/sub/{n}" for n in ("c.jsonl", "deep/d.jsonl", "e.txt")]
    assert [f.uri for f in files] == expected
    assert [u.value for u in iter_units(files[0])] == [{"a": 1}]


def test_memory_filesystem_through_fsspec() -> None:
    memory = fsspec.filesystem("memory")
    memory.pipe("/ingest-test/x/a.jsonl", b'{"a": 1}\n')
    memory.pipe("/ingest-test/x/b.jsonl.gz", gzip.compress(b'{"b": 2}\n'))
    filesystem, path = open_filesystem("memory://ingest-test/x")
    assert isinstance(filesystem, pa.fs.PyFileSystem) and path.endswith("ingest-test/x")
    files = list_input_files("memory://ingest-test/x")
    assert [f.uri for f in files] == [
        "memory://ingest-test/x/a.jsonl",
        "memory://ingest-test/x/b.jsonl.gz",
    ]
    assert [u.value for f in files for u in iter_units(f)] == [{"a": 1}, {"b": 2}]


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_jsonl_through_fsspec(tmp_path: Path, http_root: str) -> None:
    write_jsonl(tmp_path / "file.jsonl", [{"a": 1}, {"a": 2}])
    (tmp_path / "broken.jsonl").write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    (input_file,) = list_input_files(f"{http_root}/file.jsonl")
    assert input_file.uri == f"{http_root}/file.jsonl" and input_file.size == 18
    assert [u.value for u in iter_units(input_file)] == [{"a": 1}, {"a": 2}]
    assert summary(units_of(f"{http_root}/broken.jsonl")) == [(1, None), (2, "read.invalid_json")]


# --- malformed input: each ends as exactly one unit with its reason, file and line ----------


def test_truncated_json_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{"instruction": "cut here\n{"a": 3}\n', encoding="utf-8")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, "read.invalid_json"), (3, None)]
    assert units[1].raw == '{"instruction": "cut here'


def test_invalid_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n{"a": 3}\n')
    units = units_of(path)
    assert summary(units) == [(1, None), (2, "read.invalid_utf8"), (3, None)]
    assert units[1].raw == '{"a": "caf\ufffd"}'


def test_invalid_utf8_in_a_json_array_loses_only_that_element(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b'[{"a": 1}, {"a": "caf\xe9"}, {"a": 3}]')
    assert summary(units_of(path)) == [(1, None), (2, "read.invalid_utf8"), (3, None)]


def test_lone_surrogate_escape_is_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": "\\ud800"}\n{"a": "\\ud83d\\ude00"}\n', encoding="utf-8")
    units = units_of(path)
    assert summary(units) == [(1, "read.invalid_utf8"), (2, None)]
    assert units[1].value == {"a": "😀"}


def test_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('[1, 2]\n"text"\n{"a": 1}\n', encoding="utf-8")
    not_object = "read.not_an_object"
    assert summary(units_of(path)) == [(1, not_object), (2, not_object), (3, None)]
    array = tmp_path / "b.json"
    array.write_text('[{"a": 1}, 7, null]', encoding="utf-8")
    assert summary(units_of(array)) == [(1, None), (2, not_object), (3, not_object)]


def test_ten_megabyte_jsonl_record_is_too_large_and_later_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.write('{"a": 1}\n')
        handle.write(json.dumps({"instruction": "x" * 10_000_000}) + "\n")
        handle.write('{"a": 3}\n{"a": 4}\n')
    tracemalloc.start()
    units = units_of(path)  # default max_record_bytes: 4 MB
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert summary(units) == [(1, None), (2, "read.record_too_large"), (3, None), (4, None)]
    assert "10000019 bytes" in units[1].error[1]
    assert len(units[1].raw) == 2000 and units[1].raw.startswith('{"instruction": "xxx')
    assert peak < 3 * (4_000_000 + read.CHUNK_BYTES)  # the 10 MB line is never held whole


def test_too_large_json_array_element_is_skipped_without_losing_the_next(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    big = {"instruction": "y" * 10_000_000, "tricky": ['"]}', "\\"]}
    path.write_text(json.dumps([{"a": 1}, big, {"a": 3}]), encoding="utf-8")
    tracemalloc.start()
    units = units_of(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert summary(units) == [(1, None), (2, "read.record_too_large"), (3, None)]
    assert units[2].value == {"a": 3}
    assert peak < 3 * (4_000_000 + read.CHUNK_BYTES)


def test_small_record_limit(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"a": "x" * 50}, {"a": 1}])
    assert summary(units_of(path, max_record_bytes=20)) == [(1, "read.record_too_large"), (2, None)]
    text = tmp_path / "a.txt"
    text.write_text("short\n\n" + "long " * 20 + "\n\nshort again\n", encoding="utf-8")
    units = units_of(text, max_record_bytes=30)
    assert summary(units) == [(1, None), (3, "read.record_too_large"), (5, None)]


def test_broken_minified_array_element_quarantines_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, {"a": 2,, "b": 3}, {"a": 4}, {"a": 5}]', encoding="utf-8")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, "read.invalid_json")]
    assert "rest of the file" in units[1].error[1]
    assert units[1].raw.startswith('{"a": 2,,')


PRETTY_RECORDS = [
    {"instruction": f"q{i}", "output": f"a{i}", "tags": [i, {"n": i}]} for i in range(6)
]


@pytest.mark.parametrize(("indent", "newline"), [(2, "\n"), (4, "\n"), ("\t", "\n"), (2, "\r\n")])
@pytest.mark.parametrize(
    ("broken", "replacement"),
    [
        ('"q2",', '"q2",,'),  # a doubled comma
        ('"a2"', '"a2'),  # a stray quote: the string runs on to the next line
        ('"q2"', "q2"),  # unquoted
        ('"a2",', '"a2"'),  # a missing comma between members
    ],
)
def test_broken_pretty_array_element_costs_only_itself(
    tmp_path: Path, monkeypatch, indent, newline: str, broken: str, replacement: str
) -> None:
    monkeypatch.setattr(read, "CHUNK_BYTES", 23)  # elements and markers cut by chunk ends
    text = json.dumps(PRETTY_RECORDS, indent=indent).replace(broken, replacement, 1)
    path = tmp_path / "a.json"
    path.write_bytes(text.replace("\n", newline).encode())
    units = units_of(path)
    assert summary(units) == [
        (1, None),
        (2, None),
        (3, "read.invalid_json"),
        (4, None),
        (5, None),
        (6, None),
    ]
    assert [u.value for u in units if u.error is None] == [
        PRETTY_RECORDS[i] for i in (0, 1, 3, 4, 5)
    ]
    assert "skipped to the next element" in units[2].error[1]
    assert units[2].raw.lstrip().startswith("{") and '"q3"' not in units[2].raw


def test_pretty_array_missing_comma_between_elements_loses_nothing(tmp_path: Path) -> None:
    text = json.dumps(PRETTY_RECORDS[:3], indent=2).replace("},\n  {", "}\n  {", 1)
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    assert [u.value for u in units_of(path)] == PRETTY_RECORDS[:3]


def test_broken_last_pretty_element_is_the_rest_of_the_file(tmp_path: Path) -> None:
    text = json.dumps(PRETTY_RECORDS[:3], indent=2).replace('"q2",', '"q2",,')
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, None), (3, "read.invalid_json")]
    assert "no element starts after it" in units[2].error[1]


def test_array_whose_nested_objects_start_like_elements_is_not_resynchronised(
    tmp_path: Path,
) -> None:
    # indent=0 puts nested objects at the elements' indentation: a line that starts with
    # "{" may be inside an element, so a broken element takes the rest of the file.
    text = json.dumps(PRETTY_RECORDS, indent=0).replace('"q2",', '"q2",,')
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, None), (3, "read.invalid_json")]
    assert "rest of the file" in units[2].error[1]


def test_control_character_in_a_minified_array_costs_only_its_element(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, {"a": "tab\tand\nnewline"}, {"a": 3}]', encoding="utf-8")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, "read.invalid_json"), (3, None)]
    assert "Invalid control character" in units[1].error[1]


# --- NUL bytes: the line, paragraph, element or row, never the whole file ---------------


def test_nul_byte_costs_only_its_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": "\x00"}\n{"a": 2}\n\x00\x00\n{"a": 4}\n' + b'{"a": 5}\n' * 2000)
    units = units_of(path)
    assert summary(units[:4]) == [(1, "read.nul_byte"), (2, None), (3, "read.nul_byte"), (4, None)]
    assert len(units) == 2004 and units[0].raw == '{"a": "\x00"}'


@pytest.mark.parametrize(
    ("text_unit", "expected"),
    [
        ("paragraph", [(1, None), (3, "read.nul_byte"), (6, None)]),
        ("line", [(1, None), (3, "read.nul_byte"), (4, None), (6, None)]),
        ("file", [(1, "read.nul_byte")]),
    ],
)
def test_nul_byte_costs_only_its_text_unit(tmp_path: Path, text_unit: str, expected) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"one\n\ntw\x00o\nmore\n\nthree\n")
    units = units_of(path, text_unit=text_unit)
    assert summary(units) == expected


def test_nul_byte_costs_only_its_csv_row(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b'a,b\n1,2\nx\x00,y\n"multi\nline\x00",z\n3,4\n')
    units = units_of(path)
    assert summary(units) == [(1, None), (2, "read.nul_byte"), (3, "read.nul_byte"), (4, None)]
    assert units[3].value == {"a": "3", "b": "4"}


@pytest.mark.parametrize("indent", [None, 2])
def test_nul_byte_costs_only_its_array_element(tmp_path: Path, indent: int | None) -> None:
    text = json.dumps(PRETTY_RECORDS[:3], indent=indent).replace("q1", "q\x001")
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, "read.nul_byte"), (3, None)]


def test_png_header_with_nuls_is_still_binary_but_one_nul_is_not(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\x00\n' + b'{"a": 2}\n' * 100)
    assert summary(units_of(path)[:2]) == [(1, "read.nul_byte"), (2, None)]


# --- nesting too deep: one unit, and the next records are read ------------------------


def deep_value(depth: int) -> str:
    return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("depth", [129, 1000, 5000, 100_000])
@pytest.mark.parametrize("layout", ["jsonl", "array", "pretty_array", "json_first_line"])
def test_deep_nesting_is_one_unit_and_the_next_records_are_read(
    tmp_path: Path, depth: int, layout: str
) -> None:
    deep = deep_value(depth)
    if layout == "jsonl":
        name, text, expected = "a.jsonl", f'{{"a": 1}}\n{deep}\n{{"a": 3}}\n', [1, 2, 3]
    elif layout == "array":
        name, text, expected = "a.json", f'[{{"a": 1}}, {deep}, {{"a": 3}}]', [1, 2, 3]
    elif layout == "pretty_array":
        name, text, expected = "a.json", f'[\n  {{"a": 1}},\n  {deep},\n  {{"a": 3}}\n]', [1, 2, 3]
    else:  # a .json file whose first line is too deep to tell whether it is JSON Lines
        name, text, expected = "a.json", f'{deep}\n{{"a": 3}}\n', [1, 2]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    units = units_of(path)
    deep_unit = expected[-2]
    assert summary(units) == [
        (line, "read.nesting_too_deep" if line == deep_unit else None) for line in expected
    ]
    assert units[-1].value == {"a": 3}
    assert "nested deeper than 128 levels" in units[expected.index(deep_unit)].error[1]


def test_nesting_up_to_the_limit_is_a_record(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(deep_value(128) + "\n", encoding="utf-8")
    (unit,) = units_of(path)
    assert unit.error is None


def test_truncated_json_array(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"a": 1}, {"a": 2}, {"a": "cut', encoding="utf-8")
    assert summary(units_of(path)) == [(1, None), (2, None), (3, "read.invalid_json")]
    unclosed = tmp_path / "b.json"
    unclosed.write_text('[{"a": 1}, {"a": 2}', encoding="utf-8")
    assert summary(units_of(unclosed)) == [(1, None), (2, None), (3, "read.invalid_json")]


@pytest.mark.parametrize("content", [b"", b"  \n\n \t\n"])
@pytest.mark.parametrize("name", ["a.jsonl", "a.json", "a.csv", "a.txt", "a.jsonl.gz"])
def test_empty_file(tmp_path: Path, content: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    (unit,) = units_of(path)
    assert summary([unit]) == [(0, "read.empty_file")]


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 100,
        bytes(range(1, 32)) * 200,  # control bytes, no NUL
    ],
)
def test_binary_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "image.jsonl"
    path.write_bytes(content)
    (unit,) = units_of(path)
    assert summary([unit]) == [(0, "read.binary_file")]


def test_random_bytes_are_binary(tmp_path: Path) -> None:
    path = tmp_path / "noise.txt"
    path.write_bytes(os.urandom(20_000))
    assert summary(units_of(path)) == [(0, "read.binary_file")]


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    assert summary(units_of(path)) == [(0, "read.unreadable_file")]


def test_units_count_what_is_in_the_file(tmp_path: Path) -> None:
    lines = ['{"a": 1}', '{"a": ', "", "[1]", '{"a": 2}', "\xff"]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8").replace("\xff".encode(), b"\xff"))
    units = units_of(path)
    assert len(units) == 5  # six lines, one blank
    assert {u.error[0] for u in units if u.error} <= set(READ_REASONS)
