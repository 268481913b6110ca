"""The ``instructflow run`` recipe: named steps, each one of the CLI's commands, in order.

    name: end-to-end
    output: out/end-to-end           # state.json, report.json, report.html; step outputs
    steps:
      - name: data
        command: data run
        recipe: examples/quickstart/recipe.yaml
      - name: sft
        command: train sft
        recipe: examples/quickstart/sft.yaml
        set: [data.path=${steps.data.output}]

A step's output is its ``output`` key, or ``<output>/<name>`` by default; for a step with a
recipe file it replaces the file's ``output.path``. ``${steps.NAME.output}`` in any string of
a later step is that step's output path, so every output is known before anything runs:
references resolve, and every step's own recipe (file + ``set`` overrides) is parsed and
validated, before Ray starts. A step may refer only to steps above it, so the chain has no
cycles. Problems name the key path (``steps[2].set[0]``), the bad value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ops.feedback.raters import JudgeConfig, RulesConfig
from ops.recipe import apply_overrides, load_yaml
from pipeline.config import Problem, RecipeError, problems_from

REFERENCE = re.compile(r"\$\{([^}]*)\}")
STEP_OUTPUT = re.compile(r"steps\.([^.]+)\.output")
STATE_FILE = "state.json"
STEP_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepBase(Frozen):
    name: str = Field(pattern=STEP_NAME)

    def output_path(self, run_output: str) -> str | None:
        """Where this step writes (what ``${steps.NAME.output}`` means); None: nowhere."""
        output = getattr(self, "output", None)
        return absolute(output) if output else f"{run_output}/{self.name}"


class RecipeStep(StepBase):
    """A command that reads its own recipe file: ``set`` entries are its ``--set`` overrides,
    and ``output.path`` is set to the step's output."""

    recipe: str
    set: tuple[str, ...] = ()
    output: str | None = None


class DataRunStep(RecipeStep):
    command: Literal["data run"]


class DataGenerateStep(RecipeStep):
    command: Literal["data generate"]


class TrainStep(RecipeStep):
    command: Literal["train sft", "train dpo", "train rl"]


class TinyModelStep(StepBase):
    """``train tiny-model DATA OUT``: a model from a config, a tokenizer trained on ``data``."""

    command: Literal["train tiny-model"]
    data: str
    kind: Literal["causal", "seq2seq"] = "causal"
    size: Literal["tiny", "small", "0.5b"] = "tiny"
    arch: Literal["t5", "bart"] = "t5"  # seq2seq only
    vocab_size: int = Field(2048, gt=0)
    seed: int = 0
    output: str | None = None


class GenerateStep(StepBase):
    """``generate CHECKPOINT --prompt``: one reply, kept in the report; writes no files."""

    command: Literal["generate"]
    checkpoint: str
    prompt: str
    system: str = ""
    max_new_tokens: int = Field(128, gt=0)

    def output_path(self, run_output: str) -> str | None:
        return None


class FeedbackGenerateStep(StepBase):
    """``feedback generate``: ``samples`` seeded candidates per prompt of ``input``."""

    command: Literal["feedback generate"]
    checkpoint: str
    input: str
    samples: int = Field(4, ge=1)
    temperature: float = Field(0.8, ge=0)  # 0: greedy
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int = 0
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    workers: int | None = Field(None, ge=1)  # actors; default one per CPU or GPU
    gpu: bool = False
    engine: Literal["auto", "transformers", "vllm"] = "auto"
    output: str | None = None


class FeedbackImportStep(StepBase):
    """``feedback import``: its output is the database (default ``<output>/<name>/feedback.db``;
    a file path or an SQLAlchemy URL)."""

    command: Literal["feedback import"]
    samples: tuple[str, ...] = Field(min_length=1)
    output: str | None = None

    def output_path(self, run_output: str) -> str | None:
        if self.output and "://" in self.output:
            return self.output
        return absolute(self.output) if self.output else f"{run_output}/{self.name}/feedback.db"


