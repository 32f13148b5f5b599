"""The ``algo`` section of the config tree: advantage estimator, KL control, clipping, StableReinforce's
Pre-CLIP and advantage filter, the dynamic filter, and the presets (grpo, reinforce_pp, stable_reinforce).

Part of the tree that openrlhf/config.py assembles (``Config.algo``); the formulas live in openrlhf/algorithms/.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from openrlhf.config_base import Section

# --------------------------------------------------------------------------- algorithms


class AdvantageConfig(Section):
    estimator: Literal["group_norm", "dr_grpo", "rloo", "reinforce", "reinforce_baseline"] = "group_norm"
    no_std_norm: bool = False
    eps: float = Field(1e-6, gt=0.0)
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    reward_clip: float = Field(0.0, ge=0.0, description="clip rewards to [-c, c]; 0: off")


class KLConfig(Section):
    init_kl_coef: float = Field(0.0, ge=0.0, description="0: no KL, no reference workers")
    estimator: Literal["k1", "k2", "k3"] = "k3"
    use_kl_loss: bool = Field(False, description="KL as a loss term (GRPO) instead of a reward penalty")
    adaptive: bool = False
    target: float = Field(0.1, gt=0.0)
    horizon: int = Field(10000, ge=1)
    log_ratio_clamp: float = Field(10.0, gt=0.0)


class ClipConfig(Section):
    eps_low: float = Field(0.2, ge=0.0)
    eps_high: float = Field(0.2, ge=0.0, description="DAPO clip-higher when > eps_low")
    dual_clip: float = Field(0.0, ge=0.0, description="dual-clip constant c > 1; 0: off")

    @field_validator("dual_clip")
    @classmethod
    def _check_dual_clip(cls, value: float) -> float:
        if 0.0 < value <= 1.0:
            raise ValueError("dual_clip must be 0 (off) or greater than 1")
        return value

    tis_cap: float = Field(
        0.0, ge=0.0, description="importance correction vs the sampler: the weight's high end C; 0: off"
    )
    tis_floor: float = Field(
        0.0, ge=0.0, description="importance correction's low end (OpenRLHF's is_correction_threshold LOW)"
    )
    tis_mode: Literal["tis", "icepop", "seq-mask-tis"] = Field(
        "tis",
        description="tis: weights clamped to [tis_floor, tis_cap]; icepop: tokens whose weight is outside the "
        "band get weight 0; seq-mask-tis: sequences whose geometric-mean weight is outside the band get weight 0, "
        "the rest keep their token weights (as OpenRLHF)",
    )

    @model_validator(mode="after")
    def _check_tis_band(self) -> ClipConfig:
        if self.tis_cap > 0 and self.tis_floor >= self.tis_cap:
            raise ValueError(f"tis_floor ({self.tis_floor}) must be below tis_cap ({self.tis_cap})")
        return self


class PreClipConfig(Section):
    enable: bool = False
    log_ratio_min: float = -6.907755278982137  # log(1e-3)
    log_ratio_max: float = 6.907755278982137  # log(1e3)

    @model_validator(mode="after")
    def _check_order(self) -> PreClipConfig:
        if self.log_ratio_min >= self.log_ratio_max:
            raise ValueError(f"log_ratio_min ({self.log_ratio_min}) must be below log_ratio_max ({self.log_ratio_max})")
        return self


class AdvantageFilterConfig(Section):
    enable: bool = False
    mode: Literal["paper", "r1_reward_code"] = "paper"
    sigma: float = Field(3.0, gt=0.0)
    max_abs: float = Field(10.0, gt=0.0)


class DynamicFilterConfig(Section):
    enable: bool = False
    drop_equal_scores: bool = True
    score_range: tuple[float, float] = (0.0, 1.0)

    @field_validator("score_range")
    @classmethod
    def _check_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"score_range low {value[0]} is above high {value[1]}")
        return value


# The advantage estimator each algo.name implies when algo.advantage.estimator is not set (the presets of
# openrlhf/algorithms/presets.py), and the estimators that compare the n responses to one prompt with each other
# (openrlhf/algorithms/advantages.py refuses n < 2 for them): a test keeps both in step with those modules.
PRESET_ESTIMATORS = {"grpo": "group_norm", "reinforce_pp": "reinforce", "stable_reinforce": "reinforce"}
GROUP_ESTIMATORS = frozenset({"group_norm", "dr_grpo", "rloo", "reinforce_baseline"})


class AlgoConfig(Section):
    name: Literal["grpo", "reinforce_pp", "stable_reinforce"] = "grpo"
    advantage: AdvantageConfig = AdvantageConfig()
    kl: KLConfig = KLConfig()
    clip: ClipConfig = ClipConfig()
    pre_clip: PreClipConfig = PreClipConfig()
    advantage_filter: AdvantageFilterConfig = AdvantageFilterConfig()
    dynamic_filter: DynamicFilterConfig = DynamicFilterConfig()
    loss_agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"] = (
        "token-mean"
    )
    entropy_coef: float = Field(0.0, ge=0.0)
    policy_loss_type: Literal["ppo", "gspo"] = Field(
        "ppo",
        description="ppo: token-level ratio; gspo: one ratio per sequence, exp(mean token log-ratio), with "
        "seq-mean-token-mean aggregation (GSPO, as OpenRLHF)",
    )
