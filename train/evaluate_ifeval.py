"""``instructflow eval ifeval CHECKPOINT --prompts PATH``: IFEval's metrics for a checkpoint.

The prompts are either the data engine's records with a ``constraints`` column (the
``constrain`` stage's output, e.g. ``out/rl-prompts/data/test``) or Google IFEval's own file
(rows of ``prompt``, ``instruction_id_list``, ``kwargs``; JSONL or Parquet). The checkpoint
answers each greedily (Ray Data actors, one model each, as ``instructflow generate``), every
constraint is checked strictly and loosely (``train.rewards.ifeval``), and the per-row
results are summed as they stream past the driver (counts only, never the rows).

Reported, as IFEval does: prompt-level accuracy (every constraint of the prompt followed)
and instruction-level accuracy (each constraint on its own), strict and loose; per kind; and
for the seen and the held-out kinds apart (each constraint's ``held_out`` flag). A prompt
counts towards a subset's prompt-level accuracy when all its constraints belong to that
subset; mixed prompts count only overall. A constraint whose arguments its checker rejects
is counted as not followed and as an error, by kind.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

CANONICAL = ("messages", "constraints")
IFEVAL = ("prompt", "instruction_id_list", "kwargs")
SUBSETS = ("all", "seen", "held_out")
RESULT_COLUMNS = ("prompt", "response", "constraints", "results")
SAMPLE_ROWS = 256


class PromptsError(ValueError):
    """The prompts file is not one this command reads; the message names what it found."""


def prompt_format(path: str) -> tuple[str, str]:
    """("canonical" or "ifeval", "parquet" or "json") for ``path``, checked before Ray."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs
    import pyarrow.json as pajson

    from pipeline.read import open_filesystem

    filesystem, local = open_filesystem(path)
    info = filesystem.get_file_info(local)
    if info.type == pafs.FileType.NotFound:
        raise PromptsError(f"{path}: no such file or directory")
    if local.endswith((".jsonl", ".json")):
        with filesystem.open_input_stream(local) as stream:
            names = pajson.read_json(stream).schema.names
        encoding = "json"
    else:
        names = ds.dataset(local, filesystem=filesystem, format="parquet").schema.names
        encoding = "parquet"
    if all(name in names for name in CANONICAL):
        return "canonical", encoding
    if all(name in names for name in IFEVAL):
        return "ifeval", encoding
    raise PromptsError(
        f"{path}: columns {sorted(names)}; expected the data engine's records with "
        f"{' and '.join(CANONICAL)} (the constrain stage's output), or IFEval's "
        f"{', '.join(IFEVAL)}"
    )


def row_constraints(row: dict[str, Any], shape: str) -> list[dict[str, Any]]:
    """A row's constraints as {kind, args (dict), held_out}."""
    if shape == "canonical":
        from train.rl_rows import constraint_list

        return constraint_list(row.get("constraints"))
    kwargs = row.get("kwargs") or [{}] * len(row["instruction_id_list"])
    return [
        {"kind": kind, "args": dict(args or {}), "held_out": False}
        for kind, args in zip(row["instruction_id_list"], kwargs, strict=True)
    ]


def check_sample(path: str, shape: str, encoding: str) -> None:
    """The first rows' constraint kinds and arguments, against the checkers."""
    import pyarrow.dataset as ds
    import pyarrow.json as pajson

    from pipeline.read import open_filesystem
    from train.rewards.ifeval import KINDS, parse_args

    filesystem, local = open_filesystem(path)
    if encoding == "json":
        with filesystem.open_input_stream(local) as stream:
            rows = pajson.read_json(stream).slice(0, SAMPLE_ROWS).to_pylist()
    else:
        rows = ds.dataset(local, filesystem=filesystem, format="parquet").head(SAMPLE_ROWS)
        rows = rows.to_pylist()
    constrained = 0
    for index, row in enumerate(rows):
        constraints = row_constraints(row, shape)
        constrained += bool(constraints)
        for constraint in constraints:
            if constraint["kind"] not in KINDS:
                raise PromptsError(
                    f"{path}: row {index}: unknown constraint kind {constraint['kind']!r}; "
                    f"known: {', '.join(KINDS)}"
                )
            try:
                parse_args(constraint["kind"], constraint["args"])
            except ValueError as error:
                raise PromptsError(f"{path}: row {index}: {error}") from None
    if rows and not constrained:
        raise PromptsError(
            f"{path}: none of the first {len(rows)} rows has constraints: run the data recipe "
            "with a `constrain` stage"
        )


