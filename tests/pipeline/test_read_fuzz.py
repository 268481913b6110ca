"""Generated malformed files: ingest never raises, and every unit lands in exactly one row.

A file is a list of parts (good records, truncated ones, invalid UTF-8, NUL bytes, deep
nesting, lines over a small ``max_record_bytes``, stray quotes and brackets, blank lines),
laid out as JSON Lines (also in a .json file), a JSON array (minified or pretty), CSV or text,
with CRLF or a BOM, optionally gzip- or zstd-compressed, then corrupted or cut. Hypothesis draws
the files (with a fixed seed, so every run sees the same ones); one Ray run reads thirty of them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
import zstandard
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ops.datarun import run_data
from pipeline.ingest import INGEST_REASONS, InputConfig, ingest_file
from pipeline.read import InputFile

PART_KINDS = ("record", "truncated", "bad_utf8", "nul", "deep", "huge", "stray", "blank")
# "jsonl_as_json": one object per line in a .json file, which the reader must recognise.
LAYOUTS = ("jsonl", "jsonl_as_json", "json", "pretty_json", "csv", "text")
EXTENSIONS = {
    "jsonl": ".jsonl",
    "jsonl_as_json": ".json",
    "json": ".json",
    "pretty_json": ".json",
    "csv": ".csv",
    "text": ".txt",
}
HUGE = 70_000  # over either max_record_bytes the tests use
WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")


@dataclass(frozen=True)
class FileSpec:
    layout: str
    parts: tuple[tuple[str, int], ...]  # (kind, a size or seed that shapes the part)
    crlf: bool = False
    bom: bool = False
    compression: str = ""  # "", "gz" or "zst"
    damage: str = ""  # "", "corrupt" or "truncate"
    damage_at: float = 0.5  # where, as a fraction of the file's (compressed) bytes
    max_record_bytes: int = 65_536


def record(number: int) -> dict[str, str]:
    words = " ".join(WORDS[(number + index) % len(WORDS)] for index in range(3 + number % 9))
    return {"instruction": f"Explain {words}.", "output": f"It is {words}, item {number}."}


def deep_levels(number: int) -> int:
    # Over MAX_NESTING only, or over the parser's recursion limit too (Hypothesis raises
    # that limit to about 2,000 while it runs), within the larger max_record_bytes.
    return (130, 3000, 30_000)[number % 3] + number


def json_part(kind: str, number: int) -> bytes:
    """One JSON value's text, well-formed or broken as ``kind`` says."""
    good = json.dumps(record(number)).encode()
    broken = {
        "record": good,
        "truncated": good[: 1 + number % (len(good) - 1)],
        "bad_utf8": good.replace(b"Explain", b"Expl\xff\xfein"),
        "nul": good.replace(b"Explain", b"Ex\x00plain"),
        "deep": b'{"a": ' + b"[" * deep_levels(number) + b"]" * deep_levels(number) + b"}",
        "huge": json.dumps({"instruction": "x" * (HUGE + number), "output": "y"}).encode(),
        "stray": good.replace(b'"output"', b'""output"' if number % 2 else b'"output"]'),
        "blank": b"  ",
    }
    return broken[kind]


def text_part(kind: str, number: int) -> bytes:
    """One CSV row's or text paragraph's bytes."""
    sentence = " ".join(record(number).values()).encode()
    broken = {
        "record": sentence,
        "truncated": sentence[: 1 + number % len(sentence)],
        "bad_utf8": sentence + b" caf\xe9",
        "nul": sentence + b"\x00",
        "deep": b"[" * (50 + number),
        "huge": b"z" * (HUGE + number),
        "stray": b'"' + sentence if number % 2 else sentence + b'",x',
        "blank": b"",
    }
    return broken[kind]


def csv_row(kind: str, number: int) -> bytes:
    if kind != "record":
        return text_part(kind, number)
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(record(number).values())
    return line.getvalue().encode()


def pretty(value: bytes) -> bytes:
    try:
        return json.dumps(json.loads(value), indent=2).replace("\n", "\n  ").encode()
    except (ValueError, RecursionError):
        return value  # broken and deep parts stay as they are, on their own line


