"""``instructflow run RECIPE``: one recipe from raw text to a tuned model.

The steps of an ``ops.run_recipe`` recipe run in order, each through the Python entry point
its own command uses (``run_data``, ``save_tiny_model``, ``run_sft``/``run_dpo``/``run_rl``,
the feedback functions, ``evaluate_ifeval``), so a step behaves as the command does.

``<output>/state.json`` records every step as it starts, fails or finishes, with its output
and the fingerprint of its resolved recipe. Running the recipe again continues: finished
steps whose fingerprint is unchanged (and whose output is still there) are skipped, and the
run starts again at the first other step; a training step that failed after leaving a
checkpoint resumes from it, a data run from its stage checkpoints. ``--from STEP`` runs STEP
and everything after it again; ``--overwrite`` runs every step again. A step's output that
this run's state does not know is never replaced without ``--overwrite``.

``<output>/report.json`` and ``report.html`` link every step's figures: the data run's
conservation and report, the training runs' checkpoints and validation before -> after,
the evaluation's accuracy, each with its wall time.

    instructflow run examples/end_to_end.yaml
    instructflow run examples/end_to_end.yaml --from sft
    instructflow run examples/end_to_end.yaml --set output=/tmp/e2e --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ops.run_recipe import (
    STATE_FILE,
    FeedbackRateStep,
    PlannedStep,
    RunRecipe,
    load_run_recipe,
    step_overrides,
)
from ops.run_report import write_json, write_report
from pipeline.config import Problem, RecipeError

Action = Literal["skip", "resume", "run"]


class StepFailed(RuntimeError):
    """A step raised; the message names the step and its cause, and how to continue."""


@dataclass(frozen=True)
class StepContext:
    address: str | None
    progress_bars: bool | None  # None: each recipe's own setting
    resume: bool  # continue the step's earlier attempt from what it left
    fault: dict[str, int] | None = None  # a training step's test hook, as for run_sft


@dataclass
class StepResult:
    """What a step reports: figures (numbers, short text) and links (label -> path)."""

    figures: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


@dataclass
class RunOutcome:
    recipe: RunRecipe
    actions: dict[str, Action]
    state: dict[str, Any]
    report: dict[str, Any]


# ----- state -----------------------------------------------------------------------------


def read_state(run_output: str) -> dict[str, Any]:
    path = Path(run_output) / STATE_FILE
    if not path.exists():
        return {"steps": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ----- what to run -----------------------------------------------------------------------


def reusable(step: PlannedStep, record: dict | None, fingerprint: str | None) -> bool:
    """Finished with this very recipe, and its output is still there."""
    return (
        record is not None
        and record.get("status") == "finished"
        and fingerprint is not None
        and record.get("fingerprint") == fingerprint
        and record.get("output") == step.output
        and (step.output is None or "://" in step.output or Path(step.output).exists())
    )


def plan_actions(
    recipe: RunRecipe,
    state: dict[str, Any],
    fingerprints: dict[str, str | None],
    *,
    overwrite: bool = False,
    from_step: str | None = None,
    leftovers: Callable[[PlannedStep], bool] | None = None,
) -> dict[str, Action]:
    """Skip the reusable steps up to the first that is not (or ``from_step``), then run that
    one and every later one. Only the first may resume: when its earlier attempt, with the
    same fingerprint and output, left something to continue (``leftovers``)."""
    leftovers = leftovers or left_something
    records = {} if overwrite else state.get("steps", {})
    actions: dict[str, Action] = {}
    restarted = False
    for step in recipe.steps:
        record, fingerprint = records.get(step.name), fingerprints[step.name]
        forced = step.name == from_step
        if not restarted and not forced and reusable(step, record, fingerprint):
            actions[step.name] = "skip"
            continue
        resumable = (
            not restarted
            and not forced
            and record is not None
            and record.get("status") != "finished"
            and fingerprint is not None
            and record.get("fingerprint") == fingerprint
            and record.get("output") == step.output
            and leftovers(step)
        )
        actions[step.name] = "resume" if resumable else "run"
        restarted = True
    return actions


def left_something(step: PlannedStep) -> bool:
    """An interrupted data run (its run marker without a manifest), or a training run's
    committed checkpoint: what ``--resume`` of that command continues."""
    if step.output is None:
        return False
    if step.command in ("data run", "data generate"):
        from pipeline.checkpoint import RunDirectory

        run = RunDirectory(step.output)
        return run.marker() is not None and not run.finished()
    if step.command.startswith("train ") and step.command != "train tiny-model":
        import posixpath

        from train.launch import RAY_TRAIN_DIR
        from train.sft import latest_committed

        return latest_committed(posixpath.join(step.output, RAY_TRAIN_DIR)) is not None
    return False


def foreign_outputs(
    recipe: RunRecipe, state: dict[str, Any], actions: dict[str, Action], overwrite: bool
) -> list[Problem]:
    """A step about to write where no earlier run of this recipe did, into a non-empty
    place: refused unless ``--overwrite``, before anything runs."""
    if overwrite:
        return []
    problems = []
    for step in recipe.steps:
        record = state.get("steps", {}).get(step.name)
        ours = record is not None and record.get("output") == step.output
        if actions[step.name] == "skip" or ours or isinstance(step.options, FeedbackRateStep):
            continue
        if step.output is None or "://" in step.output:
            continue
        path = Path(step.output)
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            problems.append(
                Problem(
                    path=f"steps[{step.index}].output",
                    message=f"step {step.name!r} would write into files this run's "
                    f"{STATE_FILE} does not know; pass --overwrite to replace them, or give "
                    "the step another output",
                    value=step.output,
                )
            )
    return problems


# ----- running ---------------------------------------------------------------------------


def run_recipe(
    path: str,
    overrides: list[str] | None = None,
    *,
    address: str | None = None,
    overwrite: bool = False,
    from_step: str | None = None,
    dry_run: bool = False,
    progress_bars: bool | None = None,
    faults: dict[str, dict[str, int]] | None = None,
    say: Callable[[str], None] = print,
) -> RunOutcome:
    """The whole ``instructflow run`` command. Everything is validated before Ray starts;
    ``faults`` (test hook) maps a training step's name to its ``fault``."""
    recipe = load_run_recipe(path, overrides)
    names = [step.name for step in recipe.steps]
    if from_step is not None and from_step not in names:
        raise RecipeError(
            [
                Problem(
                    path="--from",
                    message=f"no such step; steps: {', '.join(names)}",
                    value=from_step,
                )
            ],
            path,
        )
    state = {"steps": {}} if overwrite else read_state(recipe.output)
    fingerprints = recipe.fingerprints()
    actions = plan_actions(recipe, state, fingerprints, overwrite=overwrite, from_step=from_step)
    problems = foreign_outputs(recipe, state, actions, overwrite)
    if problems:
        raise RecipeError(problems, path)
    say_plan(recipe, actions, say)
    if dry_run:
        return RunOutcome(recipe, actions, state, {})
    state.update(recipe=recipe.name, source=path, output=recipe.output)
    for position, step in enumerate(recipe.steps, start=1):
        if actions[step.name] == "skip":
            continue
        say(f"\n[{position}/{len(recipe.steps)}] {step.name}: {step.command}")
        context = StepContext(
            address, progress_bars, actions[step.name] == "resume", (faults or {}).get(step.name)
        )
        # Again, now that the steps above have run: a training output they wrote means its
        # best checkpoint, and a recipe file they wrote can be read.
        fingerprints = recipe.fingerprints(through=step.name)
        run_one(recipe, step, context, state, fingerprints, actions)
    report = write_report(recipe, state, actions)
    say(f"\nreport: {Path(recipe.output) / 'report.html'}")
    return RunOutcome(recipe, actions, state, report)


