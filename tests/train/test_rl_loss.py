"""The policy-gradient pieces of ``train.rl_loss`` against values worked out by hand, and the
REINFORCE gradient against the seed's formula, grad J = E[grad log pi(Y|X) (R - b)]."""

from __future__ import annotations

import math

import pytest
import torch

from train.rl_loss import (
    advantages,
    clipped_surrogate,
    grpo_advantages,
    kl_penalty,
    normaliser,
    reinforce_advantages,
    rloo_advantages,
    sequence_terms,
)

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
ALL = torch.ones_like(REWARDS, dtype=torch.bool)


def test_grpo_normalises_within_each_prompt_group():
    got = grpo_advantages(REWARDS, ALL)
    std = math.sqrt(1 / 3)  # the sample standard deviation of 1, 0, 0, 1
    expected = torch.tensor([[0.5, -0.5, -0.5, 0.5]]) / std
    assert torch.allclose(got[0], expected[0], atol=1e-5)
    assert torch.equal(got[1], torch.zeros(4))  # all equal: nothing to learn from
    # Dr. GRPO: no division by the standard deviation.
    assert torch.allclose(grpo_advantages(REWARDS, ALL, scale=False)[0], expected[0] * std)


def test_rloo_baseline_is_the_mean_of_the_other_samples():
    got = rloo_advantages(REWARDS, ALL)
    # Sample 0: 1 - mean(0, 0, 1) = 2/3; sample 1: 0 - mean(1, 0, 1) = -2/3.
    assert torch.allclose(got[0], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    assert torch.equal(got[1], torch.zeros(4))


def test_failed_samples_get_no_advantage_and_leave_the_baselines():
    valid = torch.tensor([[True, True, False, True], [True, False, False, False]])
    rloo = rloo_advantages(REWARDS, valid)
    # Sample 1's baseline is mean(1, 1) from samples 0 and 3; sample 2 is out.
    assert rloo[0, 1] == pytest.approx(-1.0)
    assert rloo[0, 2] == 0
    assert torch.equal(rloo[1], torch.zeros(4))  # one valid sample: no baseline
    grpo = grpo_advantages(REWARDS, valid)
    assert grpo[0, 2] == 0 and torch.equal(grpo[1], torch.zeros(4))


def test_reinforce_subtracts_the_batch_baseline():
    got = reinforce_advantages(REWARDS, ALL.float(), baseline=0.5)
    assert torch.allclose(got, REWARDS - 0.5)
    assert torch.allclose(advantages("reinforce", REWARDS, ALL, baseline=0.5, scale=True), got)
    with pytest.raises(ValueError, match="choose one of grpo, rloo, reinforce"):
        advantages("ppo", REWARDS, ALL, baseline=0.0, scale=True)


def test_clipping_bounds_the_ratio_on_the_side_that_would_gain():
    logps = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
    old = torch.zeros(1, 3)
    # Positive advantage: a ratio of 1.5 is clipped at 1.28; 0.5 is not (pessimistic side).
    loss, clipped = clipped_surrogate(logps, old, torch.tensor([1.0]), 0.2, 0.28)
    assert torch.allclose(loss, -torch.tensor([[1.28, 0.5, 1.0]]))
    assert clipped.tolist() == [[True, False, False]]
    # Negative advantage: 0.5 is clipped at 0.8.
    loss, clipped = clipped_surrogate(logps, old, torch.tensor([-1.0]), 0.2, 0.28)
    assert torch.allclose(loss, torch.tensor([[1.5, 0.8, 1.0]]))
    assert clipped.tolist() == [[False, True, False]]


def test_kl_estimators():
    logps = torch.log(torch.tensor([0.5, 0.2]))
    ref = torch.log(torch.tensor([0.25, 0.2]))
    log_ratio = math.log(2)
    assert torch.allclose(kl_penalty(logps, ref, "k1"), torch.tensor([log_ratio, 0.0]))
    assert torch.allclose(kl_penalty(logps, ref, "k2"), torch.tensor([log_ratio**2 / 2, 0.0]))
    k3 = kl_penalty(logps, ref, "k3")
    assert torch.allclose(k3, torch.tensor([0.5 - 1 + log_ratio, 0.0]))
    assert (kl_penalty(torch.randn(100), torch.randn(100), "k3") >= 0).all()
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_penalty(logps, ref, "k4")


def test_aggregations():
    losses = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    token_mean = sequence_terms(losses, mask, "token_mean", 8).sum() / normaliser(
        mask, "token_mean"
    )
    assert token_mean == pytest.approx((4 + 4) / 6)
    sequence_mean = sequence_terms(losses, mask, "sequence_mean", 8).sum() / normaliser(
        mask, "sequence_mean"
    )
    assert sequence_mean == pytest.approx((1 + 2) / 2)
    assert sequence_terms(losses, mask, "sequence_sum", 8).tolist() == [4.0, 4.0]
    assert sequence_terms(losses, mask, "constant", 8).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="token_mean"):
        sequence_terms(losses, mask, "mean", 8)


def test_reinforce_gradient_is_the_seed_formula():
    """On-policy (ratio 1) with sequence_sum the gradient of the loss is
    -(1/N) sum_i (R_i - b) grad log pi(y_i): the REINFORCE estimator."""
    torch.manual_seed(0)
    logits = torch.randn(3, 4, requires_grad=True)  # 3 sequences of 1 token over 4 tokens
    actions = torch.tensor([0, 2, 1])
    rewards = torch.tensor([[1.0, 0.0, 0.5]])
    logps = torch.log_softmax(logits, -1).gather(1, actions[:, None])  # [3, 1]
    advantage = reinforce_advantages(rewards, torch.ones(1, 3), baseline=0.5).reshape(-1)
    token_losses, _ = clipped_surrogate(logps, logps.detach(), advantage, 0.2, 0.2)
    mask = torch.ones(3, 1)
    loss = sequence_terms(token_losses, mask, "sequence_sum", 1).sum() / normaliser(
        mask, "sequence_sum"
    )
    (grad,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (expected,) = torch.autograd.grad(-(advantage * logps.squeeze(1)).mean(), logits)
    assert torch.allclose(grad, expected)
