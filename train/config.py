"""The typed SFT recipe: data (the pipeline's output), model, prompt, training, evaluation,
scaling and output.

Parsed from YAML before Ray starts; every problem is reported with its key path, the bad
value and what is allowed (``pipeline.config.RecipeError``). The validated recipe travels
into the Ray Train workers as plain data (``to_plain``) and is parsed again there.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import Problem, RecipeError, problems_from
from train.sft_data import PROMPT_FORMATS


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(Frozen):
    # The output directory of `instructflow data run`. Shards are read from data/<split>/.
    path: str
    train_split: str = "train"
    # None: no evaluation (a warning at start); checkpoints are then ranked by train loss.
    validation_split: str | None = "validation"
    # Rows each worker reads, permutes (seeded per epoch) and cuts into global batches.
    shuffle_window_rows: int = Field(4096, gt=0)


class ModelConfig(Frozen):
    # A hub id (from the local cache when HF_HUB_OFFLINE=1) or a directory.
    name_or_path: str
    # auto: seq2seq when the config says is_encoder_decoder, else causal.
    kind: Literal["auto", "causal", "seq2seq"] = "auto"
    tokenizer: str | None = None  # default: the model's own
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = "sdpa"
    trust_remote_code: bool = False


class PromptConfig(Frozen):
    format: str = "chat"
    # Longer examples are cut (and counted as truncated in the data stats).
    max_length: int = Field(1024, gt=1)
    # Pack short examples into rows of max_length tokens (causal models only).
    # None: on for causal models, off for seq2seq.
    packing: bool | None = None

    @model_validator(mode="after")
    def _known_format(self) -> PromptConfig:
        if self.format not in PROMPT_FORMATS:
            raise ValueError(f"format {self.format!r}: choose one of {', '.join(PROMPT_FORMATS)}")
        return self


class LoraConfig(Frozen):
    r: int = Field(16, gt=0)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # "all-linear" or module names such as [q_proj, v_proj].
    target_modules: str | tuple[str, ...] = "all-linear"


class TrainingConfig(Frozen):
    epochs: int = Field(1, gt=0)
    # Stop after this many optimizer steps if fewer than the epochs give; None: the epochs.
    max_steps: int | None = Field(None, gt=0)
    micro_batch_size: int = Field(8, gt=0)
    gradient_accumulation: int = Field(1, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    warmup_steps: int = Field(0, ge=0)
    # Cosine decay ends at this fraction of the peak learning rate.
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = Field(1.0, gt=0)
    # auto: bf16 autocast on GPUs that support it, float32 on CPU. bf16 also autocasts on CPU
    # (fast on CPUs with bf16 units); the loss is always computed in float32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    gradient_checkpointing: bool = False
    strategy: Literal["ddp", "fsdp"] = "ddp"
    lora: LoraConfig | None = None
    log_every_steps: int = Field(10, gt=0)


class EvalConfig(Frozen):
    every_steps: int = Field(100, gt=0)
    # Validation rows evaluated each time (all when None).
    max_rows: int | None = Field(None, gt=0)
    samples: int = Field(3, ge=0)  # validation prompts whose generations are logged
    max_new_tokens: int = Field(64, gt=0)


class ScalingConfig(Frozen):
    num_workers: int = Field(1, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1, gt=0)
    # Automatic restarts from the latest checkpoint after a worker or node dies.
    max_failures: int = Field(0, ge=-1)


class OutputConfig(Frozen):
    # Ray Train storage (checkpoints), best/ and last/ models, metrics, TensorBoard logs.
    # A path every node can reach on a cluster: s3://, gs:// or a shared file system.
    path: str


class SFTRecipe(Frozen):
    name: str = "sft"
    seed: int = 0
    data: DataConfig
    model: ModelConfig
    prompt: PromptConfig = PromptConfig()
    training: TrainingConfig = TrainingConfig()
    eval: EvalConfig = EvalConfig()
    scaling: ScalingConfig = ScalingConfig()
    output: OutputConfig

    @model_validator(mode="after")
    def _consistent(self) -> SFTRecipe:
        if self.training.strategy == "fsdp" and self.scaling.num_workers < 2:
            raise ValueError("training.strategy fsdp shards over workers: scaling.num_workers >= 2")
        return self

    def fingerprint(self) -> str:
        blob = json.dumps(self.to_plain(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def to_plain(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


PAIR_LOSSES = ("sigmoid", "ipo", "simpo", "orpo")
REFERENCE_FREE_LOSSES = ("simpo", "orpo")


class PreferenceConfig(Frozen):
    """The preference loss (``train.preference_loss``) and its reference model."""

    # sigmoid: DPO (cDPO with label_smoothing > 0); ipo; simpo and orpo (reference-free);
    # kto: binary feedback (a pair counts as one desirable and one undesirable reply).
    loss: Literal["sigmoid", "ipo", "simpo", "orpo", "kto"] = "sigmoid"
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    # SimPO's target reward margin (gamma in the paper).
    simpo_gamma: float = Field(0.5, ge=0)
    # ORPO's weight of the odds-ratio term (lambda in the paper).
    orpo_lambda: float = Field(0.1, gt=0)
    kto_desirable_weight: float = Field(1.0, gt=0)
    kto_undesirable_weight: float = Field(1.0, gt=0)
    # precomputed: the reference's log-probs are computed once in a Ray Data pass and stored
    # with the rows, so no second model is resident during training; in_process: a frozen
    # copy on every worker; none: reference-free losses only. Default: precomputed, or none
    # for simpo and orpo.
    reference: Literal["precomputed", "in_process", "none"] | None = None
    # The reference model; default: model.name_or_path (the policy's starting point).
    reference_model: str | None = None

    @model_validator(mode="after")
    def _reference_fits_loss(self) -> PreferenceConfig:
        free = self.loss in REFERENCE_FREE_LOSSES
        if self.reference == "none" and not free:
            raise ValueError(
                f"reference none: loss {self.loss} compares with a reference model; use "
                "precomputed or in_process, or a reference-free loss: "
                + ", ".join(REFERENCE_FREE_LOSSES)
            )
        if self.reference in ("precomputed", "in_process") and free:
            raise ValueError(
                f"loss {self.loss} is reference-free: set reference none or leave it out"
            )
        return self

    @property
    def reference_mode(self) -> str:
        if self.reference is not None:
            return self.reference
        return "none" if self.loss in REFERENCE_FREE_LOSSES else "precomputed"


class DPORecipe(SFTRecipe):
    """An SFT recipe plus the preference loss: the same data, model, LoRA, scaling, eval and
    checkpoint keys. Rows are never packed (a pair's two replies share one prompt)."""

    name: str = "dpo"
    preference: PreferenceConfig = PreferenceConfig()

    @model_validator(mode="after")
    def _unpacked(self) -> DPORecipe:
        if self.prompt.packing:
            raise ValueError("prompt.packing: preference rows are not packed; leave it out")
        return self


RL_ALGORITHMS = ("grpo", "rloo", "reinforce")
REWARD_KINDS = ("ifeval", "length", "format", "model", "python")


class RolloutConfig(Frozen):
    """How the policy samples: ``prompts_per_step`` prompts per optimizer step (the global
    rollout batch, split over workers), ``samples_per_prompt`` completions each (G)."""

    # transformers: generate() in the training process (CPU or GPU); vllm: vLLM engines as
    # Ray actors on their own GPUs, the policy's weights pushed to them after every update.
    engine: Literal["transformers", "vllm"] = "transformers"
    prompts_per_step: int = Field(8, gt=0)
    samples_per_prompt: int = Field(4, gt=0)
    max_new_tokens: int = Field(64, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)  # 0: no top-k cut
    # vllm only (one engine per training worker, on its own GPUs): the GPU memory fraction
    # the engine may take and its tensor parallel size.
    vllm_gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    vllm_tensor_parallel_size: int = Field(1, gt=0)


class RewardSpec(Frozen):
    """One term of the reward: ``weight`` x the named reward's score (``train.rewards``)."""

    # ifeval: the records' constraints (train.rewards.ifeval); length: the completion's
    # length against a target; format: a regular expression; model: a sequence-classifier
    # checkpoint; python: a function "module:name" or "path/to/file.py:name".
    kind: Literal["ifeval", "length", "format", "model", "python"]
    name: str | None = None  # in logs; default: the kind
    weight: float = 1.0
    # Seconds one call may take; a timeout counts as a failure of this reward.
    timeout_s: float = Field(10.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.kind


class RLConfig(Frozen):
    """The policy-gradient algorithm (``train.rl_loss``) and its reference model."""

    algorithm: Literal["grpo", "rloo", "reinforce"] = "grpo"
    # The KL penalty's weight (beta) to the frozen reference; 0: no reference is loaded.
    kl_coef: float = Field(0.04, ge=0)
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    # The clipped ratio's range: [1 - clip_low, 1 + clip_high] (DAPO: clip_high > clip_low).
    clip_low: float = Field(0.2, gt=0, lt=1)
    clip_high: float = Field(0.28, gt=0)
    # grpo: divide by the group's standard deviation (false: Dr. GRPO).
    scale_rewards: bool = True
    # None: token_mean for grpo, sequence_sum for rloo and reinforce (the seed's formula).
    loss_aggregation: Literal["token_mean", "sequence_mean", "sequence_sum", "constant"] | None = (
        None
    )
    # The reference; default: model.name_or_path (the policy's starting point).
    reference_model: str | None = None

    @property
    def aggregation(self) -> str:
        if self.loss_aggregation is not None:
            return self.loss_aggregation
        return "token_mean" if self.algorithm == "grpo" else "sequence_sum"


class RLRecipe(SFTRecipe):
    """An SFT recipe plus ``rl``, ``rollout`` and ``rewards``: the same data, model, LoRA,
    scaling, eval and checkpoint keys. The data's records are prompts (their first reply, if
    any, is the reference some rewards compare with). ``training.micro_batch_size`` counts
    completions per forward pass; the step's batch is ``rollout.prompts_per_step`` prompts."""

    name: str = "rl"
    rl: RLConfig = RLConfig()
    rollout: RolloutConfig = RolloutConfig()
    rewards: tuple[RewardSpec, ...] = (RewardSpec(kind="ifeval"),)

    @model_validator(mode="after")
    def _consistent_rl(self) -> RLRecipe:
        if self.prompt.packing:
            raise ValueError("prompt.packing: RL prompts are not packed; leave it out")
        if self.training.gradient_accumulation != 1:
            raise ValueError(
                "training.gradient_accumulation: RL accumulates every micro-batch of the "
                "step's completions (rollout.prompts_per_step x rollout.samples_per_prompt); "
                "leave it out"
            )
        workers = self.scaling.num_workers
        if self.rollout.prompts_per_step % workers:
            raise ValueError(
                f"rollout.prompts_per_step {self.rollout.prompts_per_step} must be a multiple "
                f"of scaling.num_workers ({workers}): each worker samples whole prompt groups"
            )
        if not self.rewards:
            raise ValueError("rewards: name at least one reward")
        labels = [reward.label for reward in self.rewards]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"rewards: names must differ; give `name` to {', '.join(repeated)}")
        if self.rollout.engine == "vllm":
            if not self.scaling.use_gpu:
                raise ValueError("rollout.engine vllm needs GPUs: set scaling.use_gpu true")
            if self.training.lora is not None or self.training.strategy != "ddp":
                raise ValueError(
                    "rollout.engine vllm takes the whole policy's weights after each step: "
                    "use training.strategy ddp without training.lora, or the transformers engine"
                )
        return self


def parse_recipe(data: Any, model: type[SFTRecipe], source: str = "recipe") -> SFTRecipe:
    """Plain data (parsed YAML) to ``model``, or a RecipeError listing every problem."""
    if not isinstance(data, dict):
        raise RecipeError(
            [Problem(path="(top level)", message="expected a mapping", value=data)], source
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RecipeError(problems_from(error, prefix="", model=model), source) from None


def parse_sft_recipe(data: Any, source: str = "recipe") -> SFTRecipe:
    return parse_recipe(data, SFTRecipe, source)


def parse_dpo_recipe(data: Any, source: str = "recipe") -> DPORecipe:
    return parse_recipe(data, DPORecipe, source)


def parse_rl_recipe(data: Any, source: str = "recipe") -> RLRecipe:
    return parse_recipe(data, RLRecipe, source)


__all__ = [
    "DPORecipe",
    "PreferenceConfig",
    "RLConfig",
    "RLRecipe",
    "RewardSpec",
    "RolloutConfig",
    "SFTRecipe",
    "parse_dpo_recipe",
    "parse_recipe",
    "parse_rl_recipe",
    "parse_sft_recipe",
]
