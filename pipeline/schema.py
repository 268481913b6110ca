"""The one instruction schema every converter produces and every stage reads.

A record is a conversation: an optional system prompt, then turns of
``{role, content, extra}``. Alpaca's ``input`` and dolly's ``context`` (supporting text
for the last user turn) are kept apart in ``context`` so that filters and dedup can key on
the instruction alone; prompt renderers join them as ``content + "\\n\\n" + context``.

While records flow through the pipeline, three bookkeeping columns travel with them:
``drop_reason`` (null while the record is alive), ``drop_detail`` (JSON, why) and ``raw``
(the original text, set only for quarantined input). The writer strips them from the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

ROLES = ("system", "user", "assistant", "tool_call", "tool")

MESSAGE_TYPE = pa.struct(
    [
        pa.field("role", pa.string(), nullable=False),
        pa.field("content", pa.string(), nullable=False),
        # JSON object of any other keys the source message had (OpenAI `tool_calls`,
        # `name`, ...), so conversion back to the source format is lossless. Null if none.
        pa.field("extra", pa.string()),
    ]
)

# One verifiable instruction-following constraint (IFEval's kinds, ``pipeline.constraints``):
# the kind, its checker's arguments as a JSON object with sorted keys, and whether the kind is
# held out of training (set on validation/test records only).
CONSTRAINT_TYPE = pa.struct(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("args", pa.string(), nullable=False),
        pa.field("held_out", pa.bool_(), nullable=False),
    ]
)

RECORD_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("system", pa.string(), nullable=False),
    pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
    pa.field("context", pa.string(), nullable=False),
    pa.field("tools", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_format", pa.string(), nullable=False),
    pa.field("source_line", pa.int64(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("domain", pa.string(), nullable=False),
    pa.field("language", pa.string(), nullable=False),
    pa.field("meta", pa.string(), nullable=False),
    # Set by a quality model (issue 4); null until one scores the record. Dedup's keeper
    # policy ``highest_quality`` reads it.
    pa.field("quality_score", pa.float64()),
    # Strata labels beyond task/domain/language: a difficulty bucket ("easy", "medium",
    # "hard"), empty until a labelling stage sets it.
    pa.field("difficulty", pa.string(), nullable=False),
    # Provenance of augmented records: the id of the record they were made from, and a JSON
    # object naming the method and its settings. Null for original records.
    pa.field("parent_id", pa.string()),
    pa.field("augmentation", pa.string()),
    # The id of the near-duplicate cluster's keeper, set by near_dedup on kept members;
    # splits keep a cluster (and a parent's augmentations) on one side.
    pa.field("cluster_id", pa.string()),
    # The split a record belongs to ("train", "validation", ...), set by the split stage;
    # empty until then. The writer puts each split in its own directory.
    pa.field("split", pa.string(), nullable=False),
    # Feedback data (preference pairs and binary feedback). The prompt is every turn before
    # the last assistant turn; that turn is the chosen reply. ``rejected``: the turns that
    # replace it on the rejected side (a pair; null otherwise). ``feedback``: a binary
    # (KTO-style) label of the last assistant turn, true desirable, false undesirable; null
    # for pairs and plain SFT records. Scores: the raters' scores of each side, if given.
    pa.field("rejected", pa.list_(MESSAGE_TYPE)),
    pa.field("chosen_score", pa.float64()),
    pa.field("rejected_score", pa.float64()),
    pa.field("feedback", pa.bool_()),
    # The constraints the constrain stage attached to the last user turn (their sentences are
    # in its text): an RL prompt with a verifiable reward. Null for unconstrained records.
    pa.field("constraints", pa.list_(CONSTRAINT_TYPE)),
]
RECORD_SCHEMA = pa.schema(RECORD_FIELDS)

TRACKING_FIELDS = [
    pa.field("drop_reason", pa.string()),
    pa.field("drop_detail", pa.string()),
    pa.field("raw", pa.string()),
]
FLOW_SCHEMA = pa.schema(RECORD_FIELDS + TRACKING_FIELDS)
REJECT_SCHEMA = pa.schema(RECORD_FIELDS + TRACKING_FIELDS[:2])
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("source_format", pa.string(), nullable=False),
        pa.field("drop_reason", pa.string(), nullable=False),
        pa.field("drop_detail", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

# Drop reasons under these prefixes mean malformed input, which goes to quarantine.
QUARANTINE_PREFIXES = ("read.", "convert.")

ID_SEED = 0x1F_57_AB_1E


def is_quarantine_reason(reason: str) -> bool:
    return reason.startswith(QUARANTINE_PREFIXES)


def message(role: str, content: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "role": role,
        "content": content,
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None,
    }


def record_id(
    system: str,
    messages: Sequence[dict[str, Any]],
    context: str,
    tools: str,
    rejected: Sequence[dict[str, Any]] | None = None,
    feedback: bool | None = None,
    constraints: Sequence[dict[str, Any]] | None = None,
) -> str:
    """Stable content hash: identical conversations get identical ids on any machine.

    A pair's rejected turns, a binary label and a record's constraints are hashed too (after
    a separator no text holds), so a pair and the SFT record of its chosen side differ, and
    so do two prompts that ask for other arguments in the same words; a plain SFT record
    hashes exactly as it did before those columns existed.
    """
    hasher = xxhash.xxh3_128(seed=ID_SEED)
    for part in (system, context, tools):
        hasher.update(part.encode("utf-8"))
        hasher.update(b"\x1e")
    _hash_turns(hasher, messages)
    if rejected is not None:
        hasher.update(b"\x1drejected\x1e")
        _hash_turns(hasher, rejected)
    if feedback is not None:
        hasher.update(b"\x1dfeedback\x1e1" if feedback else b"\x1dfeedback\x1e0")
    if constraints is not None:
        hasher.update(b"\x1dconstraints\x1e")
        for constraint in constraints:
            held_out = b"1" if constraint["held_out"] else b"0"
            hasher.update(f"{constraint['kind']}\x1f{constraint['args']}\x1f".encode())
            hasher.update(held_out + b"\x1e")
    return hasher.hexdigest()


def _hash_turns(hasher: Any, turns: Sequence[dict[str, Any]]) -> None:
    for turn in turns:
        hasher.update(turn["role"].encode("utf-8"))
        hasher.update(b"\x1f")
        hasher.update(turn["content"].encode("utf-8"))
        hasher.update(b"\x1e")


def is_feedback(rejected: Sequence[dict[str, Any]] | None, feedback: bool | None) -> bool:
    """A preference pair (``rejected`` set) or a binary-feedback record (``feedback`` set)."""
    return rejected is not None or feedback is not None


def record_kind(rejected: Sequence[dict[str, Any]] | None, feedback: bool | None) -> str:
    """``pair``, ``binary`` or ``sft``: what a record is, from the two feedback columns."""
    if rejected is not None:
        return "pair"
    return "sft" if feedback is None else "binary"


def feedback_rows(batch: pa.Table) -> list[bool]:
    """Per row: is it a pair or a binary-feedback record? Stages that judge a reply skip
    those, since a rejected or undesirable reply is meant to be bad."""
    return [
        rejected or feedback
        for rejected, feedback in zip(
            pc.is_valid(batch.column("rejected")).to_pylist(),
            pc.is_valid(batch.column("feedback")).to_pylist(),
            strict=True,
        )
    ]


def prompt_turns(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every turn before the last assistant turn: the prompt of a pair or a binary record."""
    for index in range(len(turns) - 1, -1, -1):
        if turns[index]["role"] == "assistant":
            return list(turns[:index])
    return list(turns)


