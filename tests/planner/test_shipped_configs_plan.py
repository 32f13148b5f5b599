"""Every training config in configs/ passes the planner on one node of 8 x 80 GB GPUs (its own model size)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openrlhf.cli.train import main as train_main
from openrlhf.config_loading import load_config
from openrlhf.plan import make_plan, model_from_size, parse_cluster_spec, parse_model_size

REPO = Path(__file__).resolve().parents[2]
TRAINING_CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if not p.name.startswith("reward_recipes"))


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.name)
def test_config_fits_one_node_of_eight_80gb_gpus(path):
    cfg, _ = load_config(["--config", str(path)])
    assert cfg.plan.model_size, f"{path.name}: set plan.model_size so the planner needs no download"
    plan = make_plan(cfg, parse_cluster_spec("1x8x80"), model_from_size(parse_model_size(cfg.plan.model_size)))
    assert plan.fits, f"{path.name}: " + "; ".join(plan.problems)


def test_the_cli_plans_each_recipe_without_ray(capsys):
    for path in TRAINING_CONFIGS:
        assert train_main(["--config", str(path), "--plan", "--plan-cluster", "1x8x80"]) == 0, path.name
        assert "verdict: fits" in capsys.readouterr().out
