"""The typed data recipe: inputs, an ordered list of stages, and the output.

Validation collects every problem with its key path (``stages[2].length.min_response_chars``),
the bad value and what is allowed, so ``ops.recipe`` can report them all before Ray starts.
Stage entries are single-key mappings, ``- length: {min_response_chars: 5}``, so the order of
the list is the order of the plan.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.ingest import InputConfig
from pipeline.registry import stage_class, stage_names
from pipeline.stage import DEFAULT_PARTITION_BYTES, StageConfig


class Problem(BaseModel):
    """One thing wrong with a recipe."""

    path: str
    message: str
    value: Any = None


class RecipeError(ValueError):
    def __init__(self, problems: list[Problem], source: str = "recipe") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{source}: {len(problems)} problem(s)"]
        for problem in problems:
            shown = "" if problem.value is None else f" (got {problem.value!r})"
            lines.append(f"  {problem.path}: {problem.message}{shown}")
        super().__init__("\n".join(lines))


class OutputConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    # Shards are hash-partitioned, so each lands within a few percent of this size.
    shard_target_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    row_group_rows: int = Field(default=10_000, gt=0)


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Rows per batch handed to stages; bounds worker memory together with max_record_bytes.
    batch_rows: int = Field(default=1000, gt=0)
    # Upper bound of the CPU stage actor pool; None sizes it to the cluster's CPUs.
    max_workers: int | None = Field(default=None, gt=0)
    progress_bars: bool = True
    # Target bytes of one hash-shuffle partition in global stages (dedup, sampling, splits).
    # A reduce task holds one partition (a join, both sides of it), so this, not the corpus
    # size, bounds a worker's memory there; more data means more partitions.
    shuffle_partition_bytes: int = Field(default=DEFAULT_PARTITION_BYTES, ge=1024 * 1024)
    # A global dedup stage whose whole input (plus its working data: a near-dedup signature
    # per row) is at most this many bytes is decided in one task, with the functions the
    # distributed path runs per block: same output, no shuffles. Ray's fixed cost per shuffle
    # dominates small runs (BENCHMARKS.md). Unset: shuffle_partition_bytes, the most one
    # task holds anyway. 0 always takes the distributed path.
    single_task_bytes: int | None = Field(default=None, ge=0)
    # Save the dataset entering each global stage, and the processed dataset, as Parquet
    # under output.path/.instructflow/ so that --resume starts there (one Parquet write of
    # the data each; BENCHMARKS.md has the cost). Off: a resumed run reads and processes
    # everything again, and only the shards already staged are reused.
    checkpoints: bool = True


class StageSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    config: StageConfig


class DataRecipe(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "instructflow"
    seed: int = 0
    inputs: tuple[InputConfig, ...] = Field(min_length=1)
    stages: tuple[StageSpec, ...] = ()
    output: OutputConfig
    run: RunConfig = RunConfig()

    @field_validator("stages", mode="before")
    @classmethod
    def _stages_already_parsed(cls, value: Any) -> Any:
        # parse_recipe turns the YAML list into StageSpec objects first; only those get here.
        return value

    def fingerprint(self) -> str:
        """sha256 of the validated recipe, defaults filled in: the manifest's recipe hash."""
        blob = json.dumps(self.to_plain(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_plain(self) -> dict[str, Any]:
        """Plain data that survives pickling into Ray workers and parses back with parse_recipe."""
        return {
            "name": self.name,
            "seed": self.seed,
            "inputs": [item.model_dump(mode="json") for item in self.inputs],
            "stages": [{spec.name: spec.config.model_dump(mode="json")} for spec in self.stages],
            "output": self.output.model_dump(mode="json"),
            "run": self.run.model_dump(mode="json"),
        }


def parse_recipe(data: Any, source: str = "recipe") -> DataRecipe:
    """Validate plain data (parsed YAML) into a DataRecipe, or raise RecipeError listing all."""
    if not isinstance(data, dict):
        raise RecipeError(
            [Problem(path="(top level)", message="expected a mapping", value=data)], source
        )
    problems: list[Problem] = []
    stages = _parse_stages(data.get("stages", []), problems)
    rest = {key: value for key, value in data.items() if key != "stages"}
    try:
        recipe = DataRecipe.model_validate({**rest, "stages": stages})
    except ValidationError as error:
        problems.extend(problems_from(error, prefix="", model=DataRecipe))
    if problems:
        raise RecipeError(problems, source)
    return recipe


def _parse_stages(entries: Any, problems: list[Problem]) -> list[StageSpec]:
    if not isinstance(entries, list):
        problems.append(
            Problem(path="stages", message="expected a list of {stage: {...}}", value=entries)
        )
        return []
    specs, positions = [], []
    for index, entry in enumerate(entries):
        path = f"stages[{index}]"
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append(
                Problem(path=path, message="expected one {stage_name: {options}}", value=entry)
            )
            continue
        ((name, options),) = entry.items()
        if name not in stage_names():
            problems.append(
                Problem(
                    path=path,
                    message=f"unknown stage; allowed: {', '.join(stage_names())}",
                    value=name,
                )
            )
            continue
        config_model = stage_class(name).Config
        try:
            specs.append(StageSpec(name=name, config=config_model.model_validate(options or {})))
            positions.append(index)
        except ValidationError as error:
            problems.extend(problems_from(error, prefix=f"{path}.{name}", model=config_model))
    _check_stage_order(specs, positions, problems)
    return specs


def _check_stage_order(
    specs: list[StageSpec], positions: list[int], problems: list[Problem]
) -> None:
    """A stage's ``must_follow`` stages, where the recipe has them enabled, come before it."""
    placed = zip(positions, specs, strict=True)
    enabled = [(index, spec.name) for index, spec in placed if spec.config.enabled]
    for order, (index, name) in enumerate(enabled):
        must_follow = stage_class(name).must_follow
        later = sorted({other for _, other in enabled[order + 1 :] if other in must_follow})
        if later:
            problems.append(
                Problem(
                    path=f"stages[{index}].{name}",
                    message=f"must run after {', '.join(later)}, which this recipe puts later",
                    value=[other for _, other in enabled],
                )
            )


def problems_from(error: ValidationError, prefix: str, model: type[BaseModel]) -> list[Problem]:
    """Pydantic errors as key paths, values and what is allowed."""
    problems = []
    for item in error.errors(include_url=False):
        parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in item["loc"]]
        path = prefix
        for part in parts:
            path = f"{path}{part}" if part.startswith("[") else f"{path}.{part}" if path else part
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, item["loc"][:-1])
            message = f"unknown key; allowed: {', '.join(allowed)}" if allowed else "unknown key"
        problems.append(
            Problem(path=path or "(top level)", message=message, value=item.get("input"))
        )
    return problems


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Walk the model along ``loc`` to list the keys allowed where an unknown one appeared."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        current = next((a for a in (annotation, *args) if hasattr(a, "model_fields")), None)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))
