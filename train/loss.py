"""Token-level loss that stays the mean over every supervised token of an optimizer step,
whatever the gradient accumulation and the number of DDP ranks.

The usual per-micro-batch mean is wrong twice: a micro-batch of 10 supervised tokens weighs
as much as one of 1,000, and so does a rank. The correct step loss is

    sum over ranks and micro-batches of the token losses / all supervised tokens of the step

so each micro-batch contributes ``its loss sum / global tokens``. DDP averages gradients over
``world_size`` ranks, hence the factor ``world_size``: after the all-reduce the gradient is
exactly that of the mean over the step's tokens. The global count is known before any
forward pass (it only needs the labels), at the cost of one all-reduce of one integer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from train.sft_data import IGNORE


def supervised_tokens(labels: Any) -> Any:
    """Tokens that are targets: labels shifted by one, as the loss sees them."""
    return (labels[..., 1:] != IGNORE).sum()


def step_token_count(micro_labels: Sequence[Any]) -> Any:
    """Supervised tokens over all micro-batches of a step, summed over ranks when
    ``torch.distributed`` is initialised. Returns a tensor (int64)."""
    import torch
    import torch.distributed as dist

    count = torch.stack([supervised_tokens(labels) for labels in micro_labels]).sum()
    count = count.to(torch.int64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
    return count


def micro_batch_loss(
    logits: Any, labels: Any, step_tokens: Any, world_size: int = 1, shift: bool = True
) -> Any:
    """This micro-batch's share of the step loss (see the module docstring); backward on it.
    Cross-entropy in float32 whatever the logits' dtype. ``shift``: a causal model's logits
    at position t predict the label at t + 1; a seq2seq decoder's are already aligned."""
    import torch

    if int(step_tokens) == 0:
        raise ValueError("no supervised token in this step: every label is -100")
    if shift:
        logits, labels = logits[..., :-1, :], labels[..., 1:]
    total = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return total * world_size / step_tokens


__all__ = ["micro_batch_loss", "step_token_count", "supervised_tokens"]
