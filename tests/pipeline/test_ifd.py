"""The ``ifd`` stage with a tiny GPT-2 built from a config and a tokenizer trained on the fly."""

from __future__ import annotations

import math
import os

import pytest
from pydantic import ValidationError

from pipeline.ifd import IFDConfig, InstructionFollowingDifficulty, fit_lengths, ifd_bucket
from pipeline.schema import rows_to_table
from pipeline.stage import Resources
from tests.pipeline.filters.helpers import record

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLOURS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
THINGS = ["apple", "leaf", "sky", "sun", "night", "snow", "carrot", "grape"]
# The answer names only the colour: alone it is a guess among eight, after its question certain.
PAIRS = [
    (f"{thing} colour ?", f"it is {colour} .")
    for thing, colour in zip(THINGS, COLOURS, strict=True)
]


def save_tiny_model(directory: str, trained_steps: int) -> str:
    """A 2-layer GPT-2 (n_embd 64) and a word-level tokenizer, saved for ``from_pretrained``;
    with ``trained_steps``, first fitted to PAIRS so that the answers depend on the question."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = [f"{question}\n\n{answer}" for question, answer in PAIRS]
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>"
    )
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        n_positions=64,
        vocab_size=tokenizer.vocab_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.bos_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    if trained_steps:
        batch = torch.tensor([tokenizer(f"<s> {text}")["input_ids"] for text in texts])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(trained_steps):  # every pair has the same length: no padding
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread is ~100x faster than two that
    fight other processes for the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def untrained(one_torch_thread, tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_gpt2")), trained_steps=0)


@pytest.fixture(scope="module")
def trained(one_torch_thread, tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_gpt2_trained")), trained_steps=120)


def test_every_row_gets_a_finite_ifd_and_a_difficulty(untrained):
    stage = InstructionFollowingDifficulty(IFDConfig(model=untrained, batch_size=3))
    rows = [record(question, answer) for question, answer in PAIRS[:5]]
    rows.append(record("what colour is the sky ?", ""))  # nothing to score
    table, counts = stage.run(rows_to_table(rows))
    values = stage.ifd([q for q, _ in PAIRS[:5]], [a for _, a in PAIRS[:5]])
    assert all(math.isfinite(value) and value > 0 for value in values)
    difficulties = table.column("difficulty").to_pylist()
    assert all(d in ("easy", "medium", "hard") for d in difficulties[:5])
    assert difficulties[5] == ""
    assert counts.findings["ifd.undefined"] == 1 and sum(counts.findings.values()) == 6
    assert sum(counts.modified.values()) == 5
    # An untrained model learns nothing from the question: the ratio is close to 1.
    assert all(0.8 < value < 1.2 for value in values)


def test_a_model_that_learned_the_answers_finds_them_easy(trained):
    stage = InstructionFollowingDifficulty(IFDConfig(model=trained, cuts=(0.5, 0.8)))
    questions, answers = zip(*PAIRS, strict=True)
    values = stage.ifd(questions, answers)
    assert all(value < 0.5 for value in values), values
    # Each answer after the wrong question: the question now misleads. (A tiny model's
    # answer alone is out of its training distribution, so single ratios are noisy: the
    # check is on the mean and on most pairs.)
    mismatched = stage.ifd(questions, answers[1:] + answers[:1])
    matched = values[1:] + values[:1]
    # 4x: the tiny model's training numerics differ by CPU (4.8x on an AMD EPYC, over 5x on
    # the Intel CI machine); the per-pair check below is the stricter one.
    assert sum(mismatched) > 4 * sum(matched)
    assert sum(m > 2 * v for m, v in zip(mismatched, matched, strict=True)) >= 6
    table, counts = stage.run(rows_to_table([record(q, a) for q, a in PAIRS]))
    assert set(table.column("difficulty").to_pylist()) == {"easy"}
    assert counts.modified == {"difficulty.easy": len(PAIRS)}


def test_batching_does_not_change_the_values(untrained):
    questions, answers = zip(*PAIRS, strict=True)
    one = InstructionFollowingDifficulty(IFDConfig(model=untrained, batch_size=1))
    many = InstructionFollowingDifficulty(IFDConfig(model=untrained, batch_size=8))
    for left, right in zip(one.ifd(questions, answers), many.ifd(questions, answers), strict=True):
        assert left == pytest.approx(right, rel=1e-4)


def test_overwrite_false_keeps_a_difficulty_already_set(untrained):
    stage = InstructionFollowingDifficulty(IFDConfig(model=untrained, overwrite=False))
    labelled = {**record(*PAIRS[0]), "difficulty": "medium"}
    table, counts = stage.run(rows_to_table([labelled]))
    assert table.column("difficulty").to_pylist() == ["medium"] and not counts.modified


def test_lengths_are_cut_to_the_limit():
    assert fit_lengths(list(range(10)), list(range(100, 104)), 8) == (
        [6, 7, 8, 9],
        [100, 101, 102, 103],
    )
    prompt, response = fit_lengths(list(range(10)), list(range(100, 120)), 8)
    assert prompt == [6, 7, 8, 9] and response == [100, 101, 102, 103]
    assert fit_lengths([1, 2], [3, 4], 8) == ([1, 2], [3, 4])


def test_histogram_keys_and_config():
    assert [ifd_bucket(v) for v in (None, 0.0, 0.45, 0.99, 1.2, 1.5, 7.0)] == [
        "ifd.undefined",
        "ifd[0.0,0.1)",
        "ifd[0.4,0.5)",
        "ifd[0.9,1.0)",
        "ifd[1.2,1.3)",
        "ifd>=1.5",
        "ifd>=1.5",
    ]
    config = IFDConfig(model="org/some-model", num_gpus=1, concurrency=2)
    assert config.model == "org/some-model"  # a hub id is left as it is
    assert InstructionFollowingDifficulty.resources(config) == Resources(num_gpus=1, concurrency=2)
    with pytest.raises(ValidationError, match="ascending"):
        IFDConfig(model="m", cuts=(0.9, 0.5))
    with pytest.raises(ValidationError, match="instruction"):
        IFDConfig(model="m", prompt_template="Q: ")
