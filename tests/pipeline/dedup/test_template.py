"""Template-aware near-dedup keys (pipeline.dedup_template): the masked MinHash kernel, the
sampling and counting steps that learn each file's template, the prompt and longest-passage
keys; then the stage on Ray on a small natural-duplicate corpus."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.corpora.natural_dedup import build_natural_benchmark
from bench.dedup_baselines import score
from pipeline.dedup_keys import key_texts, longest_passage
from pipeline.dedup_near import NearDedupConfig, Signatures
from pipeline.dedup_template import (
    FILE_COLUMN,
    MARKER,
    SHINGLE_COLUMN,
    Templates,
    frequent_shingles,
    sample_thresholds,
    sampled_shingles,
)
from pipeline.minhash import MinHasher, Shingler
from pipeline.schema import make_record, message, rows_to_table

TEXTS = [
    "Summarize the following article: the river rose over the old stone bridge at dawn",
    "Generate a title for this text: the river rose over the old stone bridge at dawn",
    "长江是中国最长的河流，发源于青藏高原，最后在上海注入东海。",
]


def hasher() -> MinHasher:
    return MinHasher(num_perm=64, seed=7, shingler=Shingler(word_ngram=3, char_ngram=3))


def test_masked_signatures_without_masks_are_the_signatures():
    none = np.zeros(len(TEXTS), dtype=np.int64)
    masked, counts = hasher().masked_signatures(TEXTS, np.empty(0, np.uint64), none, none)
    assert (masked == hasher().signatures(TEXTS)).all()
    assert (counts[:, 1] == 0).all() and (counts[:, 0] > 0).all()


def test_a_masked_signature_is_the_minhash_of_the_other_shingles():
    minhasher = hasher()
    shingles = minhasher.shingler.shingle_hashes(TEXTS[0])
    template = np.sort(shingles[:4])
    signatures, counts = minhasher.masked_signatures(
        TEXTS, template, np.array([0, 0, 0]), np.array([4, 0, 0])
    )
    rest = np.setdiff1d(shingles, template)
    a, b = minhasher.multipliers, minhasher.increments
    expected = np.array([(a[slot] * rest + b[slot]).min() for slot in range(a.size)])
    assert (signatures[0] == expected).all()
    assert counts[0].tolist() == [shingles.size, 4]
    assert (signatures[1:] == minhasher.signatures(TEXTS[1:])).all()  # no slice: unmasked


def test_a_text_that_is_all_template_keeps_its_shingles():
    minhasher = hasher()
    template = minhasher.shingler.shingle_hashes(TEXTS[1])
    signatures, counts = minhasher.masked_signatures(
        TEXTS[1:2], template, np.array([0]), np.array([template.size])
    )
    assert (signatures == minhasher.signatures(TEXTS[1:2])).all()
    assert counts[0, 1] == 0


def prompted(prompt: str, line: int, file: str = "a.jsonl", completion: str = "ok") -> dict:
    return make_record(
        messages=[message("user", prompt), message("assistant", completion)],
        source_file=file,
        source_format="prompt_completion",
        source_line=line,
    )


def test_prompt_and_longest_passage_keys():
    passage = "The river rose over the old stone bridge at dawn and flooded the square"
    batch = rows_to_table([prompted(f"Summarize this.\n\n{passage}\n\nSummary:", 1)])
    assert key_texts(batch, "prompt") == [f"Summarize this.\n\n{passage}\n\nSummary:"]
    assert key_texts(batch, "longest_passage") == [passage]
    assert key_texts(batch, "conversation") == [f"Summarize this.\n\n{passage}\n\nSummary:\nok"]
    assert longest_passage("") == ""
    assert longest_passage("a\nbb\ncc") == "bb"  # the first of equals


VOCABULARY = (
    "river bridge stone dawn market harbour library station morning lantern copper field "
    "garden winter summer orchard valley mountain village candle window letter ticket "
    "engine carpet ladder mirror pocket basket kettle meadow forest desert island castle"
).split()
# Distinct passages: twelve words each drawn from the vocabulary, so that no word 3-gram
# is common to many of them.
PASSAGES = [
    " ".join(random.Random(index).choice(VOCABULARY) for _ in range(12)) for index in range(32)
]
TEMPLATE = "Read the text and choose the topic.\nOPTIONS:\n- World\n- Sports\n- Business\n{}"


def file_batch() -> pa.Table:
    rows = [prompted(TEMPLATE.format(text), line) for line, text in enumerate(PASSAGES, 1)]
    rows += [prompted(text, line, file="b.jsonl") for line, text in enumerate(PASSAGES[:5], 1)]
    return rows_to_table(rows)


def learned(min_records: int = 10, share: float = 0.5) -> pa.Table:
    sampled = sampled_shingles(
        file_batch(),
        key="prompt",
        file_index={"a.jsonl": 0, "b.jsonl": 1},
        thresholds=sample_thresholds({0: 32, 1: 5}, sample=2000),
        seed=3,
        word_ngram=3,
        char_ngram=3,
    )
    return sampled, frequent_shingles(
        sampled.sort_by(FILE_COLUMN), share=share, min_records=min_records
    )


def test_each_sampled_record_counts_once_and_brings_its_distinct_shingles():
    sampled, _ = learned()
    files = sampled[FILE_COLUMN].to_numpy()
    markers = sampled[SHINGLE_COLUMN].to_numpy() == MARKER
    assert np.count_nonzero(markers & (files == 0)) == 32
    assert np.count_nonzero(markers & (files == 1)) == 5


def test_a_file_learns_its_template_and_not_its_passages():
    _, found = learned()
    assert set(found[FILE_COLUMN].to_pylist()) == {0}  # b.jsonl: 5 records, under the minimum
    template = set(found[SHINGLE_COLUMN].to_pylist())
    shingler = Shingler(word_ngram=3, char_ngram=3)
    wrapper = set(shingler.shingle_hashes("Read the text and choose the topic. OPTIONS: - World"))
    assert wrapper <= template
    passage = set(shingler.shingle_hashes(PASSAGES[0]))
    assert not passage & template


def test_sampling_follows_the_file_counts_and_skips_created_rows():
    thresholds = sample_thresholds({0: 100_000, 1: 10}, sample=1000)
    assert thresholds[1] == 2**64 - 1
    assert thresholds[0] == pytest.approx((2**64 - 1) / 100, rel=1e-9)
    batch = file_batch()
    sampled = sampled_shingles(
        batch,
        key="prompt",
        file_index={"a.jsonl": 0, "b.jsonl": 1},
        thresholds={0: 0, 1: 2**64 - 1},  # nothing of a.jsonl
        seed=3,
        word_ngram=3,
        char_ngram=3,
    )
    assert set(sampled[FILE_COLUMN].to_pylist()) == {1}


def test_signatures_mask_each_rows_own_file_template():
    _, found = learned()
    templates = Templates({0: found[SHINGLE_COLUMN].to_numpy()})
    config = NearDedupConfig(key="prompt", template_share=0.5).model_dump(mode="json")
    masked = Signatures(config, {"a.jsonl": 0, "b.jsonl": 1}, seed=1, templates=templates)
    plain = Signatures(config, {"a.jsonl": 0, "b.jsonl": 1}, seed=1)
    batch = file_batch()
    with_mask, without = masked(batch), plain(batch)
    a_rows = np.array(with_mask["_uid"].to_pylist()) >> 40 == 0
    assert (np.array(with_mask["_masked"].to_pylist())[a_rows] > 0).all()
    assert (np.array(with_mask["_masked"].to_pylist())[~a_rows] == 0).all()
    same = with_mask["_signature"].to_pylist() == without["_signature"].to_pylist()
    assert not same
    # Rows of b.jsonl (no template) sign as before.
    b_masked = [
        s for s, a in zip(with_mask["_signature"].to_pylist(), a_rows, strict=True) if not a
    ]
    b_plain = [s for s, a in zip(without["_signature"].to_pylist(), a_rows, strict=True) if not a]
    assert b_masked == b_plain


@pytest.mark.slow
def test_on_ray_masking_finds_one_passage_under_other_templates(ray_session, tmp_path):
    """A small natural-duplicate corpus (generated passages): with templates masked, near
    dedup finds most duplicate copies whole-record keys miss, and says what it masked. The
    corpus fits one task, so both dedup stages decide there; forced onto the distributed
    path (``run.single_task_bytes: 0``), the run writes the same bytes and findings."""
    from ops.datarun import run_data

    corpus = build_natural_benchmark(tmp_path / "corpus", 400, seed=1, shared=None)
    labels = [json.loads(line) for line in corpus.labels_path.read_text().splitlines()]
    line_of = {(entry["file"], entry["line"]): n for n, entry in enumerate(labels, start=1)}
    clusters = [entry["cluster"] for entry in labels]
    masked = {"threshold": 0.6, "key": "prompt", "template_share": 0.05}
    scores, findings, shards = {}, {}, {}
    for name, near, run in [
        ("whole", {"threshold": 0.6, "template_share": None}, {}),
        ("masked", masked, {}),
        ("distributed", masked, {"single_task_bytes": 0}),
    ]:
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(
            json.dumps(
                {
                    "name": "natural",
                    "inputs": [{"path": str(corpus.sources_dir), "format": "prompt_completion"}],
                    "stages": [{"exact_dedup": {}}, {"near_dedup": near}],
                    "output": {"path": str(tmp_path / name)},
                    "run": {"progress_bars": False, **run},
                }
            )
        )
        result = run_data(str(recipe), progress_bars=False)
        rejects = pq.read_table(tmp_path / name / "rejects")
        removed = {
            line_of[(file.rsplit("/", 1)[-1], line)]
            for file, line in zip(
                rejects["source_file"].to_pylist(), rejects["source_line"].to_pylist(), strict=True
            )
        }
        scores[name] = score(clusters, removed)
        stats = json.loads((tmp_path / name / "stats.json").read_text())
        assert stats["conservation"]["balanced"] is True
        findings[name] = [stage.get("findings") or {} for stage in stats["stages"]]
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        shards[name] = [
            (shard["path"].rsplit("/", 1)[-1], shard["sha256"]) for shard in manifest["shards"]
        ]
        assert result.output_path
    (found,) = [f for f in findings["masked"] if "template.files" in f]
    assert found["template.files"] == 8  # every dataset file has its template
    assert 0 < found["template.masked_shingles"] < found["template.record_shingles"]
    assert (
        shards["distributed"] == shards["masked"] and findings["distributed"] == findings["masked"]
    )
    # Generated passages are long beside the templates, so whole records do fairly well here
    # (F1 0.83 at 400 passages, 0.48 on the benchmark's shared-corpora passages); masked
    # keys recover copies they miss and lose no precision.
    assert scores["masked"].recall > scores["whole"].recall + 0.05
    assert scores["masked"].f1 > scores["whole"].f1 + 0.04
    assert scores["masked"].precision >= scores["whole"].precision - 0.01


def test_lookup_without_templates_and_for_created_rows():
    uids = np.array([5, (1 << 40) | 3, -77], dtype=np.int64)
    starts, stops = Templates({}).lookup(uids)
    assert starts.tolist() == stops.tolist() == [0, 0, 0]
    templates = Templates({1: np.array([9, 4], dtype=np.uint64)})
    starts, stops = templates.lookup(uids)
    assert list(zip(starts.tolist(), stops.tolist(), strict=True)) == [(0, 0), (0, 2), (0, 0)]
    assert templates.shingles.tolist() == [4, 9]
