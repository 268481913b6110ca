"""Stages on pairs and binary records: prompt-only judging, cleaning both sides, dedup keys,
prompt groups in near dedup and splits, row keys, counting by kind. Pure, no Ray."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from pipeline.accounting import Summary, summarize_batch
from pipeline.dedup_exact import ExactDedupConfig, exact_keys
from pipeline.dedup_keys import key_texts, row_uids
from pipeline.dedup_near import (
    NearDedupConfig,
    Signatures,
    keeper_assignments,
    keepers_with_similarity,
    scored_against_keeper,
    spread_keepers,
)
from pipeline.filters.copy import CopyConfig, CopyFilter
from pipeline.filters.length import LengthConfig, LengthFilter
from pipeline.filters.refusal import RefusalConfig, RefusalFilter
from pipeline.filters.repetition import RepetitionConfig, RepetitionFilter
from pipeline.pii import PIIConfig, RedactPII
from pipeline.schema import make_record, message, prompt_key, record_id, rows_to_table
from pipeline.split import group_keys

PROMPT = "Describe the old lighthouse on the northern cliff and the storm that rebuilt it"
LONG = " ".join(["again and again"] * 40)


def pair(prompt: str, chosen: str, rejected: str, line: int = 1, **extra) -> dict:
    return make_record(
        messages=[message("user", prompt), message("assistant", chosen)],
        rejected=[message("assistant", rejected)],
        source_file="f.jsonl",
        source_format="pairwise",
        source_line=line,
        **extra,
    )


def binary(prompt: str, reply: str, label: bool, line: int = 1) -> dict:
    return make_record(
        messages=[message("user", prompt), message("assistant", reply)],
        feedback=label,
        source_file="f.jsonl",
        source_format="kto",
        source_line=line,
    )


def sft(prompt: str, reply: str, line: int = 1) -> dict:
    return make_record(
        messages=[message("user", prompt), message("assistant", reply)],
        source_file="f.jsonl",
        source_format="alpaca",
        source_line=line,
    )


def reasons(stage, rows: list[dict]) -> list[str | None]:
    out, _ = stage.run(rows_to_table(rows))
    return out.column("drop_reason").to_pylist()


def test_response_filters_leave_feedback_replies_alone_but_judge_the_prompt():
    refusal = "I'm sorry, but I cannot help with that."
    batch = [
        sft("Tell me a story, please.", refusal),
        pair("Tell me a story, please.", "Once upon a time.", refusal),
        binary("Tell me a story, please.", refusal, False),
        binary("Hi", "A fine reply.", True),  # a too-short prompt is still a drop
    ]
    assert reasons(RefusalFilter(RefusalConfig()), batch) == [
        "filter.refusal",
        None,
        None,
        None,
    ]
    length = LengthFilter(LengthConfig(min_instruction_chars=3, max_response_chars=10))
    assert reasons(length, batch) == [
        "filter.response_too_long",
        None,
        None,
        "filter.instruction_too_short",
    ]
    empty = pair("Tell me a story, please.", " ", "fine")
    assert reasons(length, [empty]) == ["filter.empty_response"]
    copying = [pair(PROMPT, PROMPT, "x"), sft(PROMPT, PROMPT)]
    assert reasons(CopyFilter(CopyConfig()), copying) == [
        None,
        "filter.response_copies_instruction",
    ]
    looping = [pair(PROMPT, LONG, LONG + "!"), sft(PROMPT, LONG)]
    assert reasons(RepetitionFilter(RepetitionConfig()), looping) == [
        None,
        "filter.repeated_ngrams",
    ]


def test_pii_redacts_the_rejected_side_and_the_id_follows():
    row = pair("Mail me", "Sure.", "Write to jo@example.com")
    out, counts = RedactPII(PIIConfig()).run(rows_to_table([row]))
    (edited,) = out.to_pylist()
    assert "jo@example.com" not in edited["rejected"][0]["content"]
    assert edited["id"] == record_id(
        edited["system"], edited["messages"], "", "", edited["rejected"], None
    )
    assert edited["id"] != row["id"]


def test_exact_keys_tell_pairs_of_one_prompt_apart_and_match_the_same_pair():
    rows = [
        pair(PROMPT, "A", "B", 1),
        pair(PROMPT, "A", "C", 2),
        pair(PROMPT, "a", "b.", 3),  # the first pair again, after normalisation
        pair(PROMPT, "B", "A", 4),
        binary(PROMPT, "A", True, 5),
        binary(PROMPT, "A", False, 6),
        sft(PROMPT, "A", 7),
    ]
    keys = exact_keys(rows_to_table(rows), ExactDedupConfig(), {"f.jsonl": 0}, seed=0)
    digests = keys.column("_key").to_pylist()
    assert digests[0] == digests[2]
    assert len(set(digests)) == 6
    instruction = exact_keys(
        rows_to_table(rows), ExactDedupConfig(key="instruction"), {"f.jsonl": 0}, seed=0
    ).column("_key")
    # key: instruction compares the SFT records on the prompt alone, the pairs with replies.
    assert len(set(instruction.to_pylist())) == 6


def test_conversation_key_of_a_feedback_record_is_its_prompt():
    table = rows_to_table([pair(PROMPT, "A", "B"), sft(PROMPT, "A")])
    assert key_texts(table, "conversation") == [PROMPT, f"{PROMPT}\nA"]
    assert key_texts(table, "instruction") == [PROMPT, PROMPT]


def signed_block(rows: list[dict]) -> pa.Table:
    config = NearDedupConfig(threshold=0.7).model_dump(mode="json")
    table = Signatures(config, {"f.jsonl": 0}, seed=1)(rows_to_table(rows))
    root = pa.array(np.full(table.num_rows, table["_uid"].to_numpy().min()), pa.int64())
    return table.append_column("root", root)


def near_rows() -> list[dict]:
    return [
        pair(PROMPT, "A", "B", 1),
        pair(PROMPT, "A", "C", 2),  # the same prompt group
        binary(PROMPT, "A", False, 3),  # binary records of the prompt belong to it too
        pair(PROMPT + " please", "A", "B", 4),  # a near-duplicate prompt group
        pair(PROMPT + " please", "D", "E", 5),
        sft(PROMPT, "A", 6),  # an SFT record of the same prompt is a duplicate
    ]


def test_near_dedup_keeps_the_keepers_prompt_group_and_drops_other_groups():
    members = keepers_with_similarity(signed_block(near_rows()), NearDedupConfig(threshold=0.7))
    by_uid = {row["_uid"]: row for row in members.to_pylist()}
    assert sorted(by_uid) == [1, 2, 3, 4, 5, 6]
    keeper = by_uid[1]["_cluster"]
    assert {row["_cluster"] for row in members.to_pylist()} == {keeper}
    kept = sorted(uid for uid, row in by_uid.items() if row["duplicate_of"] is None)
    assert kept == sorted(uid for uid in by_uid if uid in _keeper_group(by_uid))
    dropped = sorted(uid for uid, row in by_uid.items() if row["duplicate_of"] is not None)
    assert kept and dropped and set(kept) | set(dropped) == set(by_uid)


def _keeper_group(by_uid: dict) -> set[int]:
    # The keeper is the lowest id; its prompt group is rows 1-3 or rows 4-5.
    rows = near_rows()
    keeper_id = min(row["id"] for row in rows)
    index = next(i for i, row in enumerate(rows) if row["id"] == keeper_id)
    if index < 3:
        return {1, 2, 3}
    if index < 5:
        return {4, 5}
    return {6}


def test_the_joins_path_keeps_prompt_groups_the_same_way():
    block = signed_block(near_rows())
    clusters = block.select(["_uid", "root"])
    members = clusters.join(block.select(["_uid", "id", "_rank"]), "_uid")
    assigned = keeper_assignments(members, salt_rows=2)
    index = {uid: row for row, uid in enumerate(block["_uid"].to_pylist())}
    rows = pa.array([index[uid] for uid in assigned["_uid"].to_pylist()])
    signed = assigned.append_column("_signature", block["_signature"].take(rows))
    signed = signed.append_column("_prompt_group", block["_prompt_group"].take(rows))
    scored = scored_against_keeper(spread_keepers(signed))
    joins = {row["_uid"]: row["duplicate_of"] is None for row in scored.to_pylist()}
    direct = keepers_with_similarity(block, NearDedupConfig(threshold=0.7))
    assert joins == {row["_uid"]: row["duplicate_of"] is None for row in direct.to_pylist()}


def test_split_groups_feedback_records_by_prompt_before_their_cluster():
    rows = [
        pair(PROMPT, "A", "B", 1),
        {**pair(PROMPT, "A", "C", 2), "cluster_id": "k"},
        binary(PROMPT, "A", True, 3),
        {**sft(PROMPT, "A", 4), "cluster_id": "k"},
        sft(PROMPT, "A", 5),
        {**pair(PROMPT, "A", "D", 6), "parent_id": "p"},
    ]
    groups = group_keys(rows_to_table(rows)).to_pylist()
    prompt = prompt_key("", rows[0]["messages"], "", "")
    assert groups == [prompt, prompt, prompt, "k", rows[4]["id"], "p"]


def test_the_pairs_of_one_source_record_get_distinct_row_keys():
    made = [
        pair(
            PROMPT, "A", "B", 9, meta={"_pair": {"chosen": {"index": 0}, "rejected": {"index": 1}}}
        ),
        pair(
            PROMPT, "A", "C", 9, meta={"_pair": {"chosen": {"index": 0}, "rejected": {"index": 2}}}
        ),
        pair(PROMPT, "A", "B", 10, meta={"note": '"_pair": {'}),
    ]
    uids = row_uids(rows_to_table(made), {"f.jsonl": 3})
    assert len(set(uids.tolist())) == 3
    assert uids[2] == (3 << 40) | 10  # only conversion's own key counts


def test_stats_count_kept_records_by_kind_and_rejected_bytes():
    rows = [pair(PROMPT, "A", "B"), binary(PROMPT, "A", True), sft(PROMPT, "A")]
    rows.append({**pair(PROMPT, "A", "A"), "drop_reason": "pair.identical"})
    summary = Summary.from_json(summarize_batch(rows_to_table(rows))["summary"][0].as_py())
    assert summary.mix["kind"] == {"pair": 1, "binary": 1, "sft": 1}
    assert summary.reasons == {"pair.identical": 1}
    without_rejected = Summary.from_json(
        summarize_batch(rows_to_table([{**rows[0], "rejected": None}]))["summary"][0].as_py()
    )
    assert summary.bytes["output"] > without_rejected.bytes["output"]
    assert json.loads(summary.to_json())["mix"]["kind"]["pair"] == 1
