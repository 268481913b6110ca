"""``instructflow eval ifeval CHECKPOINT --prompts PATH``: IFEval's metrics for a checkpoint.

The prompts are either the data engine's records with a ``constraints`` column (the
``constrain`` stage's output, e.g. ``out/rl-prompts/data/test``, a directory or one file) or
Google IFEval's own rows of ``prompt``, ``instruction_id_list`` and ``kwargs`` (its
``input_data.jsonl``, or the Parquet copy on the Hugging Face hub). IFEval's rows carry no
held-out flag: all their constraints count as seen. ``prompt_source`` and
``check_constraints`` read the prompts before Ray starts (the columns, then every row's
constraint kinds and arguments), so a wrong file fails in seconds, naming what it found.

The checkpoint answers each prompt greedily (Ray Data actors, one model each, as
``instructflow generate``), every constraint is checked strictly and loosely
(``train.rewards.ifeval.score_record``), and the per-row results are added up as their
batches stream past the driver (``Totals``: counts only; the rows go on to
``responses.parquet``, in input order, and are not kept).

Reported, as IFEval does (Zhou et al. 2023, arXiv:2311.07911): prompt-level accuracy (every
constraint of the prompt followed) and instruction-level accuracy (each constraint on its
own), strict and loose; overall, for the seen kinds and for the held-out kinds (each
constraint's ``held_out`` flag); and per kind. Instruction level splits cleanly: a constraint
is in one subset or the other. At prompt level a prompt counts towards ``seen`` or
``held_out`` only when all its constraints are in that subset; a prompt with both counts in
``all`` alone, and is counted as ``mixed_prompts``. Rows that cannot be scored are skipped
and counted by reason (``SKIP_REASONS``): no constraints, or no user turn to answer.
"""

from __future__ import annotations

import contextlib
import io
import json
import posixpath
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

CANONICAL_COLUMNS = ("messages", "constraints")
IFEVAL_COLUMNS = ("prompt", "instruction_id_list", "kwargs")
JSON_LINES_SUFFIXES = (".jsonl", ".json")
SUBSETS = ("all", "seen", "held_out")
SKIP_REASONS = ("no_constraints", "no_user_turn")
RESPONSES_FILE = "responses.parquet"
METRICS_FILE = "ifeval.json"
SCAN_BATCH_ROWS = 4096
RESULT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),  # the record's id, or IFEval's key
        pa.field("prompt", pa.string()),  # the last user turn, what repeat_prompt reads
        pa.field("response", pa.string()),  # null when skipped
        pa.field("skipped", pa.string()),  # "" when scored, else one of SKIP_REASONS
        pa.field("strict", pa.bool_()),  # prompt level; null when skipped
        pa.field("loose", pa.bool_()),
        pa.field("constraints", pa.string()),  # JSON: [{kind, args, held_out}]
        pa.field("results", pa.string()),  # JSON: score_record's verdicts; null when skipped
    ]
)


class PromptsError(ValueError):
    """The prompts are not ones this command reads; the message names what it found."""


@dataclass(frozen=True)
class PromptSource:
    """Where the prompts are and how to read them."""

    path: str
    shape: str  # "canonical" (engine records) or "ifeval" (IFEval's rows)
    encoding: str  # "parquet" or "jsonl"
    files: tuple[str, ...]  # on the path's filesystem


@dataclass(frozen=True)
class Prompt:
    """One row made ready to answer: its turns up to the reply, and its constraints."""

    id: str
    turns: list[dict[str, str]]
    constraints: list[dict[str, Any]]
    skipped: str  # "" or one of SKIP_REASONS


# -- reading the prompts, before Ray --------------------------------------------------------


