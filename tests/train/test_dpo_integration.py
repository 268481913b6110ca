"""`instructflow train dpo` end to end on the session's local Ray: a tiny Llama built from a
config, 2 CPU workers over gloo, pairs whose chosen replies answer and rejected ones decline.
The reward accuracy on held-out pairs rises above chance; a run with an in-process reference
whose worker is killed mid-run restarts from its checkpoint and logs the same losses as the
uninterrupted stored-reference run."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import pytest
import yaml

from ops.cli import main
from ops.trainrun import run_dpo
from tests.train.pair_corpus import write_pair_output
from train.tiny import save_tiny_model

pytestmark = pytest.mark.slow  # on Ray, end to end

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STEPS = 12


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_pair_output(tmp_path_factory.mktemp("pairs") / "out")


@pytest.fixture(scope="module")
def tiny_llama(corpus, tmp_path_factory) -> str:
    return save_tiny_model(str(corpus), str(tmp_path_factory.mktemp("llama")), vocab_size=512)


def recipe_file(directory: Path, corpus: Path, model: str, **sections) -> str:
    recipe = {
        "name": "test-dpo",
        "seed": 5,
        "data": {"path": str(corpus)},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": 64},
        "preference": {"loss": "sigmoid", "beta": 0.1},
        "training": {
            "max_steps": STEPS,
            "micro_batch_size": 4,
            "gradient_accumulation": 2,
            "learning_rate": 2e-3,
            "warmup_steps": 2,
            "log_every_steps": 1,
        },
        "eval": {"every_steps": 4, "samples": 1, "max_new_tokens": 8},
        "scaling": {"num_workers": 2},
        "output": {"path": str(directory / "dpo")},
    }
    for section, values in sections.items():
        recipe[section] = {**recipe.get(section, {}), **values}
    path = directory / "dpo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def logged(summary: dict) -> list[dict]:
    lines = (Path(summary["logs"]) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def train_losses(summary: dict) -> dict[int, float]:
    return {m["step"]: m["train/loss"] for m in logged(summary) if "train/loss" in m}


@pytest.fixture(scope="module")
def uninterrupted(ray_session, corpus, tiny_llama, tmp_path_factory) -> dict:
    """The run through the command line, as a user starts it; its summary and its output."""
    recipe = recipe_file(tmp_path_factory.mktemp("ddp"), corpus, tiny_llama)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "dpo", recipe]) == 0
    output = Path(yaml.safe_load(Path(recipe).read_text())["output"]["path"])
    summary = json.loads((output / "train_summary.json").read_text())
    return summary | {"printed": printed.getvalue()}


def test_reward_accuracy_on_held_out_pairs_rises_above_chance(uninterrupted):
    metrics = logged(uninterrupted)
    validation = [m for m in metrics if "validation/loss" in m]
    start, end = validation[0], validation[-1]
    assert start["step"] == 0
    # At step 0 the policy is the reference: every reward is 0 and the loss is log 2.
    assert start["validation/loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert start["validation/reward_accuracy"] == 0.0
    assert end["validation/reward_accuracy"] > 0.5, validation
    assert end["validation/loss"] < math.log(2) - 0.05
    assert end["validation/reward_margin"] > 0
    assert end["validation/chosen_reward"] > end["validation/rejected_reward"]
    assert {"train/log_ratio", "train/reward_accuracy", "train/grad_norm"} <= set(metrics[1])

    last = uninterrupted["last"]
    assert last["step"] == STEPS and last["val_reward_accuracy"] > 0.5
    meta = json.loads((Path(last["path"]) / "instructflow.json").read_text())
    assert meta["method"] == "dpo" and meta["kind"] == "causal"
    printed = uninterrupted["printed"]
    assert "held-out reward accuracy: 0.000 (step 0) -> " in printed, printed
    assert "held-out likelihood accuracy: " in printed

    stats = uninterrupted["data"]
    assert stats["train"]["records_in"] == 96 and stats["train"]["rows"] == 96
    assert stats["rows_seconds"] > 0


def test_a_killed_worker_restarts_and_an_in_process_reference_gives_the_same_losses(
    ray_session, corpus, tiny_llama, uninterrupted, tmp_path
):
    """One run for two claims (each run costs ~40 s here): with a frozen in-process
    reference instead of the stored log-probabilities, and a worker killed at step 6 and
    restarted from the step-4 checkpoint, every step's loss and the final metrics equal the
    uninterrupted stored-reference run's."""
    recipe = recipe_file(
        tmp_path,
        corpus,
        tiny_llama,
        preference={"reference": "in_process"},
        scaling={"max_failures": 1},
    )
    summary = run_dpo(recipe, fault={"crash_at_step": 6, "crash_rank": 1})
    lines = (Path(summary["logs"]) / "metrics.jsonl").read_text()
    assert lines.count('"step": 6,') == 2  # step 6 was logged, lost, and trained again
    stored, in_process = train_losses(uninterrupted), train_losses(summary)
    assert stored.keys() == in_process.keys()
    for step, loss in stored.items():
        assert in_process[step] == pytest.approx(loss, rel=1e-4, abs=1e-6), step
    for key in ("train_loss", "val_loss", "val_reward_accuracy", "val_reward_margin"):
        assert summary["last"][key] == pytest.approx(uninterrupted["last"][key], rel=1e-4), key
