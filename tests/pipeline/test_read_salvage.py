"""Damaged compressed files: every unit before the damage is kept, the rest is one unit.

Each test corrupts or cuts a real gzip, zstd or bz2 file and compares the reader with a
reference decoder that reads as far as it can, one byte at a time, so that it keeps
everything the codec can give before the error.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import random
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
import zstandard

from pipeline.read import Unit, iter_units, list_input_files

LINE_COUNT = 1029


def units_of(path: Path | str, **options) -> list[Unit]:
    (input_file,) = list_input_files(str(path))
    return list(iter_units(input_file, **options))


def summary(units: list[Unit]) -> list[tuple[int, str | None]]:
    return [(unit.line, unit.error[0] if unit.error else None) for unit in units]


def corpus_lines(count: int = LINE_COUNT) -> bytes:
    """JSON Lines with enough entropy that zstd and bz2 (level 1) make several blocks."""
    rng = random.Random(7)
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(3000)
    ]
    records = [
        {
            "instruction": " ".join(rng.choices(words, k=20)),
            "output": " ".join(rng.choices(words, k=40)),
        }
        for _ in range(count)
    ]
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def zstd_compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


def gzip_readable(data: bytes) -> tuple[bytes, int | None]:
    """What inflate gives before its error (one output byte per call), and the error's byte."""
    decoder, pending, output = zlib.decompressobj(wbits=31), data, bytearray()
    try:
        while not decoder.eof:
            piece = decoder.decompress(pending, 1)
            output += piece
            pending = decoder.unconsumed_tail
            if not piece and not pending:
                return bytes(output), None  # truncated: no error, just no more input
    except zlib.error:
        return bytes(output), len(data) - len(pending)
    return bytes(output), None


def byte_fed_readable(data: bytes, make_decoder: Callable) -> tuple[bytes, int | None]:
    """What a bz2 or zstd decoder gives before its error when fed one byte per call."""
    decoder, output = make_decoder(), bytearray()
    for index in range(len(data)):
        try:
            output += decoder.decompress(data[index : index + 1])
        except (OSError, zstandard.ZstdError):
            return bytes(output), index
        if decoder.eof:
            break
    return bytes(output), None


CODECS = {
    "gz": (gzip.compress, gzip_readable),
    "zst": (zstd_compress, lambda data: byte_fed_readable(data, zstd_decompressobj)),
    "bz2": (
        lambda data: bz2.compress(data, compresslevel=1),
        lambda data: byte_fed_readable(data, bz2.BZ2Decompressor),
    ),
}


def zstd_decompressobj():
    return zstandard.ZstdDecompressor().decompressobj()


def corrupt_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(range(7, 7 + 40)) + data[middle + 40 :]


def assert_salvaged(tmp_path: Path, name: str, damaged: bytes, readable: bytes) -> list[Unit]:
    """The damaged file's units are those of its readable complete lines, then one more."""
    path = tmp_path / name
    path.write_bytes(damaged)
    units = units_of(path)
    complete = readable[: readable.rfind(b"\n") + 1]
    plain = tmp_path / "readable.jsonl"
    plain.write_bytes(complete)
    expected = units_of(plain) if complete else []
    assert units[:-1] == expected
    assert summary(units[-1:]) == [(complete.count(b"\n") + 1, "read.corrupt_stream")]
    assert units[-1].raw == readable[len(complete) :][:2000].decode("utf-8", "replace")
    return units