def prompt_source(path: str) -> PromptSource:
    """The prompts' shape from their columns (a JSONL file's first row's keys)."""
    import pyarrow.fs as pafs

    from pipeline.read import open_filesystem

    filesystem, local = open_filesystem(path)
    info = filesystem.get_file_info(local)
    if info.type == pafs.FileType.NotFound:
        raise PromptsError(f"{path}: no such file or directory")
    if info.type == pafs.FileType.File and local.endswith(JSON_LINES_SUFFIXES):
        files, encoding = (local,), "jsonl"
        names = list(next(json_rows(filesystem, local, path), (0, {}))[1])
    else:
        files, encoding = parquet_files(filesystem, local, path), "parquet"
        names = parquet_dataset(filesystem, files, path).schema.names
    if all(name in names for name in CANONICAL_COLUMNS):
        return PromptSource(path, "canonical", encoding, files)
    if all(name in names for name in IFEVAL_COLUMNS):
        return PromptSource(path, "ifeval", encoding, files)
    raise PromptsError(
        f"{path}: columns {sorted(names)}; expected the data engine's records with "
        f"{' and '.join(CANONICAL_COLUMNS)} (the constrain stage's output), or IFEval's "
        f"{', '.join(IFEVAL_COLUMNS)}"
    )


def parquet_files(filesystem: Any, local: str, path: str) -> tuple[str, ...]:
    """The file itself, or a directory's ``.parquet`` files (recursive, sorted)."""
    import pyarrow.fs as pafs

    if filesystem.get_file_info(local).type == pafs.FileType.File:
        return (local,)
    data = pafs.FileSelector(posixpath.join(local, "data"), allow_not_found=True)
    splits = filesystem.get_file_info(data)
    if filesystem.get_file_info(posixpath.join(local, "manifest.json")).is_file and splits:
        # A whole run holds every split and its rejects: one split is the evaluation set.
        names = sorted(posixpath.basename(item.path) for item in splits if not item.is_file)
        raise PromptsError(
            f"{path}: a data engine run; pass one of its splits: "
            + ", ".join(posixpath.join(path, "data", name) for name in names)
        )
    found = filesystem.get_file_info(pafs.FileSelector(local, recursive=True))
    files = sorted(item.path for item in found if item.is_file and item.path.endswith(".parquet"))
    if not files:
        raise PromptsError(f"{path}: a directory without .parquet files")
    return tuple(files)


def parquet_dataset(filesystem: Any, files: tuple[str, ...], path: str) -> Any:
    import pyarrow.dataset as ds

    try:
        return ds.dataset(list(files), filesystem=filesystem, format="parquet")
    except pa.ArrowInvalid as error:
        raise PromptsError(f"{path}: not Parquet, nor JSONL (.jsonl): {error}") from None