def say_plan(recipe: RunRecipe, actions: dict[str, Action], say: Callable[[str], None]) -> None:
    shown = {
        "skip": "skip (finished, recipe unchanged)",
        "resume": "resume (from what the failed attempt left)",
        "run": "run",
    }
    say(f"{recipe.source}: {len(recipe.steps)} steps -> {recipe.output}")
    for step in recipe.steps:
        say(f"  {step.name:16} {step.command:18} {shown[actions[step.name]]}")


def run_one(
    recipe: RunRecipe,
    step: PlannedStep,
    context: StepContext,
    state: dict[str, Any],
    fingerprints: dict[str, str | None],
    actions: dict[str, Action],
) -> None:
    """Run one step, recording it in state.json before (running), and after (finished, or
    failed with its cause); the report is rewritten either way."""
    previous = state["steps"].get(step.name) or {}
    record = {
        "command": step.command,
        "status": "running",
        "fingerprint": fingerprints[step.name],
        "output": step.output,
        "started_at": now(),
        "attempts": previous.get("attempts", 0) + 1,
        "resumed": context.resume,
    }
    state["steps"][step.name] = record
    write_json(Path(recipe.output) / STATE_FILE, state)
    started = time.perf_counter()
    try:
        result = EXECUTORS[step.command](step, context)
    except BaseException as error:
        record.update(
            status="failed", seconds=round(time.perf_counter() - started, 1), error=one_line(error)
        )
        write_json(Path(recipe.output) / STATE_FILE, state)
        write_report(recipe, state, actions)
        if not isinstance(error, Exception):
            raise
        raise StepFailed(
            f"step {step.name!r} ({step.command}) failed: {error}\n"
            f"the steps before it are kept; `instructflow run {recipe.source}` continues at "
            f"{step.name!r}"
        ) from error
    record.update(
        status="finished",
        seconds=round(time.perf_counter() - started, 1),
        finished_at=now(),
        figures=result.figures,
        links=result.links,
        error=None,
    )
    write_json(Path(recipe.output) / STATE_FILE, state)