@pytest.mark.parametrize("suffix", ["gz", "zst", "bz2"])
def test_corrupt_middle_keeps_every_line_the_codec_can_read(tmp_path: Path, suffix: str) -> None:
    compress, reference = CODECS[suffix]
    lines = corpus_lines()
    damaged = corrupt_middle(compress(lines))
    readable, error_byte = reference(damaged)
    assert 0 < readable.count(b"\n") < LINE_COUNT  # the test means something
    units = assert_salvaged(tmp_path, f"a.jsonl.{suffix}", damaged, readable)
    assert (
        f"at compressed byte {error_byte}, after {len(readable)} decompressed" in units[-1].error[1]
    )
    intact = lines[: lines.index(b"\n", len(lines) // 4) + 1]  # well before the damage
    assert [u.value for u in units[: intact.count(b"\n")]] == [
        json.loads(line) for line in intact.splitlines()
    ]


def test_corrupt_gzip_keeps_more_than_the_gzip_module(tmp_path: Path) -> None:
    damaged = corrupt_middle(gzip.compress(corpus_lines()))
    stdlib = bytearray()
    with gzip.open(io.BytesIO(damaged)) as stream, pytest.raises((OSError, EOFError, zlib.error)):
        while block := stream.read(1):
            stdlib += block
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(damaged)
    units = units_of(path)
    assert len(units) - 1 >= stdlib.count(b"\n") > 0  # gzip's own reader loses its buffer


@pytest.mark.parametrize("suffix", ["gz", "zst", "bz2"])
def test_truncated_stream_keeps_every_complete_line(tmp_path: Path, suffix: str) -> None:
    compress, reference = CODECS[suffix]
    compressed = compress(corpus_lines())
    cut = compressed[: len(compressed) * 3 // 5]
    readable, error_byte = reference(cut)
    assert error_byte is None and 0 < readable.count(b"\n") < LINE_COUNT
    units = assert_salvaged(tmp_path, f"a.jsonl.{suffix}", cut, readable)
    codec = {"gz": "gzip", "zst": "zstd", "bz2": "bz2"}[suffix]
    assert (
        f"the file ends inside the {codec} stream at compressed byte {len(cut)}"
        in units[-1].error[1]
    )


def test_a_wrong_zstd_checksum_costs_no_line(tmp_path: Path) -> None:
    # Only the frame's checksum is wrong: the decoder fails after its last block, in the
    # same call that decoded it; going back over the frame keeps that block.
    compressed = bytearray(zstd_compress(corpus_lines()))
    compressed[-1] ^= 0xFF
    path = tmp_path / "a.jsonl.zst"
    path.write_bytes(bytes(compressed))
    units = units_of(path)
    assert summary(units[-1:]) == [(LINE_COUNT + 1, "read.corrupt_stream")]
    assert all(u.error is None for u in units[:-1]) and len(units) == LINE_COUNT + 1
    assert "checksum" in units[-1].error[1]


def test_concatenated_members_frames_and_streams_read_whole(tmp_path: Path) -> None:
    first, second = b'{"a": 1}\n{"a": 2}\n', b'{"a": 3}\n'
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    files = {
        # NUL padding between and after members is what tape and block devices add.
        "a.jsonl.gz": gzip.compress(first) + b"\0" * 100 + gzip.compress(second) + b"\0" * 7,
        "a.jsonl.zst": zstd_compress(first) + skippable + zstd_compress(second),
        "a.jsonl.bz2": bz2.compress(first) + bz2.compress(second),
    }
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
        assert [u.value for u in units_of(tmp_path / name)] == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_damage_in_a_later_member_keeps_the_earlier_ones(tmp_path: Path) -> None:
    first = gzip.compress(b'{"a": 1}\n{"a": 2}\n')
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(first + b"garbage after the member")
    units = units_of(path)
    assert summary(units) == [(1, None), (2, None), (3, "read.corrupt_stream")]
    assert f"at compressed byte {len(first)}, after 18 decompressed" in units[2].error[1]


def test_corrupt_pretty_json_array_keeps_the_complete_elements(tmp_path: Path) -> None:
    records = [json.loads(line) for line in corpus_lines().splitlines()]
    text = json.dumps(records, indent=2).encode()
    damaged = corrupt_middle(gzip.compress(text))
    readable, _ = gzip_readable(damaged)
    plain = tmp_path / "readable.json"
    plain.write_bytes(readable)
    expected = units_of(plain)  # ends with the element cut by the damage
    path = tmp_path / "a.json.gz"
    path.write_bytes(damaged)
    units = units_of(path)
    assert units[:-1] == expected[:-1] and len(units) > 100
    assert summary(units[-1:]) == [(expected[-1].line, "read.corrupt_stream")]


def test_truncated_text_loses_only_the_paragraph_at_the_cut(tmp_path: Path) -> None:
    text = b"".join(b"Paragraph %d, first line.\nSecond line.\n\n" % i for i in range(400))
    compressed = gzip.compress(text)
    path = tmp_path / "a.txt.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    units = units_of(path)
    readable, _ = gzip_readable(compressed[: len(compressed) // 2])
    complete_paragraphs = readable[: readable.rfind(b"\n\n") + 2].count(b"\n\n")
    assert all(u.error is None for u in units[:-1]) and len(units) - 1 == complete_paragraphs
    assert units[-1].error[0] == "read.corrupt_stream"
    assert units[-1].line == 3 * complete_paragraphs + 1


def test_corrupt_csv_keeps_the_rows_before(tmp_path: Path) -> None:
    rows = "".join(f'{i},"line one\nline two {i}"\n' for i in range(3000))
    compressed = gzip.compress(("n,text\n" + rows).encode())
    path = tmp_path / "a.csv.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    units = units_of(path)
    assert [u.value["n"] for u in units[:-1]] == [str(i) for i in range(len(units) - 1)]
    assert units[-1].error[0] == "read.corrupt_stream" and units[-1].line == len(units)


def test_damaged_zstd_through_fsspec_goes_back_over_the_frame(tmp_path: Path) -> None:
    compressed = bytearray(zstd_compress(corpus_lines()))
    compressed[-1] ^= 0xFF  # reopening the file is what keeps the last block
    memory = fsspec.filesystem("memory")
    memory.pipe("/salvage-test/a.jsonl.zst", bytes(compressed))
    units = units_of("memory://salvage-test/a.jsonl.zst")
    assert summary(units[-1:]) == [(LINE_COUNT + 1, "read.corrupt_stream")]
    assert len(units) == LINE_COUNT + 1


def test_nothing_decodable_is_one_whole_file_unit(tmp_path: Path) -> None:
    for name in ("a.jsonl.gz", "a.jsonl.zst", "a.jsonl.bz2"):
        (tmp_path / name).write_bytes(b"not compressed at all\n")
        (unit,) = units_of(tmp_path / name)
        assert summary([unit]) == [(0, "read.corrupt_stream")]
        assert re.search(r"at compressed byte \d+, after 0 decompressed bytes", unit.error[1])
