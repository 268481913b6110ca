"""Input discovery and streaming readers: files become units, and nothing is lost.

A unit is one input record or one malformed thing, never both, so that every byte of input
is accounted for as a record or as a quarantine row. ``Unit.line`` is the 1-based line for
JSON Lines and text (a paragraph's first line), the 1-based element for a JSON array (or
value, for concatenated JSON), the 1-based data row for CSV (header not counted) and
Parquet; 0 means the file as a whole (binary, empty, unreadable before its first record).

Memory stays bounded by ``max_record_bytes`` plus one ~1 MiB chunk: compressed streams are
decompressed in chunks (``pipeline.read_compressed``) and split here, and a JSON array is
split into elements incrementally with ``JSONDecoder.raw_decode``.

A damaged compressed stream (corrupt or truncated) keeps every unit before the damage; the
units the reader would make from the damaged end (a partial last line, an unfinished
element) and the rest of the file become one ``read.corrupt_stream`` unit instead.
A NUL byte costs only the line, paragraph, element or row that holds it; a file is binary as
a whole only when its head is mostly not text.
"""

from __future__ import annotations

import codecs
import csv
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.discover import InputFile, InputNotFound, list_input_files, open_filesystem
from pipeline.read_compressed import DecompressedStream
from pipeline.read_json import MAX_NESTING, JsonPiece, nesting_exceeds_limit, split_json_values

__all__ = [
    "FILE_TYPES",
    "READ_REASONS",
    "InputFile",
    "InputNotFound",
    "Unit",
    "iter_units",
    "list_input_files",
    "open_filesystem",
    "split_extension",
]

READ_REASONS = (
    "read.invalid_json",
    "read.invalid_utf8",
    "read.binary_file",
    "read.empty_file",
    "read.record_too_large",
    "read.invalid_csv_row",
    "read.not_an_object",
    "read.unreadable_file",
    "read.corrupt_stream",
    "read.nul_byte",
    "read.nesting_too_deep",
)
FILE_TYPES = ("jsonl", "json", "parquet", "csv", "text")
TextUnit = Literal["auto", "file", "paragraph", "line"]
# text_unit auto: paragraphs (blank-line separated), except that a run of lines without a
# blank line that grows past this many bytes is taken as one record per line (an article
# per line, a corpus without blank lines) rather than as one giant paragraph.
AUTO_PARAGRAPH_BYTES = 32 * 1024

