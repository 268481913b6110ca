"""Sampling and splits on Ray: the radix select against a plain sort, exact quotas per stratum,
quality preference, no leakage across splits, and a recipe whose splits load with datasets
and whose shards are byte-identical across batchings."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from ops.datarun import run_data
from pipeline.first_k import first_k_cutoffs, key_table, target_histograms
from pipeline.plan import Tally
from pipeline.sample import Sample, SampleConfig
from pipeline.schema import make_record, message, rows_to_table
from pipeline.split import Split, SplitConfig, split_ranks
from pipeline.stage import GlobalContext
from pipeline.strata import strata_table

pytestmark = pytest.mark.slow  # on Ray, end to end

FILE = "/corpus/a.jsonl"


def record(line: int, task: str, language: str, **fields) -> dict:
    row = make_record(
        messages=[message("user", f"Question {line}?"), message("assistant", f"Answer {line}.")],
        source_file=FILE,
        source_format="alpaca",
        source_line=line,
        task=task,
        language=language,
    )
    row.update(fields)
    return row


def run_stage(ray, stage, rows: list[dict], seed: int = 1) -> tuple[list[dict], dict]:
    """A global stage over ``rows`` in four blocks; its output rows and its strata table."""
    table = rows_to_table(rows)
    step = -(-table.num_rows // 4)
    dataset = ray.data.from_arrow([table.slice(i, step) for i in range(0, table.num_rows, step)])
    tally = Tally.remote()
    context = GlobalContext(seed=seed, workers=2, position=0, file_index={FILE: 0}, tally=tally)
    out = stage.apply(dataset.materialize(), context)
    result = pa.concat_tables(ray.get(out.to_arrow_refs())).to_pylist()
    _, counts = ray.get(tally.snapshot.remote())
    strata, _ = strata_table(counts[0]["findings"])
    return sorted(result, key=lambda r: r["source_line"]), strata


def test_radix_select_matches_a_sort_over_several_rounds(ray_session):
    rng = np.random.default_rng(3)
    sizes = {"wide": 1500, "skewed": 700, "small": 9}
    targets, first = [], []
    for name, size in sizes.items():
        targets += [name] * size
        words = rng.integers(0, 2**63, size, dtype=np.uint64) * np.uint64(2)
        if name == "skewed":  # one top byte for all: the first round narrows nothing
            words = (words >> np.uint64(8)) | np.uint64(0xAB << 56)
        first.append(words)
    words = np.stack([np.concatenate(first), np.arange(len(targets), dtype=np.uint64)], axis=1)
    table = key_table(pa.array(targets), words)
    keys = ray_session.data.from_arrow([table.slice(i, 400) for i in range(0, 2209, 400)])
    keys = keys.materialize()
    ranks = {"wide": (1, 700, 1499), "skewed": (333,), "small": (0, 5, 10**6)}
    cutoffs = first_k_cutoffs(keys, ranks, target_histograms(keys, 2), workers=2, resolve_rows=4)
    for name, wanted in ranks.items():
        rows = sorted(map(tuple, words[np.array(targets) == name].tolist()))
        expected = [
            None if rank == 0 else (2**64 - 1,) * 2 if rank >= len(rows) else rows[rank - 1]
            for rank in wanted
        ]
        assert cutoffs[name] == expected, name


def sampling_corpus() -> list[dict]:
    rows = []
    for line in range(40):  # qa|en, scored but for every eighth row
        rows.append(record(line, "qa", "en", quality_score=None if line % 8 == 0 else line / 40))
    rows += [record(100 + line, "chat", "en") for line in range(25)]
    rows += [record(200 + line, "qa", "zh") for line in range(6)]
    rows[3]["drop_reason"], rows[3]["drop_detail"] = "filter.refusal", "{}"
    return rows


def test_sample_takes_exact_quotas_and_prefers_quality(ray_session):
    config = SampleConfig(strata=("task", "language"), mode="equal", total=30, prefer_quality=True)
    rows, strata = run_stage(ray_session, Sample(config), sampling_corpus())
    assert strata == {
        "chat|en": {"available": 25, "requested": 10, "taken": 12},
        "qa|en": {"available": 39, "requested": 10, "taken": 12},
        "qa|zh": {"available": 6, "requested": 10, "taken": 6},
    }
    kept = Counter(f"{r['task']}|{r['language']}" for r in rows if r["drop_reason"] is None)
    assert kept == {"chat|en": 12, "qa|en": 12, "qa|zh": 6}
    best = sorted(
        (r for r in sampling_corpus() if r["task"] == "qa" and r["language"] == "en"),
        key=lambda r: -(r["quality_score"] or -1),
    )
    assert {
        r["source_line"]
        for r in rows
        if r["drop_reason"] is None and r["language"] == "en" and r["task"] == "qa"
    } == {r["source_line"] for r in best[:12]}
    assert rows[3]["drop_reason"] == "filter.refusal"
    dropped = [r for r in rows if r["drop_reason"] == "sample.not_selected"]
    assert len(dropped) == 70 - 30
    assert json.loads(dropped[0]["drop_detail"]) == {
        "available": 39,
        "quota": 12,
        "stratum": "qa|en",
    }


def split_corpus() -> list[dict]:
    """Parents with augmentations, near-dup clusters, and groups spanning two strata."""
    rows, line = [], 0

    def add(task: str, language: str, **fields) -> dict:
        nonlocal line
        line += 1
        rows.append(record(line, task, language, **fields))
        return rows[-1]

    for index in range(60):
        parent = add("qa", "en")
        for _ in range(index % 3):
            add("qa", "en", parent_id=parent["id"], augmentation='{"stage": "rules"}')
    for index in range(40):
        keeper = add("chat", "en")
        keeper["cluster_id"] = keeper["id"]
        for _ in range(index % 2):
            add("chat", "en", cluster_id=keeper["id"])
    for _ in range(12):  # spanning: an English parent with a Chinese augmentation
        parent = add("qa", "en")
        add("qa", "zh", parent_id=parent["id"], augmentation='{"stage": "back_translate"}')
    for _ in range(8):
        add("qa", "zh")
    add("qa", "zh", drop_reason="dedup.near", drop_detail="{}")
    return rows


def group_of(row: dict) -> str:
    return row["parent_id"] or row["cluster_id"] or row["id"]


def test_split_keeps_groups_together_and_matches_fractions_per_stratum(ray_session):
    fractions = {"train": 0.75, "validation": 0.25}
    config = SplitConfig(fractions=fractions, stratify=("task", "language"))
    rows, strata = run_stage(ray_session, Split(config), split_corpus())
    live = [r for r in rows if r["drop_reason"] is None]
    assert all(r["split"] in fractions for r in live)
    assert [r["split"] for r in rows if r["drop_reason"]] == [""]
    sides = defaultdict(set)
    group_strata = defaultdict(set)
    for row in live:
        sides[group_of(row)].add(row["split"])
        group_strata[group_of(row)].add(f"{row['task']}|{row['language']}")
    assert all(len(side) == 1 for side in sides.values()), "a group leaked across splits"
    assert sum(len(s) > 1 for s in group_strata.values()) == 12  # the join path ran
    expected = defaultdict(Counter)
    for group, names in group_strata.items():
        expected[min(names)][next(iter(sides[group]))] += 1
    for stratum, counts in expected.items():
        exact, _ = split_ranks(sum(counts.values()), fractions)
        assert dict(counts) == exact, stratum
        assert strata[stratum] == exact
    per_stratum = defaultdict(Counter)
    for row in live:
        per_stratum[f"{row['task']}|{row['language']}"][row["split"]] += 1
    for stratum in ("qa|en", "chat|en"):  # qa|zh rows also follow their English parents
        counts = per_stratum[stratum]
        share = counts["train"] / sum(counts.values())
        assert abs(share - 0.75) < 0.12, (stratum, counts)


def write_inputs(root: Path) -> None:
    files = {"qa_en.jsonl": 60, "chat_en.jsonl": 30, "qa_zh.jsonl": 10}
    for name, count in files.items():
        lines = [
            json.dumps({"instruction": f"{name} question {i}?", "input": "", "output": f"A{i}."})
            for i in range(count)
        ]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def recipe(root: Path, output: Path, batch_rows: int) -> Path:
    data = {
        "name": "sample-split",
        "seed": 3,
        "inputs": [
            {"path": str(root / "qa_en.jsonl"), "task": "qa", "language": "en"},
            {"path": str(root / "chat_en.jsonl"), "task": "chat", "language": "en"},
            {"path": str(root / "qa_zh.jsonl"), "task": "qa", "language": "zh"},
        ],
        "stages": [
            {"sample": {"strata": ["task", "language"], "mode": "equal", "total": 45}},
            {"split": {"fractions": {"train": 0.8, "validation": 0.2}, "stratify": ["task"]}},
        ],
        "output": {"path": str(output), "shard_target_bytes": 2048},
        "run": {"batch_rows": batch_rows, "progress_bars": False},
    }
    path = output.parent / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def recipe_runs(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("sample-split")
    write_inputs(root)
    outcomes = {}
    for batch_rows in (1000, 7):
        output = root / f"out-{batch_rows}"
        outcomes[batch_rows] = (output, run_data(str(recipe(root, output, batch_rows))))
    return outcomes


def test_recipe_writes_loadable_splits_and_the_strata_tables(recipe_runs, tmp_path):
    import datasets

    output, outcome = recipe_runs[1000]
    stats = outcome.stats
    sample = next(stage for stage in stats["stages"] if stage["stage"] == "sample")
    assert sample["strata"] == {
        "chat|en": {"available": 30, "requested": 15, "taken": 18},
        "qa|en": {"available": 60, "requested": 15, "taken": 17},
        "qa|zh": {"available": 10, "requested": 15, "taken": 10},
    }
    assert sample["dropped"] == {"sample.not_selected": 55}
    split = next(stage for stage in stats["stages"] if stage["stage"] == "split")
    # chat: 18 -> 14.4 / 3.6; qa: 27 -> 21.6 / 5.4 (largest remainder).
    assert split["strata"] == {
        "chat": {"train": 14, "validation": 4},
        "qa": {"train": 22, "validation": 5},
    }
    assert stats["splits"] == {"train": 36, "validation": 9}
    assert stats["conservation"]["balanced"] and stats["conservation"]["output"] == 45
    assert not list((output / "data").glob("*.parquet"))
    loaded = {
        name: datasets.load_dataset(
            "parquet", data_dir=str(output / "data" / name), cache_dir=str(tmp_path), split="train"
        )
        for name in ("train", "validation")
    }
    assert {name: len(rows) for name, rows in loaded.items()} == {"train": 36, "validation": 9}
    assert set(loaded["validation"]["split"]) == {"validation"}
    report = (output / "report.html").read_text()
    assert "sample: records per stratum" in report and "split: groups per split" in report


def test_recipe_output_is_byte_identical_across_batch_sizes(recipe_runs):
    def checksums(output: Path) -> list[tuple[str, str]]:
        manifest = json.loads((output / "manifest.json").read_text())
        return [(shard["path"], shard["sha256"]) for shard in manifest["shards"]]

    first, second = (checksums(output) for output, _ in recipe_runs.values())
    assert first == second
    assert any(path.startswith("data/validation/part-") for path, _ in first)
