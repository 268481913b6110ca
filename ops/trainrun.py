"""``instructflow train sft|dpo|rl``: load the recipe file and its ``--set`` overrides, check
it, connect to Ray and launch the run (``train.sft_launch``, ``train.dpo_launch`` or
``train.rl_launch``, on ``train.launch``): rows in Ray Data -> TorchTrainer -> best and last
checkpoints.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from ops.cluster import connect
from ops.recipe import apply_overrides, load_yaml
from train.config import (
    DPORecipe,
    RLRecipe,
    SFTRecipe,
    parse_dpo_recipe,
    parse_rl_recipe,
    parse_sft_recipe,
)
from train.launch import TRAIN_ARTEFACTS, clear_named_artefacts, recipe_yaml, write_text
from train.sft_launch import launch_sft, prepare, resolve_paths


def released(launch: Any, prepared: Any, **options: Any) -> dict[str, Any]:
    """``launch(prepared, **options)``, then the run's datasets freed: Ray Data's reference
    cycles would keep their blocks in the object store for the rest of a driver that goes on
    (``instructflow run``; ``pipeline.plan.execute`` does the same)."""
    try:
        return launch(prepared, **options)
    finally:
        gc.collect()


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
    return released(launch_dpo, prepared, fault=fault)


def load_rl_recipe(path: str, overrides: list[str] | None = None) -> RLRecipe:
    """SFT's path resolution, plus the reference model, a reward model's path and a Python
    reward's file made absolute: the Ray Train workers do not run in this directory."""
    recipe = resolve_paths(
        parse_rl_recipe(apply_overrides(load_yaml(path), overrides or [], path), path)
    )

    def local(name: str) -> str:
        return str(Path(name).resolve()) if Path(name).exists() else name

    rewards = []
    for spec in recipe.rewards:
        options = dict(spec.options)
        if spec.kind == "model" and isinstance(options.get("path"), str):
            options["path"] = local(resolve_model_dir(options["path"]))
        if spec.kind == "python" and ".py:" in str(options.get("function", "")):
            file, _, name = str(options["function"]).rpartition(":")
            options["function"] = f"{local(file)}:{name}"
        rewards.append(spec.model_copy(update={"options": options}))
    reference = recipe.rl.reference_model
    update = {"rewards": tuple(rewards)}
    if reference:
        update["rl"] = recipe.rl.model_copy(
            update={"reference_model": local(resolve_model_dir(reference))}
        )
    return recipe.model_copy(update=update)


def resolve_model_dir(name: str) -> str:
    """A training output directory means its best checkpoint, as for ``model``."""
    from train.generate import CheckpointError, resolve_checkpoint

    if Path(name).is_dir() and not (Path(name) / "config.json").exists():
        try:
            return resolve_checkpoint(name)
        except CheckpointError:
            return name
    return name


def run_rl(
    recipe_path: str,
    overrides: list[str] | None = None,
    *,
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    fault: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The whole ``train rl`` command; returns the summary it writes."""
    from train.rl_launch import launch_rl, prepare_rl

    recipe = load_rl_recipe(recipe_path, overrides)
    prepared = prepare_rl(recipe, recipe_path, resume=resume, overwrite=overwrite)
    start_run(recipe, address, resume=resume, overwrite=overwrite)
    return released(launch_rl, prepared, fault=fault)


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
    return released(launch_sft, prepared, fault=fault)


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
