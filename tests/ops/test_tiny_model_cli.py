"""``instructflow train tiny-model``: ``--arch`` builds what it names, ``--kind`` follows
from it, and a contradiction is refused with both named."""

from __future__ import annotations

import json

import pytest

from ops.cli import main, tiny_kind_and_arch
from tests.train.sft_corpus import write_pipeline_output


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_pipeline_output(tmp_path_factory.mktemp("pipeline") / "out")


@pytest.mark.parametrize(
    ("arguments", "model_type", "architecture"),
    [
        (["--arch", "llama"], "llama", "LlamaForCausalLM"),
        (["--arch", "t5"], "t5", "T5ForConditionalGeneration"),
        (["--arch", "bart"], "bart", "BartForConditionalGeneration"),
        ([], "llama", "LlamaForCausalLM"),
        (["--kind", "seq2seq"], "t5", "T5ForConditionalGeneration"),
    ],
)
def test_the_model_is_the_one_named(shards, tmp_path, arguments, model_type, architecture):
    out = tmp_path / "model"
    assert (
        main(["train", "tiny-model", str(shards), str(out), "--vocab-size", "256", *arguments]) == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == model_type
    assert config["architectures"] == [architecture]
    assert (out / "tokenizer.json").exists()


def test_a_kind_that_contradicts_the_arch_is_refused():
    with pytest.raises(SystemExit, match="--arch bart is a seq2seq model, not --kind causal"):
        tiny_kind_and_arch("causal", "bart")
    assert tiny_kind_and_arch(None, "bart") == ("seq2seq", "bart")
