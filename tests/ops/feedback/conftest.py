"""A feedback database with three imported items (two candidates each, the last three)."""

from __future__ import annotations

import json

import pytest

from ops.feedback.items import import_rows, queue
from ops.feedback.store import Store

PROMPTS = {
    "What is the capital of Peru?": ["Lima.", "I'm sorry, but I cannot help with that request."],
    "Name a primary colour.": ["Red.", "Blue is one."],
    "Say hello in French.": ["Bonjour !", "Hello.", ""],
}


def sample_rows() -> list[dict]:
    return [
        {
            "prompt": prompt,
            "conversation": json.dumps([{"role": "user", "content": prompt}]),
            "candidates": candidates,
            "model": "/ckpt/step_0000010",
            "settings": json.dumps({"samples": len(candidates), "seed": 0}),
        }
        for prompt, candidates in PROMPTS.items()
    ]


@pytest.fixture
def store(tmp_path) -> Store:
    database = Store(str(tmp_path / "feedback.db"))
    import_rows(database, sample_rows(), "test")
    return database


@pytest.fixture
def item_ids(store) -> list[str]:
    return [entry["id"] for entry in queue(store, None)]


def id_of(prompt: str) -> str:
    from ops.feedback.store import item_id

    return item_id([{"role": "user", "content": prompt}], PROMPTS[prompt])