class FeedbackRateStep(StepBase):
    """``feedback rate``: scores in ``db``, which is also its output."""

    command: Literal["feedback rate"]
    db: str
    rater: Literal["rules", "reference", "judge"]
    rules: RulesConfig = RulesConfig()
    judge: JudgeConfig | None = None
    redo: bool = False

    @model_validator(mode="after")
    def _judge_given(self) -> FeedbackRateStep:
        if self.rater == "judge" and self.judge is None:
            raise ValueError("rater judge needs judge: {base_url: ..., model: ...}")
        return self

    def output_path(self, run_output: str) -> str | None:
        return self.db


class FeedbackExportStep(StepBase):
    """``feedback export``: sft/pairs/kto.jsonl, recipe.yaml and export.json."""

    command: Literal["feedback export"]
    db: str
    margin: float = Field(1.0, gt=0)
    desirable: float = 4.0
    undesirable: float = 2.0
    annotators: tuple[str, ...] = ()
    output: str | None = None


class EvalIFEvalStep(StepBase):
    """``eval ifeval``: ifeval.json and responses.parquet."""

    command: Literal["eval ifeval"]
    checkpoint: str
    prompts: str
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)
    gpu: bool = False
    output: str | None = None


STEP_MODELS: dict[str, type[StepBase]] = {
    "data run": DataRunStep,
    "data generate": DataGenerateStep,
    "train tiny-model": TinyModelStep,
    "train sft": TrainStep,
    "train dpo": TrainStep,
    "train rl": TrainStep,
    "generate": GenerateStep,
    "feedback generate": FeedbackGenerateStep,
    "feedback import": FeedbackImportStep,
    "feedback rate": FeedbackRateStep,
    "feedback export": FeedbackExportStep,
    "eval ifeval": EvalIFEvalStep,
}


@dataclass(frozen=True)
class PlannedStep:
    """A validated step: its options with references resolved, its output and the steps it
    refers to. Its own recipe file is parsed when needed (``load_step_recipe``)."""

    index: int
    options: StepBase
    output: str | None
    refers_to: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def command(self) -> str:
        return self.options.command  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RunRecipe:
    name: str
    output: str
    source: str
    steps: tuple[PlannedStep, ...]

    def step(self, name: str) -> PlannedStep:
        return next(step for step in self.steps if step.name == name)

    def fingerprints(self, through: str | None = None) -> dict[str, str | None]:
        """Each step's sha256 over its command, resolved options and parsed recipe, and the
        fingerprints of the steps it refers to: an upstream change changes it too. None for
        a step whose recipe file an earlier step writes, until that file exists. Recipes are
        parsed again each time: a model given as a training output means its best
        checkpoint once that run has one."""
        found: dict[str, str | None] = {}
        for step in self.steps:
            recipe = load_step_recipe(step, self)
            upstream = [found[name] for name in step.refers_to]
            if (isinstance(step.options, RecipeStep) and recipe is None) or None in upstream:
                found[step.name] = None
            else:
                found[step.name] = fingerprint(step, recipe, upstream)
            if step.name == through:
                break
        return found


