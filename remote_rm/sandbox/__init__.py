"""A sandbox for model-written Python: one contained process per call (docs/sandbox.md).

- :func:`run_python` runs a program with stdin, returns a :class:`SandboxResult` (sync: async callers use a
  thread); the limits are a :class:`SandboxLimits`.
- :func:`sandbox_mechanism` says how runs are contained on this machine (probed once, cached): Linux
  namespaces through ``unshare`` (mount, pid, net; a minimal read-only root; no network; a per-run uid or a
  user namespace without capabilities) plus rlimits, or, where namespaces are not permitted (Docker's default
  seccomp profile), "rlimits only" with its weaknesses spelled out.
"""

from __future__ import annotations

import logging

from remote_rm.sandbox.runner import FALLBACK, NAMESPACES, SandboxLimits, SandboxResult, execute, probe

__all__ = ["SandboxLimits", "SandboxResult", "run_python", "sandbox_mechanism", "sandbox_mode"]

log = logging.getLogger("remote_rm.sandbox")


def sandbox_mode() -> str:
    """The mode on this machine, probed once: NAMESPACES ("namespaces") or FALLBACK ("rlimits")."""
    return probe()[0]


def sandbox_mechanism() -> str:
    """A one-line description of how runs are contained on this machine (probed once, cached)."""
    return probe()[1]


def run_python(
    code: str, stdin: str = "", limits: SandboxLimits | None = None, *, mode: str | None = None
) -> SandboxResult:
    """Run ``code`` as ``python -I -S main.py`` in a fresh sandbox with ``stdin``; never raises for what the
    program does (a sandbox failure is ``returncode=None`` with ``killed="sandbox error: ..."``).

    ``mode`` forces NAMESPACES or FALLBACK (tests); by default the probed one.
    """
    if mode not in (None, NAMESPACES, FALLBACK):
        raise ValueError(f"mode must be {NAMESPACES!r} or {FALLBACK!r}, got {mode!r}")
    return execute(code, stdin, limits or SandboxLimits(), mode or sandbox_mode())


def warn_if_fallback() -> None:
    """Log one warning when this machine only has the rlimits fallback (called at server start)."""
    if sandbox_mode() == FALLBACK:
        log.warning("code sandbox: %s; see docs/sandbox.md for what that does not contain", sandbox_mechanism())
