"""The parent side of the sandbox: start one contained process per call, read its output under a cap,
enforce the wall deadline, and clean up (see :mod:`remote_rm.sandbox` and docs/sandbox.md).

The child is ``unshare --mount --net --pid --fork --kill-child=SIGKILL [--user --map-root-user]`` running
:mod:`remote_rm.sandbox.inside` (namespace mode), or that bootstrap alone (fallback mode, "rlimits only").
Its stdout and stderr are read through pipes, each kept up to ``output_bytes`` and the rest read and
thrown away, so the parent never holds more than that; its stdin is an unlinked temporary file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("remote_rm.sandbox")

INSIDE = Path(__file__).with_name("inside.py")
NAMESPACES = "namespaces"
FALLBACK = "rlimits"
_UNSHARE_ARGS = ["--mount", "--net", "--pid", "--fork", "--kill-child=SIGKILL"]
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_UID_BASE, _UID_SPAN = 2_000_000_000, 100_000_000  # a uid of its own per run: RLIMIT_NPROC counts per uid


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use. cpu_s: RLIMIT_CPU (SIGXCPU, then SIGKILL a second later); wall_s: the deadline
    (the whole run is killed); memory_mb: RLIMIT_AS; processes: RLIMIT_NPROC (its uid's tasks, threads included);
    file_size_mb: RLIMIT_FSIZE; open_files: RLIMIT_NOFILE; output_bytes: stdout and stderr each kept up to
    this; disk_mb, disk_inodes: the tmpfs behind /sandbox and /tmp (namespace mode only)."""

    cpu_s: float = 5.0
    wall_s: float = 10.0
    memory_mb: int = 512
    processes: int = 32
    file_size_mb: int = 16
    open_files: int = 64
    output_bytes: int = 65536
    disk_mb: int = 64
    disk_inodes: int = 4096

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"SandboxLimits.{f.name} must be > 0, got {getattr(self, f.name)!r}")

    @classmethod
    def from_params(cls, params: dict) -> SandboxLimits:
        """Limits from a dict of field names (unknown names raise ValueError naming them)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown sandbox limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**params)


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one run. returncode: exit status, -signal when killed by one, None when the sandbox
    itself failed; killed: why it was stopped or failed ("wall time", "cpu time", "memory", "file size",
    "processes", "signal N", "sandbox error: ...") or None; output_truncated: stdout or stderr went past
    output_bytes; mechanism: how it was contained."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    killed: str | None
    output_truncated: bool
    wall_s: float
    mechanism: str

    @property
    def ok(self) -> bool:
        """Exited with status 0, in time."""
        return self.returncode == 0 and not self.timed_out


class _Capped:
    """An output stream kept up to ``limit`` bytes; whatever comes after is read and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


def _python_paths(python: str) -> tuple[list[str], list[str]]:
    """(prefixes to mount, site-packages dirs to hide) for the interpreter that runs the code."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        prefixes = sorted({sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(python))})
        paths = sysconfig.get_paths()
        hide = sorted({paths["purelib"], paths["platlib"]})
    else:
        prefixes = [os.path.dirname(os.path.realpath(python))]
        hide = []
    return prefixes, hide


def _run_uid() -> tuple[bool, int, int]:
    """(drop_uid, uid, gid): a fresh high uid when we are root; otherwise no change."""
    if os.geteuid() == 0:
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        return True, uid, uid
    return False, os.geteuid(), os.getegid()


def _command(mode: str, cfg: dict, status_fd: int) -> list[str]:
    """The argv that starts the bootstrap in ``mode``."""
    boot = [sys.executable, "-I", "-S", str(INSIDE), json.dumps(cfg), str(status_fd)]
    if mode != NAMESPACES:
        return boot
    unshare = shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin") or "unshare"
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, *user, *_UNSHARE_ARGS, *boot]


def _pump(proc: subprocess.Popen, limits: SandboxLimits, deadline: float) -> tuple[_Capped, _Capped, bool]:
    """Read stdout/stderr until both close, the process exits (plus a short grace) or the deadline passes;
    at the deadline kill the process group. (stdout, stderr, killed_at_deadline)."""
    out, err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    killed, exited_at = False, None
    while sel.get_map():
        now = time.monotonic()
        if not killed and now >= deadline:
            _kill_group(proc)
            killed, deadline = True, now + 2.0
        elif killed and now >= deadline:
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > 0.5:
            break  # fallback mode: an escaped background process holds the pipes
        for key, _ in sel.select(timeout=min(0.1, max(deadline - now, 0.0))):
            data = os.read(key.fd, 65536)
            if data:
                key.data.add(data)
            else:
                sel.unregister(key.fileobj)
    sel.close()
    return out, err, killed


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (unshare and the bootstrap; --kill-child takes the pid namespace down)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _killed_reason(returncode: int | None, timed_out: bool, stderr: str, error: str | None) -> str | None:
    """Best effort: why the run was stopped, from the timeout, the signal or the traceback's last line."""
    if error:
        return f"sandbox error: {error}"
    if timed_out:
        return "wall time"
    if returncode is None or returncode == 0:
        return None
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) and "MemoryError" not in stderr[-2000:]:
        return "cpu time" if returncode == -signal.SIGXCPU else "signal 9"
    tail = stderr[-2000:]
    if "MemoryError" in tail:
        return "memory"
    if "File too large" in tail or returncode == -signal.SIGXFSZ:
        return "file size"
    if re.search(r"BlockingIOError: \[Errno 11\]|can't start new thread", tail):
        return "processes"
    if returncode < 0:
        return f"signal {-returncode}"
    return None


