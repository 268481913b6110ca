"""The feedback database: SQLAlchemy models and the queries the CLI and the web app run.

Any SQLAlchemy URL works (``postgresql+psycopg://...``); a plain path means SQLite there.
SQLite runs in WAL mode with a busy timeout and ``synchronous=FULL`` (a committed rating
survives a crash of the process or the machine), and every write transaction starts with
``BEGIN IMMEDIATE``: it takes the write lock up front, so two writers wait for each other
instead of one failing when its read turns into a write. Each call here is one transaction;
nothing is written outside one.

Tables (``Base.metadata``):

- ``items``: one prompt and its candidates, imported from ``feedback generate``'s Parquet.
  The id hashes the conversation and the candidate texts, so importing twice adds nothing.
  ``reference`` is the source record's own reply ("" when it had none), for ``reference``.
- ``candidates``: (item_id, position) -> text.
- ``annotators``: a name (unique) and a kind: ``human``, ``rules``, ``reference`` or ``judge``.
- ``ratings``: a 1-5 score per (item, candidate, annotator), unique: rating again updates
  the score and its time. ``detail`` holds an automatic rater's sub-scores (JSON).
- ``best_picks``: per (item, annotator), the candidate picked as best.
- ``corrections``: per (item, annotator), a rewritten reply, and the candidate it started from.
- ``rating_failures``: an automatic rater's failures (a judge reply with no score), kept so
  that a failure is never silently a default score.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import xxhash
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SCORE_RANGE = (1, 5)
ANNOTATOR_KINDS = ("human", "rules", "reference", "judge")
BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 5  # a write that still fails after these is an error, never dropped silently
T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    conversation: Mapped[str] = mapped_column(Text)  # JSON list of {role, content}
    reference: Mapped[str] = mapped_column(Text, default="", server_default="")
    model: Mapped[str] = mapped_column(String(1024))
    settings: Mapped[str] = mapped_column(Text)  # JSON
    source: Mapped[str] = mapped_column(String(1024))
    imported_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Candidate(Base):
    __tablename__ = "candidates"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)


def _candidate_key() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["item_id", "position"], ["candidates.item_id", "candidates.position"]
    )


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("item_id", "position", "annotator_id"),
        CheckConstraint(f"score BETWEEN {SCORE_RANGE[0]} AND {SCORE_RANGE[1]}"),
        _candidate_key(),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(32), index=True)
    position: Mapped[int] = mapped_column(Integer)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime] = mapped_column(DateTime)


class BestPick(Base):
    __tablename__ = "best_picks"
    __table_args__ = (_candidate_key(),)
    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    picked_at: Mapped[datetime] = mapped_column(DateTime)


class Correction(Base):
    __tablename__ = "corrections"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), primary_key=True)
    position: Mapped[int | None] = mapped_column(Integer)  # the candidate it started from
    text: Mapped[str] = mapped_column(Text)
    corrected_at: Mapped[datetime] = mapped_column(DateTime)


class RatingFailure(Base):
    __tablename__ = "rating_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"))
    position: Mapped[int] = mapped_column(Integer)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(DateTime)


class FeedbackError(ValueError):
    """Bad input to a feedback command; the message names the file, key or value."""


class UnknownItem(FeedbackError):
    pass


def utc_now() -> datetime:
    """Naive UTC: every database keeps it the same way."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds") + "Z"


def database_url(db: str) -> str:
    """A SQLAlchemy URL as given, or a file path made into a SQLite URL."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def item_id(conversation: Sequence[dict[str, str]], candidates: Sequence[str]) -> str:
    """Stable: a hash of the conversation and the candidate texts, in order."""
    hasher = xxhash.xxh3_128()
    hasher.update(json.dumps(list(conversation), ensure_ascii=False, sort_keys=True).encode())
    for text in candidates:
        hasher.update(b"\x1e" + text.encode("utf-8"))
    return hasher.hexdigest()


def _sqlite_setup(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, not by pysqlite
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _retryable(error: Exception) -> bool:
    """SQLite's lock held past the busy timeout, or a concurrent insert of the same key on a
    database without an atomic upsert here: the whole transaction is run again."""
    text = str(error).lower()
    return isinstance(error, IntegrityError) and "unique" in text or "locked" in text


def _add_reference_column(engine: Any) -> None:
    """A database made before items had ``reference`` gets the column, "" for every item:
    ``create_all`` adds missing tables, never missing columns."""
    if "reference" in {column["name"] for column in inspect(engine).get_columns("items")}:
        return
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE items ADD COLUMN reference TEXT NOT NULL DEFAULT ''"
        )


class Store:
    """The database behind ``feedback import|serve|rate|export``."""

    def __init__(self, db: str) -> None:
        self.url = database_url(db)
        try:
            self.engine = create_engine(self.url, pool_pre_ping=True)
        except Exception as error:  # an unknown dialect or driver, a malformed URL
            raise FeedbackError(f"--db {db}: {error}") from None
        if self.engine.dialect.name == "sqlite":
            _sqlite_setup(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            Base.metadata.create_all(self.engine)
            _add_reference_column(self.engine)
        except OperationalError as error:
            raise FeedbackError(f"--db {db}: cannot open the database: {error.orig}") from None

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction, again (whole) if the database was busy."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.sessions.begin() as session:
                    return work(session)
            except (IntegrityError, OperationalError) as error:
                if attempt == WRITE_ATTEMPTS - 1 or not _retryable(error):
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    def annotator(self, session: Session, name: str, kind: str = "human") -> int:
        found = session.scalar(select(Annotator).where(Annotator.name == name))
        if found is not None:
            if found.kind != kind:
                raise FeedbackError(f"annotator {name!r} is a {found.kind} rater, not {kind}")
            return found.id
        # A concurrent first save of the same name fails on the unique name; write() retries.
        session.execute(insert(Annotator).values(name=name, kind=kind, created_at=utc_now()))
        return session.scalar(select(Annotator.id).where(Annotator.name == name))

    def candidate_count(self, session: Session, item: str) -> int:
        count = session.scalar(select(func.count()).where(Candidate.item_id == item))
        if not count:
            raise UnknownItem(f"no item {item!r}")
        return count


def upsert(session: Session, model: type[Base], values: dict[str, Any], keys: Sequence[str]):
    """Insert, or update the row with the same ``keys``. Atomic on SQLite and PostgreSQL;
    elsewhere update-then-insert, where a racing insert raises and the transaction reruns."""
    changes = {name: value for name, value in values.items() if name not in keys}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        statement = dialect_insert(model).values(values)
        session.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))
        return
    where = [getattr(model, name) == values[name] for name in keys]
    if session.execute(update(model).where(*where).values(changes)).rowcount == 0:
        session.execute(insert(model).values(values))


def delete_where(session: Session, model: type[Base], **keys: Any) -> None:
    session.execute(delete(model).where(*(getattr(model, k) == v for k, v in keys.items())))


__all__ = [
    "ANNOTATOR_KINDS",
    "SCORE_RANGE",
    "Annotator",
    "Base",
    "BestPick",
    "Candidate",
    "Correction",
    "FeedbackError",
    "Item",
    "Rating",
    "RatingFailure",
    "Store",
    "UnknownItem",
    "database_url",
    "delete_where",
    "item_id",
    "iso",
    "upsert",
    "utc_now",
]
