"""``instructflow run``: the recipe of steps is validated before anything runs (unknown
commands, references to unknown, later or the same step, a step's own recipe problems under
its key path), what to run again is decided from state.json, and one real chain on the
session's Ray (data run -> tiny-model -> sft) fails at sft, keeps the finished steps, and
completes on the rerun without running them again, with a report linking every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ops.run_recipe import load_run_recipe
from ops.run_steps import StepFailed, foreign_outputs, plan_actions, run_recipe
from pipeline.config import RecipeError

ROOT = Path(__file__).resolve().parents[2]
ALPACA = ROOT / "examples" / "quickstart" / "data" / "alpaca_en.jsonl"
SFT = ROOT / "examples" / "quickstart" / "sft.yaml"


def write(directory: Path, name: str, document: dict) -> str:
    path = directory / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def problems(path: str, overrides: list[str] | None = None) -> dict[str, str]:
    with pytest.raises(RecipeError) as raised:
        load_run_recipe(path, overrides)
    return {problem.path: problem.message for problem in raised.value.problems}


def tiny_steps(directory: Path, *steps: dict) -> str:
    """A run recipe of steps that need no recipe files (tiny-model, generate)."""
    return write(
        directory, "run.yaml", {"name": "t", "output": str(directory / "out"), "steps": list(steps)}
    )


def tiny(name: str, data: str = "/data") -> dict:
    return {"name": name, "command": "train tiny-model", "data": data}


# ----- validation ------------------------------------------------------------------------


def test_an_unknown_command_is_named_with_the_allowed_ones(tmp_path):
    found = problems(tiny_steps(tmp_path, {"name": "a", "command": "train ppo", "recipe": "x"}))
    assert "unknown command" in found["steps[0].command"]
    assert "train sft" in found["steps[0].command"] and "eval ifeval" in found["steps[0].command"]


def test_references_to_unknown_later_or_the_same_step_are_refused(tmp_path):
    path = tiny_steps(
        tmp_path,
        tiny("first", "${steps.nobody.output}"),
        tiny("second", "${steps.third.output}/data"),
        tiny("third", "${steps.second.output}"),  # with the one above: a cycle
        tiny("fourth", "${steps.fourth.output}"),
        tiny("fifth", "${steps.first}"),
        {"name": "sixth", "command": "generate", "checkpoint": "c", "prompt": "p"},
        tiny("seventh", "${steps.sixth.output}"),
    )
    found = problems(path)
    assert "no step named 'nobody'" in found["steps[0].data"]
    assert "comes later" in found["steps[1].data"] and "cycle" in found["steps[1].data"]
    assert "steps[2].data" not in found  # third may use second: it comes earlier
    assert "its own output" in found["steps[3].data"]
    assert "${steps.NAME.output}" in found["steps[4].data"]
    assert "writes no files" in found["steps[6].data"]


def test_options_names_and_a_steps_own_recipe_are_checked_under_its_key_path(tmp_path):
    path = tiny_steps(
        tmp_path,
        {**tiny("model"), "size": "huge"},
        tiny("model"),
        {
            "name": "sft",
            "command": "train sft",
            "recipe": str(SFT),
            "set": ["training.max_steps=0"],
        },
    )
    found = problems(path)
    assert "'tiny', 'small' or '0.5b'" in found["steps[0].size"]
    assert found["steps[1].name"] == "names must differ"
    assert found[f"steps[2] sft ({SFT}) training.max_steps"] == "Input should be greater than 0"


def test_set_addresses_steps_by_name(tmp_path):
    path = tiny_steps(tmp_path, tiny("model"), tiny("other", "${steps.model.output}"))
    recipe = load_run_recipe(path, ["steps.model.output=elsewhere", f"output={tmp_path / 'o'}"])
    assert recipe.step("model").output == str(Path("elsewhere").resolve())
    assert recipe.step("other").options.data == recipe.step("model").output
    assert recipe.step("other").output == str(tmp_path / "o" / "other")
    assert "no step named 'nope'" in problems(path, ["steps.nope.output=x"])["--set"]


def test_the_shipped_end_to_end_recipe_validates(tmp_path):
    recipe = load_run_recipe(str(ROOT / "examples" / "end_to_end.yaml"), [f"output={tmp_path}"])
    commands = {step.command for step in recipe.steps}
    assert {"data run", "train tiny-model", "train sft", "train dpo", "train rl"} <= commands
    assert {"feedback generate", "feedback import", "feedback rate", "feedback export"} <= commands
    assert "eval ifeval" in commands
    sft = recipe.step("sft")
    assert sft.options.set[0] == f"data.path={tmp_path}/data"  # each output feeds the next


def test_the_command_validates_and_prints_its_plan(tmp_path, capsys):
    from ops.cli import main

    assert main(["run", tiny_steps(tmp_path, tiny("a"), tiny("b")), "--dry-run"]) == 0
    assert "a                train tiny-model   run" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    assert main(["run", tiny_steps(tmp_path, tiny("a", "${steps.b.output}"), tiny("b"))]) == 2
    assert "steps[0].data: step 'b' comes later" in capsys.readouterr().err


# ----- what runs again -------------------------------------------------------------------


def finished(recipe, name: str, fingerprint: str, status: str = "finished") -> dict:
    return {"status": status, "fingerprint": fingerprint, "output": recipe.step(name).output}


def test_finished_unchanged_steps_are_skipped_and_the_failed_one_resumes(tmp_path):
    path = tiny_steps(tmp_path, tiny("a"), tiny("b"), tiny("c"), tiny("d"))
    recipe = load_run_recipe(path)
    for name in "ab":
        Path(recipe.step(name).output).mkdir(parents=True)
    prints = {"a": "1", "b": "2", "c": "3", "d": "4"}
    state = {
        "steps": {
            "a": finished(recipe, "a", "1"),
            "b": finished(recipe, "b", "2"),
            "c": finished(recipe, "c", "3", status="failed"),
        }
    }

    def plan(**options):
        return plan_actions(recipe, state, prints, leftovers=lambda step: True, **options)

    assert plan() == {"a": "skip", "b": "skip", "c": "resume", "d": "run"}
    assert plan_actions(recipe, state, prints, leftovers=lambda step: False)["c"] == "run"
    assert plan(from_step="b") == {"a": "skip", "b": "run", "c": "run", "d": "run"}
    assert set(plan(overwrite=True).values()) == {"run"}
    # A changed recipe, or an output that is gone, runs that step and every later one again.
    assert plan_actions(recipe, state, {**prints, "b": "changed"})["b"] == "run"
    Path(recipe.step("a").output).rmdir()
    assert plan() == {"a": "run", "b": "run", "c": "run", "d": "run"}


def test_outputs_no_earlier_run_wrote_are_not_replaced_without_overwrite(tmp_path):
    recipe = load_run_recipe(tiny_steps(tmp_path, tiny("a")))
    (Path(recipe.step("a").output) / "someone's").mkdir(parents=True)
    actions = {"a": "run"}
    found = foreign_outputs(recipe, {"steps": {}}, actions, overwrite=False)
    assert found and found[0].path == "steps[0].output" and "--overwrite" in found[0].message
    assert not foreign_outputs(recipe, {"steps": {}}, actions, overwrite=True)
    ours = {"steps": {"a": finished(recipe, "a", "1", status="failed")}}
    assert not foreign_outputs(recipe, ours, actions, overwrite=False)


def test_from_an_unknown_step_is_refused(tmp_path):
    with pytest.raises(RecipeError, match="no such step"):
        run_recipe(tiny_steps(tmp_path, tiny("a")), from_step="b", dry_run=True)


# ----- one real chain --------------------------------------------------------------------


def chain(directory: Path, train_split: str) -> str:
    data = write(
        directory,
        "data.yaml",
        {
            "name": "chain-data",
            "seed": 3,
            "inputs": [{"path": str(ALPACA), "domain": "general"}],
            "stages": [
                {"clean": {}},
                {"length": {"min_response_chars": 2}},
                {"split": {"fractions": {"train": 0.8, "validation": 0.2}}},
            ],
            "output": {"path": str(directory / "replaced by the step output")},
        },
    )
    sft = [
        "data.path=${steps.data.output}",
        "model.name_or_path=${steps.model.output}",
        f"data.train_split={train_split}",
        "prompt.max_length=64",
        "training.max_steps=2",
        "training.micro_batch_size=2",
        "training.gradient_accumulation=1",
        "training.log_every_steps=1",
        "eval.every_steps=2",
        "eval.samples=0",
        "scaling.num_workers=1",
    ]
    steps = [
        {"name": "data", "command": "data run", "recipe": data},
        {
            "name": "model",
            "command": "train tiny-model",
            "data": "${steps.data.output}",
            "vocab_size": 512,
        },
        {"name": "sft", "command": "train sft", "recipe": str(SFT), "set": sft},
    ]
    return write(
        directory, "run.yaml", {"name": "chain", "output": str(directory / "run"), "steps": steps}
    )


@pytest.mark.slow
def test_a_chain_fails_at_sft_and_the_rerun_skips_the_finished_steps(ray_session, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(
        StepFailed, match=r"(?s)step 'sft' \(train sft\) failed: .*data.train_split"
    ):
        run_recipe(chain(tmp_path, "no-such-split"), progress_bars=False)
    state = json.loads((run / "state.json").read_text())
    assert [state["steps"][name]["status"] for name in ("data", "model", "sft")] == [
        "finished",
        "finished",
        "failed",
    ]
    failed = json.loads((run / "report.json").read_text())
    assert not failed["finished"] and "data.train_split" in failed["steps"][2]["error"]
    made = {
        path: path.stat().st_mtime_ns
        for path in (run / "data/manifest.json", run / "model/config.json")
    }

    outcome = run_recipe(chain(tmp_path, "train"), progress_bars=False)
    assert outcome.actions == {"data": "skip", "model": "skip", "sft": "run"}
    assert {path: path.stat().st_mtime_ns for path in made} == made  # not run again
    state = json.loads((run / "state.json").read_text())
    assert [state["steps"][name]["attempts"] for name in ("data", "model", "sft")] == [1, 1, 2]

    report = json.loads((run / "report.json").read_text())
    assert report["finished"] and [s["this_run"] for s in report["steps"]] == [
        "reused",
        "reused",
        "ran",
    ]
    data, model, sft = report["steps"]
    assert data["figures"]["conservation"]["balanced"]
    assert {"report.html", "stats.json"} <= set(data["links"])
    assert sft["figures"]["best_step"] == 2 and "validation_loss" in sft["figures"]
    page = (run / "report.html").read_text()
    for step in report["steps"]:
        assert step["seconds"] is not None
        for target in step["links"].values():
            assert Path(target).exists(), target
            assert f'href="{Path(target).relative_to(run)}"' in page
