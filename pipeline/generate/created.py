"""What the generating stages share: sampling settings, seeded draws, the rows they create
and the tally bookkeeping that keeps conservation exact.

**Lineage.** A created row's ``parent_id`` is always the *root*: the original record its
chain started from (an evolved instruction's grandparent, the description an instruction was
generated from). ``pipeline.split`` groups rows on ``parent_id``, so a root and everything
made from it, at any depth, land in one split. The immediate parent is named in
``augmentation`` (``from_id`` and ``from_key``) and in ``meta["generation"]``, whose
``previous`` holds the parent's own generation facts, so the whole chain can be read back.

**Unique row keys.** Created rows keep their root's ``source_file``/``source_line``, so
``dedup_keys.row_uids`` tells them apart by ``augmentation`` alone. Each stage's augmentation
therefore holds ``from_key``, a digest of the immediate parent's own ``(id, augmentation)``
(itself unique by induction), plus what tells siblings apart (round, sample).

**Requests.** Every request's seed is a seeded hash of (recipe seed, stage, parent key,
step, sample), so a deterministic backend returns the same bytes on a rerun, whatever the
batching, and a cache hit is exact.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from pipeline.augment.selection import created_digest
from pipeline.distributed import report_counts, report_findings
from pipeline.generate.backend import BackendConfig, Completion, Message, Params
from pipeline.schema import FLOW_SCHEMA, feedback_rows, message, record_id
from pipeline.stage import Drop, GlobalContext

# OpenAI-compatible servers take a 31-bit non-negative seed.
SEED_MASK = 0x7FFF_FFFF
HASH_SPACE = 1 << 64
# Raw replies kept in a reject's detail: enough to see what went wrong.
RAW_CHARS = 2000
REQUEST_COLUMN = "request"
COMPLETION_COLUMN = "completion"
# A stage's working state beside the FLOW columns of the row it works on (JSON object).
JOB_COLUMN = "_job"
JOB_SCHEMA = pa.schema([*FLOW_SCHEMA, pa.field(JOB_COLUMN, pa.string())])


class Sampling(BaseModel):
    """Sampling settings of one kind of request in a stage config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()

    def params(self, seed: int) -> Params:
        return Params(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            seed=seed,
        )


def draw(seed: int, stage: str, *parts: object) -> int:
    """A seeded 64-bit hash: every choice a generating stage makes comes from one."""
    key = "\x1f".join(str(part) for part in (seed, stage, *parts))
    return xxhash.xxh3_64_intdigest(key.encode("utf-8"))


def request_seed(seed: int, stage: str, *parts: object) -> int:
    return draw(seed, stage, "request", *parts) & SEED_MASK


def sampled(seed: int, stage: str, row: dict[str, Any], rate: float) -> bool:
    """A seeded Bernoulli draw per record (``rate`` of them), independent of batching."""
    return draw(seed, stage, "rate", row["id"], row["source_file"], row["source_line"]) < int(
        rate * HASH_SPACE
    )


def root_id(row: dict[str, Any]) -> str:
    """The original record a row descends from: its ``parent_id``, or itself."""
    return row["parent_id"] or row["id"]


def lineage_key(row: dict[str, Any]) -> str:
    """A digest naming one row of the flow: unique where ``(file, line, augmentation)`` is."""
    text = f"{row['id']}\x1f{row['augmentation'] or ''}"
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8"))


def live_sft_rows(batch: pa.Table) -> list[bool]:
    """Rows a generating stage may work from: alive, not a pair or binary-feedback record."""
    alive = pc.is_null(batch.column("drop_reason")).to_pylist()
    return [ok and not feedback for ok, feedback in zip(alive, feedback_rows(batch), strict=True)]