def json_rows(filesystem: Any, local: str, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for each non-blank line of a JSONL file."""
    with filesystem.open_input_stream(local) as stream:
        for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1):
            if line.strip():
                yield number, json_row(line, f"{path}: line {number}")


def json_row(line: str, where: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as error:
        raise PromptsError(f"{where}: not JSON Lines (one JSON object a line): {error}") from None
    if not isinstance(row, dict):
        raise PromptsError(f"{where}: a JSON {type(row).__name__}, expected an object")
    return row


def row_constraints(row: dict[str, Any], shape: str) -> list[dict[str, Any]]:
    """A row's constraints as ``{kind, args (dict), held_out}``."""
    if shape == "canonical":
        from train.rl_rows import constraint_list

        return constraint_list(row.get("constraints"))
    kinds = row.get("instruction_id_list") or []
    kwargs = row.get("kwargs")
    kwargs = [{}] * len(kinds) if kwargs is None else kwargs
    if not isinstance(kinds, list) or len(kwargs) != len(kinds):
        raise ValueError(
            f"instruction_id_list {kinds!r} and kwargs {kwargs!r}: needs a list of kinds and "
            "one kwargs object per kind"
        )
    return [
        {"kind": kind, "args": dict(args or {}), "held_out": False}
        for kind, args in zip(kinds, kwargs, strict=True)
    ]


def scanned_rows(source: PromptSource) -> Iterator[tuple[str, dict[str, Any]]]:
    """("row N" or "line N", row) for every row, reading only the columns checked."""
    from pipeline.read import open_filesystem

    filesystem, _ = open_filesystem(source.path)
    if source.encoding == "jsonl":
        for number, row in json_rows(filesystem, source.files[0], source.path):
            yield f"line {number}", row
        return
    columns = ["constraints"] if source.shape == "canonical" else list(IFEVAL_COLUMNS)
    dataset = parquet_dataset(filesystem, source.files, source.path)
    index = 0
    for batch in dataset.to_batches(columns=columns, batch_size=SCAN_BATCH_ROWS):
        for row in batch.to_pylist():
            yield f"row {index}", row
            index += 1


def check_constraints(source: PromptSource) -> Counter:
    """Every row's constraints against the checkers; returns the count of each kind.

    Each constraint is checked on an empty response, which runs its argument checks (the
    checkers validate before judging). Unknown kinds are all named, with the known ones.
    """
    from train.rewards.ifeval import KINDS, check

    kinds: Counter = Counter()
    unknown: dict[str, str] = {}
    for where, row in scanned_rows(source):
        try:
            if source.shape == "ifeval" and not isinstance(row.get("prompt"), str):
                raise ValueError(f"prompt {row.get('prompt')!r}: needs the prompt's text")
            constraints = row_constraints(row, source.shape)
        except ValueError as error:
            raise PromptsError(f"{source.path}: {where}: {error}") from None
        for constraint in constraints:
            kind = constraint["kind"]
            if kind not in KINDS:
                unknown.setdefault(str(kind), where)
                continue
            try:
                check(kind, "", constraint["args"])
            except ValueError as error:
                raise PromptsError(f"{source.path}: {where}: {error}") from None
            kinds[kind] += 1
    if unknown:
        named = ", ".join(f"{kind!r} ({where})" for kind, where in unknown.items())
        raise PromptsError(
            f"{source.path}: unknown constraint kinds {named}; known: {', '.join(KINDS)}"
        )
    if not kinds:
        raise PromptsError(
            f"{source.path}: no row has constraints: run the data recipe with a `constrain` stage"
        )
    return kinds


# -- answering and scoring, in the actors ---------------------------------------------------


def prompts_of(rows: list[dict[str, Any]], shape: str) -> list[Prompt]:
    """The rows as prompts to answer, each with its skip reason ("" when it is scored)."""
    from train.sft_data import opening_turns

    prompts = []
    for row in rows:
        if shape == "canonical":
            turns, key = opening_turns(row), row.get("id")
        else:
            turns, key = [{"role": "user", "content": str(row["prompt"])}], row.get("key")
        constraints = row_constraints(row, shape)
        if not constraints:
            skipped = "no_constraints"
        elif not turns or turns[-1]["role"] != "user":
            skipped = "no_user_turn"
        else:
            skipped = ""
        prompts.append(Prompt("" if key is None else str(key), turns, constraints, skipped))
    return prompts


def result_table(prompts: list[Prompt], responses: dict[int, str]) -> pa.Table:
    """``RESULT_SCHEMA`` rows: each scored prompt's response (by its index) and verdicts."""
    from train.rewards.ifeval import score_record

    columns: dict[str, list] = {name: [] for name in RESULT_SCHEMA.names}
    for index, prompt in enumerate(prompts):
        text = prompt.turns[-1]["content"] if prompt.turns else ""
        score = None
        if not prompt.skipped:
            score = score_record(prompt.constraints, responses[index], text)
        columns["id"].append(prompt.id)
        columns["prompt"].append(text)
        columns["response"].append(responses.get(index))
        columns["skipped"].append(prompt.skipped)
        columns["strict"].append(score["strict"] if score else None)
        columns["loose"].append(score["loose"] if score else None)
        columns["constraints"].append(json.dumps(prompt.constraints, sort_keys=True))
        columns["results"].append(json.dumps(score["constraints"]) if score else None)
    return pa.Table.from_pydict(columns, schema=RESULT_SCHEMA)


class IFEvalResponder:
    """Ray Data callable class: greedy responses and their verdicts, the model loaded once."""

    def __init__(
        self, checkpoint: str, shape: str, encoding: str, max_new_tokens: int, use_gpu: bool
    ) -> None:
        from train.generate import load_for_generation

        self.model, self.tokenizer, self.meta = load_for_generation(
            checkpoint, "cuda" if use_gpu else "cpu"
        )
        self.shape, self.encoding = shape, encoding
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch: pa.Table) -> pa.Table:
        from train.generate import generate_replies

        if self.encoding == "jsonl":  # read as text lines: IFEval's kwargs differ row to row
            rows = [json_row(line, "prompts") for line in batch.column("text").to_pylist()]
        else:
            rows = batch.to_pylist()
        prompts = prompts_of(rows, self.shape)
        answered = [index for index, prompt in enumerate(prompts) if not prompt.skipped]
        replies = generate_replies(
            self.model,
            self.tokenizer,
            self.meta,
            [prompts[index].turns for index in answered],
            self.max_new_tokens,
        )
        return result_table(prompts, dict(zip(answered, replies, strict=True)))


