"""Policy-gradient algorithms as pure functions of tensors: advantages, the clipped
surrogate, the KL penalty to a reference and the loss aggregations. ``train.rl`` calls them.

Shapes: ``rewards`` and ``valid`` are ``[prompts, G]`` (G samples per prompt); per-token
tensors are ``[sequences, completion tokens]`` with a 0/1 ``mask`` over the completion.
A sample whose reward failed (``valid`` false) gets advantage 0 and is left out of every
baseline and normaliser, so a failed reward never reads as a reward of 0.

All three estimate the seed's gradient, grad J = E[grad log pi(Y|X) (R(Y,X) - b)]; they
differ in the baseline b and in the scaling.
"""

from __future__ import annotations

from typing import Any

ALGORITHMS = ("grpo", "rloo", "reinforce")
AGGREGATIONS = ("token_mean", "sequence_mean", "sequence_sum", "constant")
KL_ESTIMATORS = ("k1", "k2", "k3")
EPSILON = 1e-6


def reinforce_advantages(rewards: Any, valid: Any, baseline: float) -> Any:
    """REINFORCE with a baseline (Williams 1992): A = R - b, b the batch's mean reward (or
    any value not depending on the sample, e.g. a running mean)."""
    return (rewards - baseline) * valid


def rloo_advantages(rewards: Any, valid: Any) -> Any:
    """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024): each sample's
    baseline is the mean reward of the other valid samples of its prompt. A prompt with a
    single valid sample has no baseline and contributes nothing."""
    valid = valid.to(rewards.dtype)
    total = (rewards * valid).sum(dim=1, keepdim=True)
    count = valid.sum(dim=1, keepdim=True)
    others = (count - 1).clamp(min=1)
    baseline = (total - rewards * valid) / others
    return (rewards - baseline) * valid * (count > 1)


def grpo_advantages(rewards: Any, valid: Any, scale: bool = True) -> Any:
    """GRPO's group-relative advantage (Shao et al. 2024, DeepSeekMath): the reward minus
    its prompt group's mean, divided by the group's standard deviation; ``scale=False`` drops
    the division, which biases towards easy and hard prompts (Dr. GRPO, Liu et al. 2025)."""
    valid = valid.to(rewards.dtype)
    count = valid.sum(dim=1, keepdim=True)
    mean = (rewards * valid).sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = (rewards - mean) * valid
    if scale:
        variance = (centred**2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
        centred = centred / (variance.sqrt() + EPSILON)
    return centred * (count > 1)


def advantages(algorithm: str, rewards: Any, valid: Any, *, baseline: float, scale: bool) -> Any:
    """The recipe's ``rl.algorithm``: ``[prompts, G]`` advantages."""
    if algorithm == "grpo":
        return grpo_advantages(rewards, valid, scale)
    if algorithm == "rloo":
        return rloo_advantages(rewards, valid)
    if algorithm == "reinforce":
        return reinforce_advantages(rewards, valid.to(rewards.dtype), baseline)
    raise ValueError(f"algorithm {algorithm!r}: choose one of {', '.join(ALGORITHMS)}")


def clipped_surrogate(
    logps: Any, old_logps: Any, advantages: Any, clip_low: float, clip_high: float
) -> tuple[Any, Any]:
    """PPO's clipped objective per token (Schulman et al. 2017), with DAPO's decoupled
    ``clip_high`` (Yu et al. 2025): loss = -min(r A, clip(r, 1 - low, 1 + high) A), r the
    probability ratio to the policy that sampled. Returns (per-token loss, clipped mask).
    With one update per rollout r = 1 and the gradient is exactly A grad log pi."""
    import torch

    ratio = torch.exp(logps - old_logps)
    advantage = advantages.unsqueeze(-1)
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * advantage
    return -torch.minimum(unclipped, clipped), (clipped < unclipped).detach()


def kl_penalty(logps: Any, ref_logps: Any, estimator: str = "k3") -> Any:
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman
    2020, "Approximating KL divergence"): k1 = log(pi/ref) (unbiased, noisy), k2 = k1^2 / 2,
    k3 = ref/pi - 1 - log(ref/pi) (unbiased, never negative; GRPO's)."""
    import torch

    log_ratio = logps - ref_logps
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        # Clamped as OpenRLHF and veRL do, so one wild token cannot blow up the step.
        return torch.clamp(torch.exp(-log_ratio) - 1 + log_ratio, max=10.0)
    raise ValueError(f"KL estimator {estimator!r}: choose one of {', '.join(KL_ESTIMATORS)}")


def sequence_terms(token_losses: Any, mask: Any, aggregation: str, max_new_tokens: int) -> Any:
    """Each sequence's share of the step's loss, before dividing by ``normaliser``:

    - ``token_mean``: every completion token weighs the same (DAPO's token-level loss);
    - ``sequence_mean``: a mean per sequence, then over sequences (the original GRPO);
    - ``sequence_sum``: the sum of log-probabilities, as in grad log pi(Y|X) (REINFORCE);
    - ``constant``: the sum over a fixed ``max_new_tokens`` (Dr. GRPO): no length bias.
    """
    summed = (token_losses * mask).sum(dim=-1)
    if aggregation in ("token_mean", "sequence_sum"):
        return summed
    if aggregation == "sequence_mean":
        return summed / mask.sum(dim=-1).clamp(min=1)
    if aggregation == "constant":
        return summed / max_new_tokens
    raise ValueError(f"aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")


def normaliser(mask: Any, aggregation: str) -> Any:
    """What ``sequence_terms`` summed over the step is divided by: its completion tokens for
    ``token_mean``, else its sequences. Summed over every rank's micro-batches first."""
    if aggregation == "token_mean":
        return mask.sum()
    return mask.new_tensor(float(mask.shape[0]))


__all__ = [
    "AGGREGATIONS",
    "ALGORITHMS",
    "KL_ESTIMATORS",
    "advantages",
    "clipped_surrogate",
    "grpo_advantages",
    "kl_penalty",
    "normaliser",
    "reinforce_advantages",
    "rloo_advantages",
    "sequence_terms",
]
