"""Export rules: corrections -> SFT, best vs worst above a margin -> pairs, KTO thresholds,
provenance kept, and a recipe the data engine accepts."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from ops.feedback.export import ENGINE_FORMATS, ExportRules, write_export
from ops.feedback.items import record_automatic, save_annotation
from ops.feedback.store import FeedbackError
from tests.ops.feedback.conftest import id_of

PERU, COLOUR, FRENCH = (
    "What is the capital of Peru?",
    "Name a primary colour.",
    "Say hello in French.",
)


@pytest.fixture
def rated(store):
    save = lambda prompt, body: save_annotation(store, id_of(prompt), body)  # noqa: E731
    save(PERU, {"annotator": "ana", "scores": {"0": 5, "1": 1}, "best": 0})
    save(PERU, {"annotator": "ben", "scores": {"0": 4, "1": 2}, "correction": "Lima, Peru."})
    save(COLOUR, {"annotator": "ana", "scores": {"0": 4, "1": 4}, "best": 1})  # a tie
    save(FRENCH, {"annotator": "ana", "scores": {"0": 4, "1": 3, "2": 3}})
    record_automatic(store, "rules", "rules", id_of(FRENCH), 2, 1, {"reasons": {"empty": ""}})
    return store


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pairs_kto_and_sft_follow_the_rules(rated, tmp_path):
    summary = write_export(rated, str(tmp_path / "out"), ExportRules(margin=1.5))
    pairs = {p["item_id"]: p for p in read(tmp_path / "out" / "pairs.jsonl")}
    # Peru: means 4.5 vs 1.5 (gap 3); colour: tied, gap 0; French: 4 vs 1 (rules' 1 on "").
    assert set(pairs) == {id_of(PERU), id_of(FRENCH)}
    peru = pairs[id_of(PERU)]
    assert peru["messages"] == [{"role": "user", "content": PERU}]
    assert peru["chosen"] == {"role": "assistant", "content": "Lima."}
    assert peru["rejected"]["content"].startswith("I'm sorry")
    assert (peru["chosen_score"], peru["rejected_score"]) == (4.5, 1.5)
    assert peru["annotators"] == ["ana", "ben"] and peru["model"] == "/ckpt/step_0000010"
    assert peru["rated_at"].endswith("Z") and peru["scores"]["0"] == {"ana": 5, "ben": 4}
    assert pairs[id_of(FRENCH)]["rejected"]["content"] == ""
    kto = read(tmp_path / "out" / "kto.jsonl")
    tags = sorted((k["messages"][-1]["content"], k["kto_tag"]) for k in kto)
    # desirable: mean >= 4; undesirable: <= 2; French's 3s are neither.
    assert tags == [
        ("", False),
        ("Blue is one.", True),
        ("Bonjour !", True),
        ("I'm sorry, but I cannot help with that request.", False),
        ("Lima.", True),
        ("Red.", True),
    ]
    (sft,) = read(tmp_path / "out" / "sft.jsonl")
    assert sft["messages"][-1] == {"role": "assistant", "content": "Lima, Peru."}
    assert sft["annotator"] == "ben" and sft["item_id"] == id_of(PERU)
    assert summary["counts"] == {"sft": 1, "pairs": 2, "kto": 6}


def test_a_tie_on_the_mean_goes_to_the_best_pick(rated, tmp_path):
    write_export(rated, str(tmp_path / "out"), ExportRules(margin=0.0001))
    pairs = {p["item_id"]: p for p in read(tmp_path / "out" / "pairs.jsonl")}
    assert id_of(COLOUR) not in pairs  # a gap of 0 is under any margin
    rated_only_ana = ExportRules(margin=1, annotators=("ana",))
    write_export(rated, str(tmp_path / "ana"), rated_only_ana)
    pairs = {p["item_id"]: p for p in read(tmp_path / "ana" / "pairs.jsonl")}
    assert pairs[id_of(PERU)]["annotators"] == ["ana"]
    assert read(tmp_path / "ana" / "sft.jsonl") == []  # ben's correction is left out


def test_rules_and_an_existing_export_are_checked(rated, tmp_path):
    with pytest.raises(FeedbackError, match="--margin"):
        ExportRules(margin=0)
    with pytest.raises(FeedbackError, match="--undesirable"):
        ExportRules(desirable=3, undesirable=3)
    write_export(rated, str(tmp_path / "out"), ExportRules())
    with pytest.raises(FeedbackError, match="--overwrite"):
        write_export(rated, str(tmp_path / "out"), ExportRules())
    write_export(rated, str(tmp_path / "out"), ExportRules(), overwrite=True)


def test_the_recipe_validates_and_the_engine_reads_every_file(rated, tmp_path):
    from ops.recipe import load_recipe, preflight
    from pipeline.discover import list_input_files
    from pipeline.ingest import ingest_file

    summary = write_export(rated, str(tmp_path / "out"), ExportRules())
    assert summary["formats_the_engine_cannot_read_yet"] == []
    recipe = load_recipe(summary["recipe"], [])
    preflight(recipe, summary["recipe"], overwrite=False)
    assert [item.format for item in recipe.inputs] == list(ENGINE_FORMATS.values())
    tables = {
        item.format: next(ingest_file(list_input_files(item.path)[0], item, seed=0))
        for item in recipe.inputs
    }
    for table in tables.values():
        assert pc.all(pc.is_null(table.column("drop_reason"))).as_py()
    sft_meta = json.loads(tables["messages"].column("meta")[0].as_py())
    assert sft_meta["annotator"] == "ben" and sft_meta["item_id"] == id_of(PERU)
    pairs = tables["pairwise"].to_pylist()
    peru = next(p for p in pairs if json.loads(p["meta"])["item_id"] == id_of(PERU))
    assert peru["messages"][-1]["content"] == "Lima."
    assert peru["rejected"][-1]["content"].startswith("I'm sorry")
    assert (peru["chosen_score"], peru["rejected_score"]) == (4.5, 1.5)
    assert json.loads(peru["meta"])["annotators"] == ["ana", "ben"]
    kto = tables["kto"].to_pylist()
    assert sorted(row["feedback"] for row in kto) == [False, False, True, True, True, True]
