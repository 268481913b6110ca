"""``instructflow bench curation`` at a tiny size on a generated dirty corpus (the shared
corpora are not in a user's checkout): the report is complete, the held-out set is disjoint
from both arms (checked again here from the shards), both arms get the same token budget and
start from the same model, and the ratio is curated / raw. No assertion on which arm wins."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from bench.corpora import DirtConfig, write_corpus
from bench.curation import (
    CURATION_STAGES,
    CurationBenchSettings,
    bench_curation,
    check_settings,
    held_out,
    heldout_stages,
)
from pipeline.dedup_keys import key_texts

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
TINY = dict(
    records=120,
    heldout_fraction=0.25,
    seeds=(0,),
    size="tiny",
    vocab_size=512,
    max_length=128,
    micro_batch_size=2,
    steps=4,
    warmup_steps=1,
    cpus=2,
)


def dirty_corpus(path: Path, records: int) -> Path:
    write_corpus(
        path, records, seed=0, fmt="alpaca", dirt=DirtConfig.typical(), language_mix={"en": 1.0}
    )
    return path


@pytest.fixture(scope="module")
def report(ray_session, tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("bench-curation")
    corpus = dirty_corpus(workdir / "corpus.jsonl", 140)
    settings = CurationBenchSettings(workdir=workdir / "work", corpus=corpus, **TINY)
    result = bench_curation(settings, json_out=str(workdir / "result.json"))
    assert json.loads((workdir / "result.json").read_text()) == result
    return result


def shard_table(output: str):
    return ds.dataset(Path(output) / "data", format="parquet").to_table()


@pytest.mark.slow
def test_the_report_has_both_arms_per_seed_and_the_ratio(report: dict) -> None:
    (run,) = report["runs"]
    assert run["seed"] == 0
    for arm in ("raw", "curated"):
        row = run[arm]
        assert row["val_loss"] > 0 and row["wall_seconds"] > 0 and row["records"] > 0
        assert row["steps"] == 4 and row["heldout_rows"] > 0
    assert run["ratio"] == pytest.approx(run["curated"]["val_loss"] / run["raw"]["val_loss"], 1e-4)
    assert report["mean"]["ratio"] == run["ratio"]
    # Same model, same held-out set: the step-0 loss is one number for both arms.
    assert run["raw"]["val_loss_start"] == pytest.approx(run["curated"]["val_loss_start"], 1e-4)
    assert report["data"]["corpus"]["records"] == 120  # --records: the first 120 of 140


@pytest.mark.slow
def test_raw_is_converted_only_and_curated_drops_the_dirt(report: dict) -> None:
    arms = report["data"]["arms"]
    assert arms["raw"]["dropped"] == {}
    assert arms["raw"]["records"] == arms["raw"]["records_in"] - arms["raw"]["quarantined"]
    assert arms["curated"]["records_in"] == arms["raw"]["records_in"]
    assert arms["curated"]["records"] < arms["raw"]["records"]
    assert "dedup.exact" in arms["curated"]["dropped"]
    assert report["runs"][0]["raw"]["records"] == arms["raw"]["records"]


@pytest.mark.slow
def test_the_heldout_set_is_disjoint_from_both_arms(report: dict) -> None:
    data = report["data"]
    pools = Path(report["settings"]["workdir"]) / "corpus"
    train_lines = set((pools / "train.jsonl").read_text().splitlines())
    heldout_lines = (pools / "heldout.jsonl").read_text().splitlines()
    assert heldout_lines and not train_lines & set(heldout_lines)
    heldout = shard_table(data["heldout"]["output"])
    assert 0 < heldout.num_rows <= data["corpus"]["heldout_pool"]
    for arm in ("raw", "curated"):
        assert data["arms"][arm]["heldout_overlap"] == {"ids": 0, "prompts": 0, "conversations": 0}
        trained = shard_table(data["arms"][arm]["output"])
        assert not set(heldout.column("id").to_pylist()) & set(trained.column("id").to_pylist())
        for key in ("instruction_input", "conversation"):
            assert not set(key_texts(heldout, key)) & set(key_texts(trained, key)), (arm, key)


@pytest.mark.slow
def test_both_arms_train_the_same_token_budget(report: dict) -> None:
    run = report["runs"][0]
    slots = 4 * 2 * 128  # steps x micro-batch x max_length, packed rows
    for arm in ("raw", "curated"):
        assert run[arm]["token_slots"] == slots
        assert 0 < run[arm]["tokens_trained"] <= slots
    assert run["raw"]["heldout_tokens"] == run["curated"]["heldout_tokens"]


def test_the_split_is_seeded_by_content_and_near_the_fraction() -> None:
    items = [{"instruction": f"task {index}", "output": "done"} for index in range(2000)]
    chosen = [held_out(item, 0, 0.2) for item in items]
    assert chosen == [held_out(dict(reversed(item.items())), 0, 0.2) for item in items]
    assert 0.17 < sum(chosen) / len(items) < 0.23
    assert chosen != [held_out(item, 1, 0.2) for item in items]


def test_the_curation_is_the_quickstart_recipe_less_its_corpus_specific_stages() -> None:
    quickstart = yaml.safe_load((REPO / "examples/quickstart/recipe.yaml").read_text())
    kept = [
        stage
        for stage in quickstart["stages"]
        if next(iter(stage)) not in ("blocklist", "decontaminate", "split")
    ]
    assert list(CURATION_STAGES) == kept
    names = [next(iter(stage)) for stage in heldout_stages([Path("a.jsonl")])]
    assert names.index("decontaminate") == names.index("exact_dedup") - 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"records": 5}, "--records must be at least 20"),
        ({"heldout_fraction": 1.0}, "--heldout-fraction must be in"),
        ({"seeds": ()}, "--seeds needs at least one seed"),
        ({"seeds": (1, 1)}, "--seeds must differ"),
        ({"size": "huge"}, "--size must be one of"),
        ({"steps": 0}, "--steps must be at least 1"),
        ({"corpus": Path("nowhere.jsonl")}, "no such file"),
    ],
)
def test_settings_are_checked_before_anything_runs(
    tmp_path: Path, change: dict, message: str
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"instruction": "a", "output": "b"}\n')
    settings = CurationBenchSettings(workdir=tmp_path / "never", corpus=corpus)
    check_settings(settings)
    with pytest.raises(ValueError, match=message):
        check_settings(replace(settings, **change))
    with pytest.raises(ValueError, match=message):
        bench_curation(replace(settings, **change))
    assert not (tmp_path / "never").exists()
