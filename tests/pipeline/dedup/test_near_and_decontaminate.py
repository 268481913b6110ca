"""Near dedup's per-block steps, its config errors, and decontamination: pure, no Ray."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline.components import labels_in_process
from pipeline.config import RecipeError, parse_recipe
from pipeline.decontaminate import Decontaminate, DecontaminateConfig
from pipeline.dedup_near import (
    BAND_COLUMN,
    PAYLOAD_U,
    PAYLOAD_V,
    NearDedupConfig,
    Signatures,
    band_rows,
    bucket_edges,
    checked_edges,
    keeper_assignments,
    keepers_with_similarity,
    scored_against_keeper,
    signature_array,
    spread_keepers,
)
from pipeline.schema import make_record, message, rows_to_table

PASSAGE = (
    "The old lighthouse on the northern cliff was rebuilt in stone after the storm of 1891 "
    "and its lamp could be seen for twenty miles across the grey water on a clear night"
)


def record(instruction: str, response: str, line: int) -> dict:
    return make_record(
        messages=[message("user", instruction), message("assistant", response)],
        source_file="f.jsonl",
        source_format="alpaca",
        source_line=line,
    )


def test_bucket_edges_link_each_bucket_as_a_star_to_its_smallest_row():
    block = pa.table(
        {
            "_band": pa.array([5, 5, 5, 7, 9, 9], pa.uint64()),
            "_uid": pa.array([30, 10, 20, 40, 50, 60], pa.int64()),
        }
    )
    edges = bucket_edges(block)
    pairs = sorted(zip(edges["u"].to_pylist(), edges["v"].to_pylist(), strict=True))
    assert pairs == [(10, 20), (10, 30), (50, 60)]


def test_keeper_is_best_ranked_member_and_similarity_is_estimated_jaccard():
    signatures = np.array([[1, 2, 3, 4], [1, 2, 3, 9], [1, 8, 8, 8]], dtype=np.uint64)
    block = pa.table(
        {
            "_uid": pa.array([3, 1, 2], pa.int64()),
            "root": pa.array([1, 1, 1], pa.int64()),
            "id": ["c", "a", "b"],
            "_rank": pa.array([0.0, 0.0, 0.0]),
            "_signature": signature_array(signatures),
        }
    )
    members = keepers_with_similarity(block).sort_by("_uid").to_pylist()
    # uid 1 ("a", the second signature) keeps; uid 2 shares 1 of 4 slots, uid 3 shares 3.
    assert members == [
        {"_uid": 1, "duplicate_of": None, "similarity": None, "_cluster": "a"},
        {"_uid": 2, "duplicate_of": "a", "similarity": 0.25, "_cluster": "a"},
        {"_uid": 3, "duplicate_of": "a", "similarity": 0.75, "_cluster": "a"},
    ]


def test_signatures_skip_texts_without_shingles():
    config = NearDedupConfig(key="response").model_dump(mode="json")
    signer = Signatures(config, {"f.jsonl": 0}, seed=1)
    table = signer(rows_to_table([record("q", PASSAGE, 1), record("q", "?!", 2)]))
    assert table["_uid"].to_pylist() == [1]
    assert table["_signature"].type.list_size == 128


@pytest.mark.parametrize(
    ("options", "message_part"),
    [
        ({"bands": 10}, "set both bands and rows"),
        ({"bands": 20, "rows": 10}, "exceeds num_perm"),
        ({"threshold": 1.5}, "less than 1"),
        ({"shingles": 3}, "unknown key"),
        ({"max_component_rows": -1}, "max_component_rows"),
    ],
)
def test_near_dedup_config_errors_name_the_key(options, message_part):
    recipe = {"inputs": [{"path": "x.jsonl"}], "stages": [{"near_dedup": options}]}
    with pytest.raises(RecipeError) as caught:
        parse_recipe(recipe, source="r.yaml")
    text = str(caught.value)
    assert "near_dedup" in text and message_part in text


def test_component_row_cap_fits_a_quarter_partition_unless_set():
    # 128 slots of 8 bytes plus 96 bytes of uid, root, rank and id: 1,120 bytes a member,
    # in a quarter of 16 MiB.
    assert NearDedupConfig().component_row_cap(16 * 2**20) == 3_744
    assert NearDedupConfig(max_component_rows=0).component_row_cap(16 * 2**20) == 0


def test_lsh_shape_comes_from_the_threshold_unless_set():
    # Plain LSH balances the two errors, as datasketch does.
    assert NearDedupConfig(threshold=0.8, verify="none").lsh_shape() == (9, 13)
    assert NearDedupConfig(threshold=0.7, verify="none").lsh_shape() == (14, 9)
    # Checked pairs: the candidates are chosen for recall (false negatives weighted 0.9).
    assert NearDedupConfig(threshold=0.8).lsh_shape() == (14, 9)
    assert NearDedupConfig(threshold=0.7).lsh_shape() == (20, 6)
    assert NearDedupConfig(threshold=0.7, false_negative_weight=0.5).weights() == (0.1, 0.5)
    assert NearDedupConfig(bands=16, rows=8).lsh_shape() == (16, 8)


def test_verify_accepts_the_old_booleans_and_names_its_modes():
    assert NearDedupConfig(verify=True).verify == "exact"
    assert NearDedupConfig(verify=False).verify == "none"
    recipe = {"inputs": [{"path": "x.jsonl"}], "stages": [{"near_dedup": {"verify": "maybe"}}]}
    with pytest.raises(RecipeError, match="'none', 'signature' or 'exact'"):
        parse_recipe(recipe, source="r.yaml")


def component_block(signatures: np.ndarray, texts: list[str] | None = None) -> pa.Table:
    """One candidate component (root 1) of rows with uids 1..n and ids "r1".."rn"."""
    count = len(signatures)
    columns = {
        "_uid": pa.array(range(1, count + 1), pa.int64()),
        "root": pa.array([1] * count, pa.int64()),
        "id": [f"r{uid}" for uid in range(1, count + 1)],
        "_rank": pa.array([0.0] * count),
        "_signature": signature_array(signatures),
    }
    if texts is not None:
        columns["_text"] = texts
    return pa.table(columns)


def test_signature_checks_split_a_component_chained_by_a_false_candidate():
    # Eight slots, bands of two: rows 1-2 agree on 7 slots, rows 3-4 on 7, and row 2 shares
    # only its first band with row 3, so plain LSH chains all four into one component.
    signatures = np.array(
        [
            [1, 1, 2, 2, 3, 3, 4, 4],
            [1, 1, 2, 2, 3, 3, 4, 9],
            [1, 1, 7, 7, 8, 8, 6, 6],
            [1, 1, 7, 7, 8, 8, 6, 5],
        ],
        dtype=np.uint64,
    )
    block = component_block(signatures)
    plain = keepers_with_similarity(block, NearDedupConfig(verify="none"))
    assert sorted(plain["duplicate_of"].drop_null().to_pylist()) == ["r1", "r1", "r1"]
    checked = keepers_with_similarity(
        block, NearDedupConfig(bands=4, rows=2, threshold=0.8, verify="signature")
    ).sort_by("_uid")
    assert checked.to_pylist() == [
        {"_uid": 1, "duplicate_of": None, "similarity": None, "_cluster": "r1"},
        {"_uid": 2, "duplicate_of": "r1", "similarity": 0.875, "_cluster": "r1"},
        {"_uid": 3, "duplicate_of": None, "similarity": None, "_cluster": "r3"},
        {"_uid": 4, "duplicate_of": "r3", "similarity": 0.875, "_cluster": "r3"},
    ]
    # Above every pair's similarity nothing is a duplicate.
    none_left = keepers_with_similarity(
        block, NearDedupConfig(bands=4, rows=2, threshold=0.9, verify="signature")
    )
    assert none_left.num_rows == 0


def test_exact_checks_use_the_shingles_not_the_signatures():
    # Identical signatures (every pair a candidate), but only rows 1 and 2 share their text.
    signatures = np.ones((3, 8), dtype=np.uint64)
    other = "a completely different sentence about harbour cranes and the tide tables"
    block = component_block(signatures, texts=[PASSAGE, PASSAGE + " again", other])
    result = keepers_with_similarity(
        block, NearDedupConfig(bands=4, rows=2, threshold=0.8, verify="exact")
    )
    losers = result.filter(pc.is_valid(result["duplicate_of"]))
    assert losers["_uid"].to_pylist() == [2] and losers["duplicate_of"].to_pylist() == ["r1"]


def test_a_giant_bucket_is_cut_into_chained_stars_with_bounded_centres():
    rng = np.random.default_rng(0)
    uids = rng.permutation(np.arange(10, 1010))
    block = pa.table(
        {
            BAND_COLUMN: pa.array(np.r_[np.full(1000, 7), [9, 9, 9]], pa.uint64()),
            "_uid": pa.array(np.r_[uids, [5, 3, 4]], pa.int64()),
        }
    )
    edges = bucket_edges(block, star_rows=256)
    assert edges.num_rows == 999 + 2
    _, degree = np.unique(edges["u"].to_numpy(), return_counts=True)
    assert degree.max() <= 256  # 255 members and the link to the next star's centre
    labels = labels_in_process(edges)
    assert sorted(set(labels["root"].to_pylist())) == [3, 10]
    # A bucket within star_rows is the plain star on its smallest uid.
    whole = bucket_edges(block, star_rows=1000)
    assert set(whole.filter(pc.greater(whole["u"], 5))["u"].to_pylist()) == {10}


def joins_in_process(block: pa.Table, config: NearDedupConfig) -> pa.Table:
    """The steps ``resolved_by_joins`` runs on Ray, on one block: candidate edges with both
    ends' payloads, checked; clusters; keepers with salts (two losers a salt); scoring."""
    bands, rows = config.lsh_shape()
    edges = bucket_edges(band_rows(block, bands, rows).sort_by(BAND_COLUMN))
    payload = "_text" if config.verify == "exact" else "_signature"
    index = {uid: row for row, uid in enumerate(block["_uid"].to_pylist())}
    ends = {
        name: block[payload].take(pa.array([index[uid] for uid in edges[end].to_pylist()]))
        for name, end in ((PAYLOAD_U, "u"), (PAYLOAD_V, "v"))
    }
    checked = checked_edges(
        edges.append_column(PAYLOAD_U, ends[PAYLOAD_U]).append_column(PAYLOAD_V, ends[PAYLOAD_V]),
        config,
    )
    clusters = labels_in_process(checked).rename_columns(["_uid", "root"])
    members = clusters.join(block.select(["_uid", "id", "_rank"]), "_uid")
    assigned = keeper_assignments(members, salt_rows=2)
    rows = pa.array([index[uid] for uid in assigned["_uid"].to_pylist()])
    signed = assigned.append_column("_signature", block["_signature"].take(rows))
    return scored_against_keeper(spread_keepers(signed))


