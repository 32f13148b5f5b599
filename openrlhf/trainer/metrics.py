"""Per-step metrics: metrics.jsonl, TensorBoard, Weights & Biases, a progress bar; and the run summary.

Key names the driver logs and these tools read: ``reward/mean``, ``reward/accuracy``, ``kl/mean``,
``response_length/mean``, ``timing/step`` (seconds; ``time/step`` is read too).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from openrlhf.config import LoggerConfig

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"

# (progress-bar label, metric keys it shows: the first one logged)
PROGRESS_KEYS = (
    ("reward", ("reward/mean",)),
    ("acc", ("reward/accuracy",)),
    ("kl", ("kl/mean",)),
    ("step_s", ("timing/step", "time/step")),
)


def to_json_value(value: Any) -> Any:
    """A JSON-safe copy: tensors/arrays become numbers or lists, NaN and +-inf become null."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # torch tensors, numpy values
        value = value.tolist()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _scalar(value: Any) -> float | None:
    """The value as a finite float, or None when it is not one number."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class MetricsLogger:
    """Writes each step's metrics to every configured sink.

    metrics.jsonl (when ``logger.jsonl``): one ``{"step": N, ...}`` line per call, flushed at once.
    TensorBoard (``logger.tensorboard_dir``), wandb (``logger.wandb_project``), and a tqdm bar over
    ``total_steps`` showing reward, accuracy, KL and step time (``logger.progress_bar``).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        logger_cfg: LoggerConfig,
        total_steps: int,
        *,
        run_config: Mapping[str, Any] | None = None,
        start_step: int = 0,
        append: bool = False,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = logger_cfg
        self.total_steps = total_steps
        self.path = self.output_dir / METRICS_FILE
        self._jsonl = open(self.path, "a" if append else "w", encoding="utf-8") if logger_cfg.jsonl else None  # noqa: SIM115
        self._tb = None
        if logger_cfg.tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=logger_cfg.tensorboard_dir)
        self._wandb = None
        if logger_cfg.wandb_project:
            try:
                import wandb
            except ImportError:
                raise RuntimeError(
                    f"logger.wandb_project is set ({logger_cfg.wandb_project!r}) but wandb is not installed: "
                    "pip install wandb, or clear logger.wandb_project"
                ) from None
            self._wandb = wandb.init(
                project=logger_cfg.wandb_project,
                name=logger_cfg.wandb_run_name or None,
                config=to_json_value(dict(run_config or {})),
                dir=str(self.output_dir),
            )
        self._bar = None
        if logger_cfg.progress_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record ``metrics`` for ``step`` everywhere; non-numbers go to metrics.jsonl only."""
        if self._jsonl is not None:
            record = {"step": step, **{str(k): to_json_value(v) for k, v in metrics.items()}}
            self._jsonl.write(json.dumps(record, allow_nan=False) + "\n")
            self._jsonl.flush()
        scalars = {k: s for k, v in metrics.items() if (s := _scalar(v)) is not None}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, global_step=step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)
        if self._bar is not None:
            postfix = {}
            for label, keys in PROGRESS_KEYS:
                key = next((k for k in keys if k in scalars), None)
                if key is not None:
                    postfix[label] = f"{scalars[key]:.4g}"
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(max(step - self._bar.n, 0))

    def rewind(self, step: int, history: Iterable[Mapping[str, Any]]) -> None:
        """The run went back to ``step`` (a restart from a checkpoint): metrics.jsonl keeps the steps up to it
        (:func:`prepare_metrics_for_resume`) and the steps after it are logged again, once each. TensorBoard
        shows the later write of a step; wandb ignores steps it has seen."""
        if self._jsonl is not None:
            self._jsonl.close()
            prepare_metrics_for_resume(self.output_dir, step, history)
            self._jsonl = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        if self._bar is not None:
            self._bar.n = step
            self._bar.refresh()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_metrics_for_resume(
    output_dir: str | os.PathLike[str], step: int, history: Iterable[Mapping[str, Any]]
) -> Path:
    """metrics.jsonl of a run resumed at ``step``, before it appends: the rows of steps <= ``step`` stay (one
    per step, the last written wins); rows after it, logged by a run killed before its next checkpoint, are
    dropped because the resumed run logs those steps again; a torn last line (kill -9 mid-write) is dropped;
    steps <= ``step`` missing from the file come from the checkpoint's ``history``. Rewritten atomically."""
    path = Path(output_dir) / METRICS_FILE
    kept: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept[record["step"]] = record
    for record in history:
        number = record.get("step")
        if isinstance(number, int) and number <= step:
            kept.setdefault(number, to_json_value(dict(record)))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(kept[k], allow_nan=False) + "\n" for k in sorted(kept)), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file; a bad line raises ValueError naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line: {exc.msg}") from None
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError(f"{path}:{number}: a metrics line must be an object with a 'step' key")
            records.append(record)
    return records


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return "  ".join(f"{k}={_format_cell(v)}" for k, v in value.items())
    return str(value)


def write_summary(output_dir: str | os.PathLike[str], summary: Mapping[str, Any], *, print_table: bool = True) -> Path:
    """Write ``summary.json`` (JSON-safe: NaN becomes null) into ``output_dir`` and print it as a table."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / SUMMARY_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_json_value(dict(summary)), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    if print_table:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Run summary ({path})")
        table.add_column("metric", style="bold")
        table.add_column("value")
        for key, value in summary.items():
            table.add_row(str(key), _format_cell(value))
        Console().print(table)
    return path


def write_timeline(path: str | os.PathLike[str], step: int, events: Iterable[tuple], t0: float) -> None:
    """Append one step's phases to timeline.jsonl: {"step", "role", "phase", "start", "end"}, seconds since ``t0``
    (the run's start). Roles: engines (generation), driver (reward), policy (train, weight_sync); in async mode
    a step's generation ran during the step before (bench/async_vs_sync.py draws them)."""
    with open(path, "a", encoding="utf-8") as handle:
        for role, phase, start, end in events:
            row = {"step": step, "role": role, "phase": phase, "start": round(start - t0, 4), "end": round(end - t0, 4)}
            handle.write(json.dumps(row) + "\n")
