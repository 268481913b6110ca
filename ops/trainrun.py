"""``instructflow train sft``: load the recipe file and its ``--set`` overrides, check it,
connect to Ray and launch the run (``train.sft_launch``, on ``train.launch``): tokenise and
pack in Ray Data -> TorchTrainer -> best and last checkpoints.
"""

from __future__ import annotations

from typing import Any

from ops.cluster import connect
from ops.recipe import apply_overrides, load_yaml
from train.config import SFTRecipe, parse_sft_recipe
from train.launch import TRAIN_ARTEFACTS, clear_named_artefacts, recipe_yaml, write_text
from train.sft_launch import launch_sft, prepare, resolve_paths


def load_sft_recipe(path: str, overrides: list[str] | None = None) -> SFTRecipe:
    recipe = parse_sft_recipe(apply_overrides(load_yaml(path), overrides or [], path), path)
    return resolve_paths(recipe)


def run_sft(
    recipe_path: str,
    overrides: list[str] | None = None,
    *,
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    fault: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The whole ``train sft`` command; returns the summary it writes."""
    recipe = load_sft_recipe(recipe_path, overrides)
    prepared = prepare(recipe, recipe_path, resume=resume, overwrite=overwrite)
    if overwrite and not resume:
        clear_named_artefacts(recipe.output.path, TRAIN_ARTEFACTS)
    write_text(recipe.output.path, "recipe.yaml", recipe_yaml(recipe))
    connect(address, progress_bars=False)
    return launch_sft(prepared, fault=fault)