def layout_bytes(spec: FileSpec) -> bytes:
    parts = spec.parts
    if spec.layout in ("jsonl", "jsonl_as_json"):
        body = b"\n".join(json_part(kind, number) for kind, number in parts) + b"\n"
    elif spec.layout == "json":
        body = b"[" + b", ".join(json_part(kind, number) for kind, number in parts) + b"]"
    elif spec.layout == "pretty_json":
        elements = b",\n  ".join(pretty(json_part(kind, number)) for kind, number in parts)
        body = b"[\n  " + elements + b"\n]\n"
    elif spec.layout == "csv":
        body = b"instruction,output\n" + b"\n".join(csv_row(k, n) for k, n in parts) + b"\n"
    else:
        body = b"\n\n".join(text_part(kind, number) for kind, number in parts) + b"\n"
    if spec.crlf:
        body = body.replace(b"\n", b"\r\n")
    return (b"\xef\xbb\xbf" if spec.bom else b"") + body


def file_bytes(spec: FileSpec) -> bytes:
    """The file as written: compressed or not, then corrupted or cut (the compressed bytes)."""
    packed = layout_bytes(spec)
    if spec.compression == "gz":
        packed = gzip.compress(packed, mtime=0)
    elif spec.compression == "zst":
        packed = zstandard.ZstdCompressor(write_checksum=True).compress(packed)
    at = int(len(packed) * spec.damage_at)
    if spec.damage == "corrupt":
        return packed[:at] + bytes(byte ^ 0xFF for byte in packed[at : at + 16]) + packed[at + 16 :]
    return packed[: max(at, 1)] if spec.damage == "truncate" else packed


def file_name(spec: FileSpec, stem: str = "input") -> str:
    return stem + EXTENSIONS[spec.layout] + (f".{spec.compression}" if spec.compression else "")


def non_blank_lines(plain: bytes) -> set[int]:
    lines = plain.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    return {number for number, line in enumerate(lines, 1) if line.strip()}


# --- hypothesis ------------------------------------------------------------------------

shapes = st.integers(min_value=0, max_value=40)
# Either any few parts, or every kind once in some order (plus a few more), so that most
# files mix every malformation.
parts = st.one_of(
    st.lists(st.tuples(st.sampled_from(PART_KINDS), shapes), max_size=12),
    st.tuples(st.permutations(PART_KINDS), st.lists(shapes, min_size=12, max_size=12)).map(
        lambda drawn: list(zip(drawn[0], drawn[1], strict=False))
    ),
)


