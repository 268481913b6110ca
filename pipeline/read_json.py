"""Incremental splitting of a JSON array (or concatenated JSON values) with bounded memory.

``json.load`` needs the whole document; a JSON array of millions of elements must stream.
Elements are parsed one at a time with ``JSONDecoder.raw_decode`` on a buffer that grows only
while an element is incomplete. A failing parse is either an element cut by the chunk
boundary (read more) or a broken element. An element larger than the limit, or nested too
deep for the parser, is scanned past without being held.

After a broken element a minified array cannot be resynchronised (a stray quote flips
everything after it), so the rest of the file becomes one ``broken`` piece. A pretty-printed
array can: a JSON string never holds a raw newline, so a line that starts with the first
element's indentation and ``{`` starts the next element (``_ArrayLayout``), and only the text
up to it is lost. An element that only strict JSON rejects (a raw control character or NUL in
a string) has a known end and costs only itself.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

HEAD_CHARS = 2000
# Deeper values are quarantined: json.dumps, pyarrow and pickling recurse per level, and
# real instruction data nests a few levels (tool schemas a dozen).
MAX_NESTING = 128
_LOOKBEHIND = 64  # text kept before ``pos`` on a refill, for an element's indentation
_NON_SPACE = re.compile(r"\S")
_OUTSIDE_STRING = re.compile(r'[\[\]{}",]')
_INSIDE_STRING = re.compile(r'["\\]')
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]{0,40}\Z")
_DECODER = json.JSONDecoder()
_LENIENT = json.JSONDecoder(strict=False)


class JsonPiece(NamedTuple):
    line: int  # 1-based element of an array, or the line where a concatenated value starts
    value: Any  # the parsed value; None when ``problem`` is set
    text: str  # the value's source text, or only its head when it could not be kept
    # "", "invalid" (this value only), "broken" (the rest of the file), "too_large", "too_deep"
    problem: str = ""
    detail: str = ""


def split_json_values(chunks: Iterable[bytes], limit: int) -> Iterator[JsonPiece]:
    """Each element of a top-level array, or each of several concatenated top-level values.

    Bytes that are not UTF-8 reach ``text`` as lone surrogates (``surrogateescape``), so the
    caller can reject only the element that holds them.
    """
    buffer = _TextBuffer(chunks)
    if buffer.peek() == "[":
        buffer.pos += 1
        yield from _array_elements(buffer, limit)
        return
    while buffer.peek():
        piece = _next_value(buffer, buffer.line(), limit)
        if piece.problem == "broken":
            yield _rest_of_file(buffer, piece.line, piece.detail)
            return
        yield piece


def nesting_exceeds_limit(text: str, value: Any) -> bool:
    """Whether ``value`` nests lists and objects deeper than MAX_NESTING (without recursing)."""
    if not isinstance(value, (dict, list)) or text.count("[") + text.count("{") <= MAX_NESTING:
        return False  # cannot nest deeper than it has brackets: the common case, cheaply
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > MAX_NESTING:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class _TextBuffer:
    """Decoded text of a stream from the current value on; consumed text is dropped."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text, self.pos, self.eof = "", 0, False
        self.lines, self.counted = 1, 0
        self.dropped = 0  # characters dropped before ``text``: ``dropped + pos`` is absolute

    def fill(self) -> bool:
        chunk = next(self.chunks, None)
        self.line()
        keep = max(0, self.pos - _LOOKBEHIND)
        self.text, self.pos, self.counted = self.text[keep:], self.pos - keep, self.pos - keep
        self.dropped += keep
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

    def line_prefix(self) -> str | None:
        """The text between the last newline and ``pos``, if that newline is still held."""
        newline = self.text.rfind("\n", max(0, self.pos - _LOOKBEHIND), self.pos)
        return None if newline < 0 else self.text[newline + 1 : self.pos]


class _ArrayLayout:
    """Where a pretty-printed array's elements start, learned from its first element.

    That element must be an object on a line of its own after ``[``, its indentation only
    spaces or tabs, and no line inside it may start the same way (so nested objects, which
    pretty printers indent deeper, cannot be taken for elements).
    """

    def __init__(self) -> None:
        self.indent = ""
        self.marker: re.Pattern[str] | None = None

    def learn(self, prefix: str | None, first: JsonPiece) -> None:
        if prefix is None or prefix.strip(" \t") or len(prefix) > _LOOKBEHIND // 2:
            return
        if first.problem or not first.text.startswith("{"):
            return
        marker = re.compile("\n" + re.escape(prefix) + r"\{")
        if marker.search(first.text) is None:
            self.indent, self.marker = prefix, marker

    def at_element_start(self, buffer: _TextBuffer) -> bool:
        return (
            self.marker is not None
            and buffer.text.startswith("{", buffer.pos)
            and buffer.text.endswith("\n" + self.indent, 0, buffer.pos)
        )


def _array_elements(buffer: _TextBuffer, limit: int) -> Iterator[JsonPiece]:
    layout, index = _ArrayLayout(), 0
    while (char := buffer.peek()) and char != "]":
        index += 1
        piece = _array_element(buffer, layout, index, char, limit)
        if piece.problem == "broken":
            piece = _skip_broken(buffer, layout, piece)
        yield piece
        if piece.problem == "broken":
            return
    yield from _array_end(buffer, index, char)