def without_trailing_empty_replies(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns without blank assistant turns at the end (an alpaca ``output: ""``)."""
    end = len(turns)
    while end and turns[end - 1]["role"] == "assistant" and not turns[end - 1]["content"].strip():
        end -= 1
    return list(turns[:end])


def user_text(content: str, context: str) -> str:
    """A user turn as a model reads it: the context (an alpaca input) after a blank line."""
    return f"{content}\n\n{context}" if context else content


def request_messages(
    system: str, turns: Sequence[dict[str, Any]], context: str
) -> tuple[Message, ...]:
    """A record's conversation as chat messages: system first, context in the last user turn."""
    last_user = max((i for i, turn in enumerate(turns) if turn["role"] == "user"), default=-1)
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    for index, turn in enumerate(turns):
        content = user_text(turn["content"], context) if index == last_user else turn["content"]
        messages.append({"role": turn["role"], "content": content})
    return tuple(messages)


def failed_generation(
    completion: Completion, prefix: str, step: str, *, drop_truncated: bool = True
) -> Drop | None:
    """Why a completion cannot be used (a failed request, a blank or cut-off text), or None."""
    if not completion.ok:
        return Drop(
            f"{prefix}.backend_error",
            {"step": step, "error": completion.error, "attempts": completion.attempts},
        )
    if not completion.texts or not completion.texts[0].strip():
        return Drop(f"{prefix}.empty_generation", {"step": step})
    finish = completion.finish_reasons[0] if completion.finish_reasons else None
    if drop_truncated and finish == "length":
        return Drop(
            f"{prefix}.truncated",
            {"step": step, "finish_reason": finish, "raw": completion.texts[0][:RAW_CHARS]},
        )
    return None


def drop_fields(drop: Drop | None) -> dict[str, Any]:
    if drop is None:
        return {"drop_reason": None, "drop_detail": None}
    detail = json.dumps(drop.detail or {}, ensure_ascii=False, sort_keys=True)
    return {"drop_reason": drop.reason, "drop_detail": detail}


def created_row(
    parent: dict[str, Any],
    *,
    turns: list[dict[str, Any]],
    augmentation: dict[str, Any],
    generation: dict[str, Any],
    drop: Drop | None,
    system: str = "",
    context: str = "",
    task: str | None = None,
    constraints: list[dict[str, Any]] | None = None,
    raw: str | None = None,
) -> dict[str, Any]:
    """A FLOW row made from ``parent`` (any row of the flow: an original or a created one).

    It keeps the parent's provenance and labels (file, line, language, domain, split) and
    takes ``parent_id`` = the root. Scores, clusters and difficulty describe the parent's
    text, so they are reset. ``augmentation`` and ``meta["generation"]`` name the stage and
    the immediate parent; the parent's own generation facts nest under ``previous``.
    """
    stage = augmentation["stage"]
    lineage = {"from_id": parent["id"], "from_key": lineage_key(parent), "root_id": root_id(parent)}
    meta = {
        key: value for key, value in json.loads(parent["meta"]).items() if not key.startswith("_")
    }
    previous = meta.pop("generation", None)
    meta["generation"] = {"stage": stage, **generation, **lineage, "previous": previous}
    return {
        **parent,
        "id": record_id(system, turns, context, parent["tools"], constraints=constraints),
        "system": system,
        "messages": turns,
        "context": context,
        "task": parent["task"] if task is None else task,
        "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True),
        "quality_score": None,
        "difficulty": "",
        "cluster_id": None,
        "parent_id": lineage["root_id"],
        "augmentation": json.dumps({**augmentation, **lineage}, ensure_ascii=False, sort_keys=True),
        "rejected": None,
        "chosen_score": None,
        "rejected_score": None,
        "feedback": None,
        "constraints": constraints,
        **drop_fields(drop),
        "raw": raw,
    }


def user_turns(text: str) -> list[dict[str, Any]]:
    return [message("user", text)]


def exchange(instruction: str, response: str) -> list[dict[str, Any]]:
    return [message("user", instruction), message("assistant", response)]


# ----- jobs: FLOW rows with a stage's working state, through the backend ------------------


def job_table(rows: list[dict[str, Any]], requests: list[str | None]) -> pa.Table:
    """JOB_SCHEMA rows (a FLOW row and its ``_job`` state) with the next request column."""
    table = pa.Table.from_pylist(rows, schema=JOB_SCHEMA)
    return table.append_column(REQUEST_COLUMN, pa.array(requests, pa.string()))


def job_rows(batch: pa.Table) -> tuple[list[dict[str, Any]], list[str | None]]:
    """A generated batch's rows (request and completion columns taken off, ``_job`` decoded)
    and their completions (JSON, null where no request was made)."""
    completions = batch.column(COMPLETION_COLUMN).to_pylist()
    rows = batch.select(JOB_SCHEMA.names).to_pylist()
    for row in rows:
        row[JOB_COLUMN] = json.loads(row[JOB_COLUMN])
    return rows, completions


def finished_jobs(rows: list[dict[str, Any]]) -> pa.Table:
    """JOB_SCHEMA rows of jobs with nothing left to ask."""
    return pa.Table.from_pylist(encode_jobs(rows), schema=JOB_SCHEMA)


def encode_jobs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**row, JOB_COLUMN: json.dumps(row[JOB_COLUMN], ensure_ascii=False, sort_keys=True)}
        for row in rows
    ]


