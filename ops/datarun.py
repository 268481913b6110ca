"""``instructflow data run``: recipe -> pre-flight -> Ray -> shards, manifest, stats, report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial

import yaml

from ops.cluster import connect
from ops.recipe import clear_previous_run, load_recipe, preflight
from ops.report import render_report
from pipeline.checkpoint import RunDirectory, finish_commit, pending_commit, read_json
from pipeline.config import DataRecipe
from pipeline.manifest import build_stats
from pipeline.plan import RunResult, execute
from pipeline.stage_failure import StageFailure, find_cause


class PipelineError(RuntimeError):
    """A run failed inside Ray; the message names the stage and cause, not a worker traceback."""


@dataclass
class DataRunOutcome:
    recipe: DataRecipe
    result: RunResult | None  # None when --resume only had the commit left to finish
    output_path: str
    stats: dict


def run_data(
    recipe_path: str,
    overrides: list[str] | None = None,
    *,
    address: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress_bars: bool | None = None,
) -> DataRunOutcome:
    recipe = load_recipe(recipe_path, overrides)
    preflight(recipe, recipe_path, overwrite, resume=resume)
    output_path = recipe.output.path
    if overwrite:
        clear_previous_run(output_path)
    run = RunDirectory(output_path)
    if resume and pending_commit(run):  # killed while committing: everything is staged
        finish_commit(run)
        return DataRunOutcome(recipe, None, output_path, read_json(run.uri("stats.json")))
    connect(
        address, progress_bars=recipe.run.progress_bars if progress_bars is None else progress_bars
    )
    try:
        result = execute(recipe, output_path, resume=resume, documents=partial(documents, recipe))
    except Exception as error:
        failure = find_cause(error, StageFailure)
        if failure is not None:
            raise PipelineError(str(failure)) from None
        raise
    return DataRunOutcome(recipe, result, output_path, build_stats(recipe, result))


def documents(recipe: DataRecipe, result: RunResult) -> dict[str, bytes]:
    """What a finished run has beside its shards (the manifest is the plan's own)."""
    stats = build_stats(recipe, result)
    resolved = yaml.safe_dump(recipe.to_plain(), sort_keys=False, allow_unicode=True)
    return {
        "stats.json": json.dumps(stats, indent=2, ensure_ascii=False).encode("utf-8"),
        "report.html": render_report(stats).encode("utf-8"),
        "recipe.yaml": resolved.encode("utf-8"),
    }