def fingerprint(step: PlannedStep, recipe: Any, upstream: list[str | None]) -> str:
    document = {
        "options": step.options.model_dump(mode="json"),
        "recipe": recipe.model_dump(mode="json") if recipe is not None else None,
        "upstream": upstream,
    }
    blob = json.dumps(document, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def absolute(path: str) -> str:
    """Local paths absolute (Ray workers and later steps run elsewhere); URIs as written."""
    return path if "://" in path else str(Path(path).resolve())


def load_run_recipe(path: str, overrides: list[str] | None = None) -> RunRecipe:
    """The run recipe file with ``--set`` overrides (a step addressed by name:
    ``steps.sft.output=...``), validated with every step's own recipe; or RecipeError."""
    data = load_yaml(path)
    data = apply_overrides(data, by_index(data, overrides or [], path), path)
    problems: list[Problem] = []
    head = top_level(data, problems)
    if head is None:
        raise RecipeError(problems, path)
    name, output, entries = head
    steps = plan_steps(entries, output, problems)
    recipe = RunRecipe(name, output, path, tuple(steps))
    for step in steps:
        try:
            load_step_recipe(step, recipe)
        except RecipeError as error:
            problems.extend(step_problems(step, error))
    if problems:
        raise RecipeError(problems, path)
    return recipe


def load_step_recipe(step: PlannedStep, run: RunRecipe) -> Any:
    """The step's own recipe, parsed as its command parses it (file, ``set``, its output as
    ``output.path``); None for a step without one, or whose file an earlier step writes and
    has not written yet. Raises RecipeError."""
    options = step.options
    if not isinstance(options, RecipeStep):
        return None
    if not Path(options.recipe).exists() and any(
        inside(options.recipe, run.step(name).output) for name in step.refers_to
    ):
        return None
    overrides = step_overrides(step)
    if step.command in ("data run", "data generate"):
        from ops.recipe import load_recipe

        return load_recipe(options.recipe, overrides)
    from ops.trainrun import load_dpo_recipe, load_rl_recipe, load_sft_recipe

    load = {"train sft": load_sft_recipe, "train dpo": load_dpo_recipe, "train rl": load_rl_recipe}
    return load[step.command](options.recipe, overrides)


def step_overrides(step: PlannedStep) -> list[str]:
    """A recipe step's ``--set`` overrides: its own, then its output as ``output.path``."""
    return [*step.options.set, f"output.path={step.output}"]


def inside(path: str, directory: str | None) -> bool:
    if directory is None:
        return False
    return absolute(path).startswith(directory.rstrip("/") + "/")


def step_problems(step: PlannedStep, error: RecipeError) -> list[Problem]:
    """A step recipe's problems under the step's own key path, naming its file."""
    where = f"steps[{step.index}] {step.name} ({error.source})"
    return [
        Problem(path=f"{where} {problem.path}", message=problem.message, value=problem.value)
        for problem in error.problems
    ]


def by_index(data: Any, overrides: list[str], source: str) -> list[str]:
    """``steps.NAME.key=value`` as ``steps.INDEX.key=value``, for ``apply_overrides``."""
    entries = data.get("steps") if isinstance(data, dict) else None
    names = (
        [e.get("name") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    )
    translated = []
    for override in overrides:
        parts = override.split(".", 2)
        if len(parts) == 3 and parts[0] == "steps" and not parts[1].isdigit():
            if parts[1] not in names:
                problem = Problem(
                    path="--set",
                    message=f"no step named {parts[1]!r}; steps: {', '.join(map(str, names))}",
                    value=override,
                )
                raise RecipeError([problem], source)
            override = f"steps.{names.index(parts[1])}.{parts[2]}"
        translated.append(override)
    return translated


def top_level(data: Any, problems: list[Problem]) -> tuple[str, str, list[Any]] | None:
    if not isinstance(data, dict):
        problems.append(Problem(path="(top level)", message="expected a mapping", value=data))
        return None
    unknown = sorted(set(data) - {"name", "output", "steps"})
    for key in unknown:
        problems.append(Problem(path=key, message="unknown key; allowed: name, output, steps"))
    name, output, entries = data.get("name", "run"), data.get("output"), data.get("steps")
    if not isinstance(name, str) or not name:
        problems.append(Problem(path="name", message="expected a non-empty string", value=name))
    if not isinstance(output, str) or not output:
        problems.append(
            Problem(path="output", message="expected the run's output directory", value=output)
        )
    if not isinstance(entries, list) or not entries:
        problems.append(
            Problem(path="steps", message="expected a list of {name, command, ...}", value=entries)
        )
    if not isinstance(output, str) or not output or not isinstance(entries, list) or not entries:
        return None
    return str(name), absolute(output), entries


def plan_steps(entries: list[Any], run_output: str, problems: list[Problem]) -> list[PlannedStep]:
    """Each entry validated in order, its references resolved against the steps above it."""
    names = [e.get("name") if isinstance(e, dict) else None for e in entries]
    outputs: dict[str, str | None] = {}
    steps = []
    for index, entry in enumerate(entries):
        where = f"steps[{index}]"
        if not isinstance(entry, dict):
            problems.append(
                Problem(path=where, message="expected a mapping {name, command, ...}", value=entry)
            )
            continue
        model = command_model(entry, where, problems)
        if entry.get("name") in names[:index]:
            problems.append(
                Problem(path=f"{where}.name", message="names must differ", value=entry["name"])
            )
            continue
        refers: list[str] = []
        known = len(problems)
        resolved = resolve_references(entry, where, names, index, outputs, refers, problems)
        if model is None:
            continue
        try:
            options = model.model_validate(resolved)
        except ValidationError as error:
            problems.extend(problems_from(error, prefix=where, model=model))
            continue
        output = options.output_path(run_output)
        outputs[options.name] = output
        if len(problems) == known:  # its recipe is read only with every reference resolved
            steps.append(PlannedStep(index, options, output, tuple(dict.fromkeys(refers))))
    problems.extend(shared_outputs(steps))
    return steps


def command_model(entry: dict, where: str, problems: list[Problem]) -> type[StepBase] | None:
    command = entry.get("command")
    if command in STEP_MODELS:
        return STEP_MODELS[command]
    problems.append(
        Problem(
            path=f"{where}.command",
            message=f"unknown command; allowed: {', '.join(STEP_MODELS)}",
            value=command,
        )
    )
    return None


def resolve_references(
    value: Any,
    where: str,
    names: list[Any],
    index: int,
    outputs: dict[str, str | None],
    refers: list[str],
    problems: list[Problem],
) -> Any:
    """``value`` with every ``${steps.NAME.output}`` replaced by that step's output path."""
    if isinstance(value, dict):
        return {
            key: resolve_references(item, f"{where}.{key}", names, index, outputs, refers, problems)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            resolve_references(item, f"{where}[{i}]", names, index, outputs, refers, problems)
            for i, item in enumerate(value)
        ]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        problem, output = reference_target(match.group(1), names, index, outputs)
        if problem:
            problems.append(Problem(path=where, message=problem, value=match.group(0)))
            return match.group(0)
        refers.append(STEP_OUTPUT.fullmatch(match.group(1).strip()).group(1))
        return output

    return REFERENCE.sub(substitute, value)


def reference_target(
    text: str, names: list[Any], index: int, outputs: dict[str, str | None]
) -> tuple[str | None, str]:
    """(what is wrong with the reference, or None; the output path it stands for)."""
    found = STEP_OUTPUT.fullmatch(text.strip())
    if not found:
        return "unknown reference; allowed: ${steps.NAME.output}", ""
    name = found.group(1)
    earlier = [str(n) for n in names[:index]]
    if name == names[index]:
        return "a step cannot use its own output (that would be a cycle)", ""
    if name in names[index + 1 :]:
        return (
            f"step {name!r} comes later: steps run in order and use only earlier steps' "
            f"outputs (a forward reference; a cycle if {name!r} uses this step); earlier "
            f"steps: {', '.join(earlier) or 'none'}",
            "",
        )
    if name not in names:
        return f"no step named {name!r}; earlier steps: {', '.join(earlier) or 'none'}", ""
    if name not in outputs:
        return f"step {name!r} is not valid, so its output is unknown", ""
    if outputs[name] is None:
        return f"step {name!r} writes no files, so it has no output to use", ""
    return None, outputs[name]


def shared_outputs(steps: list[PlannedStep]) -> list[Problem]:
    """Two steps writing one place would overwrite each other (a rater writes into the
    database it was given, which is its own output by design)."""
    seen: dict[str, str] = {}
    problems = []
    for step in steps:
        if step.output is None or isinstance(step.options, FeedbackRateStep):
            continue
        if step.output in seen:
            problems.append(
                Problem(
                    path=f"steps[{step.index}].output",
                    message=f"step {seen[step.output]!r} writes there too; give one an output",
                    value=step.output,
                )
            )
        seen[step.output] = step.name
    return problems
