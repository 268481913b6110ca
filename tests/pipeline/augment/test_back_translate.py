"""Back-translation: protection, provenance, the guard on an untrained model, config errors.

The unit tests inject a deterministic ``translate`` function; the model test loads a tiny
MarianMT built from a config (``bench.augment.build_tiny_translator``) by path.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bench.augment import benchmark_sentences, build_tiny_translator
from pipeline.augment.back_translate import BackTranslateBatches, BackTranslateConfig
from pipeline.augment.selection import Selection
from pipeline.schema import make_record, message, record_id, rows_to_table

SELECTION = Selection(seed=0, stage="back_translate")
MODELS = {"en-de": "opus-en-de", "de-en": "opus-de-en", "fr": {"forward": "f", "backward": "b"}}
TO_PIVOT = {"Explain": "Erkläre", "how": "wie", "forms": "entsteht", "rain": "Regen"}
FROM_PIVOT = {
    "de": {"Erkläre": "Describe", "wie": "how", "entsteht": "is formed", "Regen": "rain"},
    "fr": {"Erkläre": "Clarify", "wie": "how", "entsteht": "appears", "Regen": "rain"},
}


def record(line: int, instruction: str, response: str = "It condenses.", language: str = "en"):
    return make_record(
        messages=[message("user", instruction), message("assistant", response)],
        source_file="/data/a.jsonl",
        source_format="alpaca",
        source_line=line,
        task="qa",
        language=language,
        meta={"k": 1},
    )


def word_swapper(seen: list[tuple[str, str, list[str]]]):
    """A 'translator' that swaps known words; it records what it was asked to translate."""

    def translate(texts: list[str], source: str, target: str) -> list[str]:
        seen.append((source, target, list(texts)))
        table = TO_PIVOT if source == "en" else FROM_PIVOT[source]
        return [" ".join(table.get(word, word) for word in text.split()) for text in texts]

    return translate


def run(config: BackTranslateConfig, records: list[dict], translate) -> list[dict]:
    stage = BackTranslateBatches(config, SELECTION, translate=translate)
    table, _ = stage.run(rows_to_table(records))
    return table.to_pylist()


def test_protected_spans_never_reach_the_model_and_come_back():
    seen: list = []
    parent = record(4, "Explain how rain forms at 3 pm, see `rain.py` and https://x.org/rain")
    config = BackTranslateConfig(models=MODELS, guard={"min_similarity": 0.1})
    rows = run(config, [parent], word_swapper(seen))
    assert seen == [
        ("en", "de", ["Explain how rain forms at XPH0X pm, see XPH1X and XPH2X"]),
        ("de", "en", ["Erkläre wie Regen entsteht at XPH0X pm, see XPH1X and XPH2X"]),
    ]
    original, created = rows
    assert original == parent
    assert created["messages"][0]["content"] == (
        "Describe how rain is formed at 3 pm, see `rain.py` and https://x.org/rain"
    )
    assert created["drop_reason"] is None


def test_a_kept_paraphrase_carries_its_provenance():
    parent = record(7, "Explain how rain forms in tall clouds.")
    config = BackTranslateConfig(models=MODELS, pivots=("de",))
    (_, created) = run(config, [parent], word_swapper([]))
    turns = [message("user", "Describe how rain is formed in tall clouds."), parent["messages"][1]]
    assert created["messages"] == turns
    assert created["id"] == record_id("", turns, "", "") != parent["id"]
    assert created["parent_id"] == parent["id"]
    for column in ("source_file", "source_line", "source_format", "task", "language", "meta"):
        assert created[column] == parent[column]
    assert json.loads(created["augmentation"]) == {
        "stage": "back_translate",
        "method": "back_translation",
        "source_language": "en",
        "pivot": "de",
        "fields": ["instruction"],
        "model": {"forward": "opus-en-de", "backward": "opus-de-en"},
        "guard": {"instruction": {"chrf": 0.5602, "length_ratio": 1.1316}},
    }
    assert created["drop_reason"] is None and created["drop_detail"] is None


def test_every_pivot_makes_one_paraphrase_and_both_fields_change_together():
    parent = record(
        1, "Explain how rain forms.", "Rain forms\n```\nrain = 1\n```\nwhen drops grow."
    )
    config = BackTranslateConfig(models=MODELS, pivots=("de", "fr"), fields="both")
    rows = run(config, [parent], word_swapper([]))
    created = rows[1:]
    assert [json.loads(row["augmentation"])["pivot"] for row in created] == ["de", "fr"]
    assert [json.loads(row["augmentation"])["model"]["forward"] for row in created] == [
        "opus-en-de",
        "f",
    ]
    response = created[0]["messages"][1]["content"]
    assert response == "Rain is formed\n```\nrain = 1\n```\nwhen drops grow."
    assert created[1]["messages"][0]["content"] == "Clarify how rain forms."


def test_a_lost_sentinel_rejects_the_paraphrase():
    def forgetful(texts: list[str], source: str, target: str) -> list[str]:
        return [text.replace("XPH0X", "drei").replace("Explain", "Tell me") for text in texts]

    rows = run(BackTranslateConfig(models=MODELS), [record(2, "Explain 3 reasons.")], forgetful)
    assert rows[1]["drop_reason"] == "augment.lost_protected_span"
    assert json.loads(rows[1]["drop_detail"]) == {"field": "instruction", "lost": 1}


def test_only_live_originals_in_the_source_language_are_parents():
    created_before = record(3, "Explain rain.")
    created_before["augmentation"] = json.dumps({"stage": "rule_augment"})
    dropped = record(5, "Explain snow.")
    dropped["drop_reason"] = "filter.refusal"
    rows = run(
        BackTranslateConfig(models=MODELS),
        [created_before, dropped, record(6, "解释雨。", language="zh"), record(8, "Explain hail.")],
        word_swapper([]),
    )
    assert [row["parent_id"] for row in rows if row["parent_id"]] == [
        record(8, "Explain hail.")["id"]
    ]


def test_config_names_the_missing_model_and_resolves_local_paths(tmp_path, monkeypatch):
    with pytest.raises(ValidationError, match="no model for en-it, it-en"):
        BackTranslateConfig(models=MODELS, pivots=("de", "it"))
    with pytest.raises(ValidationError, match="include source_language"):
        BackTranslateConfig(model="nllb", pivots=("en",))
    (tmp_path / "en-de").mkdir()
    monkeypatch.chdir(tmp_path)
    config = BackTranslateConfig(models={"en-de": "en-de", "de-en": "Helsinki-NLP/opus-mt-de-en"})
    assert config.directions() == {
        ("en", "de"): str(tmp_path / "en-de"),
        ("de", "en"): "Helsinki-NLP/opus-mt-de-en",
    }


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("tiny-marian")
    return build_tiny_translator(directory, benchmark_sentences(200), seed=0)


def test_the_guard_rejects_what_an_untrained_model_writes(tiny_model):
    config = BackTranslateConfig(
        models={"en-de": tiny_model, "de-en": tiny_model}, num_beams=1, max_length=24
    )
    parents = [
        record(1, "Explain how rain forms in the clouds."),
        record(2, "Name 3 planets that are bigger than the Earth."),
        record(
            3,
            "Write a long and friendly letter to a colleague who has just moved to another city, "
            "and ask about the new office and the new team.",
        ),
    ]
    stage = BackTranslateBatches(config, SELECTION)
    assert stage.translate.device == "cpu"
    table, counts = stage.run(rows_to_table(parents))
    created = table.to_pylist()[3:]
    assert [row["drop_reason"] for row in created] == [
        "augment.length_ratio",
        "augment.lost_protected_span",
        "augment.low_similarity",
    ]
    assert counts.dropped == {
        "augment.length_ratio": 1,
        "augment.lost_protected_span": 1,
        "augment.low_similarity": 1,
    }
    assert all(
        row["parent_id"] == parent["id"] for row, parent in zip(created, parents, strict=True)
    )
