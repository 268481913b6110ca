"""bench.corpora.fixed_rate: the fixed-rate corpus of ``bench dedup-memory``: deterministic, the
configured rates, and no chance near duplicates between independent records."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from bench.corpora.fixed_rate import (
    EXACT_RATE,
    FAMILY_SIZE,
    NEAR_RATE,
    _Writer,
    vocabulary,
    write_fixed_rate_corpus,
)


def shingles(record: dict[str, str]) -> set[tuple[str, ...]]:
    words = " ".join(record.values()).lower().split()
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_fixed_rate_corpus(tmp_path / name, 3_000, seed=seed, records_per_file=1_000)
    first = [p.read_bytes() for p in sorted((tmp_path / "a").iterdir())]
    assert first == [p.read_bytes() for p in sorted((tmp_path / "b").iterdir())]
    assert first != [p.read_bytes() for p in sorted((tmp_path / "c").iterdir())]


def test_files_rates_and_one_family_per_25k_records(tmp_path: Path) -> None:
    counts = write_fixed_rate_corpus(tmp_path, 30_000, seed=0, records_per_file=12_500)

    files = sorted(tmp_path.iterdir())
    lines = [path.read_text().splitlines() for path in files]
    assert [len(part) for part in lines] == [12_500, 12_500, 5_000]
    records = [json.loads(line) for part in lines for line in part]
    assert all(set(r) == {"instruction", "input", "output"} and r["output"] for r in records)
    assert sum(counts.values()) == 30_000
    assert counts["exact"] / 30_000 == pytest.approx(EXACT_RATE, abs=0.006)
    assert counts["near"] / 30_000 == pytest.approx(NEAR_RATE, abs=0.005)
    # Record 25,000 opens the one family; its members follow in the last 5,000 records.
    assert counts["family_root"] == 1
    assert 100 < counts["family_member"] <= FAMILY_SIZE
    texts = [json.dumps(r, sort_keys=True) for r in records]
    assert len(texts) - len(set(texts)) >= counts["exact"]  # copies really are copies


def test_independent_records_share_no_near_duplicates_and_copies_stay_close() -> None:
    writer = _Writer(seed=3)
    originals = [writer.original() for _ in range(400)]
    sets = [shingles(r) for r in originals]
    chance = max(jaccard(a, b) for a, b in itertools.combinations(sets, 2))
    assert chance < 0.1

    copies = [jaccard(sets[i], shingles(writer.edited(originals[i]))) for i in range(200)]
    assert np.mean(copies) > 0.85 and min(copies) > 0.6


def test_vocabulary_is_distinct_and_shortest_first() -> None:
    words = vocabulary(np.random.default_rng(0), size=2_000)
    assert len(set(words)) == 2_000
    assert [len(w) for w in words] == sorted(len(w) for w in words)


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="records_per_file >= 1"):
        write_fixed_rate_corpus(tmp_path, 10, seed=0, records_per_file=0)
