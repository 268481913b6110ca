"""A run's own corner of its output directory: the run marker, stage checkpoints and the
staged output, so that a killed run never looks finished and can be resumed.

    <output>/.instructflow/run.json        written first: this directory holds a run's output
    <output>/.instructflow/checkpoints/    the dataset entering each global stage, and the
                                           processed dataset before the write, as Parquet
    <output>/.instructflow/staging/        shards, stats.json, report.html and manifest.json
                                           until the commit moves them into place
    <output>/data/ rejects/ quarantine/    committed shards; manifest.json is moved last

The directory is hidden: readers that skip hidden paths (``datasets``, Ray Data, this
project's discovery) never see a checkpoint or a staged shard. ``manifest.json`` at the top
is the commit marker: a run is finished when, and only when, it is there.

A checkpoint is written by the same Ray Data execution that materializes a global stage's
input: each block becomes one Parquet file named by the sha256 of its bytes, so a retried
task rewrites the same file instead of adding a copy. ``_COMPLETE.json`` is written on the
driver once the execution is done, with the row count and the Tally's counts so far; a
checkpoint without it is an interrupted one and is discarded.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.read import open_filesystem

RUN_DIRECTORY = ".instructflow"
RUN_MARKER = f"{RUN_DIRECTORY}/run.json"
CHECKPOINTS = f"{RUN_DIRECTORY}/checkpoints"
STAGING = f"{RUN_DIRECTORY}/staging"
STAGED_SHARDS = f"{STAGING}/shards"
STAGED_RESULTS = f"{STAGING}/results"
# Written into staging once everything else is there: the list of what the commit moves.
COMMIT_PLAN = f"{STAGING}/commit.json"
COMPLETE = "_COMPLETE.json"
MARKER_VERSION = 1
PROCESSED = "processed"


class ResumeError(ValueError):
    """The output directory holds nothing that ``--resume`` can continue."""


def uri_join(root: str, *parts: str) -> str:
    return posixpath.join(root, *parts)


def read_json(uri: str) -> Any | None:
    """The JSON document at ``uri``, or None when there is no such file."""
    filesystem, path = open_filesystem(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        return json.loads(stream.read())


def write_bytes_atomically(uri: str, payload: bytes) -> None:
    """Whole or not at all: a local file is written under a temporary name and renamed; an
    object store's PUT is already all-or-nothing."""
    filesystem, path = open_filesystem(uri)
    filesystem.create_dir(posixpath.dirname(path), recursive=True)
    if not isinstance(filesystem, pafs.LocalFileSystem):
        with filesystem.open_output_stream(path) as stream:
            stream.write(payload)
        return
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with filesystem.open_output_stream(temporary) as stream:
        stream.write(payload)
    filesystem.move(temporary, path)


def write_json_atomically(uri: str, payload: Any) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False)
    write_bytes_atomically(uri, text.encode("utf-8"))


def delete_tree(uri: str) -> None:
    filesystem, path = open_filesystem(uri)
    if filesystem.get_file_info(path).type == pafs.FileType.Directory:
        filesystem.delete_dir(path)


