"""``instructflow feedback export``: ratings back into training data, through the data engine.

- corrections -> SFT records (``sft.jsonl``, format ``messages``): the conversation, then the
  corrected reply as the assistant turn;
- scores -> preference pairs (``pairs.jsonl``, format ``pairwise``, LLaMA-Factory's shape:
  ``messages`` plus ``chosen`` and ``rejected`` as {role, content}): per item, the candidate
  with the highest mean score against the one with the lowest, where the means differ by
  ``margin`` or more. Ties on the mean go to the candidate picked best more often;
- scores -> binary feedback (``kto.jsonl``, format ``kto``: ``messages`` ending with the reply
  and ``kto_tag``): a mean of ``desirable`` or more is true, ``undesirable`` or less false.

Every record keeps its provenance as extra top-level keys, which the engine's converters keep
in ``meta``: ``item_id``, ``model``, ``annotators``, ``rated_at`` (the latest), the scores.
``recipe.yaml`` takes the files through ``instructflow data run``; inputs whose format the
engine cannot read yet are left out of it, and ``export.json`` says which.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from ops.feedback.items import best_picks, ratings
from ops.feedback.store import Annotator, Candidate, Correction, FeedbackError, Item, Store, iso

OUTPUT_FILES = {"sft": "sft.jsonl", "pairs": "pairs.jsonl", "kto": "kto.jsonl"}
ENGINE_FORMATS = {"sft": "messages", "pairs": "pairwise", "kto": "kto"}
WRITTEN = (*OUTPUT_FILES.values(), "recipe.yaml", "export.json")


@dataclass(frozen=True)
class ExportRules:
    margin: float = 1.0
    desirable: float = 4.0
    undesirable: float = 2.0
    annotators: tuple[str, ...] = ()  # only these raters' scores; empty: every rater

    def __post_init__(self) -> None:
        if self.margin <= 0:
            raise FeedbackError(f"--margin {self.margin}: must be above 0")
        if self.undesirable >= self.desirable:
            raise FeedbackError(
                f"--undesirable {self.undesirable} must be below --desirable {self.desirable}"
            )


@dataclass
class CandidateScore:
    scores: dict[str, int] = field(default_factory=dict)  # annotator -> score
    rated_at: str = ""

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores)


def candidate_scores(rows: Iterable[dict[str, Any]], rules: ExportRules) -> dict[tuple, Any]:
    """(item id, position) -> the scores it got, from the chosen raters."""
    found: dict[tuple, CandidateScore] = defaultdict(CandidateScore)
    for row in rows:
        if rules.annotators and row["annotator"] not in rules.annotators:
            continue
        entry = found[(row["item_id"], row["position"])]
        entry.scores[row["annotator"]] = row["score"]
        entry.rated_at = max(entry.rated_at, row["rated_at"])
    return dict(found)


def reply(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def provenance(item: dict[str, Any], entries: list[CandidateScore]) -> dict[str, Any]:
    return {
        "item_id": item["id"],
        "model": item["model"],
        "annotators": sorted({name for entry in entries for name in entry.scores}),
        "rated_at": max(entry.rated_at for entry in entries),
    }


def preference_pair(
    item: dict[str, Any], scored: dict[int, CandidateScore], picks: dict[int, int], margin: float
) -> dict[str, Any] | None:
    if len(scored) < 2:
        return None
    order = sorted(scored, key=lambda p: (scored[p].mean, picks.get(p, 0), -p))
    worst, best = order[0], order[-1]
    if scored[best].mean - scored[worst].mean < margin:
        return None
    return {
        "messages": item["conversation"],
        "chosen": reply(item["candidates"][best]),
        "rejected": reply(item["candidates"][worst]),
        "chosen_score": scored[best].mean,
        "rejected_score": scored[worst].mean,
        **provenance(item, list(scored.values())),
        "chosen_position": best,
        "rejected_position": worst,
        "scores": {str(p): entry.scores for p, entry in sorted(scored.items())},
    }


def kto_records(
    item: dict[str, Any], scored: dict[int, CandidateScore], rules: ExportRules
) -> list[dict[str, Any]]:
    records = []
    for position, entry in sorted(scored.items()):
        if rules.undesirable < entry.mean < rules.desirable:
            continue
        records.append(
            {
                "messages": [*item["conversation"], reply(item["candidates"][position])],
                "kto_tag": entry.mean >= rules.desirable,
                **provenance(item, [entry]),
                "position": position,
                "score": entry.mean,
                "scores": entry.scores,
            }
        )
    return records


def sft_record(item: dict[str, Any], correction: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [*item["conversation"], reply(correction["text"])],
        "item_id": item["id"],
        "model": item["model"],
        "annotator": correction["annotator"],
        "corrected_at": correction["corrected_at"],
        "corrected_from": correction["position"],
    }


def load_items(store: Store) -> dict[str, dict[str, Any]]:
    with store.read() as session:
        items = {
            row.id: {"id": row.id, "model": row.model, "candidates": []}
            | {"conversation": json.loads(row.conversation)}
            for row in session.scalars(select(Item).order_by(Item.id))
        }
        query = select(Candidate).order_by(Candidate.item_id, Candidate.position)
        for candidate in session.scalars(query):
            items[candidate.item_id]["candidates"].append(candidate.text)
    return items


def load_corrections(store: Store) -> list[dict[str, Any]]:
    query = select(Correction, Annotator.name).join(Annotator)
    with store.read() as session:
        return [
            {
                "item_id": row.item_id,
                "annotator": name,
                "text": row.text,
                "position": row.position,
                "corrected_at": iso(row.corrected_at),
            }
            for row, name in session.execute(query.order_by(Correction.item_id, Annotator.name))
        ]


def build_records(store: Store, rules: ExportRules) -> dict[str, list[dict[str, Any]]]:
    items = load_items(store)
    scores = candidate_scores(ratings(store), rules)
    by_item: dict[str, dict[int, CandidateScore]] = defaultdict(dict)
    for (item, position), entry in scores.items():
        by_item[item][position] = entry
    picks: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for pick in best_picks(store):
        if not rules.annotators or pick["annotator"] in rules.annotators:
            picks[pick["item_id"]][pick["position"]] += 1
    records: dict[str, list[dict[str, Any]]] = {"sft": [], "pairs": [], "kto": []}
    for correction in load_corrections(store):
        if not rules.annotators or correction["annotator"] in rules.annotators:
            records["sft"].append(sft_record(items[correction["item_id"]], correction))
    for item_id in sorted(by_item):
        item, scored = items[item_id], by_item[item_id]
        pair = preference_pair(item, scored, picks[item_id], rules.margin)
        if pair:
            records["pairs"].append(pair)
        records["kto"].extend(kto_records(item, scored, rules))
    return records


def engine_recipe(output_dir: Path, kinds: list[str], margin: float) -> dict[str, Any]:
    inputs = [
        {"path": str(output_dir / OUTPUT_FILES[kind]), "format": ENGINE_FORMATS[kind]}
        | ({"preference": {"margin": margin}} if kind == "pairs" else {})
        for kind in kinds
    ]
    return {
        "name": "feedback-export",
        "seed": 0,
        "inputs": inputs,
        "stages": [],  # add filters or dedup here; the export itself is already rated data
        "output": {"path": str(output_dir / "engine")},
    }


def readable_formats() -> set[str]:
    from pipeline.convert import FORMATS, PAIR_FORMATS

    return {*FORMATS, *PAIR_FORMATS}


def write_export(store: Store, output_dir: str, rules: ExportRules, overwrite: bool = False):
    """Writes the three JSONL files, ``recipe.yaml`` and ``export.json``; returns the latter."""
    root = Path(output_dir).resolve()
    existing = [name for name in WRITTEN if (root / name).exists()]
    if existing and not overwrite:
        raise FeedbackError(f"{root}: already holds {', '.join(existing)}; pass --overwrite")
    records = build_records(store, rules)
    root.mkdir(parents=True, exist_ok=True)
    for kind, rows in records.items():
        _write_atomic(
            root / OUTPUT_FILES[kind],
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
        )
    known = readable_formats()
    kinds = [k for k, rows in records.items() if rows and ENGINE_FORMATS[k] in known]
    waiting = [ENGINE_FORMATS[k] for k, rows in records.items() if rows and k not in kinds]
    if kinds:
        recipe = yaml.safe_dump(engine_recipe(root, kinds, rules.margin), sort_keys=False)
        _write_atomic(root / "recipe.yaml", recipe)
    else:  # nothing for the engine: no recipe, not a stale one from an earlier export
        (root / "recipe.yaml").unlink(missing_ok=True)
    summary = {
        "counts": {kind: len(rows) for kind, rows in records.items()},
        "rules": asdict(rules),
        "recipe": str(root / "recipe.yaml") if kinds else None,
        "formats_the_engine_cannot_read_yet": waiting,
    }
    _write_atomic(root / "export.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
