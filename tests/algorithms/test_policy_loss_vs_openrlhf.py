"""The sampler importance correction (tis, icepop, seq-mask-tis) and GSPO against OpenRLHF 0.11.2's own
``PolicyLoss`` (openrlhf/models/loss.py from the real wheel): the same loss value and the same gradient.

OpenRLHF's module is executed from the wheel's source with its one relative import (``masked_mean`` from
openrlhf/models/utils.py, also taken from the wheel) supplied, since the package name is this project's.
Mapping (OpenRLHF 0.11.0 examples' names -> 0.11.2's gate): tis = token level, clip mode; icepop = token level,
mask mode; seq-mask-tis = sequence level, mask mode; the band is is_correction_threshold.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from openrlhf.algorithms import compute_policy_loss
from openrlhf.config import AlgoConfig, ClipConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openrlhf_wheel import wheel_function, wheel_source  # noqa: E402

MODES_0_11_2 = {"tis": ("token", "clip"), "icepop": ("token", "mask"), "seq-mask-tis": ("seq", "mask")}
BAND = (0.5, 2.0)


@pytest.fixture(scope="module")
def openrlhf_policy_loss():
    masked_mean = wheel_function("openrlhf/models/utils.py", "masked_mean", "import torch\nfrom typing import Optional")
    loss_src = wheel_source("openrlhf/models/loss.py").replace(
        "from .utils import masked_mean", "masked_mean = _masked_mean"
    )
    module = types.ModuleType("openrlhf_wheel_models_loss")
    module.__dict__["_masked_mean"] = masked_mean
    exec(compile(loss_src, "openrlhf/models/loss.py (OpenRLHF 0.11.2 wheel)", "exec"), module.__dict__)
    return module.PolicyLoss


def batch(seed: int = 0):
    """Two responses of different lengths; log-probs near each other, some sampler tokens far off."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.float32)
    old = -torch.rand(3, 6, generator=g) * 2
    new = old + 0.3 * torch.randn(3, 6, generator=g)
    sampler = old + 0.6 * torch.randn(3, 6, generator=g)
    adv = torch.randn(3, 1, generator=g).expand(3, 6).contiguous()
    return new, old, sampler, adv, mask


def ours(new, old, sampler, adv, mask, *, mode=None, gspo=False):
    clip = ClipConfig(eps_low=0.2, eps_high=0.28)
    if mode is not None:
        clip = ClipConfig(eps_low=0.2, eps_high=0.28, tis_floor=BAND[0], tis_cap=BAND[1], tis_mode=mode)
    cfg = AlgoConfig(clip=clip, policy_loss_type="gspo" if gspo else "ppo")
    leaf = new.clone().requires_grad_(True)
    loss, metrics = compute_policy_loss(leaf, old, adv, mask, cfg, sampler_log_probs=sampler)
    loss.backward()
    return loss.detach(), leaf.grad, metrics


def theirs(policy_loss_cls, new, old, sampler, adv, mask, *, mode=None, gspo=False):
    level, corr_mode = MODES_0_11_2[mode] if mode else ("off", "mask")
    fn = policy_loss_cls(
        clip_eps_low=0.2,
        clip_eps_high=0.28,
        policy_loss_type="gspo" if gspo else "ppo",
        is_correction_level=level,
        is_correction_mode=corr_mode,
        is_correction_threshold=list(BAND),
    )
    leaf = new.clone().requires_grad_(True)
    loss = fn(leaf, old, adv, action_mask=mask, rollout_log_probs=sampler)[0]
    loss.backward()
    return loss.detach(), leaf.grad * mask


@pytest.mark.contract
@pytest.mark.parametrize("mode", [None, "tis", "icepop", "seq-mask-tis"])
@pytest.mark.parametrize("gspo", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_gradient_equal_openrlhfs(openrlhf_policy_loss, mode, gspo, seed):
    args = batch(seed)
    loss, grad, _ = ours(*args, mode=mode, gspo=gspo)
    ref_loss, ref_grad = theirs(openrlhf_policy_loss, *args, mode=mode, gspo=gspo)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.contract
def test_the_correction_changes_the_loss_in_these_batches(openrlhf_policy_loss):
    """The batches exercise each mode: a weight outside the band, a masked token, a masked sequence."""
    args = batch(0)
    plain, _, _ = ours(*args)
    values = {mode: ours(*args, mode=mode) for mode in ("tis", "icepop", "seq-mask-tis")}
    assert len({round(float(v[0]), 6) for v in values.values()} | {round(float(plain), 6)}) == 4
    assert values["icepop"][2]["tis_masked_frac"] > 0
    assert values["tis"][2]["tis_capped_frac"] > 0


def test_gspo_gives_each_token_of_a_sequence_the_same_ratio():
    new, old, sampler, adv, mask = batch(3)
    _, grad, metrics = ours(new, old, None, adv, mask, gspo=True)
    # d loss / d log pi_t is the same for every token of an unclipped sequence: s * A / (|o| * B)
    for row in range(3):
        tokens = grad[row][mask[row].bool()]
        if tokens.abs().sum() > 0:
            torch.testing.assert_close(tokens, tokens[0].expand_as(tokens))
    assert metrics["ratio_max"] > 0
