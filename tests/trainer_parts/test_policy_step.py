"""The fast paths of a training step give the update of the plain path, on a real DeepSpeed PolicyWorker:
old log-probs from the training forward (on-policy), token-budget micro-batches and packed rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("policy_step_probe.py")
PLAIN = "train.recompute_old_logprobs=true"
ON_POLICY = ""
DYNAMIC = "train.dynamic_batch_enable=true"
PACKED = "train.dynamic_batch_enable=true,ds.packing_samples=true"


@pytest.fixture(scope="module")
def results(tiny_lm_path):
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(tiny_lm_path), PLAIN, ON_POLICY, DYNAMIC, PACKED],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.parametrize("setting", [ON_POLICY, DYNAMIC, PACKED])
def test_fast_paths_train_to_the_same_weights(results, setting):
    plain, fast = results[PLAIN], results[setting]
    assert fast["first"] == pytest.approx(plain["first"], abs=2e-6)
    assert fast["abs"] == pytest.approx(plain["abs"], rel=1e-6)
    if setting == ON_POLICY:  # the same micro-batches (the loss metric is a mean of micro-batch means)
        assert fast["loss"] == pytest.approx(plain["loss"], abs=1e-5)


def test_the_update_moved_the_weights_and_was_on_policy(results, tiny_lm_path):
    from safetensors.torch import load_file

    initial = load_file(str(Path(tiny_lm_path) / "model.safetensors"))
    initial_abs = sum(float(t.double().abs().sum()) for t in initial.values())
    assert abs(results[PLAIN]["abs"] - initial_abs) > 1e-3
    for setting in (PLAIN, ON_POLICY, PACKED):
        assert results[setting]["ratio_max"] == pytest.approx(1.0, abs=1e-5)