CHUNK_BYTES = 1 << 20
SNIFF_BYTES = 8192
RAW_CHARS = 2000
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
EXTENSION_TYPES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".md": "text",
}
_NON_TEXT = re.compile("[\x00-\x07\x0b\x0e-\x1a\x1c-\x1f\x7f\ufffd]")
_SURROGATE = re.compile("[\udc80-\udcff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = "a \\uD800-\\uDFFF escape without its pair is not Unicode text"
_TOO_DEEP = f"lists and objects nested deeper than {MAX_NESTING} levels"
_NUL = "a NUL byte"


class Unit(NamedTuple):
    line: int
    value: dict[str, Any] | str | None
    error: tuple[str, str] | None = None
    raw: str | None = None


def split_extension(uri: str) -> tuple[str, str | None]:
    """The format extension (``.jsonl``) and the compression codec named by the file name."""
    name = uri.rsplit("/", 1)[-1].split("?", 1)[0].lower()
    stem, extension = os.path.splitext(name)
    compression = COMPRESSIONS.get(extension)
    if compression:
        extension = os.path.splitext(stem)[1]
    return extension, compression


def iter_units(
    input_file: InputFile,
    file_type: str = "auto",
    *,
    max_record_bytes: int = 4_000_000,
    text_unit: TextUnit = "auto",
    csv_delimiter: str = ",",
) -> Iterator[Unit]:
    """Every record and every malformed thing in one file, in order, with bounded memory."""
    if file_type != "auto" and file_type not in FILE_TYPES:
        raise ValueError(f"file_type {file_type!r} is not one of auto, {', '.join(FILE_TYPES)}")
    last_line = 0
    try:
        for unit in _file_units(input_file, file_type, max_record_bytes, text_unit, csv_delimiter):
            last_line = unit.line
            yield unit
    except (OSError, pa.ArrowException, EOFError) as error:
        detail = f"{type(error).__name__}: {error}"
        if last_line:
            detail += f" (after unit {last_line}; the rest of the file was not read)"
        yield _bad(last_line + 1 if last_line else 0, "read.unreadable_file", detail, None)


def _file_units(
    input_file: InputFile, file_type: str, limit: int, text_unit: TextUnit, delimiter: str
) -> Iterator[Unit]:
    filesystem, path = open_filesystem(input_file.uri)
    extension, compression = split_extension(input_file.uri)
    kind = EXTENSION_TYPES.get(extension) if file_type == "auto" else file_type
    if kind == "parquet":
        yield from _parquet_units(filesystem, path)
        return
    # Raw bytes, decompressed here: pyarrow's compressed streams lose a failing read whole.
    with filesystem.open_input_stream(path, compression=None) as raw:
        reopen = functools.partial(filesystem.open_input_stream, path, compression=None)
        chunks = _Chunks(DecompressedStream(raw, compression, CHUNK_BYTES, reopen))
        kind = kind or _sniff(chunks.head)
        if kind != "parquet" and _looks_binary(chunks.head):
            detail = "mostly non-text bytes in the first 8 KiB"
            yield _bad(0, "read.binary_file", detail, chunks.head)
            return
        if kind == "parquet":
            yield from _parquet_units(filesystem, path)
            return
        if kind == "json" and _looks_like_json_lines(chunks.head):
            kind = "jsonl"
        readers = {
            "jsonl": lambda: _jsonl_units(chunks, limit),
            "json": lambda: _json_units(chunks, limit),
            "csv": lambda: _csv_units(chunks, limit, _delimiter(extension, delimiter)),
            "text": lambda: _text_units(chunks, limit, text_unit),
        }
        yield from _up_to_damage(readers[kind](), chunks)
        if not chunks.content_seen and chunks.stream.damage is None:
            yield _bad(0, "read.empty_file", "the file has no bytes other than whitespace", "")


class _Chunks:
    """The decompressed bytes of one file in chunks; the first is kept for sniffing."""

    def __init__(self, stream: DecompressedStream) -> None:
        self.stream = stream
        self.head = stream.read().removeprefix(codecs.BOM_UTF8)
        self.content_seen = False
        self.ended = False  # the reader has asked past the last chunk

    def __iter__(self) -> Iterator[bytes]:
        chunk = self.head
        while chunk:
            self.content_seen = self.content_seen or bool(chunk.strip())
            yield chunk
            chunk = self.stream.read()
        self.ended = True


def _up_to_damage(units: Iterator[Unit], chunks: _Chunks) -> Iterator[Unit]:
    """The reader's units, but those it makes from a damaged stream's end are one unit.

    A unit made after the last chunk ran out is the text at the damage (a line without its
    newline, an unfinished element or paragraph), which may go on in the bytes lost.
    """
    last_line, tail = 0, None
    for unit in units:
        if chunks.ended and chunks.stream.damage is not None:
            tail = unit
            break
        last_line = unit.line
        yield unit
    damage = chunks.stream.damage
    if not chunks.ended or damage is None:
        return  # clean, or the reader stopped early and its last unit covers the rest
    if tail is not None:
        line = tail.line
    else:  # 0: not a byte was readable, the file as a whole
        line = last_line + 1 if chunks.stream.decompressed else 0
    detail = (
        f"{damage.message} at compressed byte {damage.compressed_offset}, after "
        f"{damage.decompressed_offset} decompressed bytes; the rest of the file from here "
        "is quarantined as this one unit"
    )
    yield _bad(line, "read.corrupt_stream", detail, tail.raw if tail else "")


def _bad(line: int, reason: str, detail: str, raw: bytes | str | None) -> Unit:
    if isinstance(raw, bytes):
        raw = raw[: RAW_CHARS * 4].decode("utf-8", errors="replace")
    elif raw is not None:
        raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")
    return Unit(line, None, (reason, detail), None if raw is None else raw[:RAW_CHARS])


def _looks_binary(head: bytes) -> bool:
    # Not any NUL: one stray NUL in a text file costs only its own line (read.nul_byte).
    sample = head[:SNIFF_BYTES]
    text = sample.decode("utf-8", errors="replace")
    return bool(text) and len(_NON_TEXT.findall(text)) > 0.3 * len(text)


def _sniff(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    start = head.lstrip()[:1]
    return "json" if start in (b"[", b"{") else "text"


def _looks_like_json_lines(head: bytes) -> bool:
    """A .json file whose first line is a whole object: read it as JSON Lines.

    Same records as reading concatenated values, but a broken line then costs only itself.
    """
    lines = head.lstrip().split(b"\n", 1)
    try:
        return len(lines) == 2 and isinstance(json.loads(lines[0]), dict)
    except (ValueError, RecursionError):
        return False


def _delimiter(extension: str, configured: str) -> str:
    return "\t" if extension == ".tsv" and configured == "," else configured


class _Line(NamedTuple):
    number: int
    data: bytes  # the line without its newline, or only its head when it is too large
    size: int


def _lines(chunks: Iterable[bytes], limit: int) -> Iterator[_Line]:
    number, pending, oversize = 0, b"", 0
    for chunk in chunks:
        parts = chunk.split(b"\n")
        for index, part in enumerate(parts):
            if oversize:
                oversize += len(part)
            else:
                pending += part
                if len(pending) > limit:
                    # Keep only what quarantine shows; skip the rest of the line as it streams.
                    oversize, pending = len(pending), pending[: RAW_CHARS * 4]
            if index == len(parts) - 1:
                break
            number += 1
            yield _Line(number, pending.rstrip(b"\r"), oversize or len(pending))
            pending, oversize = b"", 0
    if pending or oversize:
        yield _Line(number + 1, pending.rstrip(b"\r"), oversize or len(pending))


def _too_large(number: int, size: int, limit: int, head: bytes | str) -> Unit:
    return _bad(number, "read.record_too_large", f"{size} bytes > max_record_bytes {limit}", head)


def _jsonl_units(chunks: Iterable[bytes], limit: int) -> Iterator[Unit]:
    for line in _lines(chunks, limit):
        if line.size > limit:
            yield _too_large(line.number, line.size, limit, line.data)
        elif line.data.strip():
            yield _json_line(line)


def _json_line(line: _Line) -> Unit:
    number, data = line.number, line.data
    if b"\x00" in data:
        return _bad(number, "read.nul_byte", f"{_NUL} at byte {data.index(0)}", data)
    try:
        text = data.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError as error:
        return _bad(number, "read.invalid_utf8", f"byte {error.start}: {error.reason}", data)
    except json.JSONDecodeError as error:
        return _bad(number, "read.invalid_json", f"{error.msg} at column {error.colno}", data)
    except RecursionError:
        return _bad(number, "read.nesting_too_deep", _TOO_DEEP, data)
    if not isinstance(value, dict):
        return _bad(number, "read.not_an_object", f"a JSON {type(value).__name__}", data)
    if nesting_exceeds_limit(text, value):
        return _bad(number, "read.nesting_too_deep", _TOO_DEEP, data)
    if _has_lone_surrogate(text, value):
        return _bad(number, "read.invalid_utf8", _LONE_SURROGATE, data)
    return Unit(number, value)


def _has_lone_surrogate(text: str, value: Any) -> bool:
    """JSON may escape half a surrogate pair, which no UTF-8 writer downstream accepts."""
    if not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text_units(chunks: Iterable[bytes], limit: int, text_unit: TextUnit) -> Iterator[Unit]:
    block: list[bytes] = []
    sizes: list[int] = []
    start = size = 0
    per_line = False  # auto, inside a run of lines too long for one paragraph
    bound = min(AUTO_PARAGRAPH_BYTES, limit)
    for line in _lines(chunks, limit):
        blank = line.size <= limit and not line.data.strip()
        # A blank line ends a paragraph; in a whole file only leading blank lines are dropped.
        if blank and (text_unit != "file" or not block):
            if block:
                yield _text_block(start, block, size, limit)
            block, sizes, size, per_line = [], [], 0, False
            continue
        if per_line:
            yield _text_block(line.number, [line.data], line.size, limit)
            continue
        start = start if block else line.number
        size += line.size + (1 if block else 0)
        block.append(line.data)
        sizes.append(line.size)
        if text_unit == "auto" and size > bound and len(block) > 1:
            # No blank line for this long: each line is a unit, to the next blank line.
            for offset, (data, own) in enumerate(zip(block, sizes, strict=True)):
                yield _text_block(start + offset, [data], own, limit)
            block, sizes, size, per_line = [], [], 0, True
            continue
        if size > limit:
            block = [b"\n".join(block)[: RAW_CHARS * 4]]
            sizes = [size]
        if text_unit == "line":
            yield _text_block(start, block, size, limit)
            block, sizes, size = [], [], 0
    if block:
        yield _text_block(start, block, size, limit)


def _text_block(start: int, block: list[bytes], size: int, limit: int) -> Unit:
    data = b"\n".join(block)
    if size > limit:
        return _too_large(start, size, limit, data)
    if b"\x00" in data:
        line = start + data.count(b"\n", 0, data.index(0))
        return _bad(start, "read.nul_byte", f"{_NUL} on line {line}", data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = start + data.count(b"\n", 0, error.start)
        return _bad(start, "read.invalid_utf8", f"line {line}: {error.reason}", data)
    return Unit(start, text.strip())


def _csv_units(chunks: Iterable[bytes], limit: int, delimiter: str) -> Iterator[Unit]:
    oversized: list[_Line] = []

    def decoded() -> Iterator[str]:
        for line in _lines(chunks, limit):
            if line.size > limit:
                oversized.append(line)
            else:
                yield line.data.decode("utf-8", errors="surrogateescape") + "\n"

    # One quoted field may span lines, so the csv module's own cap must allow a full record.
    csv.field_size_limit(max(csv.field_size_limit(), limit))
    reader = csv.reader(decoded(), delimiter=delimiter)
    header: list[str] | None = None
    row_number = 0
    while True:
        try:
            row = next(reader, None)
        except csv.Error as error:
            # Before Python 3.11 the csv module refuses a NUL itself.
            reason = "read.nul_byte" if "NUL" in str(error) else "read.invalid_csv_row"
            row_number += 1
            yield _bad(row_number, reason, f"line {reader.line_num}: {error}", "")
            continue
        for line in oversized:
            row_number += 1
            yield _too_large(row_number, line.size, limit, line.data)
        oversized.clear()
        if row is None:
            return
        if not any(field.strip() for field in row):
            continue
        if header is None:
            header = _unique_names(row)
            continue
        row_number += 1
        yield _csv_row(row_number, reader.line_num, header, row, delimiter)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def _csv_row(number: int, line: int, header: list[str], row: list[str], delimiter: str) -> Unit:
    text = delimiter.join(row)
    if len(row) != len(header):
        detail = f"line {line}: {len(row)} fields, the header has {len(header)}"
        return _bad(number, "read.invalid_csv_row", detail, text)
    if "\x00" in text:
        return _bad(number, "read.nul_byte", f"line {line}: {_NUL}", text)
    if _SURROGATE.search(text):
        return _bad(number, "read.invalid_utf8", f"line {line}: not valid UTF-8", text)
    return Unit(number, dict(zip(header, row, strict=True)))


def _parquet_units(filesystem: pafs.FileSystem, path: str) -> Iterator[Unit]:
    with filesystem.open_input_file(path) as handle:
        number = 0
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                number += 1
                yield Unit(number, _plain(row))


def _plain(value: Any) -> Any:
    """Parquet values as JSON-able data, so unconsumed columns can travel in ``meta``."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else value


def _json_units(chunks: Iterable[bytes], limit: int) -> Iterator[Unit]:
    for piece in split_json_values(chunks, limit):
        yield _json_piece_unit(piece, limit)


def _json_piece_unit(piece: JsonPiece, limit: int) -> Unit:
    line, text = piece.line, piece.text
    if piece.problem == "invalid" and "\x00" in text:
        return _bad(line, "read.nul_byte", piece.detail, text)
    if piece.problem in ("invalid", "broken"):
        return _bad(line, "read.invalid_json", piece.detail, text)
    if piece.problem == "too_deep":
        return _bad(line, "read.nesting_too_deep", piece.detail, text)
    if piece.problem == "too_large" or len(text) > limit:
        detail = piece.detail or f"{len(text)} chars > max_record_bytes {limit}"
        return _bad(line, "read.record_too_large", detail, text)
    if _SURROGATE.search(text):
        return _bad(line, "read.invalid_utf8", "not valid UTF-8", text)
    if not isinstance(piece.value, dict):
        return _bad(line, "read.not_an_object", f"a JSON {type(piece.value).__name__}", text)
    if nesting_exceeds_limit(text, piece.value):
        return _bad(line, "read.nesting_too_deep", _TOO_DEEP, text)
    if _has_lone_surrogate(text, piece.value):
        return _bad(line, "read.invalid_utf8", _LONE_SURROGATE, text)
    return Unit(line, piece.value)
