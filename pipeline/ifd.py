"""Difficulty from a causal LM: instruction-following difficulty (IFD).

Li et al. 2023, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data
Selection for Instruction Tuning": IFD = loss of the response given the instruction / loss
of the response alone. Near 0 the instruction makes the answer easy to predict; near 1 it
hardly helps; above 1 instruction and answer do not fit.

Each live row's IFD sets ``difficulty``: ``easy`` below ``cuts[0]``, ``medium`` below
``cuts[1]``, ``hard`` from there (``overwrite: false`` fills only empty ones). The defaults
are a starting point, not calibrated to any model: ``counts.findings`` holds a histogram of
the IFD values in tenths (``ifd[0.4,0.5)``, ``ifd>=1.5``, ``ifd.undefined`` for rows without
a response token) from which to pick cuts for the model at hand. ``meta`` is not touched.

How the losses are taken:

- the prompt is ``prompt_template`` with ``{instruction}`` replaced by the instruction (with
  its context); the response is the last assistant turn; both are tokenized without special
  tokens;
- "given the instruction" scores the response tokens of ``start + prompt + response``;
  "alone" scores them after ``start`` only, where ``start`` is the tokenizer's BOS token (or
  EOS where it has none, as GPT-2): both sequences begin as the model saw text begin in
  training, and both losses average over exactly the same tokens. (The paper's code scores
  the response alone without a start token, which leaves its first token out of one loss
  and not the other.)
  A tokenizer with neither leaves the first response token out of both;
- at most ``max_length`` tokens: the response keeps its first tokens, the prompt its last
  (nearest the response), and the prompt gets at least half the room when it needs it;
- sequences are sorted by length and run ``batch_size`` at a time, padded on the right, in
  ``torch.no_grad``; the cross-entropy is taken in float32.

The model (a hub id or a local directory, ``AutoModelForCausalLM.from_pretrained``) loads
once per worker; it runs on GPU when ``torch.cuda.is_available()`` (ask for one with
``num_gpus``), on CPU otherwise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from pipeline.schema import FLOW_SCHEMA, instructions_and_responses
from pipeline.stage import Resources, StageConfig, StageCounts, Transform

HISTOGRAM_TOP = 1.5


class IFDConfig(StageConfig):
    # A hub id or a local directory written by save_pretrained.
    model: str = Field(min_length=1)
    prompt_template: str = "{instruction}\n\n"
    cuts: tuple[float, float] = (0.5, 0.8)
    overwrite: bool = True
    max_length: int = Field(default=512, ge=8)
    batch_size: int = Field(default=8, ge=1)
    num_gpus: float = Field(default=0.0, ge=0.0)
    concurrency: int = Field(default=1, ge=1)
    # auto: bfloat16 on GPU, float32 on CPU.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    @field_validator("model")
    @classmethod
    def _local_paths_absolute(cls, model: str) -> str:
        # A local directory is made absolute here, on the driver, as workers' cwd differs;
        # anything else is taken for a hub id.
        return os.path.abspath(model) if os.path.isdir(model) else model

    @field_validator("prompt_template")
    @classmethod
    def _has_instruction(cls, template: str) -> str:
        if "{instruction}" not in template:
            raise ValueError("prompt_template must contain {instruction}")
        return template

    @model_validator(mode="after")
    def _ordered_cuts(self) -> IFDConfig:
        if self.cuts[0] > self.cuts[1]:
            raise ValueError(f"cuts must be ascending, got {list(self.cuts)}")
        return self


def ifd_bucket(value: float | None) -> str:
    """The histogram key of one IFD value."""
    if value is None:
        return "ifd.undefined"
    if value >= HISTOGRAM_TOP:
        return f"ifd>={HISTOGRAM_TOP}"
    tenth = math.floor(value * 10)
    return f"ifd[{tenth / 10:.1f},{(tenth + 1) / 10:.1f})"


def fit_lengths(prompt: list[int], response: list[int], max_length: int) -> tuple[list, list]:
    """Prompt and response token ids cut to ``max_length`` together (see module docstring)."""
    prompt_room = min(len(prompt), max(max_length - len(response), max_length // 2))
    prompt = prompt[len(prompt) - prompt_room :]
    return prompt, response[: max_length - len(prompt)]


class InstructionFollowingDifficulty(Transform):
    name: ClassVar[str] = "ifd"
    Config: ClassVar[type[StageConfig]] = IFDConfig
    config: IFDConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        return Resources(num_gpus=config.num_gpus, concurrency=config.concurrency)

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self.config.dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        self.tokenizer = AutoTokenizer.from_pretrained(self.config.model)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.config.model, dtype=getattr(torch, dtype)
        ).to(self.device)
        self.model.eval()
        start = self.tokenizer.bos_token_id
        self.start_token = self.tokenizer.eos_token_id if start is None else start

    def transform(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        instructions, responses = instructions_and_responses(batch)
        values = self.ifd(instructions, responses)
        counts.findings.update(ifd_bucket(value) for value in values)
        difficulties = batch.column("difficulty").to_pylist()
        low, high = self.config.cuts
        for row, value in enumerate(values):
            if value is None or (difficulties[row] and not self.config.overwrite):
                continue
            bucket = "easy" if value < low else "medium" if value < high else "hard"
            if bucket != difficulties[row]:
                counts.modified[f"difficulty.{bucket}"] += 1
                difficulties[row] = bucket
        index = batch.schema.get_field_index("difficulty")
        column = pa.array(difficulties, pa.string())
        return batch.set_column(index, FLOW_SCHEMA.field("difficulty"), column)

    def ifd(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float | None]:
        """IFD per row; None where the response has no token to score or the loss alone is 0."""
        template = self.config.prompt_template
        prompts = [template.replace("{instruction}", text) for text in instructions]
        encode = self.tokenizer(list(prompts) + list(responses), add_special_tokens=False)
        ids = encode["input_ids"]
        sequences: list[tuple[list[int], int]] = []  # (token ids, scored tokens at the end)
        for prompt, response in zip(ids[: len(prompts)], ids[len(prompts) :], strict=True):
            prompt, response = fit_lengths(prompt, response, self.config.max_length - 1)
            if self.start_token is None:
                scored = max(len(response) - 1, 0)
                sequences += [(prompt + response, scored), (response, scored)]
            else:
                sequences += [
                    ([self.start_token, *prompt, *response], len(response)),
                    ([self.start_token, *response], len(response)),
                ]
        losses = self.response_losses(sequences)
        values = []
        for given, alone in zip(losses[::2], losses[1::2], strict=True):
            ok = given is not None and alone is not None and alone > 0
            values.append(round(given / alone, 6) if ok else None)
        return values

    def response_losses(self, sequences: Sequence[tuple[list[int], int]]) -> list[float | None]:
        """Mean cross-entropy of the last ``scored`` tokens of each sequence, shortest first."""
        losses: list[float | None] = [None] * len(sequences)
        order = sorted(
            (i for i, (ids, scored) in enumerate(sequences) if scored > 0 and len(ids) > scored),
            key=lambda i: len(sequences[i][0]),
        )
        size = self.config.batch_size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            for index, loss in zip(
                chunk, self._batch_losses([sequences[i] for i in chunk]), strict=True
            ):
                losses[index] = loss
        return losses

    def _batch_losses(self, sequences: list[tuple[list[int], int]]) -> list[float]:
        torch = self.torch
        width = max(len(ids) for ids, _ in sequences)
        input_ids = torch.zeros((len(sequences), width), dtype=torch.long)
        attention = torch.zeros((len(sequences), width), dtype=torch.long)
        scored = torch.zeros((len(sequences), width - 1), dtype=torch.bool)
        for row, (ids, count) in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            # logits at position p predict token p + 1: the last `count` tokens are targets.
            scored[row, len(ids) - 1 - count : len(ids) - 1] = True
        with torch.no_grad():
            logits: Any = self.model(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)
            ).logits
        token_losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().transpose(1, 2),
            input_ids[:, 1:].to(self.device),
            reduction="none",
        ).cpu()
        token_losses = token_losses * scored
        return (token_losses.sum(dim=1) / scored.sum(dim=1)).tolist()