def prompt_key(system: str, turns: Sequence[dict[str, Any]], context: str, tools: str) -> str:
    """A content hash of the prompt alone (system, context, tools, turns before the reply):
    the prompt group that splits keep on one side and near dedup does not split up."""
    return record_id(system, prompt_turns(turns), context, tools, feedback=None)


def prompt_groups(batch: pa.Table) -> pa.Array:
    """Each feedback record's ``prompt_key``; null for plain SFT records."""
    columns = [batch.column(name).to_pylist() for name in ("system", "messages", "context")]
    tools = batch.column("tools").to_pylist()
    keys = [
        prompt_key(system, turns, context, tool) if wanted else None
        for wanted, system, turns, context, tool in zip(
            feedback_rows(batch), *columns, tools, strict=True
        )
    ]
    return pa.array(keys, pa.string())


# Columns that stages fill in later (scores, labels, provenance, splits), as every record
# starts out: from a reader, and in quarantine.
UNSET_LATER: dict[str, Any] = {
    "quality_score": None,
    "difficulty": "",
    "parent_id": None,
    "augmentation": None,
    "cluster_id": None,
    "split": "",
    "rejected": None,
    "chosen_score": None,
    "rejected_score": None,
    "feedback": None,
    "constraints": None,
}


def make_record(
    *,
    messages: list[dict[str, Any]],
    source_file: str,
    source_format: str,
    source_line: int,
    system: str = "",
    context: str = "",
    tools: str = "",
    task: str = "",
    domain: str = "",
    language: str = "",
    meta: dict[str, Any] | None = None,
    rejected: list[dict[str, Any]] | None = None,
    chosen_score: float | None = None,
    rejected_score: float | None = None,
    feedback: bool | None = None,
) -> dict[str, Any]:
    """A canonical record as a plain dict (one row of FLOW_SCHEMA, alive). A pair passes
    ``rejected`` (and scores, if the source has them); a binary-feedback record ``feedback``."""
    return {
        "id": record_id(system, messages, context, tools, rejected, feedback),
        "system": system,
        "messages": messages,
        "context": context,
        "tools": tools,
        "source_file": source_file,
        "source_format": source_format,
        "source_line": source_line,
        "task": task,
        "domain": domain,
        "language": language,
        "meta": json.dumps(meta or {}, ensure_ascii=False, sort_keys=True),
        **UNSET_LATER,
        "rejected": rejected,
        "chosen_score": chosen_score,
        "rejected_score": rejected_score,
        "feedback": feedback,
        "drop_reason": None,
        "drop_detail": None,
        "raw": None,
    }


