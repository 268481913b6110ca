"""The reward runner (``train.rewards.runner``) and the built-in rewards: every failure is
counted under its reward's name, a timeout is a failure, a reward that fails on every
completion stops the run with its name, and a reward model is a real sequence classifier."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import RecipeError
from train.config import RewardSpec
from train.rewards.builtin import RewardSetupError, Sample, build_reward
from train.rewards.runner import RewardFailure, RewardSet, check_batch, failure_lines

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LOWERCASE = {"kind": "change_case:english_lowercase", "args": "{}", "held_out": False}
NO_COMMA = {"kind": "punctuation:no_comma", "args": "{}", "held_out": True}


def sample(completion: str, constraints=(), prompt: str = "Write about the sea.") -> Sample:
    return Sample(prompt=prompt, completion=completion, constraints=tuple(constraints))


def test_ifeval_reward_scores_the_records_constraints_with_seen_and_held_out_sub_scores():
    reward = build_reward("ifeval", {})
    scores = reward(
        [
            sample("the sea is wide and deep", [LOWERCASE, NO_COMMA]),
            sample("The sea, wide and deep", [LOWERCASE, NO_COMMA]),
            sample("the sea, wide", [LOWERCASE, NO_COMMA]),
            sample("no constraints here"),
        ]
    )
    assert [s.score for s in scores] == [1.0, 0.0, 0.0, None]
    assert scores[2].details["seen"] == 1.0 and scores[2].details["held_out"] == 0.0
    partial = build_reward("ifeval", {"partial": True})(
        [sample("the sea, wide", [LOWERCASE, NO_COMMA])]
    )
    assert partial[0].score == 0.5
    with pytest.raises(RewardSetupError, match="mode 'lenient'"):
        build_reward("ifeval", {"mode": "lenient"})


def test_length_and_format_rewards():
    length = build_reward("length", {"min": 4, "max": 8})
    values = [s.score for s in length([sample("one two"), sample("a b c d e"), sample("w " * 12)])]
    assert values == [0.5, 1.0, 0.5]
    target = build_reward("length", {"target": 10, "tolerance": 2})
    assert target([sample("x " * 11)])[0].score == 1.0
    with pytest.raises(RewardSetupError, match="give max, min, or target"):
        build_reward("length", {})
    fmt = build_reward("format", {"pattern": r"<answer>.*</answer>"})
    assert [s.score for s in fmt([sample("<answer>4</answer>"), sample("4")])] == [1.0, 0.0]
    with pytest.raises(RewardSetupError, match="pattern"):
        build_reward("format", {"pattern": "("})


def user_rewards(tmp_path: Path) -> str:
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "import time\n"
        "def brevity(prompts, completions, **kwargs):\n"
        "    return [1.0 / (1 + len(c.split())) for c in completions]\n"
        "def broken(prompts, completions, **kwargs):\n"
        "    raise KeyError('score')\n"
        "def slow(prompts, completions, **kwargs):\n"
        "    time.sleep(5)\n"
        "    return [1.0] * len(completions)\n"
        "def picky(prompts, completions, **kwargs):\n"
        "    return [None if 'skip' in c else 1.0 for c in completions]\n"
    )
    return str(path)


def test_failures_and_timeouts_are_counted_by_reward_name(tmp_path):
    file = user_rewards(tmp_path)
    specs = [
        RewardSpec(kind="python", name="brevity", options={"function": f"{file}:brevity"}),
        RewardSpec(kind="python", name="picky", options={"function": f"{file}:picky"}),
    ]
    rewards = RewardSet(specs)
    batch = rewards.score([sample("a b c"), sample("skip this")])
    assert batch.valid.tolist() == [True, True]
    assert batch.total[0] == pytest.approx(0.25 + 1.0)
    assert batch.total[1] == pytest.approx(1 / 3)  # picky does not apply: brevity alone
    metrics = batch.metrics()
    assert metrics["picky/not_applicable"] == 1 and metrics["picky/failures"] == 0

    broken = RewardSet(
        [
            RewardSpec(kind="python", name="brevity", options={"function": f"{file}:brevity"}),
            RewardSpec(kind="python", name="broken", options={"function": f"{file}:broken"}),
        ]
    )
    batch = broken.score([sample("a"), sample("b")])
    assert not batch.valid.any() and np.isnan(batch.total).all()
    assert batch.metrics()["broken/failures"] == 2
    assert "reward 'broken' failed on 2 of 2 completions: KeyError" in failure_lines(batch)[0]
    with pytest.raises(RewardFailure, match="reward 'broken' failed on all 2 completions"):
        check_batch(batch, "step 3")

    slow = RewardSet(
        [
            RewardSpec(
                kind="python", name="slow", timeout_s=0.2, options={"function": f"{file}:slow"}
            )
        ]
    )
    started = time.perf_counter()
    batch = slow.score([sample("a")])
    assert time.perf_counter() - started < 2
    assert batch.metrics()["slow/timeouts"] == 1 and batch.metrics()["slow/failures"] == 1
    assert "timed out after 0.2 s" in failure_lines(batch)[0]
    slow.close()


def test_a_python_reward_that_cannot_load_says_why(tmp_path):
    with pytest.raises(RewardSetupError, match="no such file"):
        build_reward("python", {"function": f"{tmp_path}/missing.py:f"})
    file = user_rewards(tmp_path)
    with pytest.raises(RewardSetupError, match="has no function 'nope'"):
        build_reward("python", {"function": f"{file}:nope"})
    with pytest.raises(RewardSetupError, match="module:name"):
        build_reward("python", {"function": "brevity"})
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    with pytest.raises(RewardSetupError, match="importing .*bad.py failed: ModuleNotFoundError"):
        build_reward("python", {"function": f"{bad}:f"})


def test_a_python_reward_returning_the_wrong_shape_fails_by_name(tmp_path):
    path = tmp_path / "shape.py"
    path.write_text("def short(prompts, completions, **kw):\n    return [1.0]\n")
    rewards = RewardSet([RewardSpec(kind="python", options={"function": f"{path}:short"})])
    batch = rewards.score([sample("a"), sample("b")])
    assert "returned 1 values for 2 completions" in failure_lines(batch)[0]


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory) -> str:
    """A Llama sequence classifier (one label, random weights) with a tokenizer trained on
    the fly, saved in Hugging Face format: what a trained reward model checkpoint looks like."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from tests.train.sft_corpus import write_pipeline_output
    from train.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("rm")
    base = save_tiny_model(
        str(write_pipeline_output(root / "out")), str(root / "base"), vocab_size=300
    )
    config = LlamaConfig.from_pretrained(base)
    config.num_labels = 1
    model = LlamaForSequenceClassification(config)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(root / "rm")
    tokenizer.save_pretrained(root / "rm")
    return str(root / "rm")


