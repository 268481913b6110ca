"""Generation recipes end to end: ``self_instruct`` then ``answer`` with a tiny random
transformers model (sampling seeded per request) on the session's Ray, into the normal
stages, run twice. The text is garbage; what is checked is the accounting, the provenance
and the bytes. The parsing paths a random model never reaches are test_self_instruct's,
against a scripted server. And the shipped ``examples/generate`` recipes validate and name
each other's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "generate"
SEEDS = EXAMPLES / "seed_tasks.jsonl"
INSTRUCTIONS = ("Explain why the sea is salty.", "Name two rivers in Europe.")
GENERATING = ("self_instruct", "answer")


def tiny_causal(path: Path) -> str:
    from train.tiny import build_model, train_tokenizer

    texts = [json.loads(line)["instruction"] for line in SEEDS.read_text().splitlines()]
    tokenizer = train_tokenizer(iter([*texts, "Task 9: Name a colour."] * 10), vocab_size=300)
    build_model(tokenizer, "causal", "tiny", 0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def write_recipe(root: Path, model: str, name: str) -> str:
    import yaml

    backend = {"kind": "transformers", "model": model, "batch_size": 4}
    recipe = {
        "seed": 13,
        "inputs": [
            {"path": str(SEEDS), "format": "self_instruct", "language": "en"},
            {"path": str(root / "instructions.jsonl"), "format": "alpaca", "language": "en"},
        ],
        "stages": [
            {
                "self_instruct": {
                    "backend": backend,
                    "rounds": 1,
                    "prompts_per_round": 2,
                    "num_seed": 3,
                    "num_machine": 1,
                    "max_tokens": 16,  # sampled at the default 0.7, seeded per request
                    "instance_max_tokens": 16,
                }
            },
            {
                "answer": {
                    "backend": backend,
                    "temperature": 0.7,  # seeded: a random model's greedy reply is blank
                    "max_tokens": 8,
                    "drop_truncated": False,
                }
            },
            {"clean": {}},
            {"length": {"min_response_chars": 1}},
            {"exact_dedup": {"key": "conversation"}},
        ],
        "output": {"path": str(root / name)},
        "run": {"progress_bars": False, "checkpoints": False},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture(scope="module")
def generated(ray_session, tmp_path_factory):
    from ops.datarun import run_data

    root = tmp_path_factory.mktemp("generate-recipes")
    model = tiny_causal(root / "tiny")
    (root / "instructions.jsonl").write_text(
        "".join(json.dumps({"instruction": text, "output": ""}) + "\n" for text in INSTRUCTIONS)
    )
    for name in ("first", "second"):
        run_data(write_recipe(root, model, name))
    return root, model


def read(root: Path, name: str) -> tuple[dict, dict, list[dict], list[dict]]:
    import pyarrow.parquet as pq

    out = root / name
    stats = json.loads((out / "stats.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return (
        stats,
        manifest,
        pq.read_table(out / "data").to_pylist(),
        pq.read_table(out / "rejects").to_pylist(),
    )


def stage_of(row: dict) -> str | None:
    return json.loads(row["augmentation"])["stage"] if row["augmentation"] else None


@pytest.mark.slow
def test_input_plus_created_is_output_plus_rejects(generated):
    root, _ = generated
    stats, manifest, output, rejects = read(root, "first")
    seeds = len(SEEDS.read_text().splitlines())
    created = [row for row in output + rejects if row["augmentation"]]
    assert created and {stage_of(row) for row in created} == set(GENERATING)
    assert stats["conservation"] == {
        "input": seeds + len(INSTRUCTIONS),
        "created": len(created),
        "output": len(output),
        "rejects": len(rejects),
        "quarantine": 0,
        "balanced": True,
    }
    assert manifest["rows"] == {"output": len(output), "rejects": len(rejects), "quarantine": 0}
    funnel = {stage["stage"]: stage for stage in stats["stages"]}
    for name in GENERATING:
        made = [row for row in created if stage_of(row) == name]
        assert funnel[name]["created"] == len(made)
    for stage in stats["stages"][1:]:
        gained = stage["in"] + stage.get("created", 0) - sum(stage["dropped"].values())
        assert gained == stage["out"], stage["stage"]
    # Each instruction without a reply is replaced by its one answer.
    answers = [row for row in created if stage_of(row) == "answer"]
    assert sorted(row["messages"][0]["content"] for row in answers) == sorted(INSTRUCTIONS)
    assert funnel["answer"]["dropped"]["answer.replaced_by_answers"] == len(INSTRUCTIONS)
    assert any(stage_of(row) == "answer" for row in output)  # so the bytes compared hold some


@pytest.mark.slow
def test_every_reject_has_a_reason_of_the_stage_that_dropped_it(generated):
    from pipeline.registry import stage_class

    root, _ = generated
    stats, _, _, rejects = read(root, "first")
    dropped: dict[str, int] = {}
    for stage in stats["stages"][1:]:
        assert set(stage["dropped"]) <= set(stage_class(stage["stage"]).drop_reasons)
        for reason, count in stage["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
    found: dict[str, int] = {}
    for row in rejects:
        assert row["drop_reason"], row["id"]
        found[row["drop_reason"]] = found.get(row["drop_reason"], 0) + 1
    assert found == dropped
    made = [row for row in rejects if stage_of(row) == "self_instruct"]
    assert made  # a random model's lists do not parse: each failure is a reject with a reason
    assert all(row["drop_detail"] for row in made)


@pytest.mark.slow
def test_created_rows_name_their_model_round_and_parent(generated):
    root, model = generated
    _, _, output, rejects = read(root, "first")
    originals = {row["id"]: row for row in output + rejects if not row["augmentation"]}
    seed_ids = {row["id"] for row in originals.values() if row["source_format"] == "self_instruct"}
    for row in output + rejects:
        if not row["augmentation"]:
            continue
        augmentation = json.loads(row["augmentation"])
        generation = json.loads(row["meta"])["generation"]
        assert augmentation["model"] == generation["model"] == model
        assert row["parent_id"] in originals
        parent = originals[row["parent_id"]]
        assert (row["source_file"], row["source_line"]) == (
            parent["source_file"],
            parent["source_line"],
        )
        if stage_of(row) == "self_instruct":
            assert augmentation["round"] == generation["round"] == 1
            assert row["parent_id"] in generation["prompt_seeds"]
            assert set(generation["prompt_seeds"]) <= set(originals)
        else:
            assert generation["stage"] == "answer"
            assert augmentation["from_id"] == row["parent_id"] not in seed_ids


@pytest.mark.slow
def test_the_same_recipe_twice_gives_byte_identical_shards(generated):
    root, _ = generated
    for part in ("data", "rejects"):
        first = sorted((root / "first" / part).rglob("*.parquet"))
        second = sorted((root / "second" / part).rglob("*.parquet"))
        assert first and [p.name for p in first] == [p.name for p in second]
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


# ----- the shipped examples ---------------------------------------------------------------

DATA_RECIPES = ("self_instruct.yaml", "describe_data.yaml", "describe.yaml")


@pytest.mark.parametrize("name", DATA_RECIPES)
def test_the_example_data_recipes_validate(name):
    from ops.cli import GENERATING_STAGES
    from ops.recipe import load_recipe

    recipe = load_recipe(str(EXAMPLES / name))
    assert all(Path(item.path).exists() for item in recipe.inputs)
    generates = any(spec.name in GENERATING_STAGES for spec in recipe.stages)
    assert generates == (name != "describe_data.yaml")  # `data generate` takes the others


def test_the_examples_train_and_generate_from_each_others_outputs():
    import yaml

    from ops.recipe import load_recipe
    from train.config import parse_sft_recipe

    def backend_models(name: str) -> list[str]:
        stages = yaml.safe_load((EXAMPLES / name).read_text())["stages"]
        return [
            options["backend"]["model"]
            for stage in stages
            for options in stage.values()
            if "backend" in options
        ]

    describe_sft = parse_sft_recipe(yaml.safe_load((EXAMPLES / "describe_sft.yaml").read_text()))
    quickstart_sft = yaml.safe_load((ROOT / "examples/quickstart/sft.yaml").read_text())
    descriptions = load_recipe(str(EXAMPLES / "describe_data.yaml"))
    assert describe_sft.data.path == descriptions.output.path.removeprefix(f"{ROOT}/")
    assert describe_sft.prompt.format == "instruction_output"
    sft_outputs = (describe_sft.output.path, quickstart_sft["output"]["path"])
    for model in backend_models("self_instruct.yaml") + backend_models("describe.yaml"):
        assert model in sft_outputs  # a training output stands for its best checkpoint
