"""KL estimators and coefficient controllers against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from openrlhf.algorithms import AdaptiveKLController, FixedKLController, kl_estimate, make_kl_controller
from openrlhf.config import KLConfig

LOG_PROBS = torch.tensor([[-1.0, -2.0]])
REF = torch.tensor([[-1.5, -1.0]])  # r = log pi - log pi_ref = [0.5, -1.0]


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        ("k1", [0.5, -1.0]),
        ("k2", [0.125, 0.5]),
        ("k3", [math.exp(-0.5) - 1 + 0.5, math.exp(1.0) - 1 - 1.0]),
    ],
)
def test_estimators_by_hand(estimator, expected):
    torch.testing.assert_close(kl_estimate(LOG_PROBS, REF, estimator), torch.tensor([expected]))


def test_log_ratio_is_clamped():
    log_probs = torch.tensor([[50.0, -50.0]], requires_grad=True)
    kl = kl_estimate(log_probs, torch.zeros(1, 2), "k3", log_ratio_clamp=10.0)
    torch.testing.assert_close(kl, torch.tensor([[math.exp(-10) - 1 + 10, math.exp(10) - 1 - 10]]))
    kl.sum().backward()
    assert torch.all(log_probs.grad == 0)  # outside the clamp no gradient flows
    assert kl_estimate(log_probs, torch.zeros(1, 2), "k1", 10.0).tolist() == [[10.0, -10.0]]


def test_mask_zeroes_padding():
    mask = torch.tensor([[True, False]])
    kl = kl_estimate(LOG_PROBS, torch.tensor([[-1.5, float("nan")]]), "k3", 10.0, mask)
    assert kl[0, 1].item() == 0.0 and kl[0, 0].item() == pytest.approx(math.exp(-0.5) - 0.5)


def test_unknown_estimator():
    with pytest.raises(ValueError, match=r"algo.kl.estimator='k4'"):
        kl_estimate(LOG_PROBS, REF, "k4")


def test_fixed_controller():
    ctl = make_kl_controller(KLConfig(init_kl_coef=0.05))
    assert isinstance(ctl, FixedKLController)
    ctl.update(current_kl=10.0, n_steps=100)
    assert ctl.value == 0.05


def test_adaptive_controller_by_hand():
    ctl = make_kl_controller(KLConfig(init_kl_coef=0.1, adaptive=True, target=0.1, horizon=100))
    assert isinstance(ctl, AdaptiveKLController)
    ctl.update(current_kl=0.2, n_steps=10)  # error clipped to +0.2: x (1 + 0.2 * 10 / 100)
    assert ctl.value == pytest.approx(0.1 * 1.02)
    ctl.update(current_kl=0.05, n_steps=10)  # error -0.5 clipped to -0.2: x 0.98
    assert ctl.value == pytest.approx(0.1 * 1.02 * 0.98)
    ctl.update(current_kl=0.11, n_steps=10)  # error 0.1: x 1.01
    assert ctl.value == pytest.approx(0.1 * 1.02 * 0.98 * 1.01)
    restored = AdaptiveKLController(0.5, 0.1, 100)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value


def test_controller_arguments_are_checked():
    with pytest.raises(ValueError, match="algo.kl.target must be > 0"):
        AdaptiveKLController(0.1, 0.0, 10)
    with pytest.raises(ValueError, match="algo.kl.init_kl_coef must be >= 0"):
        FixedKLController(-1.0)
