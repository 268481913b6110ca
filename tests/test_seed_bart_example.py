"""examples/seed_bart: the seed's BART example with the Hugging Face Trainer on the
pipeline's shards (a tiny BART from a config, offline), and its `train sft` twin recipe."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

from ops.trainrun import load_sft_recipe
from tests.train.sft_corpus import write_pipeline_output
from train.tiny import save_tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed_bart"


def example_module():
    spec = importlib.util.spec_from_file_location("train_trainer", EXAMPLE / "train_trainer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_trainer_script_learns_from_the_shards_and_generates(tmp_path, capsys) -> None:
    data = write_pipeline_output(tmp_path / "out")
    model = save_tiny_model(
        str(data), str(tmp_path / "bart"), kind="seq2seq", vocab_size=512, arch="bart"
    )
    assert json.loads((Path(model) / "config.json").read_text())["model_type"] == "bart"
    result = example_module().main(
        [
            "--data",
            str(data),
            "--model",
            model,
            "--output",
            str(tmp_path / "trained"),
            "--max-steps",
            "40",
        ]
    )
    assert math.isfinite(result["val_loss"]) and result["val_loss"] < result["val_loss_start"] - 1.0
    printed = capsys.readouterr().out
    assert "Trainer: validation loss" in printed and "reply:" in printed
    assert (tmp_path / "trained" / "config.json").exists()  # a checkpoint generate can load


def test_a_missing_split_is_named(tmp_path) -> None:
    import pytest

    (tmp_path / "out" / "data" / "train").mkdir(parents=True)
    with pytest.raises(SystemExit, match="data/train has no shards"):
        example_module().load_splits(tmp_path / "out")


def test_the_twin_recipe_is_the_same_run_for_train_sft() -> None:
    recipe = load_sft_recipe(str(EXAMPLE / "sft.yaml"))
    assert recipe.prompt.format == "instruction_output"
    source = (EXAMPLE / "train_trainer.py").read_text()
    assert f"default={recipe.training.epochs:g})" in source.replace(".0)", ")")
    assert f"default={recipe.training.micro_batch_size})" in source
