"""The labelled near-duplicate benchmark: metric, shingles, corpus builder, baselines' plumbing.

No Ray, no network, no DataTrove: the DataTrove baseline itself runs only in the benchmark.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from datasketch import MinHashLSH

from bench.corpora.dedup_passages import DEFAULT_CORPORA, MIN_UNITS, dedup_text, reference_shingles
from bench.corpora.labelled_dedup import (
    EDIT_KINDS,
    BenchmarkCorpus,
    build_benchmark,
    read_labels,
    read_texts,
)
from bench.datatrove_baseline import optimal_bands_rows
from bench.dedup_baselines import (
    DATATROVE_VERSION,
    Score,
    datasketch_dedup,
    datatrove_dedup,
    ensure_datatrove_venv,
    score,
)

needs_corpora = pytest.mark.skipif(
    not DEFAULT_CORPORA.is_dir(),
    reason=f"the shared corpora are not at {DEFAULT_CORPORA} (a checkout without shared/)",
)


# ---------------------------------------------------------------------------------------
# Metric, with hand-computed examples


def test_score_all_duplicates_found_exactly() -> None:
    # cluster 0 has 3 lines (2 should go), cluster 1 has 2 (1 should go)
    result = score([0, 0, 0, None, 1, 1], {2, 3, 6})
    assert result == Score(precision=1.0, recall=1.0, f1=1.0, removed=3, correct=3, expected=3)


def test_score_a_fully_removed_cluster_counts_one_removal_wrong() -> None:
    result = score([0, 0, 0, None], {1, 2, 3})
    assert (result.correct, result.removed, result.expected) == (2, 3, 2)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == 1.0
    assert result.f1 == pytest.approx(0.8)


def test_score_mixed_hits_misses_and_a_removed_unique() -> None:
    # cluster 0: 1 of 1 found; cluster 1 (k=3): 1 of 2 found; line 6 is unique: wrong
    result = score([0, 0, 1, 1, 1, None], {2, 5, 6})
    assert (result.correct, result.removed, result.expected) == (2, 3, 3)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 / 3)


def test_score_only_a_unique_removed_is_zero() -> None:
    assert score([0, 0, None, None], {3}) == Score(0.0, 0.0, 0.0, 1, 0, 1)


def test_score_nothing_removed_has_full_precision_and_no_recall() -> None:
    assert score([0, 0, None], set()) == Score(1.0, 0.0, 0.0, 0, 0, 1)
    assert score([None, None], set()) == Score(1.0, 1.0, 1.0, 0, 0, 0)


def test_score_rejects_line_numbers_outside_the_corpus() -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.3"):
        score([0, 0, None], {0})
    with pytest.raises(ValueError, match="outside"):
        score([0, 0, None], {4})


# ---------------------------------------------------------------------------------------
# Text and shingles


def test_dedup_text_joins_instruction_and_output() -> None:
    record = {"instruction": "Say hi.", "input": "", "output": "Hi!"}
    assert dedup_text(record) == "Say hi.\nHi!"


def test_english_shingles_are_normalised_word_5_grams() -> None:
    shingles = reference_shingles("The QUICK, brown fox -- jumps   over\nthe lazy dog.")
    assert shingles[0] == "the quick brown fox jumps"
    assert shingles[-1] == "jumps over the lazy dog"
    assert len(shingles) == 5
    assert reference_shingles("Ｔｈｅ quick brown fox jumps!") == ["the quick brown fox jumps"]


def test_chinese_shingles_are_character_5_grams_without_spaces_or_punctuation() -> None:
    assert reference_shingles("你好，世界 和平！") == ["你好世界和", "好世界和平"]
    assert reference_shingles("你好，世界 和平！", char_ngram=6) == ["你好世界和平"]


def test_short_and_empty_texts() -> None:
    assert reference_shingles("just three words") == ["just three words"]
    assert reference_shingles(" ,.! ") == []


# ---------------------------------------------------------------------------------------
# Baselines' plumbing


def test_datasketch_dedup_keeps_the_first_of_each_duplicate() -> None:
    text = "one two three four five six seven eight nine ten"
    texts = [text, "a completely different sentence with its own words", text.upper()]
    assert datasketch_dedup(texts, threshold=0.8) == {3}


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8])
def test_datatrove_banding_is_datasketchs(threshold: float) -> None:
    index = MinHashLSH(threshold=threshold, num_perm=128)
    assert optimal_bands_rows(threshold, 128) == (index.b, index.r)


def test_datatrove_dedup_reports_the_scripts_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(RuntimeError, match="stderr tail") as raised:
        datatrove_dedup(missing, 0.8, tmp_path / "work", Path(sys.executable), 1, language="en")
    assert "missing.jsonl" in str(raised.value)


def test_ensure_datatrove_venv_reuses_an_environment_with_the_pinned_version(
    tmp_path: Path,
) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\necho {DATATROVE_VERSION}\n")
    python.chmod(0o755)
    assert ensure_datatrove_venv(tmp_path / "venv") == python


def test_build_benchmark_names_a_missing_corpora_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="shared corpora"):
        build_benchmark(tmp_path / "out", "en", 2, 2, 0, corpora=tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------
# The corpus builder, on the shared corpora

CLUSTERS, UNIQUES = 30, 30


@pytest.fixture(scope="module", params=["en", "zh"])
def small(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if not DEFAULT_CORPORA.is_dir():
        pytest.skip(f"the shared corpora are not at {DEFAULT_CORPORA}")
    out_dir = tmp_path_factory.mktemp(f"bench-{request.param}")
    return build_benchmark(out_dir, request.param, CLUSTERS, UNIQUES, seed=7)


def _labels(benchmark: BenchmarkCorpus) -> list[dict]:
    return [json.loads(line) for line in benchmark.labels_path.read_text().splitlines()]


def _records(benchmark: BenchmarkCorpus) -> list[dict]:
    lines = benchmark.corpus_path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@needs_corpora
def test_corpus_and_labels_are_aligned_alpaca_lines(small: BenchmarkCorpus) -> None:
    records, labels = _records(small), _labels(small)
    assert len(records) == len(labels) == small.records
    assert [label["line"] for label in labels] == list(range(1, len(labels) + 1))
    assert all(list(record) == ["instruction", "input", "output"] for record in records)
    assert all(record["input"] == "" for record in records)


@needs_corpora
def test_clusters_counts_and_expected_removals(small: BenchmarkCorpus) -> None:
    labels = _labels(small)
    sizes = Counter(label["cluster"] for label in labels if label["cluster"] is not None)
    assert len(sizes) == small.clusters == CLUSTERS
    assert all(2 <= size <= 5 for size in sizes.values())
    assert small.expected_removals == sum(size - 1 for size in sizes.values())
    assert sum(label["cluster"] is None for label in labels) == small.uniques == UNIQUES
    assert all((label["kind"] == "unique") == (label["cluster"] is None) for label in labels)
    originals = Counter(label["cluster"] for label in labels if label["kind"] == "original")
    assert originals == Counter(dict.fromkeys(sizes, 1))
    edits = {kind for label in labels for kind in label["kind"].split("+")}
    assert edits - {"original", "unique"} <= set(EDIT_KINDS)


@needs_corpora
def test_variants_really_differ_from_their_originals(small: BenchmarkCorpus) -> None:
    texts, labels = read_texts(small.corpus_path), _labels(small)
    original = {
        label["cluster"]: texts[label["line"] - 1]
        for label in labels
        if label["kind"] == "original"
    }
    variants = [label for label in labels if label["kind"] not in ("original", "unique")]
    assert variants
    for label in variants:
        assert texts[label["line"] - 1] != original[label["cluster"]], label


@needs_corpora
def test_base_passages_are_long_and_distinct(small: BenchmarkCorpus) -> None:
    texts, labels = read_texts(small.corpus_path), _labels(small)
    bases = [
        texts[label["line"] - 1] for label in labels if label["kind"] in ("original", "unique")
    ]
    unit = (
        str.split if small.language == "en" else lambda text: [c for c in text if not c.isspace()]
    )
    assert min(len(unit(text)) for text in bases) >= MIN_UNITS[small.language]
    shingle_sets = [set(reference_shingles(text)) for text in bases]
    for left, right in itertools.combinations(shingle_sets, 2):
        assert len(left & right) / len(left | right) < 0.5


@needs_corpora
def test_same_seed_same_bytes_other_seed_other_corpus(
    small: BenchmarkCorpus, tmp_path: Path
) -> None:
    again = build_benchmark(tmp_path / "again", small.language, CLUSTERS, UNIQUES, seed=7)
    assert again.corpus_path.read_bytes() == small.corpus_path.read_bytes()
    assert again.labels_path.read_bytes() == small.labels_path.read_bytes()
    other = build_benchmark(tmp_path / "other", small.language, CLUSTERS, UNIQUES, seed=8)
    assert other.corpus_path.read_bytes() != small.corpus_path.read_bytes()


@needs_corpora
def test_datasketch_learns_the_benchmark(small: BenchmarkCorpus) -> None:
    """Sanity that the labels are learnable. At 0.6 datasketch finds nearly everything. Not
    at 0.8: 3-5% word edits leave a word (character) 5-gram Jaccard near 0.7, below that
    threshold, which is the point of including them (there recall is about 0.6)."""
    texts, labels = read_texts(small.corpus_path), read_labels(small.labels_path)
    assert score(labels, datasketch_dedup(texts, 0.6)).f1 >= 0.9
    strict = score(labels, datasketch_dedup(texts, 0.8))
    assert strict.precision >= 0.95
    assert 0.4 <= strict.recall <= 0.85
