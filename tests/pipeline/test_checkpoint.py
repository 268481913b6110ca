"""The commit: staged shards and documents move into place with manifest.json last, on a
local disk and on an object store (fsspec's memory filesystem stands in for s3/gs), and a
commit cut short is finished by the next call. No Ray here."""

from __future__ import annotations

import uuid

import pyarrow.fs as pafs
import pytest

from pipeline.checkpoint import (
    COMMIT_PLAN,
    STAGED_SHARDS,
    STAGING,
    RunDirectory,
    commit,
    finish_commit,
    move_tree,
    pending_commit,
    write_bytes_atomically,
    write_json_atomically,
)
from pipeline.read import open_filesystem

SHARDS = [
    "data/train/part-00000-of-00002.parquet",
    "data/train/part-00001-of-00002.parquet",
    "rejects/part-00000-of-00001.parquet",
]


def staged_run(root: str) -> RunDirectory:
    run = RunDirectory(root)
    run.write_marker("abc", [])
    for relative in SHARDS:
        write_bytes_atomically(run.uri(f"{STAGED_SHARDS}/{relative}"), relative.encode())
    return run


def files_under(root: str) -> dict[str, bytes]:
    filesystem, path = open_filesystem(root)
    found = {}
    for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True)):
        if info.type == pafs.FileType.File:
            with filesystem.open_input_stream(info.path) as stream:
                found[info.path[len(path.rstrip("/")) + 1 :]] = stream.read()
    return found


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path) -> str:
    return str(tmp_path / "out") if request.param == "local" else f"memory://{uuid.uuid4().hex}"


def test_commit_moves_everything_into_place_and_leaves_only_the_marker(root):
    run = staged_run(root)
    shards = [{"path": relative} for relative in SHARDS]
    documents = {"manifest.json": b"{}", "stats.json": b'{"a": 1}', "report.html": b"<p>"}
    assert not run.finished()
    commit(run, shards, documents)
    found = files_under(root)
    assert {relative: found[relative] for relative in SHARDS} == {s: s.encode() for s in SHARDS}
    assert found["stats.json"] == b'{"a": 1}' and run.finished()
    assert sorted(found) == sorted([*SHARDS, *documents, ".instructflow/run.json"])


def test_a_commit_cut_short_is_finished_later(root):
    """Killed after data/ moved: rejects/, stats.json and manifest.json are still staged."""
    run = staged_run(root)
    documents = {"manifest.json": b"{}", "stats.json": b"{}"}
    for name, payload in documents.items():
        write_bytes_atomically(run.uri(f"{STAGING}/{name}"), payload)
    plan = {"shards": SHARDS, "documents": ["stats.json", "manifest.json"]}
    write_json_atomically(run.uri(COMMIT_PLAN), plan)
    filesystem, _ = open_filesystem(root)
    move_tree(filesystem, run.uri(f"{STAGED_SHARDS}/data"), run.uri("data"))
    assert not run.finished() and pending_commit(run)

    finish_commit(run)
    assert run.finished() and not pending_commit(run)
    assert sorted(files_under(root)) == sorted([*SHARDS, *documents, ".instructflow/run.json"])
