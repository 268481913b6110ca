"""Preference losses as pure functions of per-sequence log-probabilities.

Every loss takes tensors of shape ``[pairs]`` (or ``[replies]`` for KTO) and returns the
per-example loss, so the caller decides how examples are averaged over micro-batches and
ranks (``train.dpo``: the mean over every example of the optimizer step). ``logps`` are
sums of token log-probabilities over the reply; ``avg`` are the same divided by the reply's
token count (``sequence_logps`` gives both). ``ref_*`` come from the frozen reference model.
"""

from __future__ import annotations

from typing import Any

from train.sft_data import IGNORE


def sequence_logps(logits: Any, labels: Any, shift: bool = True) -> tuple[Any, Any]:
    """(summed log-probability of each sequence's supervised tokens, their count), in
    float32 whatever the logits' dtype. ``shift``: a causal model's logits at t predict the
    label at t + 1; a seq2seq decoder's are already aligned."""
    import torch

    if shift:
        logits, labels = logits[..., :-1, :], labels[..., 1:]
    mask = labels != IGNORE
    logits = logits.float()
    picked = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    token_logps = (picked - torch.logsumexp(logits, dim=-1)) * mask
    return token_logps.sum(-1), mask.sum(-1)


def logit_gap(policy_chosen: Any, policy_rejected: Any, ref_chosen: Any, ref_rejected: Any) -> Any:
    """How much more the policy prefers the chosen reply than the reference does."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def dpo_loss(
    policy_chosen: Any,
    policy_rejected: Any,
    ref_chosen: Any,
    ref_rejected: Any,
    beta: float,
    label_smoothing: float = 0.0,
) -> Any:
    """DPO, Rafailov et al. 2023 (arXiv:2305.18290); label_smoothing > 0 is conservative
    DPO (cDPO, Mitchell 2023: the label is wrong with that probability)."""
    import torch.nn.functional as F

    gap = beta * logit_gap(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return -(1 - label_smoothing) * F.logsigmoid(gap) - label_smoothing * F.logsigmoid(-gap)


def ipo_loss(
    policy_chosen: Any, policy_rejected: Any, ref_chosen: Any, ref_rejected: Any, beta: float
) -> Any:
    """IPO, Azar et al. 2023 (arXiv:2310.12036): the log-ratio gap regressed onto
    1 / (2 beta) instead of pushed without bound."""
    gap = logit_gap(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return (gap - 1 / (2 * beta)) ** 2


def simpo_loss(avg_chosen: Any, avg_rejected: Any, beta: float, gamma: float) -> Any:
    """SimPO, Meng et al. 2024 (arXiv:2405.14734): reference-free, the length-normalised
    log-probability is the reward, with a target margin gamma."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * (avg_chosen - avg_rejected) - gamma)


def log_odds(avg_logp: Any) -> Any:
    """log(p / (1 - p)) of the length-normalised probability p = exp(avg_logp) < 1."""
    import torch

    return avg_logp - torch.log(-torch.expm1(avg_logp.clamp(max=-1e-6)))


def orpo_loss(avg_chosen: Any, avg_rejected: Any, lam: float) -> Any:
    """ORPO, Hong et al. 2024 (arXiv:2403.07691): the chosen reply's token-mean NLL plus
    lambda times the log-sigmoid odds ratio of chosen over rejected; reference-free."""
    import torch.nn.functional as F

    ratio = log_odds(avg_chosen) - log_odds(avg_rejected)
    return -avg_chosen - lam * F.logsigmoid(ratio)


def kto_loss(
    policy_logps: Any,
    ref_logps: Any,
    desirable: Any,
    reference_point: Any,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Any:
    """KTO, Ethayarajh et al. 2024 (arXiv:2402.01306): each reply's implied reward against a
    reference point z0 (an estimate of KL(policy || reference), detached), through a
    prospect-theoretic value; ``desirable`` is a bool tensor of the replies' labels."""
    import torch

    reward = policy_logps - ref_logps
    good = desirable_weight * (1 - torch.sigmoid(beta * (reward - reference_point)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (reference_point - reward)))
    return torch.where(desirable, good, bad)


def kto_reference_point(policy_logps: Any, ref_logps: Any, world: int = 1) -> Any:
    """z0 as the mean implied reward of the replies at hand, clamped at 0 and detached,
    averaged over ranks. Simplifies the paper, which estimates it on mismatched
    (prompt, reply) pairs: that would cost a third forward pass per step."""
    import torch
    import torch.distributed as dist

    rewards = (policy_logps - ref_logps).detach()
    total = torch.stack([rewards.sum(), rewards.new_tensor(float(len(rewards)))])
    if world > 1:
        dist.all_reduce(total)
    return (total[0] / total[1].clamp(min=1)).clamp(min=0)


__all__ = [
    "dpo_loss",
    "ipo_loss",
    "kto_loss",
    "kto_reference_point",
    "orpo_loss",
    "sequence_logps",
    "simpo_loss",
]
