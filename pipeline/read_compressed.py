"""Decompression that keeps what it can read: a damaged stream gives all output before the damage.

pyarrow's compressed input streams raise on a corrupt or truncated stream and lose all that the
failing read had decoded (a 1 MiB read: often the whole file). Here the raw bytes are fed to the
streaming decompressors in small pieces; output stops where the damage is found, and the damage
is reported (``DecompressedStream.damage``, with its compressed and decompressed offsets) instead
of raised, so the caller can keep every complete record before it.

- gzip (zlib): member after member, so ``cat a.gz b.gz`` reads whole. The decoder is copied
  before each call; when a call fails it is repeated from the copy with ever smaller output
  limits, which keeps every byte inflate gives before the error (what ``zcat`` writes).
- bz2: stream after stream, output pulled in slices.
- zstd (``zstandard``): frame after frame; a block's output comes only once the block
  decodes, so nothing of a block that fails is kept.

bz2 and zstd decoders cannot be copied, and a failing call loses all it decoded (a whole good
block, often). For those the damaged member is decoded a second time from its start, the file
reopened, and the failing piece fed one byte at a time (``_replayed``): twice the work, in
damaged files only. Zero bytes between members are padding (tape and block devices add it), not
damage; any other bytes after the last member are. Memory: one raw read, plus one call's output,
at most ``chunk_bytes`` for gzip and bz2 and what one 4 KiB zstd piece expands to (zstandard
cannot cap a call's output).
"""

from __future__ import annotations

import bz2
import re
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import NamedTuple, Protocol

import pyarrow as pa
import zstandard

RAW_READ_BYTES = 1 << 20  # one remote range request per read: keep reads large
_NOT_ZERO = re.compile(b"[^\x00]")


class StreamDamage(NamedTuple):
    compressed_offset: int  # the file's byte where the decoder found the damage
    decompressed_offset: int  # bytes of output before it, all given to the reader
    message: str


class _Broken(Exception):
    def __init__(self, message: str, consumed: int) -> None:
        super().__init__(message)
        self.message, self.consumed = message, consumed  # consumed: of the piece fed


class _Member(Protocol):
    """One gzip member, bz2 stream or zstd frame being decoded."""

    feed_bytes: int
    copyable: bool  # whether a failing call can be repeated in smaller steps from a copy

    def feed(self, piece: memoryview) -> Iterator[bytes]: ...

    @property
    def finished(self) -> bool: ...

    @property
    def leftover(self) -> bytes: ...  # the fed bytes after this member's end


class DecompressedStream:
    """``read()`` gives the next ~``chunk_bytes`` of decompressed output; b"" at the end.

    The end is either the clean end of the last member or damage; ``damage`` says which.
    With ``codec`` None the raw bytes pass through. ``reopen`` opens the raw file again from
    its start, to go back over a damaged bz2 or zstd member (``_replayed``).
    """

    def __init__(
        self,
        raw: pa.NativeFile,
        codec: str | None,
        chunk_bytes: int,
        reopen: Callable[[], pa.NativeFile] | None = None,
    ) -> None:
        self.raw, self.codec, self.chunk_bytes, self.reopen = raw, codec, chunk_bytes, reopen
        self.damage: StreamDamage | None = None
        self.decompressed = 0
        self._data, self._pos, self._data_end = b"", 0, 0  # raw bytes read; _data_end: offset
        self._outputs = self._decoded() if codec else None

    def read(self) -> bytes:
        if self._outputs is None:
            return self.raw.read(self.chunk_bytes)
        parts, size = [], 0
        for output in self._outputs:
            parts.append(output)
            size += len(output)
            if size >= self.chunk_bytes:
                break
        return b"".join(parts)

    def _decoded(self) -> Iterator[bytes]:
        make_member = _MEMBERS[self.codec]
        while self._at_next_member():
            member, member_start = make_member(self.chunk_bytes), self._offset()
            while not member.finished:
                if self._pos == len(self._data) and not self._read_raw():
                    self._damaged(self._data_end, f"the file ends inside the {self.codec} stream")
                    return
                offset, piece = self._offset(), memoryview(self._data)[self._pos :]
                piece = piece[: member.feed_bytes]
                self._pos += len(piece)
                try:
                    for output in member.feed(piece):
                        self.decompressed += len(output)
                        yield output
                except _Broken as broken:
                    if member.copyable or self.reopen is None:
                        self._damaged(offset + broken.consumed, broken.message)
                    else:
                        yield from self._replayed(member_start, offset, bytes(piece), broken)
                    return
            self._pos -= len(member.leftover)  # the next member starts in the same piece

    def _at_next_member(self) -> bool:
        """Skips zero bytes (padding, which tape and block devices add); False at the end."""
        while not (match := _NOT_ZERO.search(self._data, self._pos)):
            if not self._read_raw():
                return False
        self._pos = match.start()
        return True

    def _read_raw(self) -> bool:
        self._data, self._pos = self.raw.read(RAW_READ_BYTES), 0
        self._data_end += len(self._data)
        return bool(self._data)

    def _offset(self) -> int:
        return self._data_end - len(self._data) + self._pos

    def _replayed(
        self, member_start: int, piece_offset: int, piece: bytes, broken: _Broken
    ) -> Iterator[bytes]:
        """The damaged member decoded again from its start, and the failing piece byte by byte.

        bz2 and zstd decoders cannot be copied, and the failing call loses all it decoded
        (often a whole good block, or the last one when only the checksum is wrong). Decoding
        the member a second time, in damaged files only, is what gets that output back.
        """
        member, where = _MEMBERS[self.codec](self.chunk_bytes), piece_offset
        try:
            with self.reopen() as raw:
                for data in _byte_range(raw, member_start, piece_offset, member.feed_bytes):
                    for _output in member.feed(data):
                        pass  # the reader has it already
            for index in range(len(piece)):
                where = piece_offset + index
                for output in member.feed(memoryview(piece)[index : index + 1]):
                    self.decompressed += len(output)
                    yield output
        except _Broken as again:
            broken = again
        # Without a second failure (the file changed?) the first one stands, at its piece.
        self._damaged(where, broken.message)

    def _damaged(self, offset: int, message: str) -> None:
        self.damage = StreamDamage(offset, self.decompressed, message)


