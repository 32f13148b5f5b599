"""``--help`` on every console script: the config-driven ones list sections, keys, types, defaults and
descriptions from the config tree (with OpenRLHF's names), ``--help SECTION`` shows one section, and an
unknown one gets suggestions; the others print argparse's help. All exit 0 without doing any work."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from openrlhf.config import Config
from openrlhf.config_help import all_keys, format_help, sections, suggestions

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
CONFIG_DRIVEN = {"openrlhf-train", "openrlhf-sft", "openrlhf-eval"}


def entry_point(name: str):
    module, func = SCRIPTS[name].split(":")
    return getattr(importlib.import_module(module), func)


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_console_script_has_help(script, flag, capsys):
    assert entry_point(script)([flag]) == 0
    out = capsys.readouterr().out
    assert "usage" in out.lower() and script in out


def test_config_help_lists_every_key_with_type_default_and_description(capsys):
    assert entry_point("openrlhf-train")(["--help"]) == 0
    out = capsys.readouterr().out
    for section in sections():
        assert f"[{section}]" in out
    for key in all_keys():
        assert f"--{key} " in out, key
    flat = _flat(out)
    for name, model in sections().items():
        for key, field in model.model_fields.items():
            if field.description and f"{name}.{key}" in all_keys():
                assert _flat(field.description) in flat, f"{name}.{key}"
    assert "--train.seed INT  (default 42)" in out
    assert "--rollout.backend {auto,hf,vllm}  (default auto)" in out
    assert "--algo.dynamic_filtering_range, --algo.dynamic_filter.score_range FLOAT FLOAT" in out
    assert "--ckpt.max_num, --ckpt.keep INT" in out  # OpenRLHF's name beside ours
    assert "OpenRLHF: --ds.param_dtype sets this" in out
    assert "--plan" in out  # openrlhf-train's own options are described too


def test_help_for_one_section_a_key_and_openrlhf(capsys):
    sft = entry_point("openrlhf-sft")
    assert sft(["--help", "algo.kl"]) == 0
    out = capsys.readouterr().out
    assert "[algo.kl]" in out and "--algo.kl.init_coef, --algo.kl.init_kl_coef" in out and "[train]" not in out
    assert sft(["--help=algo"]) == 0
    out = capsys.readouterr().out
    assert "[algo]" in out and "[algo.clip]" in out and "[actor]" not in out
    assert sft(["--help", "ckpt.save_steps"]) == 0
    assert "ckpt.interval" in capsys.readouterr().out
    assert sft(["--help", "openrlhf"]) == 0
    out = capsys.readouterr().out
    assert "--actor.adam.lr -> train.learning_rate" in out and "--critic.num_nodes (OpenRLHF's flag)" in out


def test_unknown_help_section_suggests_and_exits_2(capsys):
    assert entry_point("openrlhf-train")(["--help", "rollot"]) == 2
    err = capsys.readouterr().err
    assert "no such section or key (did you mean rollout" in err and "sections:" in err


def test_did_you_mean_searches_every_section_and_openrlhf_names():
    assert "rollout.temperature" in suggestions("train.temperature")
    assert "ckpt.save_steps" in suggestions("ckpt.save_step")
    assert "vllm.num_engines" in suggestions("vllm.num_engine")
    assert suggestions("zzzz.qqqq") == []


def test_format_help_names_every_top_section():
    text = format_help("openrlhf-sft")
    assert "sections: " + ", ".join(Config.model_fields) in text


def test_train_help_from_the_console_runs_nothing():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "openrlhf.cli.train", "--help", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[demo]" in proc.stdout and "--demo.enable BOOL" in proc.stdout
