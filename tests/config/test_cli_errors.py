"""Entry points turn expected failures into one clear line and an exit code, and keep tracebacks for bugs."""

from __future__ import annotations

import pytest

from openrlhf.cli.common import run_with_config
from openrlhf.trainer.checkpoint_io import CheckpointError
from openrlhf.trainer.driver import TrainingStopped
from openrlhf.trainer.reward_client import RewardServiceError
from openrlhf.workers.placement import PlacementError


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ValueError("data.train_paths is empty"), 1),
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
    from openrlhf.config import load_config

    cfg, _ = load_config(["--plan.model_size", "''", "--actor.model_name_or_path", '"0123"'])
    assert cfg.plan.model_size == "" and cfg.actor.model_name_or_path == "0123"
    cfg, _ = load_config(["--data.system_prompt", "it's"])
    assert cfg.data.system_prompt == "it's"
