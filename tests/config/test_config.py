"""Config loading: YAML, dotted overrides, errors that name the key, value and choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from openrlhf.config import Config, ConfigError, dump_config
from openrlhf.config_loading import load_config, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def test_defaults_validate():
    cfg, printed = load_config([])
    assert isinstance(cfg, Config)
    assert printed is False
    assert cfg.algo.advantage.estimator == "group_norm"


def test_dotted_overrides_reach_nested_fields():
    cfg, _ = load_config(
        [
            "--actor.model_name_or_path",
            "/models/x",
            "--vllm.num_engines",
            "4",
            "--algo.advantage.estimator",
            "rloo",
            "--train.colocate_all",
            "--reward.remote_url",
            "[http://a:5000/get_reward, http://b:5000/get_reward]",
            "--train.learning_rate=3e-6",
            "--print-config",
        ]
    )
    assert cfg.actor.model_name_or_path == "/models/x"
    assert cfg.vllm.num_engines == 4
    assert cfg.algo.advantage.estimator == "rloo"
    assert cfg.train.colocate_all is True
    assert cfg.reward.remote_url == ["http://a:5000/get_reward", "http://b:5000/get_reward"]
    assert cfg.train.learning_rate == pytest.approx(3e-6)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("train:\n  seed: 7\n  output_dir: out/a\nrollout:\n  temperature: 0.7\n")
    cfg, _ = load_config(["--config", str(path), "--train.seed", "9"])
    assert cfg.train.seed == 9
    assert cfg.train.output_dir == "out/a"
    assert cfg.rollout.temperature == pytest.approx(0.7)


def test_unknown_key_names_key_and_allowed(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(["--vllm.num_engine", "2"])
    msg = str(err.value)
    assert "vllm.num_engine" in msg and "num_engines" in msg


def test_unknown_key_in_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("algo:\n  advantage:\n    estimatr: rloo\n")
    with pytest.raises(ConfigError, match=r"algo\.advantage\.estimatr"):
        load_config(["--config", str(path)])


def test_bad_choice_names_value_and_allowed():
    with pytest.raises(ConfigError) as err:
        load_config(["--algo.advantage.estimator", "ppo_gae"])
    msg = str(err.value)
    assert "algo.advantage.estimator" in msg and "'ppo_gae'" in msg and "group_norm" in msg


def test_bad_number_names_key():
    with pytest.raises(ConfigError, match=r"rollout\.n_samples_per_prompt.*0"):
        load_config(["--rollout.n_samples_per_prompt", "0"])
    with pytest.raises(ConfigError, match=r"train\.learning_rate.*'fast'"):
        load_config(["--train.learning_rate", "fast"])


def test_bad_list_item_names_its_index_and_value():
    with pytest.raises(ConfigError, match=r"demo\.shape_kinds\.1': 'colour'.*'exact'"):
        load_config(["--demo.shape_kinds", "[exact, colour]"])
    with pytest.raises(ConfigError, match=r"demo\.min_terms \(6\) must not exceed demo\.max_terms \(3\)"):
        load_config(["--demo.min_terms", "6", "--demo.max_terms", "3"])


def test_bad_sampling_strategy():
    with pytest.raises(ConfigError, match="sampling_strategy"):
        load_config(["--data.sampling_strategy", "middle:5"])


def test_option_without_section_and_stray_argument():
    with pytest.raises(ConfigError, match="names no section"):
        parse_overrides(["--pretrain", "x"])
    with pytest.raises(ConfigError, match="unexpected argument"):
        parse_overrides(["positional"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(["--config", str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(["--config", str(bad)])


def test_exclusive_reward_sources():
    with pytest.raises(ConfigError, match="exclusive"):
        load_config(["--reward.remote_url", "[http://x/get_reward]", "--reward.reward_func", "r.py"])


def test_dump_round_trips(tmp_path):
    cfg, _ = load_config(["--train.seed", "3", "--algo.clip.eps_high", "0.28"])
    path = tmp_path / "dump.yaml"
    path.write_text(dump_config(cfg))
    again, _ = load_config(["--config", str(path)])
    assert again == cfg


TRAINER_CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if not p.name.startswith("reward_recipes"))


@pytest.mark.parametrize("path", TRAINER_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    load_config(["--config", str(path)])


def test_config_validators_catch_inconsistent_values():
    with pytest.raises(ConfigError, match="dual_clip"):
        load_config(["--algo.clip.dual_clip", "0.5"])
    with pytest.raises(ConfigError, match="log_ratio_min"):
        load_config(["--algo.pre_clip.log_ratio_min", "2", "--algo.pre_clip.log_ratio_max", "1"])
    with pytest.raises(ConfigError, match="score_range"):
        load_config(["--algo.dynamic_filter.score_range", "[0.9, 0.1]"])
