"""docs/first_run.md works as written: every shell statement of the page runs, in order, in a fresh folder, with
the tiny LM standing in for the reader's model. ``openrlhf-*`` commands run in this process; the reward server
runs in the background as the page starts it; other statements (heredocs, curl, python -c) run in bash.

Only the size of the run changes: the page's 20 (and, resumed, 40) steps become 1 and 2, with small batches and
short responses. Statements that need a Ray cluster of their own (`ray start`, `ray job submit`, `ray stop`) are
checked to parse instead."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from .helpers import REPO, capture, check_parses, entry_point, openrlhf_command, shell_blocks, statements

PAGE = REPO / "docs" / "first_run.md"
STEPS = {"20": "1", "40": "2"}  # --train.max_steps on the page -> in the test
SMALL = (
    "--train.rollout_batch_size", "4", "--rollout.n_samples_per_prompt", "2", "--rollout.max_new_tokens", "16",
    "--logger.progress_bar", "false",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _small_run(args: list[str]) -> list[str]:
    i = args.index("--train.max_steps")
    return [*args[: i + 1], STEPS[args[i + 1]], *args[i + 2 :], *SMALL]


def _bash(statement: str, cwd) -> str:
    proc = subprocess.run(["bash", "-c", statement], cwd=cwd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{statement}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.slow
def test_first_run_page_runs_on_the_tiny_model(tmp_path, monkeypatch):
    for name in ("configs", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    port = str(_free_port())
    server = None
    trained = []
    try:
        for block in shell_blocks(PAGE.read_text()):
            for statement in statements(block):
                statement = statement.replace("5000", port)
                command = openrlhf_command(statement)
                if command is None:
                    if statement.lstrip().startswith(("ray ", "RAY_AUTH_MODE=")):
                        continue  # `ray start` / `ray stop`: a cluster of the reader's
                    out = _bash(statement, tmp_path)
                    if "/get_reward" in statement:
                        assert json.loads(out)["rewards"] == [1.5]  # the recipe: 0.5 format + 1 accuracy
                    continue
                script, args, background = command
                if background:  # the reward server, started as the page starts it
                    assert script == "openrlhf-reward-server" and server is None
                    server = subprocess.Popen(
                        [sys.executable, "-m", "remote_rm.cli", *args],
                        cwd=tmp_path,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env={**os.environ, "PYTHONPATH": str(REPO)},
                    )
                elif "ray" in statement.split(script)[0].split():
                    check_parses(script, args)  # `ray job submit -- openrlhf-train ...`: a run on the reader's cluster
                elif script == "openrlhf-train" and "--plan" not in args:
                    code, out, err = capture(lambda args=args: entry_point("openrlhf-train")(_small_run(args)))
                    assert code == 0, err[-3000:]
                    trained.append(out)
                else:
                    code, out, err = capture(lambda script=script, args=args: entry_point(script)(args))
                    assert code == 0, f"{script} {args}: {err[-3000:]}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    assert server is not None and len(trained) == 2
    run = tmp_path / "outputs" / "my_run"
    for name in ("config.yaml", "plan.txt", "metrics.jsonl", "timeline.jsonl", "summary.json", "learning_curves.png"):
        assert (run / name).is_file(), name
    assert (run / "final_model" / "config.json").is_file() and (run / "ckpt" / "global_step2").is_dir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]  # the second command resumed after step 1
    assert "resumed from" in trained[1] and "global_step1" in trained[1]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["heldout_accuracy_after"] is not None