def _prepare(workdir: str, code: str, mode: str, limits: SandboxLimits, python: str) -> dict:
    """Write the program into ``workdir`` and return the bootstrap's config."""
    drop_uid, uid, gid = _run_uid()
    box = os.path.join(workdir, "box")
    os.mkdir(box, 0o700)
    Path(box, "main.py").write_text(code, encoding="utf-8")
    os.mkdir(os.path.join(workdir, "root"), 0o700)
    if drop_uid:
        os.chmod(workdir, 0o711)  # fallback mode: the run's uid must reach its cwd
        os.chown(box, uid, gid)
        os.chown(os.path.join(box, "main.py"), uid, gid)
    prefixes, hide = _python_paths(python)
    namespaces = mode == NAMESPACES
    if namespaces and not drop_uid:
        uid = gid = 0  # the user namespace maps its root to our uid
    env = dict(_ENV, HOME="/sandbox" if namespaces else box, TMPDIR="/tmp" if namespaces else box)
    return {
        "mode": mode,
        "code_path": os.path.join(box, "main.py"),
        "root_dir": os.path.join(workdir, "root"),
        "workdir": "/sandbox" if namespaces else box,
        "python": python,
        "prefixes": prefixes,
        "hide": hide,
        "userns": namespaces and os.geteuid() != 0,
        "drop_uid": drop_uid,
        "uid": uid,
        "gid": gid,
        "env": env,
        "limits": dataclasses.asdict(limits),
    }


def _rmtree(path: str) -> None:
    """Remove the run's temporary directory, even where the program took permissions away."""

    def fix(func, p, _exc) -> None:
        os.chmod(os.path.dirname(p), 0o700)
        os.chmod(p, 0o700) if os.path.isdir(p) else None
        func(p)

    shutil.rmtree(path, onerror=fix)


def _read_status(fd: int) -> dict:
    """The bootstrap's JSON status from the read end of its pipe ({} when it died without one)."""
    data = b""
    while len(data) < 65536:
        piece = os.read(fd, 65536)
        if not piece:
            break
        data += piece
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {}


def execute(code: str, stdin: str, limits: SandboxLimits, mode: str, python: str | None = None) -> SandboxResult:
    """Run ``code`` once in ``mode`` (NAMESPACES or FALLBACK); see :func:`remote_rm.sandbox.run_python`."""
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="rm-sandbox-")
    proc = None
    try:
        cfg = _prepare(workdir, code, mode, limits, python or sys.executable)
        status_r, status_w = os.pipe()
        with tempfile.TemporaryFile() as stdin_file:
            stdin_file.write(stdin.encode("utf-8", "surrogateescape"))
            stdin_file.seek(0)
            try:
                proc = subprocess.Popen(
                    _command(mode, cfg, status_w),
                    stdin=stdin_file,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=dict(_ENV),
                    cwd=workdir,
                    pass_fds=(status_w,),
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(status_w)
        # The bootstrap's own wall deadline comes first; this one is the backstop.
        out, err, killed = _pump(proc, limits, started + limits.wall_s + 1.5)
        _kill_group(proc)  # whatever is left of the group (fallback: background processes)
        proc.wait()
        status = _read_status(status_r)
        os.close(status_r)
    finally:
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                stream.close()
        _rmtree(workdir)
    timed_out = killed or bool(status.get("timed_out"))
    error = status.get("error") or (None if status else f"the sandbox exited with {proc.returncode} and no status")
    returncode = status.get("returncode") if status else (proc.returncode if killed else None)
    if killed:
        error = None
    stderr = err.text()
    return SandboxResult(
        returncode=returncode,
        stdout=out.text(),
        stderr=stderr,
        timed_out=timed_out,
        killed=_killed_reason(returncode, timed_out, stderr, error),
        output_truncated=out.truncated or err.truncated,
        wall_s=round(time.monotonic() - started, 4),
        mechanism=describe(mode),
    )


def describe(mode: str, reason: str = "") -> str:
    """A one-line description of ``mode``."""
    if mode == NAMESPACES:
        who = "uid drop to a per-run uid" if os.geteuid() == 0 else "user namespace, capabilities dropped"
        return f"namespaces (unshare: mount, pid, net; pivot_root to a minimal read-only root; {who}) + rlimits"
    ident = "per-run uid" if os.geteuid() == 0 else "SAME uid as the server"
    return f"rlimits only (no namespaces{': ' + reason if reason else ''}; {ident}, new session, temp cwd)"


@functools.lru_cache(maxsize=1)
def probe() -> tuple[str, str]:
    """(mode, description) for this machine, probed once: a namespace run of ``print(1)`` must work."""
    if not shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin"):
        return FALLBACK, describe(FALLBACK, "unshare not found")
    try:
        result = execute("print(1)", "", SandboxLimits(wall_s=20.0), NAMESPACES)
    except OSError as exc:
        return FALLBACK, describe(FALLBACK, f"{type(exc).__name__}: {exc}")
    if result.returncode == 0 and result.stdout.strip() == "1":
        return NAMESPACES, result.mechanism
    why = result.killed or result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
    reason = why if isinstance(why, str) else why[0]
    log.debug("sandbox probe failed: %s", result)
    return FALLBACK, describe(FALLBACK, f"unshare failed: {reason[:200]}")