def parquet_files(uri: str) -> list[str]:
    """The committed ``.parquet`` files under ``uri`` (temporaries left out), sorted."""
    filesystem, path = open_filesystem(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.Directory:
        return []
    return sorted(
        info.path
        for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
        if info.type == pafs.FileType.File and info.path.endswith(".parquet")
    )


def write_checkpoint_block(batch: pa.Table, *, directory: str) -> pa.Table:
    """Ray Data UDF: save one block of a checkpoint and pass it on unchanged."""
    if batch.num_rows:
        sink = pa.BufferOutputStream()
        pq.write_table(batch, sink, compression="zstd")
        payload = sink.getvalue().to_pybytes()
        name = hashlib.sha256(payload).hexdigest()[:32]
        write_bytes_atomically(uri_join(directory, f"{name}.parquet"), payload)
    return batch


@dataclass(frozen=True)
class RunDirectory:
    """Paths and bookkeeping of one run inside ``output_path``."""

    output_path: str

    def uri(self, relative: str) -> str:
        return uri_join(self.output_path, relative)

    @property
    def staged_shards(self) -> str:
        return self.uri(STAGED_SHARDS)

    def marker(self) -> dict[str, Any] | None:
        return read_json(self.uri(RUN_MARKER))

    def write_marker(self, recipe_sha256: str, inputs: list[dict[str, Any]]) -> None:
        marker = {
            "written_by": "instructflow",
            "marker_version": MARKER_VERSION,
            "recipe_sha256": recipe_sha256,
            "inputs": [{"uri": item["uri"], "size": item["size"]} for item in inputs],
        }
        write_json_atomically(self.uri(RUN_MARKER), marker)

    def finished(self) -> bool:
        filesystem, path = open_filesystem(self.uri("manifest.json"))
        return filesystem.get_file_info(path).type == pafs.FileType.File

    # Checkpoints -------------------------------------------------------------------------

    def checkpoint_uri(self, name: str) -> str:
        return self.uri(f"{CHECKPOINTS}/{name}")

    def completed_checkpoint(self, name: str) -> dict[str, Any] | None:
        return read_json(uri_join(self.checkpoint_uri(name), COMPLETE))

    def start_checkpoint(self, name: str) -> str:
        """An empty directory for checkpoint ``name``: what an interrupted attempt left goes."""
        directory = self.checkpoint_uri(name)
        delete_tree(directory)
        return directory

    def complete_checkpoint(self, name: str, rows: int, tally_state: dict[str, Any]) -> None:
        files = [posixpath.basename(path) for path in parquet_files(self.checkpoint_uri(name))]
        record = {"rows": rows, "files": files, "tally": tally_state}
        write_json_atomically(uri_join(self.checkpoint_uri(name), COMPLETE), record)

    # Staged shards -----------------------------------------------------------------------

    def shard_result_uri(self, relative: str) -> str:
        return self.uri(f"{STAGED_RESULTS}/{relative.replace('/', '__')}.json")

    def staged_results(self) -> dict[str, dict[str, Any]]:
        """The result rows of shards already staged, by relative path (a resumed write
        skips them)."""
        filesystem, path = open_filesystem(self.uri(STAGED_RESULTS))
        if filesystem.get_file_info(path).type != pafs.FileType.Directory:
            return {}
        results = {}
        for info in filesystem.get_file_info(pafs.FileSelector(path)):
            if info.type == pafs.FileType.File and info.path.endswith(".json"):
                with filesystem.open_input_stream(info.path) as stream:
                    result = json.loads(stream.read())
                results[result["path"]] = result
        return results

    def clear_staging(self) -> None:
        delete_tree(self.uri(STAGING))

    def clear_checkpoints(self) -> None:
        delete_tree(self.uri(CHECKPOINTS))


def commit(run: RunDirectory, shards: list[dict[str, Any]], documents: dict[str, bytes]) -> None:
    """Make a run's staged output its output. Documents are staged first, then the plan of
    what moves; from there ``finish_commit`` can always complete it, also after a kill."""
    for name, payload in documents.items():
        write_bytes_atomically(run.uri(f"{STAGING}/{name}"), payload)
    # manifest.json moves last: it is what says the run is finished.
    names = sorted(documents, key=lambda name: (name == "manifest.json", name))
    plan = {"shards": sorted(result["path"] for result in shards), "documents": names}
    write_json_atomically(run.uri(COMMIT_PLAN), plan)
    finish_commit(run)


def finish_commit(run: RunDirectory) -> None:
    """Move what the commit plan lists into place, then drop staging and checkpoints.
    Whatever a killed commit already moved is simply found in place."""
    plan = read_json(run.uri(COMMIT_PLAN))
    filesystem, _ = open_filesystem(run.output_path)
    for top in sorted({path.split("/", 1)[0] for path in plan["shards"]}):
        move_tree(filesystem, run.uri(f"{STAGED_SHARDS}/{top}"), run.uri(top))
    for name in plan["documents"]:
        staged = open_filesystem(run.uri(f"{STAGING}/{name}"))[1]
        if filesystem.get_file_info(staged).type == pafs.FileType.File:
            filesystem.move(staged, open_filesystem(run.uri(name))[1])
    run.clear_checkpoints()
    run.clear_staging()


def move_tree(filesystem: pafs.FileSystem, source_uri: str, target_uri: str) -> None:
    """One rename where the filesystem has them (a local directory appears whole), else
    file by file (object stores, where only manifest.json marks the run finished)."""
    source, target = open_filesystem(source_uri)[1], open_filesystem(target_uri)[1]
    if filesystem.get_file_info(source).type != pafs.FileType.Directory:
        return
    if filesystem.get_file_info(target).type == pafs.FileType.NotFound:
        try:
            filesystem.move(source, target)
            return
        except (OSError, pa.ArrowNotImplementedError):
            pass
    for info in filesystem.get_file_info(pafs.FileSelector(source, recursive=True)):
        if info.type == pafs.FileType.File:
            destination = target + info.path[len(source) :]
            filesystem.create_dir(posixpath.dirname(destination), recursive=True)
            filesystem.move(info.path, destination)


def unfinished_run_problem(output_path: str) -> str | None:
    """Why ``output_path`` is not a finished run's output to read, or None when it is."""
    run = RunDirectory(output_path)
    if run.finished():
        return None
    if run.marker() is not None:
        return (
            "is an unfinished instructflow data run (no manifest.json: it was killed or is "
            "still running); `instructflow data run RECIPE --resume` continues it"
        )
    return "is not the output of `instructflow data run` (no manifest.json)"


def pending_commit(run: RunDirectory) -> bool:
    """Whether a killed run got as far as its commit plan (all shards and documents staged)."""
    return read_json(run.uri(COMMIT_PLAN)) is not None


__all__ = [
    "CHECKPOINTS",
    "COMMIT_PLAN",
    "PROCESSED",
    "RUN_DIRECTORY",
    "RUN_MARKER",
    "STAGING",
    "ResumeError",
    "RunDirectory",
    "commit",
    "finish_commit",
    "pending_commit",
    "unfinished_run_problem",
    "write_checkpoint_block",
]
