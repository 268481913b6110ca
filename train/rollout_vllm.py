"""Rollouts through vLLM (``rollout.engine: vllm``): each Ray Train worker owns one vLLM
engine, a Ray actor on its own GPU(s), and pushes the policy's weights to it after every
optimizer step, so every rollout is sampled from the current policy.

Declared and optional: it needs GPUs and the ``vllm`` package, which CI never has, and is
exercised only on a GPU machine. ``train.rl_launch`` refuses it before Ray starts when vllm
does not import; ``train.config.RLRecipe`` when the run has no GPUs, uses LoRA or FSDP.

Weights travel through Ray's object store as CPU tensors (the whole state dict, every
step): simple and correct; a NCCL broadcast from trainer to engine (OpenRLHF, veRL) is the
optimisation left out. The importance ratio stays the policy's own (1 on the first and only
update), as TRL computes it when the sampler is vLLM; vLLM's sampling log-probabilities are
not used.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class VllmEngine:
    """Ray actor: one vLLM ``LLM`` holding the policy, sampling from token ids."""

    def __init__(
        self,
        model_path: str,
        seed: int,
        gpu_memory_utilization: float,
        tensor_parallel_size: int,
        max_model_len: int,
    ) -> None:
        # The model runs in this process, so load_weights reaches it directly.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.llm = LLM(
            model=model_path,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
        )

    def generate(
        self, prompts: list[list[int]], settings: dict[str, Any], seed: int
    ) -> list[list[list[int]]]:
        """Token ids of ``settings["n"]`` completions per prompt."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=settings["n"],
            temperature=settings["temperature"],
            top_p=settings["top_p"],
            top_k=settings["top_k"] or -1,
            max_tokens=settings["max_tokens"],
            seed=seed,
        )
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False
        )
        return [[list(choice.token_ids) for choice in output.outputs] for output in outputs]

    def load_weights(self, weights: list[tuple[str, Any]]) -> None:
        """The policy's state dict (Hugging Face names) into the engine's model."""
        self.llm.apply_model(lambda model: model.load_weights(weights))
        self.llm.reset_prefix_cache()


class VllmSampler:
    """What ``train.rl`` calls instead of ``generate_rollouts`` with the vllm engine."""

    def __init__(self, recipe: Any, plan: Any, worker: Any) -> None:
        import ray

        rollout = recipe.rollout
        self.rollout = rollout
        self.worker = worker
        self.seed = recipe.seed
        engine = ray.remote(num_gpus=rollout.vllm_tensor_parallel_size)(VllmEngine)
        self.engine = engine.remote(
            plan.model_path,
            recipe.seed,
            rollout.vllm_gpu_memory_utilization,
            rollout.vllm_tensor_parallel_size,
            recipe.prompt.max_length + rollout.max_new_tokens,
        )
        self.sync()  # a restarted worker's policy comes from its checkpoint

    def sync(self) -> None:
        import ray

        state = [
            (name, tensor.detach().to("cpu"))
            for name, tensor in self.worker.unwrapped.state_dict().items()
        ]
        ray.get(self.engine.load_weights.remote(state))

    def sample(self, rows: dict[str, np.ndarray], tokenizer: Any, pad_id: int, step: int) -> Any:
        import ray
        import torch

        from train.rl_rows import Rollouts

        rollout = self.rollout
        prompts = [list(map(int, ids)) for ids in rows["input_ids"]]
        settings = {
            "n": rollout.samples_per_prompt,
            "temperature": rollout.temperature,
            "top_p": rollout.top_p,
            "top_k": rollout.top_k,
            "max_tokens": rollout.max_new_tokens,
        }
        seed = self.seed * 1_000_003 + step * 1009 + self.worker.rank
        completions = ray.get(self.engine.generate.remote(prompts, settings, seed))
        width = max(len(ids) for ids in prompts)
        longest = max(1, max(len(ids) for group in completions for ids in group))
        count = len(prompts) * rollout.samples_per_prompt
        sequences = torch.full((count, width + longest), pad_id, dtype=torch.long)
        attention = torch.zeros((count, width + longest), dtype=torch.long)
        texts, finished = [], []
        index = 0
        for prompt, group in zip(prompts, completions, strict=True):
            for ids in group:
                sequences[index, width - len(prompt) : width] = torch.tensor(prompt)
                attention[index, width - len(prompt) : width] = 1
                sequences[index, width : width + len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention[index, width : width + len(ids)] = 1
                ended = bool(ids) and ids[-1] == tokenizer.eos_token_id
                finished.append(ended)
                texts.append(
                    tokenizer.decode(ids[:-1] if ended else ids, skip_special_tokens=True).strip()
                )
                index += 1
        device = self.worker.device
        return Rollouts(
            sequences=sequences.to(device),
            attention_mask=attention.to(device),
            prompt_width=width,
            completion_mask=attention[:, width:].float().to(device),
            texts=texts,
            finished=torch.tensor(finished, device=device),
        )


__all__ = ["VllmEngine", "VllmSampler"]
