"""``instructflow data run``: recipe -> pre-flight -> Ray -> shards, manifest, stats, report."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any

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
    show = recipe.run.progress_bars if progress_bars is None else progress_bars
    # Ray Data's own bars and "Dataset ... finished" lines name its operators, not the
    # recipe's stages: off, and one progress line per update instead (progress_line).
    connect(address, progress_bars=False)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled"
    try:
        result = execute(
            recipe,
            output_path,
            resume=resume,
            documents=partial(documents, recipe),
            progress=ProgressPrinter([spec.name for spec in recipe.stages]) if show else None,
        )
    except Exception as error:
        failure = find_cause(error, StageFailure)
        if failure is not None:
            raise PipelineError(str(failure)) from None
        raise
    return DataRunOutcome(recipe, result, output_path, build_stats(recipe, result))


class ProgressPrinter:
    """A run's progress for a person: a line per named stage (records in -> out) whenever
    its counts change, and one for the read; plain lines on stderr, which survive Ray's log
    forwarding, pipes and CI logs."""

    def __init__(self, stages: list[str] | None = None, stream: Any = None) -> None:
        self.stream = stream
        self.width = max([len(name) for name in stages or []] + [4])
        self.seen: dict[str, Any] = {}

    def lines(self, counts: dict[str, Any]) -> list[str]:
        at = f"[{counts['seconds']:6.1f}s]"
        width = max([self.width] + [len(stage["stage"]) for stage in counts["stages"]])
        files, total = counts["files"], counts.get("total_files", counts["files"])
        rows = [("read", f"{counts['read']:,} records ({files} of {total} files)")]
        rows += [
            (stage["stage"], f"{stage['in']:,} -> {stage['out']:,}") for stage in counts["stages"]
        ]
        out = []
        for name, text in rows:
            if self.seen.get(name) != text:
                self.seen[name] = text
                out.append(f"{at} {name:<{width}}  {text}")
        return out

    def __call__(self, counts: dict[str, Any]) -> None:
        stream = self.stream or sys.stderr
        for line in self.lines(counts):
            print(line, file=stream, flush=True)


def documents(recipe: DataRecipe, result: RunResult) -> dict[str, bytes]:
    """What a finished run has beside its shards (the manifest is the plan's own)."""
    stats = build_stats(recipe, result)
    resolved = yaml.safe_dump(recipe.to_plain(), sort_keys=False, allow_unicode=True)
    return {
        "stats.json": json.dumps(stats, indent=2, ensure_ascii=False).encode("utf-8"),
        "report.html": render_report(stats).encode("utf-8"),
        "recipe.yaml": resolved.encode("utf-8"),
    }
