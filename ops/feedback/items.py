"""What is written to and read from the feedback database: imported items, one annotator's
annotation of an item (scores, best pick, correction: saved together, in one transaction),
automatic ratings, and the flat views that agreement and export read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ops.feedback.store import (
    SCORE_RANGE,
    Annotator,
    BestPick,
    Candidate,
    Correction,
    FeedbackError,
    Item,
    Rating,
    RatingFailure,
    Store,
    UnknownItem,
    delete_where,
    iso,
    item_id,
    upsert,
    utc_now,
)

SAMPLE_COLUMNS = ("prompt", "conversation", "candidates", "model", "settings")
# Sample files written before generate kept the record's reply lack it: imported as "".
OPTIONAL_SAMPLE_COLUMNS = ("reference",)
MAX_CORRECTION_CHARS = 20_000
MAX_NAME_CHARS = 64
# Names of automatic raters; a person cannot save under them.
_RESERVED_NAME = re.compile(r"^(rules|reference|judge:.*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidField(FeedbackError):
    """A field of an annotation that cannot be saved; ``field`` is its path (``scores.2``)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path


@dataclass(frozen=True)
class Annotation:
    annotator: str
    scores: dict[int, int | None] = field(default_factory=dict)  # position -> score or cleared
    best: int | None = None
    correction: str | None = None
    correction_of: int | None = None


def annotator_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField("annotator", "a non-empty name is required")
    name = value.strip()
    if len(name) > MAX_NAME_CHARS or _CONTROL.search(name):
        raise InvalidField("annotator", f"at most {MAX_NAME_CHARS} printable characters")
    if _RESERVED_NAME.match(name):
        raise InvalidField("annotator", f"{name!r} is reserved for automatic raters")
    return name


