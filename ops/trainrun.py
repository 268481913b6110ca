"""``instructflow train sft|dpo``: load the recipe file and its ``--set`` overrides, check
it, connect to Ray and launch the run (``train.sft_launch`` or ``train.dpo_launch``, on
``train.launch``): rows in Ray Data -> TorchTrainer -> best and last checkpoints.
"""

from __future__ import annotations

from typing import Any

from ops.cluster import connect
from ops.recipe import apply_overrides, load_yaml
from train.config import DPORecipe, SFTRecipe, parse_dpo_recipe, parse_sft_recipe
from train.launch import TRAIN_ARTEFACTS, clear_named_artefacts, recipe_yaml, write_text
from train.sft_launch import launch_sft, prepare, resolve_paths


def load_sft_recipe(path: str, overrides: list[str] | None = None) -> SFTRecipe:
    recipe = parse_sft_recipe(apply_overrides(load_yaml(path), overrides or [], path), path)
    return resolve_paths(recipe)


def load_dpo_recipe(path: str, overrides: list[str] | None = None) -> DPORecipe:
    recipe = parse_dpo_recipe(apply_overrides(load_yaml(path), overrides or [], path), path)
    return resolve_paths(recipe)


def run_dpo(
    recipe_path: str,
    overrides: list[str] | None = None,
    *,
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    fault: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The whole ``train dpo`` command; returns the summary it writes."""
    from train.dpo_launch import launch_dpo, prepare_dpo

    recipe = load_dpo_recipe(recipe_path, overrides)
    prepared = prepare_dpo(recipe, recipe_path, resume=resume, overwrite=overwrite)
    start_run(recipe, address, resume=resume, overwrite=overwrite)
    return launch_dpo(prepared, fault=fault)


def start_run(recipe: SFTRecipe, address: str | None, *, resume: bool, overwrite: bool) -> None:
    """After every check passed: clear an overwritten run, record the recipe, connect."""
    if overwrite and not resume:
        clear_named_artefacts(recipe.output.path, TRAIN_ARTEFACTS)
    write_text(recipe.output.path, "recipe.yaml", recipe_yaml(recipe))
    connect(address, progress_bars=False)


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
    start_run(recipe, address, resume=resume, overwrite=overwrite)
    return launch_sft(prepared, fault=fault)


def validation_before_after(summary: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """The first and last validation metrics a run logged (metrics.jsonl), without the
    ``validation/`` prefix; empty when the run had no validation split."""
    import json
    from pathlib import Path

    path = Path(summary["logs"]) / "metrics.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    logged = [
        {k.split("/", 1)[1]: v for k, v in line.items() if k.startswith("validation/")}
        for line in lines
    ]
    logged = [entry for entry in logged if entry]
    if not logged:
        return {}, {}
    return logged[0], logged[-1]
