"""Recipe files: YAML -> ``--set`` overrides -> validated DataRecipe -> pre-flight checks.

Everything here runs before Ray starts, so a bad recipe costs milliseconds and names the
file, the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import yaml

from pipeline.checkpoint import COMMIT_PLAN, RUN_DIRECTORY, RUN_MARKER, RunDirectory, read_json
from pipeline.config import DataRecipe, Problem, RecipeError, parse_recipe
from pipeline.discover import fixed_prefix, storage_problem
from pipeline.read import list_input_files, open_filesystem
from pipeline.stage import path_fields

# Beside its shards, a data run writes these documents at the top of its output; they are
# a run's only when its manifest or run marker is there too.
RUN_DOCUMENTS = ("manifest.json", "stats.json", "report.html", "recipe.yaml")


def load_yaml(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise RecipeError(
            [Problem(path="(file)", message="recipe file not found", value=path)], path
        )
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError([Problem(path="(yaml)", message=str(error))], path) from None


def apply_overrides(data: Any, overrides: list[str], source: str) -> Any:
    """Apply ``key.path=value`` overrides. Values parse as YAML (numbers, lists, booleans).

    Inside ``stages`` a path step may be a stage name instead of an index:
    ``stages.length.min_response_chars=5``.
    """
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise RecipeError(
                [Problem(path="--set", message="expected key.path=value", value=override)], source
            )
        value = yaml.safe_load(raw) if raw else ""
        _set_path(data, key.split("."), value, override, source)
    return data


def _set_path(data: Any, steps: list[str], value: Any, override: str, source: str) -> None:
    node = data
    for depth, step in enumerate(steps[:-1]):
        if depth == 0 and step == "stages" and isinstance(node, dict) and not node.get(step):
            # A recipe without stages gets an empty list, so the name below is looked up as
            # a stage (and named if missing) instead of becoming a dict key.
            node[step] = []
        node = _child(node, step, override, source, in_stages=_is_stage_list(steps, depth))
    last = steps[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif _is_stage_list(steps, len(steps) - 1):
        raise _no_such_stage(node, last, override, source)
    else:
        raise RecipeError(
            [Problem(path=override, message="no such key to set", value=last)], source
        )


def _is_stage_list(steps: list[str], depth: int) -> bool:
    """Whether ``steps[depth]`` indexes the recipe's top-level ``stages`` list."""
    return depth == 1 and steps[0] == "stages"


def _child(node: Any, step: str, override: str, source: str, *, in_stages: bool) -> Any:
    if isinstance(node, dict):
        if node.get(step) is None:
            node[step] = {}
        return node[step]
    if isinstance(node, list):
        if step.isdigit() and int(step) < len(node):
            return node[int(step)]
        for index, entry in enumerate(node):  # a stage addressed by its name
            if entry == step:
                node[index] = entry = {step: {}}
            if isinstance(entry, dict) and step in entry:
                if entry[step] is None:
                    entry[step] = {}
                return entry[step]
        if in_stages:
            raise _no_such_stage(node, step, override, source)
    raise RecipeError(
        [Problem(path=override, message="no list item or key with that name", value=step)], source
    )


def _no_such_stage(stages: list[Any], name: str, override: str, source: str) -> RecipeError:
    """A stage name in ``--set`` that the recipe's stages do not have: say whether it is a
    stage at all, and list what is known."""
    from pipeline.registry import stage_names

    present = [
        next(iter(entry)) if isinstance(entry, dict) and entry else str(entry) for entry in stages
    ]
    if name in stage_names():
        message = (
            f"the recipe has no {name!r} stage (its stages: {', '.join(present) or 'none'}); "
            "add it to the recipe's stages list to set its options"
        )
    else:
        message = f"unknown stage {name!r}; known stages: {', '.join(stage_names())}"
    return RecipeError([Problem(path=override, message=message, value=name)], source)


def load_recipe(path: str, overrides: list[str] | None = None) -> DataRecipe:
    data = apply_overrides(load_yaml(path), overrides or [], path)
    recipe = parse_recipe(data, source=path)
    return _resolve_relative_paths(recipe)


