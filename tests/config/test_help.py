"""``--help`` on every console script: the config-driven ones print a one-screen summary of the sections they
read, ``--help all`` lists their keys, types, defaults and descriptions from the config tree (with OpenRLHF's
names), ``--help SECTION`` shows one section, and an unknown one gets suggestions; the others print argparse's
help with every option's default. All exit 0 without doing any work."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from openrlhf.config import Config
from openrlhf.config_help import (
    COMMAND_SECTIONS,
    COMMON_KEYS,
    SECTION_SUMMARY,
    all_keys,
    command_sections,
    format_help,
    sections,
    suggestions,
)

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


def test_config_help_all_lists_every_key_with_type_default_and_description(capsys):
    assert entry_point("openrlhf-train")(["--help", "all"]) == 0
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
    text = format_help("openrlhf-train", "all")
    assert "sections: " + ", ".join(Config.model_fields) in text


def test_train_help_is_a_one_screen_summary(capsys):
    assert entry_point("openrlhf-train")(["--help"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 45, len(out.splitlines())
    for name in Config.model_fields:
        assert f"  {name:<8} {SECTION_SUMMARY[name]}" in out
    for key in COMMON_KEYS["openrlhf-train"]:
        assert f"--{key} " in out
    assert "--help all" in out and "--help SECTION" in out and "--help KEY" in out and "--plan" in out
    assert "[actor.lora]" not in out  # the full tree is behind --help all


def test_every_section_has_a_summary_and_every_common_key_exists():
    assert list(SECTION_SUMMARY) == list(Config.model_fields)
    for command, keys in COMMON_KEYS.items():
        assert set(keys) <= set(all_keys()), command
        assert {key.split(".")[0] for key in keys} <= set(command_sections(command)), command
    for own in COMMAND_SECTIONS.values():
        assert set(own) <= set(Config.model_fields)


@pytest.mark.parametrize("command", sorted(COMMAND_SECTIONS))
def test_sft_and_eval_help_show_only_their_sections(command, capsys):
    own = COMMAND_SECTIONS[command]
    other = [name for name in Config.model_fields if name not in own]
    assert entry_point(command)(["--help"]) == 0
    summary = capsys.readouterr().out
    assert len(summary.splitlines()) <= 45
    assert entry_point(command)(["--help", "all"]) == 0
    full = capsys.readouterr().out
    for name in own:
        assert f"  {name:<8} " in summary and f"[{name}]" in full
    for name in other:  # rollout, vllm, reward, plan ... for sft
        assert f"  {name:<8} " not in summary and f"[{name}]" not in full and f"[{name}." not in full
    assert entry_point(command)(["--help", "rollout"]) == 0  # any section on request: its keys still parse
    assert "[rollout]" in capsys.readouterr().out


def _argparse_parsers():
    """Every argparse parser behind a console script (subcommands included), by name."""
    import argparse

    from openrlhf.cli import data, eval, models, serve, tiny
    from remote_rm import cli as rm_cli

    tops = {
        "openrlhf-data": data.build_parser(),
        "openrlhf-tiny": tiny._parser(),
        "openrlhf-models": models._parser(),
        "openrlhf-serve": serve.build_parser(),
        "openrlhf-reward-server": rm_cli.build_parser(),
        "openrlhf-eval --from-outputs": eval.from_outputs_parser(),
    }
    found = {}
    for name, parser in tops.items():
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    found[f"{name} {sub}"] = subparser
    return found


@pytest.mark.parametrize("name", sorted(_argparse_parsers()))
def test_argparse_commands_show_every_default(name):
    """Every option with a default (not None, not an off switch) says it in its help line."""
    import argparse

    parser = _argparse_parsers()[name]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.default in (None, argparse.SUPPRESS) or action.default is False:
            continue
        assert action.help, f"{name} {action.option_strings[0]}: no help"
        text = formatter._get_help_string(action) % {"default": action.default}
        assert "default" in text, f"{name} {action.option_strings[0]}: {text!r}"
    parser.format_help()  # every help string formats


def test_serve_help_shows_the_port_default(capsys):
    assert entry_point("openrlhf-serve")(["--help"]) == 0
    assert "TCP port (default: 8000)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_command_lines_keep_their_spacing(script, capsys):
    """An example command in a help text is written as a shell line: no run of spaces inside it (a docstring's
    line continuation once glued two lines into one with the next line's indent)."""
    assert entry_point(script)(["--help"]) == 0
    for line in capsys.readouterr().out.splitlines():
        command = line.split("#", 1)[0].rstrip()
        if command.startswith(script + " ") and not line.startswith("usage"):
            assert "   " not in command.strip(), line


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
