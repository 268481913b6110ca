"""The preference losses against values worked out by hand from their papers' formulas, the
log-probabilities they start from, and the totals the DPO loop logs."""

from __future__ import annotations

import math

import pytest
import torch

from train.config import PreferenceConfig
from train.dpo import PreferenceTotals, example_losses
from train.preference_loss import (
    dpo_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    log_odds,
    orpo_loss,
    sequence_logps,
    simpo_loss,
)
from train.sft_data import IGNORE

# Two pairs: summed reply log-probabilities under the policy and the reference.
POLICY_CHOSEN = torch.tensor([-1.0, -2.0])
POLICY_REJECTED = torch.tensor([-3.0, -1.0])
REF_CHOSEN = torch.tensor([-1.5, -2.0])
REF_REJECTED = torch.tensor([-2.5, -1.5])
# Log-ratio gaps: (-1 + 1.5) - (-3 + 2.5) = 1.0 and (-2 + 2) - (-1 + 1.5) = -0.5.
GAPS = (1.0, -0.5)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_dpo_loss_on_two_pairs_by_hand():
    loss = dpo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1)
    # -log sigmoid(beta * gap) = log(1 + exp(-beta * gap))
    expected = [softplus(-0.1 * gap) for gap in GAPS]
    assert loss.tolist() == pytest.approx(expected, abs=1e-6)
    assert float(loss.mean()) == pytest.approx((0.644397 + 0.718460) / 2, abs=1e-5)


def test_cdpo_label_smoothing_mixes_both_labels():
    loss = dpo_loss(
        POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.5, label_smoothing=0.2
    )
    expected = [0.8 * softplus(-0.5 * gap) + 0.2 * softplus(0.5 * gap) for gap in GAPS]
    assert loss.tolist() == pytest.approx(expected, abs=1e-6)


def test_ipo_regresses_the_gap_onto_half_inverse_beta():
    loss = ipo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.25)
    assert loss.tolist() == pytest.approx([(gap - 2.0) ** 2 for gap in GAPS], abs=1e-6)


def test_simpo_is_reference_free_with_a_margin():
    loss = simpo_loss(torch.tensor([-0.5]), torch.tensor([-1.5]), beta=2.0, gamma=0.5)
    assert float(loss) == pytest.approx(softplus(-(2.0 * 1.0 - 0.5)), abs=1e-6)


def test_orpo_adds_the_odds_ratio_to_the_chosen_nll():
    chosen, rejected = torch.tensor([-0.2]), torch.tensor([-1.0])
    odds = lambda avg: math.log(math.exp(avg) / (1 - math.exp(avg)))  # noqa: E731
    ratio = odds(-0.2) - odds(-1.0)
    loss = orpo_loss(chosen, rejected, lam=0.1)
    assert float(loss) == pytest.approx(0.2 + 0.1 * softplus(-ratio), abs=1e-6)
    assert float(log_odds(torch.tensor(-0.2))) == pytest.approx(odds(-0.2), abs=1e-6)


def test_kto_values_desirable_and_undesirable_replies_against_the_reference_point():
    policy, ref = torch.tensor([-1.0, -2.0, -4.0]), torch.tensor([-2.0, -2.0, -3.0])
    desirable = torch.tensor([True, True, False])
    point = kto_reference_point(policy, ref)
    assert float(point) == pytest.approx(0.0)  # mean reward (1 + 0 - 1) / 3 = 0, clamped
    loss = kto_loss(policy, ref, desirable, point, beta=1.0, undesirable_weight=2.0)
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [1 - sigmoid(1.0), 1 - sigmoid(0.0), 2.0 * (1 - sigmoid(1.0))]
    assert loss.tolist() == pytest.approx(expected, abs=1e-6)
    assert float(kto_reference_point(torch.tensor([-1.0]), torch.tensor([-3.0]))) == 2.0


def test_sequence_logps_sums_only_supervised_tokens():
    # One causal sequence of 3 tokens over a vocabulary of 2; logits at t predict t + 1.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[IGNORE, 1, 0]])
    logps, tokens = sequence_logps(logits, labels)
    # p(1 | pos 0) = 1/2, p(0 | pos 1) = 3/4
    assert float(logps[0]) == pytest.approx(math.log(0.5) + math.log(0.75), abs=1e-6)
    assert int(tokens[0]) == 2


def test_pair_metrics_count_accuracy_margin_and_log_ratio():
    logps = torch.stack([POLICY_CHOSEN, POLICY_REJECTED])
    ref = torch.stack([REF_CHOSEN, REF_REJECTED])
    tokens = torch.tensor([[2.0, 4.0], [3.0, 1.0]])
    preference = PreferenceConfig(beta=0.1)
    losses, rewards = example_losses(preference, logps, tokens, ref, world=1)
    totals = PreferenceTotals(torch.device("cpu"))
    totals.add(losses, rewards, logps, tokens, ref)
    metrics = totals.reduced(1, preference)
    assert metrics["reward_accuracy"] == 0.5  # the first pair is ranked right, the second not
    # Per-token likelihoods rank both right: -1/2 > -3/3 and -2/4 > -1/1.
    assert metrics["likelihood_accuracy"] == 1.0
    assert metrics["reward_margin"] == pytest.approx(0.1 * sum(GAPS) / 2)
    assert metrics["chosen_reward"] == pytest.approx(0.1 * (0.5 + 0.0) / 2)
    assert metrics["log_ratio"] == pytest.approx((0.5 + 0.0 - 0.5 + 0.5) / 10)
    assert metrics["loss"] == pytest.approx(float(losses.mean()))


def test_kto_on_pairs_counts_every_reply_and_skips_empty_sides():
    logps = torch.tensor([[-1.0, 0.0], [-4.0, -2.0]])
    tokens = torch.tensor([[2.0, 0.0], [2.0, 2.0]])  # row 2 has only an undesirable reply
    ref = torch.tensor([[-2.0, 0.0], [-3.0, -2.0]])
    losses, _ = example_losses(PreferenceConfig(loss="kto", beta=1.0), logps, tokens, ref, 1)
    assert losses.shape == (3,)
