"""``instructflow bench rl`` at a tiny size, plain loop only (Ray Train's RL run is covered by
tests/train/test_rl_integration.py): the report is complete, its numbers are positive and
add up, and the prompts carry the constrain stage's constraints. No timing assertions
beyond "positive"; the Ray/plain ratios are checked on hand numbers."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os

import pytest

from bench.rl import RLBenchSettings, bench_rl, check_settings, compared, rl_bench_records

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(
    prompts=16,
    vocab_size=300,
    prompts_per_step=4,
    samples_per_prompt=2,
    max_new_tokens=8,
    steps=4,
    warmup_steps=1,
    ray=False,
    device="cpu",
)


@pytest.mark.slow
def test_the_report_is_complete_and_its_numbers_add_up(tmp_path):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = bench_rl(
            RLBenchSettings(workdir=tmp_path, **TINY), json_out=str(tmp_path / "r.json")
        )
    assert json.loads((tmp_path / "r.json").read_text()) == report
    plain = report["plain"]
    assert plain["timed_steps"] == 3 and report["data"]["prompts"] == 16
    for name in ("wall_s_per_step", "generation_s_per_step", "update_s_per_step"):
        assert math.isfinite(plain[name]) and plain[name] > 0, name
    shares = sum(plain[f"{name}_share"] for name in ("generation", "reward", "update"))
    assert shares == pytest.approx(1.0, abs=0.02)  # the three parts make up the step
    assert plain["wall_s_per_step"] >= plain["step_s_per_step"]
    assert "ray_over_plain" not in report and report["machine"]["plain_torch_threads"] >= 1
    assert report["gpu"]["skipped"] and report["vllm"]["skipped"]
    assert "plain" in printed.getvalue() and "generation" in printed.getvalue()


def test_records_are_constrained_by_the_stage_and_settings_are_checked():
    records = rl_bench_records(RLBenchSettings(prompts=12))
    assert len(records) == 12 and all(len(r["constraints"]) == 1 for r in records)
    with pytest.raises(ValueError, match="--steps must exceed --warmup-steps"):
        check_settings(RLBenchSettings(steps=5, warmup_steps=5))


def summary(wall: float, generation: float, reward: float, update: float, tokens: float) -> dict:
    parts = {"generation": generation, "reward": reward, "update": update}
    return {"wall_s_per_step": wall, "completion_tokens_per_s": tokens} | {
        f"{name}_s_per_step": seconds for name, seconds in parts.items()
    }


def test_ray_over_plain_is_computed_from_both_sides_numbers():
    plain = summary(0.100, 0.060, 0.004, 0.036, 9000.0)
    ray = summary(0.115, 0.066, 0.004, 0.045, 7800.0)
    plain_steps = [{"step": 1, "reward": 0.25}, {"step": 2, "reward": 0.5}]
    ray_steps = [{"step": 1, "reward": 0.25}, {"step": 2, "reward": 0.375}]
    ratio = compared(ray, plain, ray_steps, plain_steps)
    assert ratio["wall_s_per_step"] == 1.15 and ratio["overhead"] == 0.15
    assert ratio["generation_s_per_step"] == 1.1 and ratio["update_s_per_step"] == 1.25
    assert ratio["reward_s_per_step"] == 1.0
    assert ratio["completion_tokens_per_s"] == round(7800 / 9000, 3)
    assert ratio["max_reward_difference"] == 0.125 and ratio["steps_compared"] == 2
    with pytest.raises(ValueError, match="different steps"):
        compared(ray, plain, ray_steps[:1], plain_steps)