def _position(value: Any, field_path: str, count: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
        raise InvalidField(field_path, f"must be a candidate index 0..{count - 1}, got {value!r}")
    return value


def _score(value: Any, field_path: str) -> int | None:
    low, high = SCORE_RANGE
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidField(field_path, f"must be an integer {low}-{high} or null, got {value!r}")
    return value


def parse_annotation(payload: Any, candidate_count: int) -> Annotation:
    """The JSON body of a save, checked against the item; raises InvalidField naming the key."""
    if not isinstance(payload, dict):
        raise InvalidField("(body)", "must be a JSON object")
    unknown = sorted(set(payload) - {"annotator", "scores", "best", "correction", "correction_of"})
    if unknown:
        raise InvalidField(unknown[0], "unknown key; allowed: annotator, scores, best, correction")
    scores_in = payload.get("scores", {})
    if not isinstance(scores_in, dict):
        raise InvalidField("scores", "must be an object of candidate index -> score")
    scores = {}
    for key, value in scores_in.items():
        where = f"scores.{key}"
        index = int(key) if isinstance(key, str) and key.isdigit() else key
        scores[_position(index, where, candidate_count)] = _score(value, where)
    best = payload.get("best")
    correction = payload.get("correction")
    if correction is not None and not isinstance(correction, str):
        raise InvalidField("correction", "must be text or null")
    if correction is not None and len(correction) > MAX_CORRECTION_CHARS:
        raise InvalidField("correction", f"at most {MAX_CORRECTION_CHARS} characters")
    of = payload.get("correction_of")
    return Annotation(
        annotator=annotator_name(payload.get("annotator")),
        scores=scores,
        best=None if best is None else _position(best, "best", candidate_count),
        correction=(correction.strip() or None) if correction is not None else None,
        correction_of=None if of is None else _position(of, "correction_of", candidate_count),
    )


def save_annotation(store: Store, item: str, payload: Any) -> Annotation:
    """Checks the payload, then writes scores, best pick and correction in one transaction:
    the database holds what the page showed, or (on any error) what it held before."""

    def work(session: Session) -> Annotation:
        annotation = parse_annotation(payload, store.candidate_count(session, item))
        who = store.annotator(session, annotation.annotator)
        now = utc_now()
        for position, score in annotation.scores.items():
            key = {"item_id": item, "position": position, "annotator_id": who}
            if score is None:
                delete_where(session, Rating, **key)
            else:
                values = {**key, "score": score, "detail": None, "rated_at": now}
                upsert(session, Rating, values, list(key))
        key = {"item_id": item, "annotator_id": who}
        if annotation.best is None:
            delete_where(session, BestPick, **key)
        else:
            upsert(
                session, BestPick, {**key, "position": annotation.best, "picked_at": now}, [*key]
            )
        if annotation.correction is None:
            delete_where(session, Correction, **key)
        else:
            values = {**key, "text": annotation.correction, "corrected_at": now}
            values["position"] = annotation.correction_of
            upsert(session, Correction, values, list(key))
        return annotation

    return store.write(work)


def import_rows(store: Store, rows: list[dict[str, Any]], source: str) -> tuple[int, int]:
    """Items from ``feedback generate`` rows; returns (added, already there)."""
    now = utc_now()

    def work(session: Session) -> tuple[int, int]:
        added = 0
        for row in rows:
            conversation = json.loads(row["conversation"])
            identity = item_id(conversation, row["candidates"])
            if session.get(Item, identity) is not None:
                continue
            session.add(
                Item(
                    id=identity,
                    prompt=row["prompt"],
                    conversation=row["conversation"],
                    reference=row.get("reference") or "",
                    model=row["model"],
                    settings=row["settings"],
                    source=source,
                    imported_at=now,
                )
            )
            session.flush()  # the item before its candidates: foreign keys are checked
            for position, text in enumerate(row["candidates"]):
                session.add(Candidate(item_id=identity, position=position, text=text))
            added += 1
        return added, len(rows) - added

    return store.write(work)


def import_samples(store: Store, path: str, batch_rows: int = 256) -> tuple[int, int]:
    """Every row of a ``feedback generate`` output (a Parquet file or directory)."""
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet")
    except (FileNotFoundError, OSError, ValueError) as error:
        raise FeedbackError(f"{path}: not readable as Parquet: {error}") from None
    missing = [name for name in SAMPLE_COLUMNS if name not in dataset.schema.names]
    if missing:
        raise FeedbackError(
            f"{path}: missing column(s) {', '.join(missing)}; expected the output of "
            f"`instructflow feedback generate` ({', '.join(SAMPLE_COLUMNS)})"
        )
    columns = [*SAMPLE_COLUMNS, *(c for c in OPTIONAL_SAMPLE_COLUMNS if c in dataset.schema.names)]
    added = already = 0
    for batch in dataset.to_batches(columns=columns, batch_size=batch_rows):
        new, old = import_rows(store, batch.to_pylist(), path)
        added, already = added + new, already + old
    return added, already


def record_automatic(
    store: Store, name: str, kind: str, item: str, position: int, score: int, detail: dict
) -> None:
    """An automatic rater's score of one candidate (rating again replaces it)."""

    def work(session: Session) -> None:
        who = store.annotator(session, name, kind)
        key = {"item_id": item, "position": position, "annotator_id": who}
        values = {**key, "score": score, "detail": json.dumps(detail), "rated_at": utc_now()}
        upsert(session, Rating, values, list(key))

    store.write(work)


def record_failure(store: Store, name: str, kind: str, item: str, position: int, error: str):
    def work(session: Session) -> None:
        who = store.annotator(session, name, kind)
        session.add(
            RatingFailure(
                item_id=item, position=position, annotator_id=who, error=error, failed_at=utc_now()
            )
        )

    store.write(work)


def item_view(store: Store, item: str, annotator: str | None) -> dict[str, Any]:
    """An item as the page shows it, with this annotator's saved annotation."""
    with store.read() as session:
        found = session.get(Item, item)
        if found is None:
            raise UnknownItem(f"no item {item!r}")
        texts = session.scalars(
            select(Candidate.text).where(Candidate.item_id == item).order_by(Candidate.position)
        ).all()
        view = {
            "id": found.id,
            "prompt": found.prompt,
            "conversation": json.loads(found.conversation),
            "reference": found.reference,
            "candidates": list(texts),
            "model": found.model,
        }
        view["annotation"] = _annotation_of(session, item, annotator) if annotator else None
    return view


def _annotation_of(session: Session, item: str, annotator: str) -> dict[str, Any]:
    who = session.scalar(select(Annotator.id).where(Annotator.name == annotator))
    scores = dict(
        session.execute(
            select(Rating.position, Rating.score).where(
                Rating.item_id == item, Rating.annotator_id == who
            )
        ).all()
    )
    best = session.get(BestPick, (item, who)) if who else None
    correction = session.get(Correction, (item, who)) if who else None
    return {
        "scores": {str(position): score for position, score in scores.items()},
        "best": best.position if best else None,
        "correction": correction.text if correction else None,
    }


def queue(store: Store, annotator: str | None) -> list[dict[str, Any]]:
    """Every item in import order, ``done`` where this annotator saved anything on it."""
    with store.read() as session:
        ids = session.scalars(select(Item.id).order_by(Item.imported_at, Item.id)).all()
        who = session.scalar(select(Annotator.id).where(Annotator.name == annotator))
        done: set[str] = set()
        for model in (Rating, BestPick, Correction):
            done |= set(session.scalars(select(model.item_id).where(model.annotator_id == who)))
    return [{"id": identity, "done": identity in done} for identity in ids]


def ratings(store: Store) -> list[dict[str, Any]]:
    """Every score: item, position, annotator (name, kind), score, detail, time."""
    query = select(Rating, Annotator.name, Annotator.kind).join(Annotator)
    with store.read() as session:
        return [
            {
                "item_id": rating.item_id,
                "position": rating.position,
                "annotator": name,
                "kind": kind,
                "score": rating.score,
                "rated_at": iso(rating.rated_at),
            }
            for rating, name, kind in session.execute(query)
        ]


def best_picks(store: Store) -> list[dict[str, Any]]:
    query = select(BestPick, Annotator.name).join(Annotator)
    with store.read() as session:
        return [
            {"item_id": pick.item_id, "annotator": name, "position": pick.position}
            for pick, name in session.execute(query)
        ]


def failures(store: Store) -> list[dict[str, Any]]:
    query = select(RatingFailure, Annotator.name).join(Annotator)
    with store.read() as session:
        return [
            {"item_id": f.item_id, "position": f.position, "annotator": name, "error": f.error}
            for f, name in session.execute(query)
        ]
