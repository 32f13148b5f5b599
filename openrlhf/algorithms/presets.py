"""Named algorithm presets (``algo.name``): the knobs each algorithm implies, below what the user set.

  grpo              advantage.estimator=group_norm; kl.use_kl_loss=True, kl.estimator=k3
                    (GRPO, Shao et al. 2024: group-normalised outcome advantage, KL as a k3 loss term)
  reinforce_pp      advantage.estimator=reinforce; kl.use_kl_loss=False, kl.estimator=k1
                    (REINFORCE++, Hu et al. 2025: KL as a per-token reward penalty, batch whitening)
  stable_reinforce  reinforce_pp's knobs, plus pre_clip.enable=True and advantage_filter.enable=True
                    (R1-Reward's StableReinforce, arXiv 2505.02835: Pre-CLIP at [log 1e-3, log 1e3],
                    advantage filter mode 'paper' with sigma 3 and max |A| 10, the config's defaults)

A preset never sets the KL coefficient (``kl.init_kl_coef`` 0 keeps the reference model off) and never
overrides a field the user set explicitly: pydantic records those in ``model_fields_set``, whether they
came from YAML, a dotted command-line override, or an assignment.
"""

from __future__ import annotations

from typing import Any

from openrlhf.config import AlgoConfig

_REINFORCE_PP: dict[str, dict[str, Any]] = {
    "advantage": {"estimator": "reinforce"},
    "kl": {"use_kl_loss": False, "estimator": "k1"},
}

ALGO_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "grpo": {
        "advantage": {"estimator": "group_norm"},
        "kl": {"use_kl_loss": True, "estimator": "k3"},
    },
    "reinforce_pp": _REINFORCE_PP,
    "stable_reinforce": {
        **_REINFORCE_PP,
        "pre_clip": {"enable": True},
        "advantage_filter": {"enable": True},
    },
}


def preset_overrides(algo_cfg: AlgoConfig) -> dict[str, Any]:
    """The dotted ``algo.*`` keys the preset of ``algo_cfg.name`` sets, leaving out those the user set."""
    if algo_cfg.name not in ALGO_PRESETS:
        raise ValueError(f"algo.name={algo_cfg.name!r} has no preset (allowed: {', '.join(ALGO_PRESETS)})")
    changes: dict[str, Any] = {}
    for section_name, values in ALGO_PRESETS[algo_cfg.name].items():
        section = getattr(algo_cfg, section_name)
        for key, value in values.items():
            if key not in section.model_fields_set:
                changes[f"algo.{section_name}.{key}"] = value
    return changes


def resolve_algo_preset(algo_cfg: AlgoConfig) -> AlgoConfig:
    """A new AlgoConfig with the preset of ``algo_cfg.name`` applied under the user's explicit choices.

    Idempotent; ``algo_cfg`` is not modified. Call it once when the run starts and log the result.
    """
    by_section: dict[str, dict[str, Any]] = {}
    for dotted, value in preset_overrides(algo_cfg).items():
        _, section_name, key = dotted.split(".")
        by_section.setdefault(section_name, {})[key] = value
    updates = {}
    for section_name, values in by_section.items():
        section = getattr(algo_cfg, section_name)
        explicit = section.model_dump(include=set(section.model_fields_set))
        updates[section_name] = type(section).model_validate({**explicit, **values})
    return algo_cfg.model_copy(update=updates, deep=True)