def score_row(constraints: list[dict[str, Any]], response: str, prompt: str) -> list[dict]:
    """Each constraint's strict and loose verdict; a malformed one is an error, not followed."""
    from train.rewards.ifeval import check, check_loose

    results = []
    for constraint in constraints:
        kind, args = constraint["kind"], constraint["args"]
        entry = {"kind": kind, "held_out": bool(constraint["held_out"]), "error": ""}
        try:
            entry["strict"] = check(kind, response, args, prompt).passed
            entry["loose"] = check_loose(kind, response, args, prompt).passed
        except ValueError as error:
            entry |= {"strict": False, "loose": False, "error": str(error)}
        results.append(entry)
    return results


class IFEvalResponder:
    """Ray Data callable class: greedy responses and their verdicts, the model loaded once."""

    def __init__(self, checkpoint: str, shape: str, max_new_tokens: int, use_gpu: bool) -> None:
        from train.generate import load_for_generation

        self.model, self.tokenizer, self.meta = load_for_generation(
            checkpoint, "cuda" if use_gpu else "cpu"
        )
        self.shape = shape
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from train.generate import conversations_of, generate_replies

        rows = batch.to_pylist()
        columns = batch.to_pydict()
        if self.shape == "ifeval":
            columns = {"prompt": columns["prompt"]}
        conversations = conversations_of(columns)
        responses = generate_replies(
            self.model, self.tokenizer, self.meta, conversations, self.max_new_tokens
        )
        out = {name: [] for name in RESULT_COLUMNS}
        for row, turns, response in zip(rows, conversations, responses, strict=True):
            constraints = row_constraints(row, self.shape)
            prompt = turns[-1]["content"] if turns else ""
            out["prompt"].append(prompt)
            out["response"].append(response)
            out["constraints"].append(json.dumps(constraints, sort_keys=True))
            out["results"].append(json.dumps(score_row(constraints, response, prompt)))
        return pa.table({name: pa.array(values, pa.string()) for name, values in out.items()})


