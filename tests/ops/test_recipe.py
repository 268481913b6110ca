"""Recipes: every problem is caught before Ray starts, with key path, value and what's allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ops.recipe import apply_overrides, load_recipe, preflight
from pipeline.config import RecipeError, parse_recipe

ROOT = Path(__file__).resolve().parents[2]


def write_recipe(tmp_path: Path, **changes) -> Path:
    (tmp_path / "in.jsonl").write_text('{"instruction": "Say hi", "input": "", "output": "Hi!"}\n')
    data = {
        "name": "t",
        "inputs": [{"path": str(tmp_path / "in.jsonl")}],
        "stages": [{"clean": {}}, {"length": {"min_response_chars": 2}}],
        "output": {"path": str(tmp_path / "out")},
    }
    data.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problem_paths(error: RecipeError) -> dict[str, str]:
    return {p.path: p.message for p in error.problems}


def test_valid_recipe_round_trips_to_plain_data(tmp_path):
    recipe = load_recipe(str(write_recipe(tmp_path)))
    assert [s.name for s in recipe.stages] == ["clean", "length"]
    assert parse_recipe(recipe.to_plain()).fingerprint() == recipe.fingerprint()


def test_unknown_key_lists_allowed_keys(tmp_path):
    path = write_recipe(tmp_path, outptu={"path": "x"})
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path))
    problems = problem_paths(caught.value)
    assert (
        "outptu" in problems
        and "allowed: inputs, name, output, run, seed, stages" in problems["outptu"]
    )
    assert str(path) in str(caught.value)


def test_unknown_stage_and_bad_stage_option_are_both_reported(tmp_path):
    path = write_recipe(
        tmp_path,
        stages=[
            {"lenght": {}},
            {"length": {"min_response_chars": "many"}},
            {"clean": {"normalisation": "NFC"}},
        ],
    )
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path))
    problems = problem_paths(caught.value)
    assert "unknown stage; allowed:" in problems["stages[0]"] and "length" in problems["stages[0]"]
    assert "stages[1].length.min_response_chars" in problems
    assert "unknown key; allowed:" in problems["stages[2].clean.normalisation"]
    assert "'many'" in str(caught.value)


def test_set_overrides_by_stage_name_index_and_nested_key(tmp_path):
    data = yaml.safe_load(write_recipe(tmp_path).read_text())
    apply_overrides(
        data,
        [
            "stages.length.min_response_chars=7",
            "stages.0.clean.strip_html=false",
            "output.compression=snappy",
            "seed=42",
        ],
        "recipe.yaml",
    )
    recipe = parse_recipe(data)
    assert recipe.stages[1].config.min_response_chars == 7
    assert recipe.stages[0].config.strip_html is False
    assert recipe.output.compression == "snappy" and recipe.seed == 42


def test_set_with_unknown_stage_name_fails_clearly(tmp_path):
    data = yaml.safe_load(write_recipe(tmp_path).read_text())
    with pytest.raises(RecipeError) as caught:
        apply_overrides(data, ["stages.dedup.threshold=0.5"], "recipe.yaml")
    message = problem_paths(caught.value)["stages.dedup.threshold=0.5"]
    assert "unknown stage 'dedup'; known stages: clean, pii" in message
    assert "near_dedup" in message and "exact_dedup" in message


@pytest.mark.parametrize("override", ["stages.lenght=5", "stages.lenght.min_response_chars=5"])
def test_set_with_a_misspelt_stage_names_it_with_or_without_stages(tmp_path, override):
    for data in (yaml.safe_load(write_recipe(tmp_path).read_text()), {"name": "no-stages"}):
        with pytest.raises(RecipeError) as caught:
            apply_overrides(data, [override], "recipe.yaml")
        assert "unknown stage 'lenght'; known stages:" in problem_paths(caught.value)[override]


def test_set_on_a_known_stage_the_recipe_lacks_lists_the_recipe_stages(tmp_path):
    data = yaml.safe_load(write_recipe(tmp_path).read_text())
    with pytest.raises(RecipeError) as caught:
        apply_overrides(data, ["stages.sample.total=5"], "recipe.yaml")
    message = problem_paths(caught.value)["stages.sample.total=5"]
    assert "the recipe has no 'sample' stage (its stages: clean, length)" in message


def test_missing_input_and_nonempty_output_fail_preflight(tmp_path):
    path = write_recipe(tmp_path, inputs=[{"path": str(tmp_path / "nope/*.jsonl")}])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "data").mkdir()
    recipe = load_recipe(str(path))
    with pytest.raises(RecipeError) as caught:
        preflight(recipe, str(path), overwrite=False)
    problems = problem_paths(caught.value)
    assert "inputs[0].path" in problems
    assert "pass --overwrite" in problems["output.path"]


def test_overwrite_refuses_a_directory_with_foreign_files(tmp_path):
    path = write_recipe(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    with pytest.raises(RecipeError, match="thesis.tex"):
        preflight(load_recipe(str(path)), str(path), overwrite=True)


def test_unwritable_output_is_reported(tmp_path):
    (tmp_path / "afile").write_text("x")
    path = write_recipe(tmp_path, output={"path": str(tmp_path / "afile" / "out")})
    with pytest.raises(RecipeError) as caught:
        preflight(load_recipe(str(path)), str(path), overwrite=False)
    assert "not writable" in problem_paths(caught.value)["output.path"]


def test_cli_reports_bad_recipe_without_starting_ray(tmp_path):
    path = write_recipe(tmp_path, stages=[{"length": {"min_response_chars": -1}}])
    completed = subprocess.run(
        [sys.executable, "-m", "ops.cli", "data", "run", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "stages[0].length.min_response_chars" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "Ray" not in completed.stderr and "Ray" not in completed.stdout


@pytest.mark.parametrize(
    "recipe", sorted(ROOT.glob("examples/**/recipe*.yaml")), ids=lambda p: p.parent.name
)
def test_every_shipped_example_recipe_validates(recipe):
    loaded = load_recipe(str(recipe))
    assert loaded.inputs and loaded.stages
    for item in loaded.inputs:
        # out/: written by an earlier step of make demo (the feedback loop's export).
        made_by_demo = Path(item.path).resolve().is_relative_to((ROOT / "out").resolve())
        assert Path(item.path).exists() or "*" in item.path or made_by_demo, item.path
