"""``feedback generate`` on Ray Data with a tiny model: N seeded candidates per prompt, the
same for the same seed whatever the batching, and a Parquet that ``feedback import`` reads."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops.cli import main
from ops.feedback.items import import_rows, import_samples, item_view, queue
from ops.feedback.store import Store
from tests.ops.feedback.tiny_checkpoint import write_tiny_checkpoint
from train.generate import SamplingSettings, generate_samples

PROMPTS = ["What is the capital of Peru?", "Name three primary colours.", "Write a haiku."]


def by_prompt(path) -> dict[str, dict]:
    return {row["prompt"]: row for row in pq.read_table(path).to_pylist()}


@pytest.mark.slow
def test_seeded_candidates_on_ray_data(ray_session, tmp_path, capsys):
    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    pq.write_table(pa.table({"prompt": PROMPTS}), prompts / "prompts.parquet")
    flags = ["--samples", "3", "--seed", "7", "--max-new-tokens", "8", "--workers", "1"]
    flags.append("--no-progress")
    command = ["feedback", "generate", checkpoint, "--input", str(prompts)]
    assert main([*command, "--output", str(tmp_path / "a"), *flags, "--batch-size", "3"]) == 0
    assert "3 prompts x 3 candidates" in capsys.readouterr().out
    first = by_prompt(tmp_path / "a")
    settings = SamplingSettings(samples=3, seed=7, max_new_tokens=8)
    generate_samples(
        checkpoint, str(prompts), str(tmp_path / "b"), settings, batch_size=1, workers=1
    )
    again = by_prompt(tmp_path / "b")

    assert set(first) == set(PROMPTS)
    for prompt, row in first.items():
        assert len(row["candidates"]) == 3
        assert row["candidates"] == again[prompt]["candidates"]  # batch size 3 vs 1
        assert row["model"] == checkpoint
        assert json.loads(row["settings"]) == {
            "samples": 3,
            "temperature": 0.8,
            "top_p": 0.95,
            "seed": 7,
            "max_new_tokens": 8,
            "engine": "transformers",
        }
        assert json.loads(row["conversation"]) == [{"role": "user", "content": prompt}]
    store = Store(str(tmp_path / "f.db"))
    assert import_samples(store, str(tmp_path / "a")) == (3, 0)
    assert len(queue(store, None)) == 3


def test_a_prompt_s_candidates_depend_on_the_seed_and_its_text_only(tmp_path):
    from train.generate import load_for_generation, sample_replies

    model, tokenizer, meta = load_for_generation(write_tiny_checkpoint(tmp_path / "ckpt"))
    turns = [[{"role": "user", "content": prompt}] for prompt in PROMPTS]
    settings = SamplingSettings(samples=2, seed=1, max_new_tokens=6)
    first = sample_replies(model, tokenizer, meta, turns, settings)
    assert sample_replies(model, tokenizer, meta, turns[::-1], settings) == first[::-1]
    reseeded = SamplingSettings(samples=2, seed=2, max_new_tokens=6)
    assert sample_replies(model, tokenizer, meta, turns, reseeded) != first
    greedy = SamplingSettings(samples=2, temperature=0, max_new_tokens=6)
    (pair, *_) = sample_replies(model, tokenizer, meta, turns, greedy)
    assert pair[0] == pair[1]


def test_a_record_s_reply_becomes_the_item_s_reference(tmp_path):
    from pipeline.schema import make_record, message, rows_to_table
    from train.generate import conversations_of, references_of, sample_rows

    answered = make_record(
        messages=[
            message("user", "What is the capital of Peru?"),
            message("assistant", "Lima."),
            message("user", "And of Chile?"),
            message("assistant", "Santiago."),
        ],
        system="Be brief.",
        source_file="records.jsonl",
        source_format="jsonl",
        source_line=0,
    )
    unanswered = {**answered, "messages": [message("user", "Write a haiku.")]}
    batch = rows_to_table([answered, unanswered]).to_pydict()
    assert references_of(batch) == ["Lima.", ""]
    assert references_of({"prompt": ["Hi."]}) == [""]
    table = sample_rows(
        conversations_of(batch),
        [["Lima, on the coast."], ["Leaves fall."]],
        references_of(batch),
        "/ckpt",
        {"seed": 0},
    )
    assert table.schema.field("reference").nullable is False
    store = Store(str(tmp_path / "f.db"))
    assert import_rows(store, table.to_pylist(), "generate") == (2, 0)
    views = [item_view(store, entry["id"], None) for entry in queue(store, None)]
    assert sorted(view["reference"] for view in views) == ["", "Lima."]