@pytest.mark.parametrize("verify", ["signature", "exact"])
def test_the_joins_path_makes_the_per_component_steps_decisions(verify):
    # Five clusters of eight noisy copies (up to 30% of the slots changed, up to 8% of the
    # words dropped, so
    # some candidate pairs pass the check and some fail), ranks that disagree with uids.
    rng = np.random.default_rng(4)
    signatures, texts = [], []
    for cluster in range(5):
        base = rng.integers(0, 2**40, size=32, dtype=np.uint64)
        words = [f"w{cluster}_{i}" for i in range(40)]
        for _ in range(8):
            row = base.copy()
            changed = rng.random(32) < rng.uniform(0.0, 0.3)
            row[changed] = rng.integers(0, 2**40, size=int(changed.sum()), dtype=np.uint64)
            signatures.append(row)
            drop = rng.uniform(0.0, 0.08)
            kept = [w for w in words if rng.random() > drop]
            texts.append(" ".join(kept))
    count = len(signatures)
    uids = rng.permutation(np.arange(100, 100 + 3 * count, 3))
    block = pa.table(
        {
            "_uid": pa.array(uids, pa.int64()),
            "root": pa.array(np.full(count, uids.min()), pa.int64()),
            "id": [f"r{uid}" for uid in uids],
            "_rank": pa.array(rng.integers(0, 4, count).astype(float)),
            "_signature": signature_array(np.array(signatures)),
            "_text": texts,
        }
    )
    config = NearDedupConfig(num_perm=32, bands=8, rows=4, threshold=0.7, verify=verify)
    expected = keepers_with_similarity(block, config).sort_by("_uid")
    got = joins_in_process(block, config).sort_by("_uid")
    assert expected.num_rows > 10 and pc.sum(pc.is_valid(expected["duplicate_of"])).as_py() > 5
    assert got.to_pylist() == expected.to_pylist()