def _byte_range(raw: pa.NativeFile, start: int, end: int, size: int) -> Iterator[memoryview]:
    """Bytes [start, end) of a stream read from its beginning, in pieces of at most ``size``."""
    position = 0
    while position < end:
        data = raw.read(min(RAW_READ_BYTES, end - position))
        if not data:
            return
        wanted = memoryview(data)[max(0, start - position) :]
        position += len(data)
        for index in range(0, len(wanted), size):
            yield wanted[index : index + size]


class _GzipMember:
    feed_bytes = 1 << 16
    copyable = True

    def __init__(self, limit: int) -> None:
        self.decoder, self.limit = zlib.decompressobj(wbits=31), limit

    @property
    def finished(self) -> bool:
        return self.decoder.eof

    @property
    def leftover(self) -> bytes:
        return self.decoder.unused_data

    def feed(self, piece: memoryview) -> Iterator[bytes]:
        pending: bytes | memoryview = piece
        while not self.decoder.eof:
            checkpoint = self.decoder.copy()
            try:
                output = self.decoder.decompress(pending, self.limit)
            except zlib.error as error:
                unread = yield from _inflate_up_to_error(checkpoint, pending, self.limit)
                raise _Broken(str(error), len(piece) - unread) from None
            pending = self.decoder.unconsumed_tail
            if output:
                yield output
            if not pending and len(output) < self.limit:
                return  # all input used and no output held back


def _inflate_up_to_error(
    checkpoint: zlib._Decompress, pending: bytes | memoryview, limit: int
) -> Generator[bytes, None, int]:
    """From the decoder as it was before the failing call: every byte it gives before failing.

    Halving the output limit after each failure finds the error's output position in about
    2·log2(limit) calls. Returns how many input bytes were not yet used there.
    """
    while limit:
        trial = checkpoint.copy()
        try:
            output = trial.decompress(pending, limit)
        except zlib.error:
            limit //= 2
            continue
        if trial.eof or (not output and len(trial.unconsumed_tail) == len(pending)):
            break  # not reproducible in smaller steps: reported where the caller saw it
        checkpoint, pending = trial, trial.unconsumed_tail
        yield output
    return len(pending)


class _Bz2Stream:
    feed_bytes = 1 << 14
    copyable = False

    def __init__(self, limit: int) -> None:
        self.decoder, self.limit = bz2.BZ2Decompressor(), limit

    @property
    def finished(self) -> bool:
        return self.decoder.eof

    @property
    def leftover(self) -> bytes:
        return self.decoder.unused_data

    def feed(self, piece: memoryview) -> Iterator[bytes]:
        data: bytes | memoryview = piece
        while True:
            try:
                output = self.decoder.decompress(data, self.limit)
            except (OSError, EOFError) as error:
                raise _Broken(str(error), 0) from None
            if output:
                yield output
            if self.decoder.eof or self.decoder.needs_input:
                return
            data = b""


class _ZstdFrame:
    feed_bytes = 1 << 12
    copyable = False

    def __init__(self, limit: int) -> None:
        del limit  # zstandard's decompressobj has no output limit
        self.decoder = zstandard.ZstdDecompressor().decompressobj()

    @property
    def finished(self) -> bool:
        return self.decoder.eof

    @property
    def leftover(self) -> bytes:
        return self.decoder.unused_data

    def feed(self, piece: memoryview) -> Iterator[bytes]:
        try:
            output = self.decoder.decompress(piece)
        except zstandard.ZstdError as error:
            raise _Broken(str(error), 0) from None
        if output:
            yield output


_MEMBERS: dict[str | None, type] = {"gzip": _GzipMember, "bz2": _Bz2Stream, "zstd": _ZstdFrame}