def _resolve_relative_paths(recipe: DataRecipe) -> DataRecipe:
    """Relative input/output paths are relative to the current directory, as on a shell.

    Kept as written; only made absolute so Ray workers (whose cwd differs) see the same file.
    """

    def absolute(path: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(path, tuple):
            return tuple(absolute(item) for item in path)
        if path is None:  # an optional path left unset (a stage's model: null)
            return None
        return path if "://" in path or path.startswith("/") else str(Path(path).resolve())

    inputs = tuple(
        item.model_copy(
            update={
                "path": absolute(item.path),
                "templates": tuple(absolute(t) for t in item.templates),
            }
        )
        for item in recipe.inputs
    )
    output = recipe.output.model_copy(update={"path": absolute(recipe.output.path)})
    stages = tuple(
        spec.model_copy(
            update={
                "config": spec.config.model_copy(
                    update={
                        name: absolute(getattr(spec.config, name))
                        for name in path_fields(type(spec.config))
                    }
                )
            }
        )
        for spec in recipe.stages
    )
    return recipe.model_copy(update={"inputs": inputs, "output": output, "stages": stages})


def preflight(recipe: DataRecipe, source: str, overwrite: bool, *, resume: bool = False) -> None:
    """Inputs exist, do not overlap the output, and the output is writable: empty, or a
    previous run's (with --overwrite), or an interrupted one (with --resume)."""
    problems = []
    for index, item in enumerate(recipe.inputs):
        try:
            list_input_files(item.path)
        except ValueError as error:  # InputNotFound, or a URI this project cannot use
            problems.append(
                Problem(path=f"inputs[{index}].path", message=str(error), value=item.path)
            )
        except OSError as error:  # an object store that refuses or does not answer
            problems.append(
                Problem(
                    path=f"inputs[{index}].path",
                    message=f"unreadable: {storage_problem(error)}",
                    value=item.path,
                )
            )
    problems.extend(_check_stage_files(recipe))
    overlaps = _check_overlap(recipe)
    problems.extend(overlaps or _check_output(recipe.output.path, overwrite, resume))
    if problems:
        raise RecipeError(problems, source)


def _location(path: str) -> str:
    """A path compared for overlap: symlinks resolved locally, URIs as written."""
    path = fixed_prefix(path)
    return path.rstrip("/") if "://" in path else os.path.realpath(path)


def _inside(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _check_overlap(recipe: DataRecipe) -> list[Problem]:
    """An output inside an input is read back as input; an input inside the output is
    mixed with it, and --overwrite would be asked to delete it. Both are refused."""
    output = _location(recipe.output.path)
    problems = []
    for index, item in enumerate(recipe.inputs):
        source = _location(item.path)
        if _inside(output, source):
            message = (
                f"is inside inputs[{index}].path {item.path!r}: the run would read its own "
                "output back as input; choose an output outside every input"
            )
            problems.append(Problem(path="output.path", message=message, value=recipe.output.path))
        elif _inside(source, output):
            message = (
                f"is inside output.path {recipe.output.path!r}: the run writes and --overwrite "
                "deletes there; keep inputs outside the output"
            )
            problems.append(Problem(path=f"inputs[{index}].path", message=message, value=item.path))
    return problems


def _check_stage_files(recipe: DataRecipe) -> list[Problem]:
    """Files a stage reads (blocklists, evaluation sets, models) exist, before Ray starts."""
    problems = []
    for index, spec in enumerate(recipe.stages):
        if not spec.config.enabled:
            continue
        for name in path_fields(type(spec.config)):
            value = getattr(spec.config, name)
            if value is None:
                continue
            for position, path in enumerate(value if isinstance(value, tuple) else (value,)):
                where = f"stages[{index}].{spec.name}.{name}"
                where += f"[{position}]" if isinstance(value, tuple) else ""
                try:
                    filesystem, local = open_filesystem(path)
                    missing = filesystem.get_file_info(local).type == pafs.FileType.NotFound
                except (OSError, ValueError) as error:
                    problems.append(Problem(path=where, message=f"unreadable: {error}", value=path))
                    continue
                if missing:
                    problems.append(Problem(path=where, message="file not found", value=path))
    return problems


def _check_output(path: str, overwrite: bool, resume: bool) -> list[Problem]:
    where = "output.path"
    try:
        filesystem, root = open_filesystem(path)
        info = filesystem.get_file_info(root)
        if info.type == pafs.FileType.File:
            return [Problem(path=where, message="is a file; expected a directory", value=path)]
        if info.type == pafs.FileType.Directory:
            problem = _previous_run_problem(path, overwrite, resume)
            if problem:
                return [Problem(path=where, message=problem, value=path)]
        elif resume:
            return [Problem(path=where, message="--resume: no run here to continue", value=path)]
        filesystem.create_dir(root, recursive=True)
        probe = posixpath.join(root, f".write-probe-{uuid.uuid4().hex}")
        with filesystem.open_output_stream(probe) as stream:
            stream.write(b"ok")
        filesystem.delete_file(probe)
    except OSError as error:
        return [Problem(path=where, message=f"not writable: {storage_problem(error)}", value=path)]
    except ValueError as error:
        return [Problem(path=where, message=f"not writable: {error}", value=path)]
    return []


def _previous_run_problem(path: str, overwrite: bool, resume: bool) -> str | None:
    """What stands in the way of writing into an existing directory, if anything."""
    owned, foreign = previous_run_files(path)
    run = RunDirectory(path)
    unfinished = run.marker() is not None and not run.finished()
    if resume:
        if unfinished:
            return None
        if run.finished():
            return "--resume: the run here finished; pass --overwrite to run it again"
        return "--resume: no interrupted instructflow run here (no .instructflow/run.json)"
    filesystem, root = open_filesystem(path)
    if not filesystem.get_file_info(pafs.FileSelector(root)):
        return None
    if not overwrite:
        if unfinished:
            return (
                "holds an unfinished run (killed, or still running); pass --resume to "
                "continue it or --overwrite to start again"
            )
        return "is not empty; pass --overwrite to replace a previous run"
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        return (
            f"holds files that no instructflow run recorded ({shown}); --overwrite deletes "
            "only a previous run's own files: move these away or choose another output"
        )
    return None


def previous_run_files(path: str) -> tuple[list[str], list[str]]:
    """(files a previous run recorded as its own, every other file) under ``path``, as
    relative paths. A run's own: the shards its manifest (or its commit plan, when a
    commit was cut short) lists, its documents, and its hidden ``.instructflow/``."""
    filesystem, root = open_filesystem(path)
    run = RunDirectory(path)
    manifest = read_json(run.uri("manifest.json"))
    plan = read_json(run.uri(COMMIT_PLAN))
    recorded: set[str] = set()
    if manifest is not None or run.marker() is not None:
        recorded.update(RUN_DOCUMENTS)
        recorded.update(shard["path"] for shard in (manifest or {}).get("shards", []))
        recorded.update((plan or {}).get("shards", []))
    owned, foreign = [], []
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(root.rstrip("/")) :].lstrip("/")
        ours = relative in recorded or (recorded and relative.startswith(RUN_DIRECTORY + "/"))
        (owned if ours else foreign).append(relative)
    return sorted(owned), sorted(foreign)


def clear_previous_run(path: str) -> None:
    """Delete what a previous data run recorded as its own in ``path``, and nothing else:
    preflight has refused a directory that holds any other file."""
    filesystem, root = open_filesystem(path)
    owned, foreign = previous_run_files(path)
    if foreign:  # preflight refuses this; checked again so no caller can skip it
        raise ValueError(f"{path}: not a previous run's own files: {', '.join(foreign[:5])}")
    # manifest.json first: from then on the run no longer looks finished; the run marker
    # last, so a deletion cut short still leaves files that --overwrite knows as the run's.
    for relative in sorted(owned, key=lambda name: (name != "manifest.json", name == RUN_MARKER)):
        filesystem.delete_file(posixpath.join(root, relative))
    remove_empty_directories(filesystem, root)


def remove_empty_directories(filesystem: pafs.FileSystem, root: str) -> None:
    """Directories under ``root`` left empty (deepest first)."""
    directories = [
        info.path
        for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
        if info.type == pafs.FileType.Directory
    ]
    for directory in sorted(directories, key=len, reverse=True):
        if not filesystem.get_file_info(pafs.FileSelector(directory)):
            filesystem.delete_dir(directory)