@pytest.fixture
def eval_file(tmp_path):
    path = tmp_path / "bench.jsonl"
    items = [
        {"id": "q1", "question": "Why does the sky appear blue during the day and red at dusk?"},
        {"id": "q2", "question": "请解释为什么月亮会有阴晴圆缺的变化，并举例说明其中的原理。"},
    ]
    path.write_text("\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n")
    return path


@pytest.mark.parametrize("method", ["minhash", "ngram"])
def test_decontamination_drops_matches_and_counts_items(eval_file, method):
    options = {"ngram": 8} if method == "ngram" else {"threshold": 0.5}
    stage = Decontaminate(
        DecontaminateConfig(eval_sets=(str(eval_file),), method=method, **options)
    )
    batch = rows_to_table(
        [
            record("Q: why does the sky appear blue during the day and red at dusk?", "Air.", 1),
            record("Write a poem about the autumn harvest in the valley.", "Leaves.", 2),
            record("请解释为什么月亮会有阴晴圆缺的变化，并举例说明其中的原理。", "月相。", 3),
        ]
    )
    result, counts = stage.run(batch)
    lines = result["source_line"].to_pylist()
    by_line = dict(zip(lines, result["drop_reason"].to_pylist(), strict=True))
    assert by_line == {1: "dedup.contaminated", 2: None, 3: "dedup.contaminated"}
    assert dict(counts.findings) == {"bench.jsonl#q1": 1, "bench.jsonl#q2": 1}
    details = dict(zip(lines, result["drop_detail"].to_pylist(), strict=True))
    detail = json.loads(details[1])
    assert detail["eval_item"] == "bench.jsonl#q1" and 0 < detail["similarity"] <= 1


def test_decontamination_rejects_an_eval_file_without_prompts(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"answer": "4"}\n')
    with pytest.raises(ValueError, match="no string field prompt or question"):
        DecontaminateConfig(eval_sets=(str(path),))
