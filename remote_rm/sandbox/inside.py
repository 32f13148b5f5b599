"""The sandbox's bootstrap: run by the parent as ``python -I inside.py <json config> <status fd>``.

Namespace mode (started under ``unshare --mount --net --pid --fork``): this process is pid 1 of a fresh pid
namespace, still privileged in its own mount namespace. It builds a minimal root on a tmpfs (read-only bind
mounts of /usr and the Python prefix, a few /dev nodes, a fresh /proc, a size-limited tmpfs for /sandbox and
/tmp), pivots into it, forks the user's program (rlimits, uid drop or capability drop, no_new_privs, then exec
of ``python -I -S``), reaps, and exits when the program ends or its wall time is up: the kernel then kills
every process left in the pid namespace.

Fallback mode (no namespaces): the same supervisor without the new root: rlimits, uid drop when root, the
work dir as cwd; at the end every process of the run's uid is killed (when a uid of its own was used).

Only the standard library: this file runs before anything else and must import nothing of the server.
The result goes to the status fd as one JSON object: {"returncode", "timed_out", "error"}.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import select
import signal
import sys
import time

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_CAP_AMBIENT = 38, 24, 28, 47
PR_SET_CHILD_SUBREAPER = 36
_SYSCALLS = {"x86_64": {"pivot_root": 155, "capset": 126}, "aarch64": {"pivot_root": 41, "capset": 91}}
# statvfs f_flag bit -> mount flag: a bind remount in a user namespace must keep the locked ones.
_KEEP_FLAGS = ((2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME), (2048, MS_NODIRATIME))
_TOP_DIRS = ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32")

_libc = ctypes.CDLL(None, use_errno=True)


def _enc(value: str | None) -> bytes | None:
    """A str argument as bytes for libc (None stays NULL)."""
    return None if value is None else os.fsencode(value)


def _check(ret: int, what: str) -> None:
    """Raise OSError with errno when a libc call returned nonzero."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2) through libc."""
    ret = _libc.mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data))
    _check(ret, f"mount {target}")


def umount_detach(target: str) -> None:
    """umount2(target, MNT_DETACH)."""
    _check(_libc.umount2(_enc(target), MNT_DETACH), f"umount {target}")


def _syscall_no(name: str) -> int:
    """The syscall number of ``name`` on this machine (x86_64, aarch64)."""
    try:
        return _SYSCALLS[platform.machine()][name]
    except KeyError:
        raise OSError(f"{name}: unsupported architecture {platform.machine()}") from None


def bind_readonly(source: str, target: str, recursive: bool) -> None:
    """Bind ``source`` at ``target`` (created), then remount it read-only, nosuid, nodev (keeping locked flags)."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        with open(target, "wb"):
            pass
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    keep = 0
    fflag = os.statvfs(source).f_flag
    for bit, flag in _KEEP_FLAGS:
        if fflag & bit:
            keep |= flag
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)


def _mount_system(new: str, cfg: dict) -> None:
    """The read-only system part of the new root: /usr and friends, the Python prefixes, hidden site-packages."""
    recursive = bool(cfg["userns"])
    for top in _TOP_DIRS:
        src = "/" + top
        if os.path.islink(src):
            os.symlink(os.readlink(src), new + src)
        elif os.path.isdir(src):
            bind_readonly(src, new + src, recursive)
    covered = ["/" + t for t in _TOP_DIRS]
    for prefix in cfg["prefixes"]:
        real = os.path.realpath(prefix)
        if any(real == c or real.startswith(c + "/") for c in covered):
            continue
        bind_readonly(real, new + real, recursive)
        covered.append(real)
    for hidden in cfg["hide"]:
        if os.path.isdir(new + hidden):
            mount("tmpfs", new + hidden, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")


def _mount_dev_proc(new: str) -> None:
    """/dev with null, zero, random, urandom and the fd symlinks; a fresh /proc of the new pid namespace."""
    os.mkdir(new + "/dev", 0o755)
    for node in ("null", "zero", "random", "urandom"):
        target = f"{new}/dev/{node}"
        with open(target, "wb"):
            pass
        mount(f"/dev/{node}", target, None, MS_BIND)
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, f"{new}/dev/{name}")
    os.symlink("/proc/self/fd/2", f"{new}/dev/stderr")
    os.mkdir(new + "/proc", 0o555)
    mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _mount_work(new: str, cfg: dict, code: bytes) -> None:
    """/sandbox (cwd, holds main.py) and /tmp: two binds of one size- and inode-limited tmpfs."""
    lim = cfg["limits"]
    box = new + "/.box"
    os.mkdir(box, 0o700)
    data = f"size={lim['disk_mb']}m,nr_inodes={lim['disk_inodes']},mode=700"
    mount("tmpfs", box, "tmpfs", MS_NOSUID | MS_NODEV, data)
    uid, gid = cfg["uid"], cfg["gid"]
    for sub, where in (("work", "/sandbox"), ("tmp", "/tmp")):
        os.mkdir(f"{box}/{sub}", 0o700)
        os.chown(f"{box}/{sub}", uid, gid)
        os.mkdir(new + where, 0o755)
        mount(f"{box}/{sub}", new + where, None, MS_BIND)
    with open(new + "/sandbox/main.py", "wb") as f:
        f.write(code)
    os.chown(new + "/sandbox/main.py", uid, gid)
    umount_detach(box)
    os.rmdir(box)


def build_root(cfg: dict) -> None:
    """Build the minimal root described in the module docstring and pivot into it; the host tree is gone."""
    with open(cfg["code_path"], "rb") as f:
        code = f.read()
    new = cfg["root_dir"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    _mount_system(new, cfg)
    _mount_dev_proc(new)
    _mount_work(new, cfg, code)
    os.mkdir(new + "/.old", 0o700)
    os.chdir(new)
    _check(_libc.syscall(_syscall_no("pivot_root"), b".", b".old"), "pivot_root")
    os.chdir("/")
    umount_detach("/.old")
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _drop_capabilities() -> None:
    """In a user namespace (uid 0 there): lock root's exec privileges, empty the bounding set and capsets."""
    _libc.prctl(PR_SET_SECUREBITS, 0x2F, 0, 0, 0)  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS off: all locked
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    _libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.syscall(_syscall_no("capset"), header, data), "capset")