def _array_element(
    buffer: _TextBuffer, layout: _ArrayLayout, index: int, char: str, limit: int
) -> JsonPiece:
    if index == 1:
        prefix = buffer.line_prefix()
        first = _next_value(buffer, index, limit)
        layout.learn(prefix, first)
        return first
    if char == ",":
        buffer.pos += 1
        buffer.peek()
    elif not layout.at_element_start(buffer):  # after a skipped element there is no comma
        message = f"expected ',' or ']' after element {index - 1}"
        return JsonPiece(index, None, "", "broken", message)
    return _next_value(buffer, index, limit, pretty=layout.marker is not None)


def _array_end(buffer: _TextBuffer, index: int, char: str) -> Iterator[JsonPiece]:
    if char == "":
        yield JsonPiece(index + 1, None, "", "broken", "the file ends inside the array (no ']')")
        return
    buffer.pos += 1
    if buffer.peek():
        yield _rest_of_file(buffer, index + 1, "data after the closing ']'")


def _next_value(buffer: _TextBuffer, line: int, limit: int, pretty: bool = False) -> JsonPiece:
    """The value at ``pos``; after a ``broken`` one ``pos`` stays at its start.

    ``pretty``: the array is pretty-printed, where a raw newline in a string means a stray
    quote rather than a writer that does not escape newlines.
    """
    while True:
        try:
            value, end = _DECODER.raw_decode(buffer.text, buffer.pos)
        except RecursionError:
            return _skip_value(buffer, line, "too_deep", f"nested deeper than {MAX_NESTING} levels")
        except json.JSONDecodeError as error:
            if buffer.eof or not _may_be_cut(error, len(buffer.text)):
                piece = _lenient_value(buffer, line, error, pretty)
                if piece is not None:
                    return piece
        else:
            if buffer.eof or not _may_be_cut_number(value, buffer.text, end):
                start, buffer.pos = buffer.pos, end
                return JsonPiece(line, value, buffer.text[start:end])
        if len(buffer.text) - buffer.pos > limit:
            return _skip_value(buffer, line, "too_large", f"> limit {limit}")
        buffer.fill()


def _lenient_value(
    buffer: _TextBuffer, line: int, strict_error: json.JSONDecodeError, pretty: bool
) -> JsonPiece | None:
    """A value only strict JSON rejects (a raw control character or NUL in a string).

    Its end is known, so it is ``invalid`` alone; anything else is ``broken``. None: it may
    go on in the next chunk.
    """
    message = f"{strict_error.msg} (char {strict_error.pos - buffer.pos})"
    control = strict_error.msg.startswith("Invalid control character")
    if not control or (pretty and buffer.text[strict_error.pos] in "\r\n"):
        return JsonPiece(line, None, "", "broken", message)
    try:
        value, end = _LENIENT.raw_decode(buffer.text, buffer.pos)
    except json.JSONDecodeError as error:
        if not buffer.eof and _may_be_cut(error, len(buffer.text)):
            return None
        return JsonPiece(line, None, "", "broken", message)
    except RecursionError:
        return JsonPiece(line, None, "", "broken", message)
    if not buffer.eof and _may_be_cut_number(value, buffer.text, end):
        return None
    start, buffer.pos = buffer.pos, end
    return JsonPiece(line, None, buffer.text[start:end], "invalid", message)


def _may_be_cut_number(value: Any, text: str, end: int) -> bool:
    # "12" of "12.5e3" parses too: a number that only number characters follow may go on.
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return is_number and _NUMBER_TAIL.match(text, end) is not None


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


def _skip_broken(buffer: _TextBuffer, layout: _ArrayLayout, broken: JsonPiece) -> JsonPiece:
    """Skips a broken element up to the next line that starts one, if the layout is known."""
    if layout.marker is None:
        return _rest_of_file(buffer, broken.line, broken.detail)
    head, start = buffer.text[buffer.pos : buffer.pos + HEAD_CHARS], buffer.dropped + buffer.pos
    after = start + 1  # not the broken element's own start
    overlap = len(layout.indent) + 1  # a marker cut by the chunk end is searched again
    while not (match := layout.marker.search(buffer.text, after - buffer.dropped)):
        after = max(after, buffer.dropped + len(buffer.text) - overlap)
        buffer.pos = len(buffer.text)
        if not buffer.fill():
            detail = f"{broken.detail}; no element starts after it, so the rest of the file is lost"
            return JsonPiece(broken.line, None, head, "broken", detail)
    buffer.pos = match.end() - 1
    head = head[: buffer.dropped + match.start() - start]
    detail = f"{broken.detail}; skipped to the next element, on line {buffer.line()}"
    return JsonPiece(broken.line, None, head, "invalid", detail)


def _skip_value(buffer: _TextBuffer, line: int, problem: str, reason: str) -> JsonPiece:
    """Scans past the value at ``pos`` without holding or parsing it (too large, too deep)."""
    head, size, skipper = buffer.text[buffer.pos : buffer.pos + HEAD_CHARS], 0, _Skipper()
    while True:
        end = skipper.scan(buffer.text, buffer.pos)
        if end is not None:
            size += end - buffer.pos
            buffer.pos = end
            return JsonPiece(line, None, head, problem, f"{size} chars {reason}")
        size += len(buffer.text) - buffer.pos
        buffer.pos = len(buffer.text)
        if not buffer.fill():
            detail = f"{size} chars {reason}, and the file ends inside this value"
            return JsonPiece(line, None, head, problem, detail)


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
