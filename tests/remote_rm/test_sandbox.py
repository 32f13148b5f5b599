"""The code sandbox (remote_rm.sandbox): the happy path, and hostile programs each contained with the test
process unharmed: fork bomb, infinite loop, sleep, memory blow-up, writes outside, reading the server's files
and environment, network, killing the parent, 10,000 files, 1 GB of output, file size, escaped background
processes. Namespace mode where this machine permits it (skipped otherwise), plus the rlimits-only fallback."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from remote_rm.sandbox import SandboxLimits, run_python, sandbox_mechanism, sandbox_mode
from remote_rm.sandbox.runner import _UID_BASE, FALLBACK, NAMESPACES, execute

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-" + os.urandom(6).hex()

needs_namespaces = pytest.mark.skipif(sandbox_mode() != NAMESPACES, reason=f"no namespaces: {sandbox_mechanism()}")


def sandbox_processes() -> list[int]:
    """Pids of host processes running under a sandbox run's uid (there must be none between runs)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            uid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))
            if uid >= _UID_BASE:
                found.append(int(entry))
    return found


def my_children() -> list[int]:
    """Pids of this test process's children (unshare and the bootstrap must be gone after a run)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(int(entry))
    return found


def leftover_workdirs() -> set[str]:
    """The sandbox's temporary directories that exist now."""
    return {p.name for p in Path(tempfile.gettempdir()).glob("rm-sandbox-*")}


@pytest.fixture(scope="module")
def host_secrets(tmp_path_factory):
    """A secret in a host /tmp file, in a file under /root, and in this process's environment."""
    tmp_file = tmp_path_factory.mktemp("secret") / "secret.txt"
    tmp_file.write_text(SECRET)
    root_file = Path("/root") / f".rm_sandbox_secret_{os.getpid()}"
    try:
        root_file.write_text(SECRET)
    except OSError:
        root_file = tmp_file
    os.environ["RM_SANDBOX_TEST_SECRET"] = SECRET
    yield {"tmp": str(tmp_file), "root": str(root_file)}
    os.environ.pop("RM_SANDBOX_TEST_SECRET", None)
    root_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def loopback_server():
    """A TCP server on the host's loopback that counts the connections it accepts."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    srv.close()


# ---------------------------------------------------------------- happy path


def test_stdin_stdout_stdlib_and_fresh_dir():
    code = "import sys, json, collections, math, re, itertools\nprint(json.dumps(sorted(sys.stdin.read().split())))"
    before = leftover_workdirs()
    result = run_python(code, stdin="b a c")
    assert result.ok, result
    assert result.stdout == '["a", "b", "c"]\n'
    assert result.killed is None and not result.output_truncated
    assert result.mechanism == sandbox_mechanism()
    assert leftover_workdirs() <= before  # the run's temporary directory is gone


def test_exception_gives_traceback():
    result = run_python("def f():\n    raise ValueError('boom')\nf()")
    assert result.returncode == 1 and not result.timed_out
    assert "Traceback" in result.stderr and "ValueError: boom" in result.stderr


def test_server_packages_not_importable():
    result = run_python("import remote_rm")
    assert result.returncode == 1 and "ModuleNotFoundError" in result.stderr


@needs_namespaces
def test_each_run_gets_a_fresh_directory():
    first = run_python("open('mark', 'w').write('x'); open('/tmp/mark', 'w').write('x'); import os; print(os.getcwd())")
    assert first.ok, first
    second = run_python("import os; print(sorted(os.listdir('.')), os.path.exists('/tmp/mark'))")
    assert second.stdout == "['main.py'] False\n"


def test_limits_reject_bad_values():
    with pytest.raises(ValueError, match="wall_s"):
        SandboxLimits(wall_s=0)
    with pytest.raises(ValueError, match="bogus"):
        SandboxLimits.from_params({"bogus": 1})


# ---------------------------------------------------------------- hostile programs


def _case_fork_bomb(result, ctx):
    assert result.timed_out and result.killed == "wall time"
    assert result.wall_s < 5


def _case_cpu_loop(result, ctx):
    assert result.killed == "cpu time" and result.returncode < 0
    assert result.wall_s < 4


def _case_sleep(result, ctx):
    assert result.timed_out and result.killed == "wall time" and result.wall_s < 4


def _case_memory(result, ctx):
    assert result.returncode != 0 and result.killed == "memory"


def _case_write_outside(result, ctx):
    assert not Path(f"/tmp/{ctx['marker']}").exists()
    assert not (REPO / ctx["marker"]).exists()
    assert not Path(f"/root/{ctx['marker']}").exists()
    assert "WROTE " + str(REPO) not in result.stdout


def _case_read_secrets(result, ctx):
    assert SECRET not in result.stdout + result.stderr
    assert "import hmac" not in result.stdout  # app.py's text
    assert result.stdout.count("denied") == 6, result.stdout


def _case_network(result, ctx):
    assert "CONNECTED" not in result.stdout and result.stdout.count("blocked") == 3, result.stdout
    assert not ctx["accepted"]


def _case_kill_parent(result, ctx):
    assert ctx["sibling"].poll() is None  # the sibling process survived; this test process obviously did


def _case_many_files(result, ctx):
    assert result.returncode == 0 and not result.timed_out
    made = int(result.stdout.split()[0])
    assert made == 10_000 or "No space left" in result.stdout or "Too many" in result.stdout, result.stdout


def _case_huge_output(result, ctx):
    assert result.output_truncated and len(result.stdout) == 65536
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - ctx["maxrss"]) / 1024
    assert grown_mb < 64


def _case_file_size(result, ctx):
    assert result.returncode != 0 and result.killed == "file size"


def _case_escaped_background(result, ctx):
    assert result.ok and result.stdout == "main done\n"


_READ = """
import os
for path in [{tmp!r}, {root!r}, {app!r}, "/proc/1/environ", "/proc/{ppid}/environ"]:
    try:
        print("READ", open(path).read()[:200])
    except OSError as exc:
        print("denied", type(exc).__name__)