# -- adding up, on the driver ---------------------------------------------------------------


class Totals:
    """IFEval's counts, summed row by row: per subset, per kind, and the skipped rows."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.kinds: dict[str, Counter] = {}

    def skip(self, reason: str) -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"skip reason {reason!r} is not one of {', '.join(SKIP_REASONS)}")
        self.counts[f"skipped/{reason}"] += 1

    def add(self, verdicts: list[dict[str, Any]]) -> None:
        """One scored prompt: its constraints' verdicts ({kind, held_out, strict, loose})."""
        if not verdicts:
            raise ValueError("a scored prompt has at least one constraint")
        held = {bool(item["held_out"]) for item in verdicts}
        subsets = ["all"] + (["held_out" if True in held else "seen"] if len(held) == 1 else [])
        self.counts["mixed_prompts"] += len(held) == 2
        for subset in subsets:
            self.counts[f"{subset}/prompts"] += 1
            self.counts[f"{subset}/prompt_strict"] += all(item["strict"] for item in verdicts)
            self.counts[f"{subset}/prompt_loose"] += all(item["loose"] for item in verdicts)
        for item in verdicts:
            for subset in ("all", "held_out" if item["held_out"] else "seen"):
                self.counts[f"{subset}/instructions"] += 1
                self.counts[f"{subset}/instruction_strict"] += bool(item["strict"])
                self.counts[f"{subset}/instruction_loose"] += bool(item["loose"])
            kind = self.kinds.setdefault(item["kind"], Counter())
            kind["count"] += 1
            kind["held_out"] += bool(item["held_out"])
            kind["strict"] += bool(item["strict"])
            kind["loose"] += bool(item["loose"])

    def add_batch(self, batch: pa.Table) -> None:
        """A batch of ``RESULT_SCHEMA`` rows."""
        skipped, results = batch.column("skipped").to_pylist(), batch.column("results")
        for reason, verdicts in zip(skipped, results.to_pylist(), strict=True):
            if reason:
                self.skip(reason)
            else:
                self.add(json.loads(verdicts))

    def metrics(self) -> dict[str, Any]:
        """Accuracies (None where a subset is empty) and the counts they come from."""
        counts = self.counts
        skipped = {reason: counts[f"skipped/{reason}"] for reason in SKIP_REASONS}
        report: dict[str, Any] = {
            "rows": counts["all/prompts"] + sum(skipped.values()),
            "skipped": skipped,
            "mixed_prompts": counts["mixed_prompts"],
        }
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
                "held_out": values["held_out"],
                "strict": values["strict"] / values["count"],
                "loose": values["loose"] / values["count"],
            }
            for kind, values in sorted(self.kinds.items())
        }
        return report


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# -- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def preserved_order() -> Iterator[None]:
    """Rows come back in input order, so ``responses.parquet`` is the same run after run;
    the driver's DataContext is restored afterwards (tests share it)."""
    import ray.data

    options = ray.data.DataContext.get_current().execution_options
    previous = options.preserve_order
    options.preserve_order = True
    try:
        yield
    finally:
        options.preserve_order = previous


@contextlib.contextmanager
def responses_writer(output: str | None) -> Iterator[Any]:
    """A function writing result batches to ``output/responses.parquet`` (a no-op without
    ``output``), one row group per batch as they arrive."""
    if not output:
        yield lambda batch: None
        return
    import pyarrow.parquet as pq

    from pipeline.read import open_filesystem

    filesystem, root = open_filesystem(output)
    filesystem.create_dir(root, recursive=True)
    with pq.ParquetWriter(
        posixpath.join(root, RESPONSES_FILE), RESULT_SCHEMA, filesystem=filesystem
    ) as writer:
        yield writer.write_table