def one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}"


# ----- the steps: each calls its command's own entry point ---------------------------------


def run_data_step(step: PlannedStep, context: StepContext) -> StepResult:
    from ops.datarun import run_data

    options = step.options
    outcome = run_data(
        options.recipe,
        step_overrides(step),
        address=context.address,
        overwrite=not context.resume and Path(step.output).exists(),
        resume=context.resume,
        progress_bars=context.progress_bars,
    )
    root = outcome.output_path
    return StepResult(
        figures={"conservation": outcome.stats["conservation"], "splits": outcome.stats["splits"]},
        links={
            "report.html": f"{root}/report.html",
            "stats.json": f"{root}/stats.json",
            "manifest.json": f"{root}/manifest.json",
            "data": f"{root}/data",
        },
    )


def run_tiny_model_step(step: PlannedStep, context: StepContext) -> StepResult:
    from train.tiny import save_tiny_model

    options = step.options
    path = save_tiny_model(
        options.data,
        step.output,
        kind=options.kind,
        size=options.size,
        vocab_size=options.vocab_size,
        seed=options.seed,
        arch=options.arch,
    )
    return StepResult(
        figures={"kind": options.kind, "size": options.size, "vocab_size": options.vocab_size},
        links={"model": path},
    )


def run_train_step(step: PlannedStep, context: StepContext) -> StepResult:
    from ops.trainrun import run_dpo, run_rl, run_sft, validation_before_after

    launch = {"train sft": run_sft, "train dpo": run_dpo, "train rl": run_rl}[step.command]
    summary = launch(
        step.options.recipe,
        step_overrides(step),
        address=context.address,
        resume=context.resume,
        overwrite=not context.resume,
        fault=context.fault,
    )
    before, after = validation_before_after(summary)
    return StepResult(
        figures=training_figures(summary, before, after), links=training_links(summary, step)
    )


def training_figures(
    summary: dict[str, Any], before: dict[str, float], after: dict[str, float]
) -> dict[str, Any]:
    """Best and last checkpoints' step and measure; held-out metrics at step 0 and the end."""
    figures: dict[str, Any] = {"steps": summary["steps"], "train_seconds": summary["seconds"]}
    for which in ("best", "last"):
        entry = summary.get(which) or {}
        for key in ("step", "val_loss", "val_reward", "train_loss"):
            if key in entry:
                figures[f"{which}_{key}"] = entry[key]
    for name in ("loss", "reward", "reward_accuracy", "reward_margin"):
        if name in after:
            figures[f"validation_{name}"] = {"before": before.get(name), "after": after[name]}
    return figures


def training_links(summary: dict[str, Any], step: PlannedStep) -> dict[str, str]:
    links = {}
    for which in ("best", "last"):
        if summary.get(which):
            links[f"{which} checkpoint"] = summary[which]["path"]
    links["train_summary.json"] = f"{step.output}/train_summary.json"
    links["metrics.jsonl"] = f"{summary['logs']}/metrics.jsonl"
    return links


def run_generate_step(step: PlannedStep, context: StepContext) -> StepResult:
    from train.generate import generate_one

    options = step.options
    reply = generate_one(options.checkpoint, options.prompt, options.system, options.max_new_tokens)
    print(reply if reply else "(empty reply: only whitespace or end tokens were generated)")
    return StepResult(figures={"prompt": options.prompt, "reply": reply})


def run_feedback_generate_step(step: PlannedStep, context: StepContext) -> StepResult:
    from ops.cluster import connect
    from train.generate import SamplingSettings, generate_samples

    options = step.options
    settings = SamplingSettings(
        samples=options.samples,
        temperature=options.temperature,
        top_p=options.top_p,
        seed=options.seed,
        max_new_tokens=options.max_new_tokens,
    )
    remove_parquet_files(step.output)  # Ray Data adds files to a directory; an earlier try's go
    connect(context.address, progress_bars=context.progress_bars is not False)
    prompts = generate_samples(
        options.checkpoint,
        options.input,
        step.output,
        settings,
        batch_size=options.batch_size,
        workers=options.workers,
        use_gpu=options.gpu,
        engine=options.engine,
    )
    return StepResult(
        figures={"prompts": prompts, "candidates_per_prompt": options.samples},
        links={"samples": step.output},
    )


def remove_parquet_files(directory: str) -> None:
    path = Path(directory)
    if path.is_dir():
        for file in path.glob("*.parquet"):
            file.unlink()


