"""`instructflow train rl` end to end on the session's local Ray: a tiny Llama fine-tuned
(SFT) on replies in three random styles, then trained by GRPO on 2 CPU workers to follow
the constraint its prompt states (all lowercase, or end with a phrase). The mean reward on
held-out prompts rises well above the SFT start, the KL to the reference stays bounded and
logged, and a worker killed mid-run restarts from its checkpoint and repeats the steps it
lost exactly (sampling is seeded per step and rank)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from ops.trainrun import run_rl, run_sft
from pipeline.config import RecipeError
from tests.train.rl_corpus import write_rl_output, write_sft_output
from tests.train.sft_corpus import write_pipeline_output
from train.tiny import save_tiny_model

pytestmark = pytest.mark.slow  # on Ray, end to end

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STEPS = 24
CRASH_AT = 13  # the 14th step: after the checkpoint at step 8, before the one at 16


def write_yaml(path: Path, recipe: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture(scope="module")
def sft_model(ray_session, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("rl-sft")
    data = write_sft_output(root / "out")
    model = save_tiny_model(str(data), str(root / "llama"), vocab_size=512)
    recipe = {
        "name": "sft-for-rl",
        "seed": 3,
        "data": {"path": str(data)},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": 64},
        "training": {
            "max_steps": 100,
            "micro_batch_size": 16,
            "learning_rate": 3e-3,
            "warmup_steps": 5,
            "log_every_steps": 50,
        },
        "eval": {"every_steps": 100, "samples": 0},
        "scaling": {"num_workers": 1},
        "output": {"path": str(root / "sft")},
    }
    run_sft(write_yaml(root / "sft.yaml", recipe))
    return str(root / "sft")  # a training output: its best checkpoint


def rl_recipe(directory: Path, data: Path, model: str, **sections) -> str:
    recipe = {
        "name": "test-rl",
        "seed": 1,
        "data": {"path": str(data)},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": 64},
        "rl": {"algorithm": "grpo", "kl_coef": 0.1},
        "rollout": {"prompts_per_step": 8, "samples_per_prompt": 8, "max_new_tokens": 16},
        "rewards": [{"kind": "ifeval"}],
        "training": {
            "max_steps": STEPS,
            "micro_batch_size": 32,
            "learning_rate": 5e-4,
            "log_every_steps": 1,
        },
        "eval": {"every_steps": 8, "samples": 1, "max_new_tokens": 16},
        "scaling": {"num_workers": 2, "max_failures": 1},
        "output": {"path": str(directory / "rl")},
    }
    for section, values in sections.items():
        recipe[section] = (
            values if isinstance(values, list) else {**recipe.get(section, {}), **values}
        )
    return write_yaml(directory / "rl.yaml", recipe)


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory) -> Path:
    return write_rl_output(tmp_path_factory.mktemp("rl-data") / "out")


@pytest.fixture(scope="module")
def crashed(sft_model, rl_data, tmp_path_factory) -> dict:
    """The run, with rank 1 killed once at step 13: Ray Train restarts both workers from
    the checkpoint of step 8."""
    directory = tmp_path_factory.mktemp("rl")
    summary = run_rl(
        rl_recipe(directory, rl_data, sft_model), fault={"crash_at_step": CRASH_AT, "crash_rank": 1}
    )
    lines = (Path(summary["logs"]) / "metrics.jsonl").read_text().splitlines()
    return summary | {"logged": [json.loads(line) for line in lines]}


def test_rl_raises_the_held_out_reward_well_above_the_sft_start(crashed):
    validation = [m for m in crashed["logged"] if "validation/reward" in m]
    start, end = validation[0], validation[-1]
    assert start["step"] == 0 and end["step"] == STEPS
    assert end["validation/reward"] >= start["validation/reward"] + 0.5, validation
    # Both constraint kinds are learnt, not one at the other's expense.
    for kind in ("change_case:english_lowercase", "startend:end_checker"):
        assert end[f"validation/ifeval/{kind}"] >= 0.5, end
    assert crashed["best"]["val_reward"] == max(m["validation/reward"] for m in validation[1:])


def test_the_kl_to_the_reference_is_logged_and_bounded(crashed):
    steps = [m for m in crashed["logged"] if "train/kl" in m]
    assert {m["step"] for m in steps} == set(range(1, STEPS + 1))
    assert all(0 <= m["train/kl"] < 0.5 for m in steps), [m["train/kl"] for m in steps]
    for m in steps:  # the time split and throughput are logged too
        assert m["time/generation_s"] > 0 and m["time/update_s"] > 0 and m["train/tokens_per_s"] > 0
        assert m["reward/ifeval/failures"] == 0


def test_a_killed_worker_restarts_from_the_checkpoint_and_repeats_the_lost_steps(crashed):
    by_step: dict[int, list[dict]] = {}
    for m in crashed["logged"]:
        if "train/loss" in m:
            by_step.setdefault(m["step"], []).append(m)
    # Steps 9..13 ran before the crash (the 14th died before logging) and again after it.
    repeated = sorted(step for step, entries in by_step.items() if len(entries) == 2)
    assert repeated == list(range(9, CRASH_AT + 1)), repeated
    for step in repeated:
        first, second = by_step[step]
        for name in ("train/reward", "train/loss", "train/kl", "train/completion_tokens"):
            assert first[name] == pytest.approx(second[name], abs=1e-6), (step, name)
    assert crashed["last"]["step"] == STEPS


def test_bad_rewards_are_refused_before_ray_starts(sft_model, rl_data, tmp_path):
    # Data without constraints: the ifeval reward has nothing to check.
    plain = write_pipeline_output(tmp_path / "plain")
    with pytest.raises(RecipeError, match=r"rewards\[0\].*add the `constrain` stage"):
        run_rl(rl_recipe(tmp_path / "a", plain, sft_model))
    broken = tmp_path / "broken.py"
    broken.write_text(
        "def reward(prompts, completions, **kw):\n    return [1 / 0] * len(completions)\n"
    )
    recipe = rl_recipe(
        tmp_path / "b",
        rl_data,
        sft_model,
        rewards=[
            {"kind": "ifeval"},
            {"kind": "python", "options": {"function": f"{broken}:reward"}},
        ],
    )
    with pytest.raises(
        RecipeError, match=r"rewards\[1\]: .*reward 'python' failed on all .*ZeroDivisionError"
    ):
        run_rl(recipe)
