"""Input discovery on the driver: a path, directory or glob becomes a sorted file list.

Only metadata is read here. Each ``InputFile.uri`` can be reopened by ``open_filesystem`` on
any worker: local paths stay absolute paths, URIs keep their scheme and authority.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs


class InputNotFound(ValueError):
    """An input path or glob that names no file."""


@dataclass(frozen=True)
class InputFile:
    uri: str  # reopenable by ``open_filesystem`` on any worker
    size: int


def open_filesystem(uri_or_path: str) -> tuple[pafs.FileSystem, str]:
    """Arrow's own filesystem where it has one (local, s3, gs, hdfs), else fsspec's."""
    if "://" not in uri_or_path:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri_or_path))
    try:
        return pafs.FileSystem.from_uri(uri_or_path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Arrow does not know the scheme (http, memory, ...): fsspec may.
        filesystem, path = fsspec.core.url_to_fs(uri_or_path)
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


def list_input_files(path: str) -> list[InputFile]:
    """A file, a directory (recursive) or a glob, as a sorted list; metadata only."""
    if _is_glob(path):
        return _glob_files(path)
    filesystem, location = open_filesystem(path)
    info = filesystem.get_file_info(location)
    if info.type == pafs.FileType.File:
        return [InputFile(uri=_file_uri(path, location, location), size=info.size or 0)]
    if info.type != pafs.FileType.Directory:
        raise InputNotFound(f"input path {path!r} does not exist")
    files = _walk(filesystem, location, path, pattern=None, recursive=True)
    if not files:
        raise InputNotFound(f"input directory {path!r} has no files (hidden, _-prefixed skipped)")
    return files


def fixed_prefix(path: str) -> str:
    """The part of a path or glob before its first wildcard: the directory it can reach."""
    if not _is_glob(path):
        return path
    parts = path.split("/")
    first = next(index for index, part in enumerate(parts) if _is_glob(part))
    return "/".join(parts[:first]) or ("/" if path.startswith("/") else ".")


def _is_glob(path: str) -> bool:
    # '?' starts a query string in a URL, so only '*' makes an http(s) address a glob.
    return "*" in path or ("?" in path and not path.startswith(("http://", "https://")))


def _glob_files(path: str) -> list[InputFile]:
    parts = path.split("/")
    first = next(index for index, part in enumerate(parts) if _is_glob(part))
    base, pattern = fixed_prefix(path), "/".join(parts[first:])
    filesystem, location = open_filesystem(base)
    files: list[InputFile] = []
    if filesystem.get_file_info(location).type == pafs.FileType.Directory:
        recursive = "/" in pattern or "**" in pattern
        files = _walk(filesystem, location, base, _glob_regex(pattern), recursive)
    if not files:
        raise InputNotFound(f"no input files match {path!r}")
    return files


def _glob_regex(pattern: str) -> re.Pattern[str]:
    pieces = {"**/": "(?:[^/]*/)*", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    tokens = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    return re.compile("".join(pieces.get(token, re.escape(token)) for token in tokens))


def _walk(
    filesystem: pafs.FileSystem,
    location: str,
    root: str,
    pattern: re.Pattern[str] | None,
    recursive: bool,
) -> list[InputFile]:
    files = []
    for info in filesystem.get_file_info(pafs.FileSelector(location, recursive=recursive)):
        relative = info.path[len(location.rstrip("/")) :].lstrip("/")
        # Hidden and _-prefixed entries are bookkeeping (.git, _SUCCESS, .crc), not input.
        if info.type != pafs.FileType.File or any(
            part.startswith((".", "_")) for part in relative.split("/")
        ):
            continue
        if pattern is None or pattern.fullmatch(relative):
            files.append(InputFile(uri=_file_uri(root, location, info.path), size=info.size or 0))
    return sorted(files, key=lambda item: item.uri)


def _file_uri(root: str, root_location: str, location: str) -> str:
    if "://" not in root:
        return location
    return root.rstrip("/") + location[len(root_location.rstrip("/")) :]
