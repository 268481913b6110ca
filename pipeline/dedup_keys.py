"""What dedup compares and whom it keeps: key texts, normalisation, row keys and keeper rank.

Pure functions over FLOW_SCHEMA batches, shared by exact dedup, near dedup and
decontamination. Nothing here touches Ray.

- A **key** is the text dedup compares: the instruction, the instruction with its input, the
  whole conversation, the response, the prompt (all before the last reply: system, turns,
  input) or the prompt's longest line (``longest_passage``: in a prompted collection, the
  source passage inside a dataset's template). For a feedback record (a pair or a binary label)
  ``conversation`` means the prompt, without the reply, so near dedup and decontamination
  judge the prompt; exact dedup adds both replies and the label (``exact_key_texts``): one
  prompt with two different pairs is not a duplicate, the same pair twice is.
- A **row uid** is a unique int64 per input record, ``file_index << 40 | source_line``: unique
  because every record comes from one line (or row) of one listed file, and deterministic
  because the file listing is sorted. Joins key on it, since ``id`` is a content hash and
  exact duplicates share it. Records made by augmentation keep their parent's file and
  line, so theirs is a negative 63-bit hash of the parent's uid and their ``augmentation``
  (which names stage, method and pivot or variant): apart from the originals, deterministic.
  So are the several pairs one ultrafeedback record gives: theirs hash the uid with the two
  completion indexes in ``meta["_pair"]``.
- The **keeper rank** orders the members of a duplicate group; the smallest wins. It is
  ``(primary, id, uid)``: ``primary`` is 0 for ``lowest_id``, minus the response length for
  ``longest_response``, minus ``quality_score`` for ``highest_quality`` (unscored rows last).
  The ``id`` and ``uid`` tie-breaks make the choice independent of arrival order.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from pipeline.schema import feedback_rows, prompt_turns

KeyName = Literal[
    "instruction", "instruction_input", "conversation", "response", "prompt", "longest_passage"
]
KeeperPolicy = Literal["lowest_id", "longest_response", "highest_quality"]

UID_COLUMN = "_uid"
RANK_COLUMN = "_rank"
LINE_BITS = 40
MAX_FILES = 1 << (63 - LINE_BITS)
NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
KEY_SEED = 0x0DED0_0_0
ROLES = ("user", "assistant", "tool_call", "tool")
PAIR_META = '"_pair": {'


def turn_texts(turns: list[dict], roles: tuple[str, ...]) -> list[str]:
    return [turn["content"] for turn in turns if turn["role"] in roles and turn["content"]]


def key_texts(batch: pa.Table, key: KeyName) -> list[str]:
    """The text each row is compared on. Parts are joined with newlines, empty parts skipped,
    so an alpaca record with no input keys on ``instruction + "\\n" + output``."""
    conversations = batch.column("messages").to_pylist()
    contexts = batch.column("context").to_pylist()
    systems = batch.column("system").to_pylist()
    feedback = feedback_rows(batch)
    texts = []
    for turns, context, system, prompt_only in zip(
        conversations, contexts, systems, feedback, strict=True
    ):
        if prompt_only and key == "conversation":
            turns = prompt_turns(turns)
        if key in ("prompt", "longest_passage"):
            parts = [system, *turn_texts(prompt_turns(turns), ROLES), context]
            if key == "longest_passage":
                parts = [longest_passage("\n".join(part for part in parts if part))]
        elif key == "instruction":
            parts = turn_texts(turns, ("user",))
        elif key == "instruction_input":
            parts = [*turn_texts(turns, ("user",)), context]
        elif key == "response":
            parts = turn_texts(turns, ("assistant",))
        else:
            parts = [system, *turn_texts(turns, ("user", "assistant", "tool_call", "tool"))]
            parts.append(context)
        texts.append("\n".join(part for part in parts if part))
    return texts


PASSAGE_BREAK = re.compile(r"\n\s*\n|\n")


def longest_passage(prompt: str) -> str:
    """The longest line of ``prompt`` (the first of equals): in a prompted record, the
    source passage rather than the instruction, options or labels around it."""
    lines = [line.strip() for line in PASSAGE_BREAK.split(prompt)]
    return max(lines, key=len, default="")


def exact_key_texts(batch: pa.Table, key: KeyName) -> list[str]:
    """``key_texts``, and for a feedback record its chosen reply, rejected turns and label
    after it, each part on its own line, so that only the same pair (or label) twice is one."""
    texts = key_texts(batch, key)
    rejected = batch.column("rejected").to_pylist()
    labels = batch.column("feedback").to_pylist()
    conversations = batch.column("messages").to_pylist()
    for row, prompt_only in enumerate(feedback_rows(batch)):
        if not prompt_only:
            continue
        turns = conversations[row]
        chosen = [] if key == "response" else turn_texts(turns[len(prompt_turns(turns)) :], ROLES)
        sides = [*chosen, "\x1d", *turn_texts(rejected[row] or [], ROLES)]
        label = "" if labels[row] is None else f"\x1dfeedback={labels[row]}"
        texts[row] = "\n".join([texts[row], *sides]) + label
    return texts


def normalize_key(
    text: str,
    *,
    fold_width: bool = True,
    lowercase: bool = True,
    strip_punctuation: bool = True,
    collapse_whitespace: bool = True,
) -> str:
    """Exact dedup's normal form: NFKC folds full-width forms, casefold, punctuation and
    symbols out, whitespace runs to one space."""
    if fold_width:
        text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.casefold()
    if strip_punctuation:
        text = NON_WORD.sub(" ", text)
    if collapse_whitespace:
        text = " ".join(text.split())
    return text


def key_digests(texts: list[str], seed: int) -> list[bytes | None]:
    """128-bit digests (collisions are negligible even at 10^12 rows); None for empty keys,
    which are never grouped."""
    return [
        xxhash.xxh3_128_digest(text.encode("utf-8"), seed=KEY_SEED ^ seed) if text else None
        for text in texts
    ]


def row_uids(batch: pa.Table, file_index: dict[str, int]) -> np.ndarray:
    files = batch.column("source_file").to_pylist()
    lines = batch.column("source_line").to_numpy().astype(np.int64)
    indexes = np.array([file_index[name] for name in files], dtype=np.int64)
    if lines.size and (lines.max() >= (1 << LINE_BITS) or lines.min() < 0):
        raise ValueError(f"source_line outside 0..2^{LINE_BITS}: cannot build row keys")
    uids = (indexes << LINE_BITS) | lines
    _pair_uids(batch, uids)
    augmentations = batch.column("augmentation")
    if augmentations.null_count < batch.num_rows:
        for row, text in enumerate(augmentations.to_pylist()):
            if text is not None:
                digest = xxhash.xxh3_64_intdigest(f"{uids[row]}\x1f{text}".encode())
                uids[row] = -1 - (digest >> 1)
    return uids


def _pair_uids(batch: pa.Table, uids: np.ndarray) -> None:
    """Rows one ultrafeedback record made share its file and line: hash in the indexes of
    their two completions (``meta["_pair"]``, a key conversion reserves)."""
    metas = batch.column("meta")
    marked = pc.match_substring(metas, PAIR_META).to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(marked):
        pair = json.loads(metas[row].as_py()).get("_pair")
        if isinstance(pair, dict):
            sides = f"{pair['chosen']['index']}\x1f{pair['rejected']['index']}"
            digest = xxhash.xxh3_64_intdigest(f"{uids[row]}\x1fpair\x1f{sides}".encode())
            uids[row] = -1 - (digest >> 1)


def keeper_rank(batch: pa.Table, policy: KeeperPolicy) -> np.ndarray:
    """The primary keeper sort key per row (smaller wins); ties fall to ``id`` then uid."""
    if policy == "lowest_id":
        return np.zeros(batch.num_rows, dtype=np.float64)
    if policy == "longest_response":
        responses = key_texts(batch, "response")
        return -np.array([len(text) for text in responses], dtype=np.float64)
    scores = batch.column("quality_score").to_pylist()
    return np.array(
        [math.inf if score is None or math.isnan(score) else -score for score in scores],
        dtype=np.float64,
    )


def alive(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch.column("drop_reason")))


def pick_keepers(group_column: str, block: pa.Table) -> pa.Table:
    """Losers of each group in a block: ``(_uid, duplicate_of, _keeper_uid)``.

    ``block`` holds whole groups (the caller hash-partitioned on ``group_column``) with
    ``_rank``, ``id`` and ``_uid``. The first row of each group in rank order is kept.
    """
    if block.num_rows == 0:
        return LOSER_SCHEMA.empty_table()
    order = pc.sort_indices(
        block,
        sort_keys=[
            (group_column, "ascending"),
            (RANK_COLUMN, "ascending"),
            ("id", "ascending"),
            (UID_COLUMN, "ascending"),
        ],
    )
    block = block.take(order)
    groups = block.column(group_column).combine_chunks()
    starts = np.ones(block.num_rows, dtype=bool)
    if block.num_rows > 1:
        starts[1:] = pc.not_equal(groups[1:], groups[:-1]).to_numpy(zero_copy_only=False)
    keeper_row = np.maximum.accumulate(np.where(starts, np.arange(block.num_rows), 0))
    losers = np.flatnonzero(~starts)
    ids = block.column("id").combine_chunks()
    uids = block.column(UID_COLUMN).to_numpy()
    return pa.table(
        {
            UID_COLUMN: pa.array(uids[losers], pa.int64()),
            "duplicate_of": ids.take(pa.array(keeper_row[losers])),
            "_keeper_uid": pa.array(uids[keeper_row[losers]], pa.int64()),
        },
        schema=LOSER_SCHEMA,
    )


LOSER_SCHEMA = pa.schema(
    [
        pa.field(UID_COLUMN, pa.int64()),
        pa.field("duplicate_of", pa.string()),
        pa.field("_keeper_uid", pa.int64()),
    ]
)
