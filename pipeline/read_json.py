"""Incremental splitting of a JSON array (or concatenated JSON values) with bounded memory.

``json.load`` needs the whole document; a JSON array of millions of elements must stream.
Elements are parsed one at a time with ``JSONDecoder.raw_decode`` on a buffer that grows only
while an element is incomplete. A failing parse is either an element cut by the chunk
boundary (read more) or a broken element. After a broken element the array cannot be
resynchronised (a stray quote flips everything after it), so the rest of the file becomes one
``broken`` piece. An element larger than the limit is scanned past without being held.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

HEAD_CHARS = 2000
_NON_SPACE = re.compile(r"\S")
_OUTSIDE_STRING = re.compile(r'[\[\]{}",]')
_INSIDE_STRING = re.compile(r'["\\]')
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]{0,40}\Z")
_DECODER = json.JSONDecoder()


class JsonPiece(NamedTuple):
    line: int  # 1-based element of an array, or the line where a concatenated value starts
    value: Any  # the parsed value; None when ``problem`` is set
    text: str  # the value's source text, or only its head when it could not be kept
    problem: str = ""  # "", "broken" or "too_large"
    detail: str = ""


def split_json_values(chunks: Iterable[bytes], limit: int) -> Iterator[JsonPiece]:
    """Each element of a top-level array, or each of several concatenated top-level values.

    Bytes that are not UTF-8 reach ``text`` as lone surrogates (``surrogateescape``), so the
    caller can reject only the element that holds them.
    """
    buffer = _TextBuffer(chunks)
    in_array = buffer.peek() == "["
    buffer.pos += in_array
    index = 0
    while (char := buffer.peek()) and not (in_array and char == "]"):
        if in_array and index:
            if char != ",":
                yield _rest_of_file(buffer, index + 1, f"expected ',' or ']' after element {index}")
                return
            buffer.pos += 1
            buffer.peek()
        index += 1
        piece = _next_value(buffer, index if in_array else buffer.line(), limit)
        yield piece
        if piece.problem == "broken":
            return
    if in_array:
        yield from _array_end(buffer, index, char)


class _TextBuffer:
    """Decoded text of a stream from the current value on; consumed text is dropped."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text, self.pos, self.eof = "", 0, False
        self.lines, self.counted = 1, 0

    def fill(self) -> bool:
        chunk = next(self.chunks, None)
        self.line()
        self.text, self.pos, self.counted = self.text[self.pos :], 0, 0
        self.text += self.decoder.decode(chunk or b"", final=chunk is None)
        self.eof = chunk is None
        return not self.eof

    def peek(self) -> str:
        """The next non-space character ('' at the end), with ``pos`` moved onto it."""
        while not (match := _NON_SPACE.search(self.text, self.pos)):
            self.pos = len(self.text)
            if not self.fill():
                return ""
        self.pos = match.start()
        return self.text[self.pos]

    def line(self) -> int:
        """1-based line of ``pos``, counted incrementally so that it stays linear."""
        self.lines += self.text.count("\n", self.counted, self.pos)
        self.counted = self.pos
        return self.lines


def _array_end(buffer: _TextBuffer, index: int, char: str) -> Iterator[JsonPiece]:
    if char == "":
        yield JsonPiece(index + 1, None, "", "broken", "the file ends inside the array (no ']')")
        return
    buffer.pos += 1
    if buffer.peek():
        yield _rest_of_file(buffer, index + 1, "data after the closing ']'")


def _next_value(buffer: _TextBuffer, line: int, limit: int) -> JsonPiece:
    while True:
        try:
            value, end = _DECODER.raw_decode(buffer.text, buffer.pos)
        except json.JSONDecodeError as error:
            if buffer.eof or not _may_be_cut(error, len(buffer.text)):
                return _rest_of_file(buffer, line, f"{error.msg} (char {error.pos - buffer.pos})")
        else:
            if buffer.eof or not _may_be_cut_number(value, buffer.text, end):
                start, buffer.pos = buffer.pos, end
                return JsonPiece(line, value, buffer.text[start:end])
        if len(buffer.text) - buffer.pos > limit:
            return _skip_oversized(buffer, line, limit)
        buffer.fill()


def _may_be_cut_number(value: Any, text: str, end: int) -> bool:
    # "12" of "12.5e3" parses too: a number that only number characters follow may go on.
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return end == len(text) or (is_number and _NUMBER_TAIL.match(text, end) is not None)


def _may_be_cut(error: json.JSONDecodeError, length: int) -> bool:
    # An unterminated string reports where it starts; every other cut reports the end.
    return error.msg.startswith("Unterminated string") or error.pos >= length - 8


def _rest_of_file(buffer: _TextBuffer, line: int, message: str) -> JsonPiece:
    head = buffer.text[buffer.pos : buffer.pos + HEAD_CHARS]
    # The rest is not read: on remote storage that could be gigabytes for nothing.
    detail = (
        f"{message}; a broken JSON value cannot be resynchronised, so the rest of the file "
        "from here is quarantined as this one unit"
    )
    return JsonPiece(line, None, head, "broken", detail)


def _skip_oversized(buffer: _TextBuffer, line: int, limit: int) -> JsonPiece:
    head, size, skipper = buffer.text[buffer.pos : buffer.pos + HEAD_CHARS], 0, _Skipper()
    while True:
        end = skipper.scan(buffer.text, buffer.pos)
        if end is not None:
            size += end - buffer.pos
            buffer.pos = end
            return JsonPiece(line, None, head, "too_large", f"{size} chars > limit {limit}")
        size += len(buffer.text) - buffer.pos
        buffer.pos = len(buffer.text)
        if not buffer.fill():
            detail = f"{size} chars > limit {limit}, and the file ends inside this value"
            return JsonPiece(line, None, head, "too_large", detail)


class _Skipper:
    """Finds where one JSON value ends, chunk by chunk: tracks nesting, strings and escapes."""

    def __init__(self) -> None:
        self.depth, self.in_string, self.escaped = 0, False, False

    def scan(self, text: str, pos: int) -> int | None:
        """The index just past the value's end in ``text``, or None if it goes on."""
        while pos < len(text):
            if self.escaped:
                pos, self.escaped = pos + 1, False
                continue
            match = (_INSIDE_STRING if self.in_string else _OUTSIDE_STRING).search(text, pos)
            if match is None:
                return None
            char, pos = match.group(), match.end()
            if self.in_string:
                self.escaped = char == "\\"
                self.in_string = self.escaped
                if not self.in_string and self.depth == 0:
                    return pos
            elif char == '"':
                self.in_string = True
            elif char == "," and self.depth == 0:
                return match.start()
            elif char in "[{]}":
                self.depth += 1 if char in "[{" else -1
                if self.depth <= 0:
                    # A negative depth is the array's own ']' right after a scalar value.
                    return pos if self.depth == 0 else match.start()
        return None
