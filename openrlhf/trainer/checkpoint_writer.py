"""Writing a training checkpoint, in the foreground or while the run goes on (``ckpt.async_save``).

A checkpoint is one directory ``<ckpt root>/global_step<N>``: the policy's DeepSpeed state from every rank
(model, optimizer, scheduler, RNG), the policy in Hugging Face format (``ckpt.save_hf``), the generated batches
not trained yet (async rollouts) and the driver's state (step, prompt position, KL controller, history, best
model, RNG). It is written into a temp directory and renamed in when complete, so a crash leaves the previous
checkpoint as the latest.

With ``background=True`` the ranks' writes are submitted now (Ray runs an actor's calls in the order one caller
submits them, so the write sees the weights of step N and the next training call waits behind it) and the rest
(waiting for the writes, the driver's files, the rename, the rotation) happens in a thread: the next step's
generation runs while the policy ranks write. :meth:`CheckpointWriter.wait` finishes it (before the next
checkpoint, a restart or the end of the run).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import torch

PENDING_ROLLOUTS_FILE = "pending_rollouts.pt"


class CheckpointWriter:
    def __init__(self, root: Path, keep: int, save_hf: bool) -> None:
        self.root = root
        self.keep = keep
        self.save_hf = save_hf
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(
        self, policy: Any, step: int, driver_state: dict[str, Any], pending: list, *, background: bool = False
    ) -> Path:
        """Checkpoint ``step``; returns its final directory (complete once :meth:`wait` returns)."""
        from openrlhf.trainer.checkpoint_io import begin_directory, capture_rng_state, checkpoint_dir

        self.wait()
        final = checkpoint_dir(self.root, step)
        tmp = begin_directory(final)
        state = {**driver_state, "rng": capture_rng_state()}  # the driver's RNG now, not when the thread writes
        try:
            refs = [
                h.save_checkpoint.remote(str(tmp.parent), tmp.name, {"optimizer_steps": step}) for h in policy.handles
            ]
            if self.save_hf:
                refs += [h.export_hf.remote(str(tmp / "hf")) for h in policy.handles]
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not background:
            self._finish(refs, tmp, final, state, pending)
            return final
        self._thread = threading.Thread(
            target=self._finish_in_thread, args=(refs, tmp, final, state, pending), name="checkpoint", daemon=True
        )
        self._thread.start()
        return final

    def _finish(self, refs: list, tmp: Path, final: Path, state: dict, pending: list) -> None:
        from openrlhf.trainer.checkpoint_io import commit_directory, rotate_checkpoints, save_driver_state
        from openrlhf.utils.actor_calls import wait_for

        try:
            wait_for(refs, f"checkpoint {final.name}: policy.save_checkpoint")
            if pending:
                torch.save(pending, tmp / PENDING_ROLLOUTS_FILE)
            save_driver_state(tmp, state, with_rng=False)
            commit_directory(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        rotate_checkpoints(self.root, self.keep)

    def _finish_in_thread(self, *args) -> None:
        try:
            self._finish(*args)
        except BaseException as exc:  # raised by wait(), in the driver's thread
            self._error = exc

    def wait(self) -> None:
        """Finish the write in flight, if any; its error is raised here."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