def test_a_reward_model_scores_prompt_and_completion(reward_model):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reward = build_reward("model", {"path": reward_model, "batch_size": 2})
    samples = [sample("The capital is Paris."), sample("Blue."), sample("The capital is Paris.")]
    scores = [s.score for s in reward(samples)]
    assert scores[0] == pytest.approx(scores[2], abs=1e-5)  # padding in a batch changes nothing
    assert scores[0] != pytest.approx(scores[1])
    # The same number the classifier gives on its own.
    tokenizer = AutoTokenizer.from_pretrained(reward_model)
    model = AutoModelForSequenceClassification.from_pretrained(reward_model).eval()
    text = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": samples[1].prompt},
            {"role": "assistant", "content": samples[1].completion},
        ],
        tokenize=False,
    )
    with torch.no_grad():
        alone = model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()
    assert scores[1] == pytest.approx(alone, abs=1e-4)
    with pytest.raises(RewardSetupError, match="cannot load"):
        build_reward("model", {"path": str(Path(reward_model).parent / "nothing")})


def test_a_recipe_with_two_rewards_of_one_name_is_refused():
    from train.config import parse_rl_recipe

    with pytest.raises(RecipeError, match="give `name` to length"):
        parse_rl_recipe(
            {
                "data": {"path": "d"},
                "model": {"name_or_path": "m"},
                "output": {"path": "o"},
                "rewards": [{"kind": "length"}, {"kind": "length"}],
            }
        )