def specs(layout: str, compression: str) -> st.SearchStrategy[FileSpec]:
    return st.builds(
        FileSpec,
        layout=st.just(layout),
        parts=parts.map(tuple),
        crlf=st.booleans(),
        bom=st.booleans(),
        compression=st.just(compression),
        damage=st.sampled_from(("", "corrupt", "truncate")),
        # Hypothesis leans to simple values; centred on the middle, 0.0 does not cut at byte 0.
        damage_at=st.floats(min_value=-0.45, max_value=0.45).map(lambda offset: 0.5 + offset),
        max_record_bytes=st.sampled_from((65_536, 512)),
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


BASE_CONFIG = InputConfig(path="unused")  # validated once: it compiles every template


def ingest_rows(path: Path, max_record_bytes: int) -> list[dict]:
    config = BASE_CONFIG.model_copy(update={"max_record_bytes": max_record_bytes})
    input_file = InputFile(uri=str(path), size=path.stat().st_size)
    return [row for table in ingest_file(input_file, config, seed=0) for row in table.to_pylist()]


def assert_every_row_is_a_record_or_quarantine(rows: list[dict], path: Path) -> None:
    for row in rows:
        assert row["source_file"] == str(path)
        if row["drop_reason"] is None:
            assert row["id"] and row["messages"]
        else:
            assert row["drop_reason"] in INGEST_REASONS, row["drop_reason"]
    lines = [row["source_line"] for row in rows]
    assert lines == sorted(set(lines)), lines  # strictly increasing


def outcome(row: dict) -> tuple:
    return row["source_line"], row["drop_reason"], row["id"]


def assert_rows_match_the_lines(spec: FileSpec, payload: bytes, rows: list[dict], workdir: Path):
    if spec.compression and spec.damage:
        assert rows[-1]["drop_reason"] == "read.corrupt_stream"
        if spec.damage == "truncate":  # what was read is a prefix: its rows are the whole file's
            whole = workdir / "whole.jsonl"
            whole.write_bytes(layout_bytes(spec))
            cut = rows[-1]["source_line"]
            expected = [outcome(r) for r in ingest_rows(whole, spec.max_record_bytes)]
            assert [outcome(r) for r in rows[:-1]] == [o for o in expected if o[0] < cut]
        return
    plain = layout_bytes(spec) if spec.compression else payload
    # Nothing lost, nothing doubled: one row for every non-blank line.
    assert {row["source_line"] for row in rows} == non_blank_lines(plain)
    lines = plain.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    for row in rows:
        line = lines[row["source_line"] - 1]
        if b"\x00" in line and len(line) <= spec.max_record_bytes:
            assert row["drop_reason"] == "read.nul_byte", line


@pytest.mark.parametrize("compression", ["", "gz", "zst"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_file_ingests_into_one_row_per_unit(
    workdir: Path, layout: str, compression: str
) -> None:
    @seed(zlib.crc32(f"{layout}.{compression}".encode()))  # the same files on every run
    @settings(
        deadline=None,
        max_examples=20,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(spec=specs(layout, compression))
    def check(spec: FileSpec) -> None:
        path = workdir / file_name(spec)
        payload = file_bytes(spec)
        path.write_bytes(payload)
        rows = ingest_rows(path, spec.max_record_bytes)
        assert_every_row_is_a_record_or_quarantine(rows, path)
        # Only JSON Lines says which lines hold units; line 0 is the whole file.
        if layout == "jsonl" and all(row["source_line"] for row in rows):
            assert_rows_match_the_lines(spec, payload, rows, workdir)

    check()


def test_whole_file_units_are_alone(workdir: Path) -> None:
    empty = FileSpec("jsonl", (("blank", 0),) * 3)
    path = workdir / file_name(empty, "empty")
    path.write_bytes(file_bytes(empty))
    assert [(r["source_line"], r["drop_reason"]) for r in ingest_rows(path, 65_536)] == [
        (0, "read.empty_file")
    ]


# --- one Ray run over thirty generated files --------------------------------------------


def generated_specs(count: int, seed: int = 11) -> list[FileSpec]:
    """Every layout, compression and damage, each file with a mix of every part kind."""
    rng = random.Random(seed)
    chosen = []
    for index in range(count):
        kinds = list(PART_KINDS) + rng.choices(PART_KINDS, k=rng.randint(0, 6))
        rng.shuffle(kinds)
        chosen.append(
            FileSpec(
                layout=LAYOUTS[index % len(LAYOUTS)],
                parts=tuple((kind, rng.randint(0, 40)) for kind in kinds),
                crlf=index % 4 == 1,
                bom=index % 7 == 2,
                compression=("", "gz", "zst")[index // len(LAYOUTS) % 3],
                damage=("", "corrupt", "truncate")[index // 15 % 3] if index >= 15 else "",
                damage_at=rng.uniform(0.2, 0.8),
            )
        )
    return chosen


def test_ray_run_over_generated_malformed_files_conserves_every_unit(ray_session, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index, spec in enumerate(generated_specs(30)):
        (inputs / file_name(spec, f"f{index:02d}")).write_bytes(file_bytes(spec))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "inputs": [{"path": str(inputs), "max_record_bytes": 65_536}],
                "stages": [{"clean": {}}],
                "output": {"path": str(tmp_path / "out")},
                "run": {"progress_bars": False},
            }
        )
    )
    outcome = run_data(str(recipe))
    conservation = outcome.stats["conservation"]
    assert conservation["balanced"]
    assert conservation["input"] == (
        conservation["output"] + conservation["rejects"] + conservation["quarantine"]
    )
    reasons = outcome.stats["drop_reasons"]
    quarantined = {reason for reason in reasons if reason.startswith("read.")}
    assert quarantined <= set(INGEST_REASONS)
    for expected in (
        "read.invalid_json",
        "read.invalid_utf8",
        "read.nul_byte",
        "read.nesting_too_deep",
        "read.record_too_large",
        "read.corrupt_stream",
        "read.invalid_csv_row",
    ):
        assert reasons.get(expected, 0) > 0, (expected, reasons)
