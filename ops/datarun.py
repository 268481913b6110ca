"""``instructflow data run``: recipe -> pre-flight -> Ray -> shards, manifest, stats, report."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import yaml

from ops.cluster import connect
from ops.recipe import clear_previous_run, load_recipe, preflight
from ops.report import write_report
from pipeline.config import DataRecipe
from pipeline.manifest import build_manifest, build_stats, write_json
from pipeline.plan import RunResult, StageFailure, execute
from pipeline.read import open_filesystem


class PipelineError(RuntimeError):
    """A run failed inside Ray; the message names the stage and cause, not a worker traceback."""


@dataclass
class DataRunOutcome:
    recipe: DataRecipe
    result: RunResult
    output_path: str
    stats: dict


def run_data(
    recipe_path: str,
    overrides: list[str] | None = None,
    *,
    address: str | None = None,
    overwrite: bool = False,
    progress_bars: bool | None = None,
) -> DataRunOutcome:
    recipe = load_recipe(recipe_path, overrides)
    preflight(recipe, recipe_path, overwrite)
    output_path = recipe.output.path
    if overwrite:
        clear_previous_run(output_path)
    _write_resolved_recipe(recipe, output_path)
    connect(
        address, progress_bars=recipe.run.progress_bars if progress_bars is None else progress_bars
    )
    try:
        result = execute(recipe, output_path)
    except Exception as error:
        failure = _find_cause(error, StageFailure)
        if failure is not None:
            raise PipelineError(str(failure)) from None
        raise
    stats = build_stats(recipe, result)
    write_json(output_path, "manifest.json", build_manifest(recipe, result))
    write_json(output_path, "stats.json", stats)
    write_report(stats, posixpath.join(output_path, "report.html"))
    return DataRunOutcome(recipe, result, output_path, stats)


def _write_resolved_recipe(recipe: DataRecipe, output_path: str) -> None:
    filesystem, root = open_filesystem(output_path)
    filesystem.create_dir(root, recursive=True)
    with filesystem.open_output_stream(posixpath.join(root, "recipe.yaml")) as stream:
        stream.write(
            yaml.safe_dump(recipe.to_plain(), sort_keys=False, allow_unicode=True).encode()
        )


def _find_cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Ray wraps worker exceptions (RayTaskError, UserCodeException); find ours inside."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        nested = getattr(current, "cause", None)
        current = (
            nested
            if isinstance(nested, BaseException)
            else (current.__cause__ or current.__context__)
        )
    text = str(error)
    marker = f"{kind.__name__}: "
    if marker in text:  # the exception crossed a process boundary only as text
        return kind(text.split(marker, 1)[1].strip().splitlines()[0])
    return None