def quarantine_row(
    *, source_file: str, source_line: int, source_format: str, reason: str, detail: str, raw: str
) -> dict[str, Any]:
    """A malformed input unit as a FLOW_SCHEMA row; the writer routes it to quarantine."""
    return {
        "id": "",
        "system": "",
        "messages": [],
        "context": "",
        "tools": "",
        "source_file": source_file,
        "source_format": source_format,
        "source_line": source_line,
        "task": "",
        "domain": "",
        "language": "",
        "meta": "{}",
        **UNSET_LATER,
        "drop_reason": reason,
        "drop_detail": detail,
        "raw": raw,
    }


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=FLOW_SCHEMA)


def empty_flow_table() -> pa.Table:
    return FLOW_SCHEMA.empty_table()


def last_content(turns: Iterable[dict[str, Any]], role: str) -> str:
    content = ""
    for turn in turns:
        if turn["role"] == role:
            content = turn["content"]
    return content


def instructions_and_responses(batch: pa.Table) -> tuple[list[str], list[str]]:
    """The instruction (last user turn plus context) and response (last assistant turn)."""
    instructions, responses = [], []
    contexts = batch.column("context").to_pylist()
    for turns, context in zip(batch.column("messages").to_pylist(), contexts, strict=True):
        instruction = last_content(turns, "user")
        instructions.append(f"{instruction}\n\n{context}" if context else instruction)
        responses.append(last_content(turns, "assistant"))
    return instructions, responses


def map_texts(batch: pa.Table, edit: Callable[[str], str]) -> pa.Table:
    """Apply ``edit`` to every free-text field (system, context, each turn's content, the
    rejected turns of a pair).

    ``id`` is recomputed so that it stays a hash of the content that is written. Constraint
    arguments are left alone: a checker reads them verbatim.
    """
    systems = [edit(text) for text in batch.column("system").to_pylist()]
    contexts = [edit(text) for text in batch.column("context").to_pylist()]
    conversations = [edited_turns(turns, edit) for turns in batch.column("messages").to_pylist()]
    rejected = [
        None if turns is None else edited_turns(turns, edit)
        for turns in batch.column("rejected").to_pylist()
    ]
    tools = batch.column("tools").to_pylist()
    feedback = batch.column("feedback").to_pylist()
    constraints = batch.column("constraints").to_pylist()
    ids = [
        record_id(*texts)
        for texts in zip(
            systems, conversations, contexts, tools, rejected, feedback, constraints, strict=True
        )
    ]
    replaced = {
        "system": pa.array(systems, pa.string()),
        "context": pa.array(contexts, pa.string()),
        "messages": pa.array(conversations, pa.list_(MESSAGE_TYPE)),
        "rejected": pa.array(rejected, pa.list_(MESSAGE_TYPE)),
        "id": pa.array(ids, pa.string()),
    }
    for name, column in replaced.items():
        # The schema's own field keeps non-null flags, so edited rows still concatenate with
        # the untouched dropped rows of the same batch.
        batch = batch.set_column(
            batch.schema.get_field_index(name), FLOW_SCHEMA.field(name), column
        )
    return batch


def edited_turns(turns: list[dict[str, Any]], edit: Callable[[str], str]) -> list[dict[str, Any]]:
    return [{**turn, "content": edit(turn["content"])} for turn in turns]