def read_prompts(source: PromptSource) -> Any:
    """The prompts as a Ray Dataset: Parquet with only the columns used, JSONL as lines."""
    import ray.data

    from pipeline.read import open_filesystem

    filesystem, _ = open_filesystem(source.path)
    if source.encoding == "jsonl":
        return ray.data.read_text(list(source.files), filesystem=filesystem)
    wanted = ["id", "system", "messages", "context", "constraints"]
    if source.shape == "ifeval":
        wanted = ["key", *IFEVAL_COLUMNS]
    present = parquet_dataset(filesystem, source.files, source.path).schema.names
    return ray.data.read_parquet(
        list(source.files),
        filesystem=filesystem,
        columns=[name for name in wanted if name in present],
    )


def evaluate_ifeval(
    checkpoint: str,
    source: PromptSource,
    *,
    output: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    use_gpu: bool = False,
) -> dict[str, Any]:
    """The metrics (``Totals.metrics`` plus the settings), also written to
    ``output/ifeval.json``, with every row's response and verdicts in
    ``output/responses.parquet``, when ``output`` is given. ``checkpoint`` is resolved
    (``resolve_checkpoint``) and ``source`` checked (``check_constraints``) before Ray
    starts; this needs a connected Ray. The pool is declared here, its one place: one actor
    per GPU with ``use_gpu``, else one per CPU, each holding the model once."""
    import ray.data

    from train.launch import actor_pool_size, write_text

    num_gpus = 1 if use_gpu else 0
    totals = Totals()
    with preserved_order(), responses_writer(output) as write:
        answered = read_prompts(source).map_batches(
            IFEvalResponder,
            fn_constructor_kwargs={
                "checkpoint": checkpoint,
                "shape": source.shape,
                "encoding": source.encoding,
                "max_new_tokens": max_new_tokens,
                "use_gpu": use_gpu,
            },
            batch_size=batch_size,
            batch_format="pyarrow",
            num_gpus=num_gpus,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actor_pool_size(num_gpus)),
        )
        for batch in answered.iter_batches(batch_size=None, batch_format="pyarrow"):
            batch = batch.select(RESULT_SCHEMA.names).cast(RESULT_SCHEMA)
            totals.add_batch(batch)
            write(batch)
    report = {
        "checkpoint": checkpoint,
        "prompts_path": source.path,
        "prompts_shape": source.shape,
        "decoding": "greedy",
        "max_new_tokens": max_new_tokens,
        **totals.metrics(),
    }
    if output:
        write_text(output, METRICS_FILE, json.dumps(report, indent=2) + "\n")
    return report


def report_lines(report: dict[str, Any]) -> list[str]:
    """The console table: the three subsets, then each kind, then what was skipped."""

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"{'':10} {'prompts':>8} {'strict':>7} {'loose':>7}   "
        f"{'instructions':>12} {'strict':>7} {'loose':>7}"
    ]
    for subset in SUBSETS:
        row = report[subset]
        lines.append(
            f"{subset:10} {row['prompts']:8d} {shown(row['prompt_strict']):>7} "
            f"{shown(row['prompt_loose']):>7}   {row['instructions']:12d} "
            f"{shown(row['instruction_strict']):>7} {shown(row['instruction_loose']):>7}"
        )
    lines += ["", f"{'kind':56} {'count':>6} {'strict':>7} {'loose':>7}"]
    for kind, row in report["kinds"].items():
        if row["held_out"]:
            held = "all" if row["held_out"] == row["count"] else str(row["held_out"])
            kind = f"{kind} (held out: {held})"
        lines.append(f"{kind:56} {row['count']:6d} {row['strict']:7.3f} {row['loose']:7.3f}")
    if report["mixed_prompts"]:
        lines.append(
            f"\nprompts mixing seen and held-out kinds (in 'all' only): {report['mixed_prompts']}"
        )
    for reason, count in report["skipped"].items():
        if count:
            lines.append(f"rows skipped, {reason.replace('_', ' ')}: {count}")
    return lines


__all__ = [
    "PromptSource",
    "PromptsError",
    "Totals",
    "check_constraints",
    "evaluate_ifeval",
    "prompt_source",
    "prompts_of",
    "report_lines",
    "result_table",
]