print("denied" if os.environ.get("RM_SANDBOX_TEST_SECRET") is None else "ENV " + os.environ["RM_SANDBOX_TEST_SECRET"])
"""

_NETWORK = """
import socket
for addr in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
    try:
        socket.create_connection(addr, timeout=1); print("CONNECTED", addr)
    except OSError as exc:
        print("blocked", exc)
try:
    print("RESOLVED", socket.getaddrinfo("example.com", 80))
except OSError as exc:
    print("blocked", exc)
"""

_KILL = """
import os, signal
for target in [os.getppid(), {test_pid}, {sibling}, 1]:
    try:
        os.kill(target, signal.SIGKILL)
    except OSError as exc:
        print("kill", target, exc)
for call in [lambda: os.killpg({test_pgid}, 9), lambda: os.killpg(0, 9), lambda: os.kill(-1, 9)]:
    try:
        call()
    except OSError as exc:
        print("killpg", exc)
"""

HOSTILE = {
    "fork_bomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        {"wall_s": 2.0},
        _case_fork_bomb,
    ),
    "cpu_loop": ("while True:\n    pass", {"cpu_s": 1.0, "wall_s": 5.0}, _case_cpu_loop),
    "sleep_forever": ("import time\ntime.sleep(1000)", {"wall_s": 1.0}, _case_sleep),
    "memory_blowup": ("x = []\nwhile True:\n    x.append(bytearray(10**7))", {}, _case_memory),
    "write_outside": (
        "import os\nfor d in ['/tmp', {repo!r}, '/root']:\n    try:\n"
        "        open(os.path.join(d, {marker!r}), 'w').write('x'); print('WROTE', d)\n"
        "    except OSError as exc:\n        print('failed', d, exc)",
        {},
        _case_write_outside,
    ),
    "read_secrets": (_READ, {}, _case_read_secrets),
    "network": (_NETWORK, {}, _case_network),
    "kill_parent": (_KILL, {}, _case_kill_parent),
    "many_files": (
        "n = 0\ntry:\n    for i in range(10_000):\n        open(f'f{{i}}', 'w').close(); n += 1\n"
        "except OSError as exc:\n    print(n, exc)\nelse:\n    print(n)",
        {},
        _case_many_files,
    ),
    "huge_output": (
        "import sys\nb = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(b)",
        {},
        _case_huge_output,
    ),
    "file_size": ("open('big', 'wb').write(b'x' * (64 << 20))", {}, _case_file_size),
    "escaped_background": (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)\nprint('main done')",
        {},
        _case_escaped_background,
    ),
}
CONTAINED: dict[str, list[str]] = {}


def _hostile_run(name: str, mode: str, host_secrets, loopback_server) -> None:
    """Run hostile case ``name`` in ``mode`` and assert its containment, then that nothing of it is left."""
    template, limits, check = HOSTILE[name]
    marker = f"rm_sandbox_marker_{os.getpid()}_{name}"
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    port, accepted = loopback_server
    ctx = {"marker": marker, "sibling": sibling, "accepted": accepted, "maxrss": 0}
    code = template.format(
        repo=str(REPO),
        marker=marker,
        port=port,
        tmp=host_secrets["tmp"],
        root=host_secrets["root"],
        app=str(REPO / "remote_rm" / "app.py"),
        ppid=os.getpid(),
        test_pid=os.getpid(),
        test_pgid=os.getpgid(0),
        sibling=sibling.pid,
    )
    before_dirs = leftover_workdirs()
    children_before = set(my_children())  # in a whole-suite session the test process has other children
    before_count = len([p for p in os.listdir("/proc") if p.isdigit()]) - 1  # less the sibling
    python = None if mode == NAMESPACES else "/usr/bin/python3"
    try:
        ctx["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = execute(code, "", SandboxLimits(**limits), mode, python=python)
        check(result, ctx)
        assert sibling.poll() is None
    finally:
        sibling.kill()
        sibling.wait()
    time.sleep(0.05)
    assert sandbox_processes() == [], "a sandbox process outlived its run"
    assert set(my_children()) - children_before == set()
    # The machine's process count is back to normal (other work on the machine may add a few).
    assert len([p for p in os.listdir("/proc") if p.isdigit()]) <= before_count + 10
    assert leftover_workdirs() <= before_dirs
    CONTAINED.setdefault(mode, []).append(name)


@needs_namespaces
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_contained_namespaces(name, host_secrets, loopback_server):
    _hostile_run(name, NAMESPACES, host_secrets, loopback_server)


# The fallback shares the host filesystem, /tmp and network: only what it does contain is asserted.
FALLBACK_CASES = ["fork_bomb", "cpu_loop", "sleep_forever", "memory_blowup", "kill_parent", "huge_output"]
FALLBACK_CASES += ["file_size", "escaped_background"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback contains a hostile program only with a uid of its own")
@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a python the run's uid can read")
@pytest.mark.parametrize("name", FALLBACK_CASES)
def test_hostile_contained_fallback(name, host_secrets, loopback_server):
    _hostile_run(name, FALLBACK, host_secrets, loopback_server)


def test_hostile_count():
    """Every hostile case ran and was contained (runs last in this file)."""
    if sandbox_mode() == NAMESPACES:
        assert sorted(CONTAINED.get(NAMESPACES, [])) == sorted(HOSTILE)
    if os.geteuid() == 0 and Path("/usr/bin/python3").exists():
        assert sorted(CONTAINED.get(FALLBACK, [])) == sorted(FALLBACK_CASES)
