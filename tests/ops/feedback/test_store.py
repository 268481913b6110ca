"""The database: idempotent import, one transaction per save, concurrent writers lose nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ops.feedback.items import (
    InvalidField,
    import_rows,
    item_view,
    queue,
    ratings,
    save_annotation,
)
from ops.feedback.store import BestPick, Correction, Rating, Store, UnknownItem, database_url
from tests.ops.feedback.conftest import PROMPTS, id_of, sample_rows

ROOT = Path(__file__).resolve().parents[3]


def counts(store: Store) -> tuple[int, int, int]:
    with store.read() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (Rating, BestPick, Correction)
        )


def test_reimport_adds_nothing_and_ids_hash_the_texts(store):
    assert import_rows(store, sample_rows(), "again") == (0, 3)
    assert {entry["id"] for entry in queue(store, None)} == {id_of(p) for p in PROMPTS}
    changed = sample_rows()[:1]
    changed[0]["candidates"] = ["Lima, on the coast."]
    assert import_rows(store, changed, "edited") == (1, 0)


def test_a_path_is_a_sqlite_url_and_a_url_stays():
    assert database_url("/tmp/x.db") == "sqlite:////tmp/x.db"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(store):
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_rating_again_updates_and_the_view_shows_it(store):
    item = id_of("What is the capital of Peru?")
    save_annotation(store, item, {"annotator": "ana", "scores": {"0": 4, "1": 1}, "best": 0})
    first = {r["position"]: r for r in ratings(store)}
    save_annotation(
        store,
        item,
        {"annotator": "ana", "scores": {"0": 5, "1": None}, "best": 0, "correction": "Lima."},
    )
    rows = ratings(store)
    assert [(r["position"], r["score"]) for r in rows] == [(0, 5)]
    assert rows[0]["rated_at"] >= first[0]["rated_at"]
    view = item_view(store, item, "ana")
    assert view["annotation"] == {"scores": {"0": 5}, "best": 0, "correction": "Lima."}
    assert queue(store, "ana") == [
        {"id": entry["id"], "done": entry["id"] == item} for entry in queue(store, None)
    ]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"annotator": "ana", "scores": {"0": 6}}, "scores.0"),
        ({"annotator": "ana", "scores": {"0": "4"}}, "scores.0"),
        ({"annotator": "ana", "scores": {"0": 4.5}}, "scores.0"),
        ({"annotator": "ana", "scores": {"7": 3}}, "scores.7"),
        ({"annotator": "ana", "best": 2}, "best"),
        ({"annotator": "", "scores": {"0": 3}}, "annotator"),
        ({"annotator": "rules", "scores": {"0": 3}}, "annotator"),
        ({"annotator": "ana", "correction": 12}, "correction"),
        ({"annotator": "ana", "score": 3}, "score"),
    ],
)
def test_a_bad_field_is_named_and_nothing_is_written(store, payload, field):
    item = id_of("What is the capital of Peru?")
    # A valid score in the same payload must not be written either.
    payload = {**payload, "scores": {"1": 2, **payload.get("scores", {})}}
    with pytest.raises(InvalidField) as raised:
        save_annotation(store, item, payload)
    assert raised.value.field == field
    assert counts(store) == (0, 0, 0)


def test_an_unknown_item_writes_nothing(store):
    with pytest.raises(UnknownItem):
        save_annotation(store, "0" * 32, {"annotator": "ana", "scores": {"0": 3}})
    assert counts(store) == (0, 0, 0)


def test_threads_saving_at_once_lose_nothing(store):
    items = [id_of(prompt) for prompt in PROMPTS]

    def annotate(name: str) -> None:
        for round_ in range(5):
            for item in items:
                score = 1 + (round_ + len(name)) % 5
                save_annotation(store, item, {"annotator": name, "scores": {"0": score, "1": 3}})

    threads = [threading.Thread(target=annotate, args=(f"a{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = ratings(store)
    assert len(rows) == 8 * 3 * 2  # unique (item, candidate, annotator): updates, no copies
    assert {r["score"] for r in rows if r["position"] == 0 and r["annotator"] == "a1"} == {
        1 + (4 + 2) % 5
    }


WRITER = """
import sys
from ops.feedback.items import save_annotation
from ops.feedback.store import Store
store, name, items = Store(sys.argv[1]), sys.argv[2], sys.argv[3:]
for round_ in range(20):
    for item in items:
        save_annotation(store, item, {"annotator": name, "scores": {"0": 1 + round_ % 5}})
"""


def test_two_processes_writing_at_once_lose_nothing(store, tmp_path):
    items = [id_of(prompt) for prompt in PROMPTS]
    path = store.url.removeprefix("sqlite:///")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, path, name, *items], cwd=ROOT)
        for name in ("proc-a", "proc-b")
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    rows = ratings(Store(path))  # a fresh connection: what a restarted server would see
    assert sorted((r["annotator"], r["score"]) for r in rows) == sorted(
        [(name, 5) for name in ("proc-a", "proc-b") for _ in items]
    )
    assert json.loads(json.dumps(rows))  # plain data


def test_an_old_sample_file_imports_with_an_empty_reference(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ops.feedback.items import import_samples

    samples = tmp_path / "samples"
    samples.mkdir()
    pq.write_table(pa.Table.from_pylist(sample_rows()), samples / "part-0.parquet")
    store = Store(str(tmp_path / "f.db"))
    assert import_samples(store, str(samples)) == (3, 0)
    assert item_view(store, id_of("Name a primary colour."), None)["reference"] == ""


def test_a_database_made_before_references_gets_the_column(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE items (id VARCHAR(32) PRIMARY KEY, prompt TEXT, conversation TEXT, "
            "model VARCHAR(1024), settings TEXT, source VARCHAR(1024), imported_at DATETIME)"
        )
        old.execute("INSERT INTO items VALUES ('a', 'Hi?', '[]', 'm', '{}', 's', '2026-01-01')")
    store = Store(str(path))
    assert item_view(store, "a", None)["reference"] == ""
    assert import_rows(store, sample_rows()[:1], "new") == (1, 0)
