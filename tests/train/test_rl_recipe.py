"""The RL recipe's own checks: each problem is named by key, before Ray starts."""

from __future__ import annotations

import pytest

from pipeline.config import RecipeError
from train.config import parse_rl_recipe

BASE = {"data": {"path": "d"}, "model": {"name_or_path": "m"}, "output": {"path": "o"}}


def recipe(**sections):
    return parse_rl_recipe({**BASE, **sections}, "rl.yaml")


def test_defaults_are_grpo_with_token_level_loss_and_the_ifeval_reward():
    parsed = recipe()
    assert parsed.rl.algorithm == "grpo" and parsed.rl.aggregation == "token_mean"
    assert parsed.rewards[0].kind == "ifeval" and parsed.rewards[0].label == "ifeval"
    # The seed's formula for REINFORCE and RLOO: the summed log-probability of a sequence.
    assert recipe(rl={"algorithm": "rloo"}).rl.aggregation == "sequence_sum"


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"rl": {"algorithm": "ppo"}}, r"rl\.algorithm"),
        ({"rollout": {"samples_per_prompt": 0}}, r"rollout\.samples_per_prompt"),
        ({"rewards": [{"kind": "bleu"}]}, r"rewards\[0\]\.kind"),
        ({"rewards": []}, "name at least one reward"),
        ({"training": {"gradient_accumulation": 2}}, "training.gradient_accumulation"),
        (
            {"rollout": {"prompts_per_step": 3}, "scaling": {"num_workers": 2}},
            "multiple of scaling.num_workers",
        ),
        ({"rollout": {"engine": "vllm"}}, "vllm needs GPUs"),
        (
            {
                "rollout": {"engine": "vllm"},
                "scaling": {"use_gpu": True, "num_workers": 2},
                "training": {"strategy": "fsdp"},
            },
            "use training.strategy ddp without training.lora",
        ),
        ({"prompt": {"packing": True}}, "prompt.packing"),
    ],
)
def test_bad_rl_recipes_name_the_key(sections, message):
    with pytest.raises(RecipeError, match=message) as raised:
        recipe(**sections)
    assert "rl.yaml" in str(raised.value)