def generate(dataset: Any, backend: BackendConfig, stage: str) -> Any:
    """One backend pass over a dataset with a ``request`` column (null: no request)."""
    from pipeline.generate.engine import generate_column

    return generate_column(
        dataset,
        backend,
        stage=stage,
        request_column=REQUEST_COLUMN,
        completion_column=COMPLETION_COLUMN,
    )


def created_by_backend(
    jobs: Any,
    backend: BackendConfig,
    make: Callable[[pa.Table], pa.Table],
    *,
    stage: str,
    tally: Any,
    batch_size: int | None,
) -> Any:
    """One backend pass over ``jobs``, whose answered rows ``make`` turns into created rows,
    counted by the tally (materialized: the stage sums its findings over them next)."""
    return (
        generate(jobs, backend, stage)
        .map_batches(
            reporting_created(make, stage=stage, tally=tally),
            batch_size=batch_size,
            batch_format="pyarrow",
        )
        .materialize()
    )


# ----- the tally: created rows and findings -----------------------------------------------


def reporting_created(
    make: Callable[[pa.Table], pa.Table], *, stage: str, tally: Any
) -> Callable[[pa.Table], pa.Table]:
    """``make`` that also tells the tally how many rows ``stage`` created in the batch, keyed
    by their digest (a retried batch sets the same key again, so conservation stays exact)."""

    def run(batch: pa.Table) -> pa.Table:
        created = make(batch)
        if tally is not None and created.num_rows:
            ray.get(tally.rows_created.remote(created_digest(created, stage), created.num_rows))
        return created

    return run


def reason_counts(batch: pa.Table, *, prefix: str) -> pa.Table:
    """One block's findings as a one-row JSON Counter: rows, the items replies listed (when
    the rows come from parsed lists, as a Self-Instruct round's candidates), kept rows and
    dropped ones per reason."""
    counts: Counter = Counter({f"{prefix}.rows": batch.num_rows})
    if "item" in batch.column_names:
        counts[f"{prefix}.listed"] = int(pc.sum(pc.is_valid(batch.column("item"))).as_py() or 0)
    for reason in batch.column("drop_reason").to_pylist():
        counts[f"{prefix}.dropped.{reason}" if reason else f"{prefix}.kept"] += 1
    return pa.table({"counts": [json.dumps(counts)]})


def summed_counts(dataset: Any, prefix: str) -> Counter:
    """Kept and dropped per reason over a materialized dataset: one row per block comes back."""
    counts: Counter = Counter()
    per_block = dataset.map_batches(
        partial(reason_counts, prefix=prefix), batch_size=None, batch_format="pyarrow"
    )
    for row in per_block.iter_rows():
        counts.update(json.loads(row["counts"]))
    return counts


def finish(context: GlobalContext, findings: Counter, started: float) -> None:
    """A generating stage's findings and time, to stats.json."""
    report_findings(context.tally, context.position, findings)
    report_counts(context.tally, context.position, 0, {}, started)
