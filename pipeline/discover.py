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


# Object stores whose URIs Arrow reads options from (``?endpoint_override=...``).
OPTION_SCHEMES = ("s3", "gs", "gcs")


def open_filesystem(uri_or_path: str) -> tuple[pafs.FileSystem, str]:
    """Arrow's own filesystem where it has one (local, s3, gs, hdfs), else fsspec's."""
    if "://" not in uri_or_path:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri_or_path))
    refuse_uri_options(uri_or_path)
    try:
        return pafs.FileSystem.from_uri(uri_or_path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Arrow does not know the scheme (http, memory, ...): fsspec may.
        filesystem, path = fsspec.core.url_to_fs(uri_or_path)
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


def refuse_uri_options(uri: str) -> None:
    """Options after ``?`` in an object store's URI would end up in the middle of every path
    joined under it (``s3://b/run?endpoint_override=h/stats.json``); the environment
    configures the store for the driver and, forwarded, for every Ray worker."""
    if uri.split("://", 1)[0].lower() in OPTION_SCHEMES and "?" in uri:
        raise ValueError(
            f"{uri}: options in the URI (after '?') are not supported; set the endpoint and "
            "keys in the environment instead (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)"
        )


def uri_of(root_uri: str, location: str) -> str:
    """``location``, a path inside the filesystem ``open_filesystem(root_uri)`` opened (what
    Arrow and Ray Train report: ``bucket/run/x`` for ``s3://bucket/run``), as a URI like
    ``root_uri`` (``s3://bucket/run/x``). Local paths, and locations outside the root (already
    URIs), are returned as they are."""
    if "://" not in root_uri:
        return location
    root = open_filesystem(root_uri)[1].rstrip("/")
    if location != root and not location.startswith(root + "/"):
        return location
    return root_uri.rstrip("/") + location[len(root) :]


def storage_problem(error: OSError) -> str:
    """An object store's failure in one line: a missing bucket or an endpoint that does not
    answer said plainly (Arrow's own wording suggests an option of its own, or quotes curl);
    any other error as Arrow's first line."""
    text = str(error).strip()
    missing = re.search(r"[Bb]ucket '([^']+)'(?: not found|.*NO_SUCH_BUCKET)", text)
    if missing is not None:
        return f"bucket {missing.group(1)!r} does not exist (instructflow does not create buckets)"
    if "NETWORK_CONNECTION" in text or "Could not connect" in text:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        where = f"the endpoint {endpoint}" if endpoint else "the object store"
        return f"cannot reach {where}; check AWS_ENDPOINT_URL and the network"
    return text.splitlines()[0] if text else type(error).__name__


def list_input_files(path: str) -> list[InputFile]:
    """A file, a directory (recursive) or a glob, as a sorted list; metadata only."""
    if "://" in path:
        refuse_uri_options(path)  # else its '?' reads as a glob
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
