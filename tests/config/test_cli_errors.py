"""Entry points turn expected failures into one clear line and an exit code, and keep tracebacks for bugs."""

from __future__ import annotations

import pytest

from openrlhf.cli.common import run_with_config
from openrlhf.config import ConfigError
from openrlhf.data.errors import DatasetError, RowUnusable
from openrlhf.trainer.checkpoint_io import CheckpointError
from openrlhf.trainer.driver import TrainingStopped
from openrlhf.trainer.reward_client import RewardServiceError
from openrlhf.utils.errors import UserError
from openrlhf.workers.placement import PlacementError


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("data.train_paths is empty"), 1),
        (DatasetError("3 invalid rows in the dataset"), 1),
        (RowUnusable("train.jsonl:7: no response or text label to fine-tune on"), 1),
        (UserError("reward.token_env: environment variable 'RM_TOKEN' is not set or empty"), 1),
        (FileNotFoundError("actor.model_name_or_path: /no/such: no such folder"), 1),
        (RewardServiceError("http://127.0.0.1:9/get_reward: connection refused after 3 attempts"), 1),
        (CheckpointError("ckpt/global_step3/driver_state.json is unreadable"), 1),
        (PlacementError("placement group 'policy': could not reserve 4 bundles"), 1),
        (TrainingStopped("step 5: 3 non-finite updates in a row"), 3),
    ],
)
def test_expected_failures_are_one_line(exc, code, capsys):
    def run(cfg):
        raise exc

    assert run_with_config("openrlhf-train", run, []) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(exc) in err and err.startswith("openrlhf-train: ")


def test_config_errors_exit_2_and_bugs_keep_their_traceback(capsys):
    assert run_with_config("openrlhf-train", lambda cfg: None, ["--train.sed", "1"]) == 2
    assert "train.sed" in capsys.readouterr().err

    def buggy(cfg):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_with_config("openrlhf-train", buggy, [])


def test_an_internal_value_error_keeps_its_traceback(capsys):
    """A shape error deep in a step is a bug, not the user's: it propagates with its traceback (it used to be
    printed as one line, exit 1, and the traceback was lost)."""
    import torch

    def run(cfg):
        from openrlhf.algorithms.groups import group_view

        group_view(torch.zeros(5), 2)  # 5 rewards are no whole number of groups of 2: an internal ValueError

    with pytest.raises(ValueError, match="not a whole number of groups") as info:
        run_with_config("openrlhf-train", run, [])
    assert not isinstance(info.value, UserError)
    assert info.traceback[-1].name == "check_group_layout"  # the traceback reaches where it was raised
    assert "openrlhf-train: error:" not in capsys.readouterr().err


def test_a_row_the_run_cannot_use_is_one_line(tmp_path, capsys):
    """A user error raised inside the run (a row without an SFT target) still prints FILE:LINE in one line, exit 1."""
    import json

    from openrlhf.data import load_samples
    from openrlhf.trainer.sft import _target_text

    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"prompt": "Where is the cat?", "label": [10, 20, 30, 40]}) + "\n")  # a box: no text

    def run(cfg):
        for sample in load_samples(cfg.data.train_paths, cfg.data).samples:
            _target_text(sample)

    assert run_with_config("openrlhf-sft", run, ["--data.train_paths", f"[{path}]"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.jsonl:1: no response or text label" in err


def test_print_config_prints_yaml_and_runs_nothing(capsys):
    ran = []
    assert run_with_config("openrlhf-train", ran.append, ["--train.seed", "7", "--print-config"]) == 0
    assert "seed: 7" in capsys.readouterr().out and not ran


def test_a_command_naming_a_model_does_not_run_the_demo(capsys):
    """A pasted OpenRLHF command has no --config: it must train the named model, not the embedded demo."""
    import yaml

    from openrlhf.cli.train import main

    assert main(["--actor.model_name_or_path", "/models/x", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["demo"]["enable"] is False
    assert main(["--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["demo"]["enable"] is True


def test_a_quoted_value_is_the_text_inside_the_quotes():
    """`--plan.model_size ''` from a script or a test list means empty, as YAML's parser read it before."""
    from openrlhf.config_loading import load_config

    cfg, _ = load_config(["--plan.model_size", "''", "--actor.model_name_or_path", '"0123"'])
    assert cfg.plan.model_size == "" and cfg.actor.model_name_or_path == "0123"
    cfg, _ = load_config(["--data.system_prompt", "it's"])
    assert cfg.data.system_prompt == "it's"
