"""--overwrite deletes only what a previous run recorded as its own; inputs and output that
overlap are refused before Ray starts; --resume and readers tell an unfinished run from a
finished one. No Ray here: all of it is pre-flight."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ops.recipe import clear_previous_run, load_recipe, preflight
from pipeline.checkpoint import RUN_MARKER, RunDirectory, unfinished_run_problem
from pipeline.config import RecipeError

RECORD = '{"instruction": "Say hi", "input": "", "output": "Hi!"}\n'


def write_recipe(tmp_path: Path, inputs: list[str], output: Path) -> Path:
    data = {
        "name": "t",
        "inputs": [{"path": str(path)} for path in inputs],
        "stages": [{"length": {"min_response_chars": 1}}],
        "output": {"path": str(output)},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems_of(recipe_path: Path, **flags) -> dict[str, str]:
    with pytest.raises(RecipeError) as caught:
        preflight(load_recipe(str(recipe_path)), str(recipe_path), **flags)
    return {problem.path: problem.message for problem in caught.value.problems}


def finished_run(output: Path, shards: list[str]) -> None:
    """What a finished run leaves: its shards, documents, marker and manifest."""
    for relative in shards:
        (output / relative).parent.mkdir(parents=True, exist_ok=True)
        (output / relative).write_bytes(b"PAR1")
    for name in ("stats.json", "report.html", "recipe.yaml"):
        (output / name).write_text("{}")
    RunDirectory(str(output)).write_marker("abc", [])
    manifest = {"shards": [{"path": relative} for relative in shards]}
    (output / "manifest.json").write_text(json.dumps(manifest))


def test_overwrite_never_deletes_an_input_in_data_without_a_manifest(tmp_path):
    output = tmp_path / "out"
    (output / "data").mkdir(parents=True)
    precious = output / "data" / "mine.jsonl"
    precious.write_text(RECORD)
    (tmp_path / "in.jsonl").write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / "in.jsonl"], output)

    message = problems_of(recipe, overwrite=True)["output.path"]
    assert "no instructflow run recorded (data/mine.jsonl)" in message
    with pytest.raises(ValueError, match="data/mine.jsonl"):
        clear_previous_run(str(output))
    assert precious.read_text() == RECORD


def test_overwrite_refuses_unknown_files_beside_a_finished_run(tmp_path):
    output = tmp_path / "out"
    finished_run(output, ["data/part-00000-of-00001.parquet"])
    (output / "data" / "notes.txt").write_text("keep me")
    (output / "extra.csv").write_text("a,b\n")
    (tmp_path / "in.jsonl").write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / "in.jsonl"], output)
    message = problems_of(recipe, overwrite=True)["output.path"]
    assert "(data/notes.txt, extra.csv)" in message
    assert (output / "data" / "notes.txt").exists()


def test_overwrite_deletes_exactly_the_recorded_run(tmp_path):
    output = tmp_path / "out"
    shards = [
        "data/train/part-00000-of-00001.parquet",
        "rejects/part-00000-of-00002.parquet",
        "rejects/part-00001-of-00002.parquet",
    ]
    finished_run(output, shards)
    (tmp_path / "in.jsonl").write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / "in.jsonl"], output)
    preflight(load_recipe(str(recipe)), str(recipe), overwrite=True)
    clear_previous_run(str(output))
    assert list(output.iterdir()) == []


def test_a_shard_the_manifest_does_not_list_is_not_the_runs(tmp_path):
    output = tmp_path / "out"
    finished_run(output, ["data/part-00000-of-00001.parquet"])
    (output / "data" / "part-00007-of-00009.parquet").write_bytes(b"PAR1")
    (tmp_path / "in.jsonl").write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / "in.jsonl"], output)
    assert "part-00007-of-00009" in problems_of(recipe, overwrite=True)["output.path"]


@pytest.mark.parametrize(
    ("input_relative", "output_relative", "where"),
    [
        ("corpus", "corpus/out", "output.path"),  # output inside an input directory
        ("corpus/*.jsonl", "corpus/out", "output.path"),  # ... inside a glob's directory
        ("corpus", "corpus", "output.path"),  # the same directory
        ("out/corpus/in.jsonl", "out", "inputs[0].path"),  # an input inside the output
        ("out/corpus", "out", "inputs[0].path"),
    ],
)
def test_overlapping_inputs_and_output_are_refused_naming_both(
    tmp_path, input_relative, output_relative, where
):
    corpus_file = tmp_path / input_relative.replace("*.jsonl", "in.jsonl")
    if not corpus_file.suffix:
        corpus_file = corpus_file / "in.jsonl"
    corpus_file.parent.mkdir(parents=True, exist_ok=True)
    corpus_file.write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / input_relative], tmp_path / output_relative)
    with pytest.raises(RecipeError) as caught:
        preflight(load_recipe(str(recipe)), str(recipe), overwrite=True)
    (problem,) = caught.value.problems
    assert problem.path == where
    other = "inputs[0].path" if where == "output.path" else "output.path"
    assert other in problem.message
    assert str(tmp_path / input_relative) in f"{problem.message} {problem.value}"
    assert str(tmp_path / output_relative) in f"{problem.message} {problem.value}"
    assert corpus_file.read_text() == RECORD


def test_a_sibling_with_a_common_prefix_is_not_an_overlap(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "in.jsonl").write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / "corpus"], tmp_path / "corpus-out")
    preflight(load_recipe(str(recipe)), str(recipe), overwrite=False)


def test_unfinished_run_needs_resume_or_overwrite_and_readers_refuse_it(tmp_path):
    output = tmp_path / "out"
    RunDirectory(str(output)).write_marker("abc", [])
    (tmp_path / "in.jsonl").write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / "in.jsonl"], output)

    assert "pass --resume to continue it" in problems_of(recipe, overwrite=False)["output.path"]
    preflight(load_recipe(str(recipe)), str(recipe), overwrite=False, resume=True)
    assert "unfinished instructflow data run" in unfinished_run_problem(str(output))
    inspect = subprocess.run(
        [sys.executable, "-m", "ops.cli", "data", "inspect", str(output)],
        capture_output=True,
        text=True,
    )
    assert inspect.returncode == 2 and "--resume" in inspect.stderr

    clear_previous_run(str(output))  # an unfinished run is also the run's own to delete
    assert not (output / RUN_MARKER).exists()


def test_resume_needs_an_unfinished_run(tmp_path):
    (tmp_path / "in.jsonl").write_text(RECORD)
    recipe = write_recipe(tmp_path, [tmp_path / "in.jsonl"], tmp_path / "out")
    assert (
        "no run here to continue"
        in problems_of(recipe, overwrite=False, resume=True)["output.path"]
    )
    finished_run(tmp_path / "out", ["data/part-00000-of-00001.parquet"])
    assert (
        "the run here finished" in problems_of(recipe, overwrite=False, resume=True)["output.path"]
    )
    assert unfinished_run_problem(str(tmp_path / "out")) is None