def _start_program(cfg: dict) -> None:
    """In the forked child: limits, identity, cwd, then exec the user's program (never returns)."""
    lim = cfg["limits"]
    cpu = max(1, int(lim["cpu_s"] + 0.999))
    mb = 1024 * 1024
    for which, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (lim["memory_mb"] * mb,) * 2),
        (resource.RLIMIT_NPROC, (lim["processes"],) * 2),
        (resource.RLIMIT_FSIZE, (lim["file_size_mb"] * mb,) * 2),
        (resource.RLIMIT_NOFILE, (lim["open_files"],) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(which, value)
    if cfg["drop_uid"]:
        os.setgroups([])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
    elif cfg["userns"]:
        _drop_capabilities()
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir(cfg["workdir"])
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    python = cfg["python"]
    argv = [python, "-I", "-S", "-B", "-X", "utf8", "main.py"]
    os.execve(python, argv, cfg["env"])


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` that this one may signal: a helper with that uid sends kill(-1, SIGKILL)."""
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            try:
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            os._exit(0)
        os.waitpid(pid, 0)


def _reap(wait_s: float = 0.0) -> None:
    """Reap every exited child (orphans come to this process: pid 1, or a child subreaper); with ``wait_s``,
    keep reaping for up to that long until no child is left (after they were all killed)."""
    until = time.monotonic() + wait_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() >= until:
                return
            time.sleep(0.005)


def supervise(cfg: dict) -> dict:
    """Fork the program, wait for it until the wall deadline, clean up; the status to report."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # fallback mode: escaped orphans come back here
    pid = os.fork()
    if pid == 0:
        try:
            _start_program(cfg)
        except BaseException as exc:  # noqa: BLE001 - anything before exec: say it on stderr
            os.write(2, f"sandbox: cannot start the program: {exc}\n".encode())
        os._exit(127)
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + cfg["limits"]["wall_s"]
    timed_out, status = False, None
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        select.select([pidfd], [], [], min(max(left, 0.0), 0.5))
        try:
            wpid, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if wpid == pid:
            status = st
        _reap()
    if cfg["drop_uid"]:
        _kill_uid(cfg["uid"])
    _reap(2.0 if cfg["drop_uid"] else 0.0)
    if status is None:
        returncode = None
    elif os.WIFSIGNALED(status):
        returncode = -os.WTERMSIG(status)
    else:
        returncode = os.WEXITSTATUS(status)
    return {"returncode": returncode, "timed_out": timed_out, "error": None}


def main() -> None:
    """Entry point: argv[1] the JSON config, argv[2] the status fd."""
    cfg = json.loads(sys.argv[1])
    status_fd = int(sys.argv[2])
    os.set_inheritable(status_fd, False)
    try:
        if cfg["mode"] == "namespaces":
            build_root(cfg)
        result = supervise(cfg)
    except BaseException as exc:  # noqa: BLE001 - a setup failure is reported, never hidden
        result = {"returncode": None, "timed_out": False, "error": f"{type(exc).__name__}: {exc}"}
    os.write(status_fd, json.dumps(result).encode())
    os.close(status_fd)
    os._exit(0)


if __name__ == "__main__":
    main()