class Totals:
    """IFEval's counts, summed row by row: per subset, and per kind."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.kinds: dict[str, Counter] = {}

    def add(self, results: list[dict[str, Any]]) -> None:
        if not results:
            self.counts["unconstrained"] += 1
            return
        subsets = ["all"]
        held = {item["held_out"] for item in results}
        if held == {False}:
            subsets.append("seen")
        elif held == {True}:
            subsets.append("held_out")
        for subset in subsets:
            self.counts[f"{subset}/prompts"] += 1
            self.counts[f"{subset}/prompt_strict"] += all(item["strict"] for item in results)
            self.counts[f"{subset}/prompt_loose"] += all(item["loose"] for item in results)
        for item in results:
            for subset in ("all", "held_out" if item["held_out"] else "seen"):
                self.counts[f"{subset}/instructions"] += 1
                self.counts[f"{subset}/instruction_strict"] += item["strict"]
                self.counts[f"{subset}/instruction_loose"] += item["loose"]
            kind = self.kinds.setdefault(item["kind"], Counter())
            kind["count"] += 1
            kind["strict"] += item["strict"]
            kind["loose"] += item["loose"]
            kind["errors"] += bool(item["error"])
            kind["held_out"] += item["held_out"]

    def metrics(self) -> dict[str, Any]:
        def ratio(top: int, bottom: int) -> float | None:
            return top / bottom if bottom else None

        counts = self.counts
        report: dict[str, Any] = {}
        for subset in SUBSETS:
            prompts, instructions = counts[f"{subset}/prompts"], counts[f"{subset}/instructions"]
            report[subset] = {
                "prompts": prompts,
                "instructions": instructions,
                "prompt_strict": ratio(counts[f"{subset}/prompt_strict"], prompts),
                "prompt_loose": ratio(counts[f"{subset}/prompt_loose"], prompts),
                "instruction_strict": ratio(counts[f"{subset}/instruction_strict"], instructions),
                "instruction_loose": ratio(counts[f"{subset}/instruction_loose"], instructions),
            }
        report["kinds"] = {
            kind: {
                "count": values["count"],
                "held_out": values["held_out"] > 0,
                "strict": values["strict"] / values["count"],
                "loose": values["loose"] / values["count"],
                "errors": values["errors"],
            }
            for kind, values in sorted(self.kinds.items())
        }
        report["unconstrained_prompts"] = counts["unconstrained"]
        return report


def evaluate_ifeval(
    checkpoint: str,
    prompts: str,
    *,
    output: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    use_gpu: bool = False,
) -> dict[str, Any]:
    """The metrics (``Totals.metrics``), also written to ``output/ifeval.json`` with every
    response in ``output/responses`` (Parquet) when ``output`` is given. Needs a connected
    Ray; the checks that need none (``resolve_checkpoint``, ``prompt_format``,
    ``check_sample``) run first in ``ops``."""
    import ray.data

    from train.generate import resolve_checkpoint
    from train.launch import actor_pool_size

    checkpoint = resolve_checkpoint(checkpoint)
    shape, encoding = prompt_format(prompts)
    if encoding == "json":
        rows = ray.data.read_json(prompts)
    else:
        rows = ray.data.read_parquet(prompts, file_extensions=["parquet"])
    columns = ["system", "messages", "context", "constraints"] if shape == "canonical" else IFEVAL
    rows = rows.select_columns(list(columns))
    answered = rows.map_batches(
        IFEvalResponder,
        fn_constructor_kwargs={
            "checkpoint": checkpoint,
            "shape": shape,
            "max_new_tokens": max_new_tokens,
            "use_gpu": use_gpu,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        num_gpus=1 if use_gpu else 0,
        compute=ray.data.ActorPoolStrategy(
            min_size=1, max_size=actor_pool_size(1 if use_gpu else 0)
        ),
    )
    if output:
        answered = answered.materialize()
        answered.write_parquet(os.path.join(output, "responses"))
    totals = Totals()
    for batch in answered.iter_batches(batch_size=1024, batch_format="pyarrow"):
        for results in batch.column("results").to_pylist():
            totals.add(json.loads(results))
    report = {"checkpoint": checkpoint, "prompts_path": prompts, **totals.metrics()}
    if output:
        from train.launch import write_text

        write_text(output, "ifeval.json", json.dumps(report, indent=2) + "\n")
    return report


def report_lines(report: dict[str, Any]) -> list[str]:
    """The console table: the three subsets, then each kind."""

    def shown(value: float | None) -> str:
        return "    -" if value is None else f"{value:5.3f}"

    lines = [
        f"{'':10} {'prompts':>7} {'prompt strict':>13} {'loose':>6} "
        f"{'instructions':>12} {'inst strict':>11} {'loose':>6}"
    ]
    for subset in SUBSETS:
        row = report[subset]
        lines.append(
            f"{subset:10} {row['prompts']:7d} {shown(row['prompt_strict']):>13} "
            f"{shown(row['prompt_loose']):>6} {row['instructions']:12d} "
            f"{shown(row['instruction_strict']):>11} {shown(row['instruction_loose']):>6}"
        )
    lines.append("")
    lines.append(f"{'kind':48} {'n':>5} {'strict':>6} {'loose':>6}")
    for kind, row in report["kinds"].items():
        mark = " (held out)" if row["held_out"] else ""
        errors = f"  {row['errors']} malformed" if row["errors"] else ""
        lines.append(
            f"{(kind + mark):48} {row['count']:5d} {row['strict']:6.3f} {row['loose']:6.3f}"
            + errors
        )
    if report["unconstrained_prompts"]:
        lines.append(f"{report['unconstrained_prompts']} prompts without constraints, not scored")
    return lines


__all__ = [
    "PromptsError",
    "Totals",
    "check_sample",
    "evaluate_ifeval",
    "prompt_format",
    "report_lines",
    "score_row",
]