def run_feedback_import_step(step: PlannedStep, context: StepContext) -> StepResult:
    from ops.feedback.items import import_samples
    from ops.feedback.store import Store

    if "://" not in step.output:  # a file: the step's own database, started afresh
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(step.output + suffix).unlink(missing_ok=True)
        Path(step.output).parent.mkdir(parents=True, exist_ok=True)
    store = Store(step.output)
    added = already = 0
    for path in step.options.samples:
        new, old = import_samples(store, path)
        added, already = added + new, already + old
    return StepResult(
        figures={"items_added": added, "items_already_there": already},
        links={"database": step.output},
    )


def run_feedback_rate_step(step: PlannedStep, context: StepContext) -> StepResult:
    from ops.feedback.raters import make_rater, rate
    from ops.feedback.store import FeedbackError, Store

    options = step.options
    rater = make_rater(options.rater, options.judge, options.rules)
    concurrency = options.judge.concurrency if options.judge else 1
    summary = rate(Store(options.db), rater, concurrency=concurrency, redo=options.redo)
    if summary.failed and not summary.rated:  # as `feedback rate` exits 1
        raise FeedbackError(f"{rater.name}: every one of {summary.failed} candidates failed")
    return StepResult(
        figures={"rater": rater.name, "rated": summary.rated, "failed": summary.failed},
        links={"database": options.db},
    )


def run_feedback_export_step(step: PlannedStep, context: StepContext) -> StepResult:
    from ops.feedback.export import ExportRules, write_export
    from ops.feedback.store import Store

    options = step.options
    rules = ExportRules(
        margin=options.margin,
        desirable=options.desirable,
        undesirable=options.undesirable,
        annotators=options.annotators,
    )
    summary = write_export(Store(options.db), step.output, rules, overwrite=True)
    links = {
        name: f"{step.output}/{name}"
        for name in ("export.json", "pairs.jsonl", "kto.jsonl", "sft.jsonl")
    }
    if summary["recipe"]:
        links["recipe.yaml"] = summary["recipe"]
    return StepResult(figures={"counts": summary["counts"]}, links=links)


def run_eval_ifeval_step(step: PlannedStep, context: StepContext) -> StepResult:
    from ops.cluster import connect
    from train.evaluate_ifeval import (
        METRICS_FILE,
        RESPONSES_FILE,
        SUBSETS,
        check_constraints,
        evaluate_ifeval,
        prompt_source,
    )
    from train.generate import resolve_checkpoint

    options = step.options
    checkpoint = resolve_checkpoint(options.checkpoint)
    source = prompt_source(options.prompts)
    check_constraints(source)
    connect(context.address, progress_bars=context.progress_bars is not False)
    report = evaluate_ifeval(
        checkpoint,
        source,
        output=step.output,
        max_new_tokens=options.max_new_tokens,
        batch_size=options.batch_size,
        use_gpu=options.gpu,
    )
    figures = {
        subset: {key: report[subset][key] for key in ("prompts", "prompt_strict", "prompt_loose")}
        for subset in SUBSETS
    }
    return StepResult(
        figures={"accuracy": figures, "checkpoint": checkpoint},
        links={
            METRICS_FILE: f"{step.output}/{METRICS_FILE}",
            RESPONSES_FILE: f"{step.output}/{RESPONSES_FILE}",
        },
    )


EXECUTORS: dict[str, Callable[[PlannedStep, StepContext], StepResult]] = {
    "data run": run_data_step,
    "data generate": run_data_step,
    "train tiny-model": run_tiny_model_step,
    "train sft": run_train_step,
    "train dpo": run_train_step,
    "train rl": run_train_step,
    "generate": run_generate_step,
    "feedback generate": run_feedback_generate_step,
    "feedback import": run_feedback_import_step,
    "feedback rate": run_feedback_rate_step,
    "feedback export": run_feedback_export_step,
    "eval ifeval": run_eval_ifeval_step,
}


# ----- the command -----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    try:
        run_recipe(
            args.recipe,
            args.set,
            address=args.address,
            overwrite=args.overwrite,
            from_step=args.from_step,
            dry_run=args.dry_run,
            progress_bars=False if args.no_progress else None,
        )
    except StepFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def add_run_commands(commands: Any) -> None:
    """Registers ``instructflow run RECIPE`` on the CLI's top-level subparsers."""
    run = commands.add_parser(
        "run", help="a recipe of steps (data run -> train sft -> feedback -> dpo -> rl ...)"
    )
    run.add_argument("recipe")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    run.add_argument("--address", help="Ray cluster address (default: embedded local Ray)")
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="the default: skip the steps that finished with an unchanged recipe, continue "
        "at the first other one",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="run every step again, replacing its output"
    )
    again.add_argument(
        "--from", dest="from_step", metavar="STEP", help="run STEP and every later step again"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="validate and print what would run; run nothing"
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(handler=_run)
