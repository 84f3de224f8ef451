"""The launcher that runs one unit-test script inside the isolation `UnitTestVerifier` asks for.

It is run as ``python -I -S sandbox.py CONFIG.json`` (standard library only, nothing of
prefalign is imported) in a new session and process group, so that it starts single-threaded
and the scorer's threads never fork. What it does depends on ``isolation``:

``full`` (Linux):
    the launcher unshares new PID, network and IPC namespaces: as real root directly, else
    together with a user namespace that maps its one id (root without the right to make
    namespaces is mapped to an ordinary id inside, so that ``execve`` drops every capability).
    Its child is PID 1 of the new PID namespace and dies with the launcher
    (``PR_SET_PDEATHSIG``); when PID 1 exits the kernel kills every process left in the
    namespace, however it detached itself (``setsid``, double forks). PID 1 unshares a mount
    namespace of its own and rebuilds the file system on an empty tmpfs: the interpreter's
    prefixes, the system library folders and ``/etc/ld.so.cache`` bound read-only (nosuid,
    nodev), ``/dev/{null,zero,full,random,urandom}``, and a fresh tmpfs of ``temp_mb`` at
    ``/tmp`` (the working folder) holding the script; then ``pivot_root`` into it, the old root
    detached, the new root made read-only. No home folder, no ``/etc``, no ``/proc``, nothing
    else of the machine is visible. PID 1 runs the test as PID 2 and reaps orphans. The network
    namespace has only a loopback interface, down. Real root runs the test as ``nobody`` in a
    user namespace of its own where allowed.

    ``RLIMIT_NPROC`` counts the tasks of one user *in one user namespace* (Linux 5.14+; before,
    per user), and never holds uid 0 outside; inside a fresh user namespace it is therefore a
    real per-run process limit. Without one it is set to the user's current task count plus the
    allowance (approximate: other processes of the user may start or end meanwhile).

``network``: the user + network namespaces only; ``none``: no namespace.
    In both the launcher is a child subreaper: orphaned descendants are re-parented to it and
    killed when the test exits or times out; the scorer then kills the whole process group.

Always: ``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` (where it holds), no
core files, ``PR_SET_NO_NEW_PRIVS``, an environment of ``PATH``, ``HOME``/``TMPDIR`` (the working
folder) and ``PYTHONHASHSEED`` only, and stdin closed. A failed setup step is written to the status
file descriptor the scorer passed, and the launcher exits with status 125.
"""

import ctypes
import json
import os
import platform
import signal
import sys

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
SETUP_FAILED = 125
NOBODY = 65534
INSIDE_ID_FOR_ROOT = 1000  # root outside is this id inside: never root in the sandbox
# statvfs f_flag bits -> the mount flags a bind remount must keep (the kernel refuses to
# clear them in a user namespace)
_KEEP = ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME),
         (2048, MS_NODIRATIME), (4096, MS_RELATIME))
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203,
               "ppc64": 203, "s390x": 217, "loongarch64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")
SYSTEM_LIBS = ("/lib", "/lib64", "/lib32", "/libx32", "/usr/lib", "/usr/lib64", "/usr/lib32",
               "/usr/libx32")

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = (lambda s: None if s is None else os.fsencode(s))
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                       enc(data)), f"mount {source or ''} on {target}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# --- namespaces ---------------------------------------------------------------------------------

def _map_own_ids(inside_uid: int, inside_gid: int, proc: int | None = None) -> None:
    """Map ``inside`` to our own (outer) ids in the user namespace just made; the only mapping
    a process may write for itself. ``proc``: a descriptor of /proc where it is not mounted."""
    uid, gid = os.geteuid(), os.getegid()

    def write(name, text):
        fd = os.open(f"self/{name}" if proc is not None else f"/proc/self/{name}", os.O_WRONLY,
                     dir_fd=proc)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    try:
        write("setgroups", "deny")
    except FileNotFoundError:  # kernels before 3.19
        pass
    write("uid_map", f"{inside_uid} {uid} 1\n")
    write("gid_map", f"{inside_gid} {gid} 1\n")


def enter_namespaces(flags: int) -> str:
    """unshare ``flags``: as real root without a user namespace ("root": the test drops to
    nobody later), else with one mapping our id ("userns"; root there, without the right to
    make namespaces itself, is mapped to an ordinary id inside so that the test never holds
    capabilities). Raises SetupError where neither is allowed."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0 and _libc.unshare(flags) == 0:
        return "root"
    if _libc.unshare(CLONE_NEWUSER | flags) != 0:
        err = ctypes.get_errno()
        raise SetupError(f"unshare: {os.strerror(err)} (errno {err})")
    _map_own_ids(uid or INSIDE_ID_FOR_ROOT, gid or INSIDE_ID_FOR_ROOT)
    return "userns"


def drop_to_nobody(proc: int) -> str:
    """Become nobody (no groups, no capabilities), then, where allowed, enter a user namespace
    of our own so that RLIMIT_NPROC counts this run's processes only; returns how processes
    are counted: "userns" or "user" (all of nobody's processes)."""
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    _prctl(PR_SET_DUMPABLE, 1)  # a changed uid makes /proc/self root's; we write our maps
    if _libc.unshare(CLONE_NEWUSER) != 0:
        return "user"
    _map_own_ids(NOBODY, NOBODY, proc)
    return "userns"


# --- the file-system view -----------------------------------------------------------------------

def _kept_flags(path: str) -> int:
    f_flag = os.statvfs(path).f_flag
    return sum(ms for st, ms in _KEEP if f_flag & st)


def _submounts(target: str) -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(target.rstrip("/") + "/"):
                points.append(point)
    return points


def _bind_readonly(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    for point in [target] + _submounts(target):
        _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
               | _kept_flags(point))


def _pivot_root(new_root: str) -> None:
    os.chdir(new_root)
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SetupError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def build_root(cfg: dict) -> None:
    """Rebuild / on an empty tmpfs (see the module docstring), then pivot into it."""
    new_root = cfg["root_mount"]
    with open(cfg["script"], "rb") as f:
        script = f.read()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    bound: list[str] = []
    for path in sorted(set(cfg["readonly"]), key=len):
        if any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound):
            continue
        if os.path.islink(path) and path in SYSTEM_LIBS:
            os.makedirs(os.path.dirname(new_root + path), exist_ok=True)
            os.symlink(os.readlink(path), new_root + path)
            continue
        if not os.path.exists(path):
            continue
        _bind_readonly(path, new_root + path)
        bound.append(path)
    os.makedirs(new_root + "/dev")
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            open(f"{new_root}/dev/{name}", "a").close()
            _mount("/dev/" + name, f"{new_root}/dev/{name}", None, MS_BIND)
    os.makedirs(new_root + "/tmp")
    _mount("tmpfs", new_root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(cfg['temp_mb'])}m,mode=1777")
    with open(new_root + "/tmp/" + os.path.basename(cfg["script"]), "wb") as f:
        f.write(script)
    _pivot_root(new_root)
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


# --- limits and the test process ----------------------------------------------------------------

def user_tasks(uid: int) -> int:
    """Tasks (threads included: what RLIMIT_NPROC counts) whose real user is ``uid``."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields.get("Threads", "1"))
        except (OSError, KeyError, ValueError):
            continue
    return count


def set_limits(cfg: dict, nproc: int | None) -> None:
    import resource

    cpu, memory, fsize = int(cfg["cpu_seconds"]), int(cfg["memory_bytes"]), int(cfg["file_bytes"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc is not None and hasattr(resource, "RLIMIT_NPROC"):
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _nproc(cfg: dict, how: str | None, counted: str | None) -> tuple[int | None, str]:
    """The RLIMIT_NPROC value that lets the test start ``max_processes`` processes (threads
    count too), or None where the limit would not hold anyway (uid 0 outside a namespace), and
    what it limits."""
    allowance = int(cfg["max_processes"]) + 1  # the test process itself counts
    per_namespace = _kernel() >= (5, 14)
    approximate = ((None, "not limited") if cfg["tasks_before"] is None  # no /proc to count
                   else (cfg["tasks_before"] + allowance, "per user (approximate)"))
    if how == "root":
        return (allowance, "per run") if counted == "userns" and per_namespace else approximate
    if cfg["outer_uid"] == 0:
        return None, "not limited"  # uid 0 outside (even mapped to another id) is exempt
    if how == "userns" and per_namespace:  # this run's own count: the launcher (+ PID 1) too
        return allowance + (2 if cfg["isolation"] == "full" else 1), "per run"
    return approximate


def _kernel() -> tuple[int, int]:
    try:
        major, minor = os.uname().release.split(".")[:2]
        return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
    except ValueError:
        return (0, 0)


def exec_test(cfg: dict, workdir: str, how: str | None) -> None:
    """Identity, limits, then exec the test script (never returns)."""
    if how == "root" and cfg["isolation"] != "full":
        how = None  # the network alone cut by real root: the test keeps the caller's identity
    counted = drop_to_nobody(cfg["proc_fd"]) if how == "root" else None
    nproc, kind = _nproc(cfg, how, counted)
    set_limits(cfg, nproc)
    _send(cfg, "processes: " + kind)
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
    os.chdir(workdir)
    script = os.path.join(workdir, os.path.basename(cfg["script"]))
    env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "HOME": workdir, "TMPDIR": workdir}
    os.execve(cfg["python"], [cfg["python"], "-I", script], env)


def _status(code: int) -> int:
    if os.WIFSIGNALED(code):
        return 128 + os.WTERMSIG(code)
    return os.WEXITSTATUS(code)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_descendants() -> None:
    """SIGKILL every process below this one (orphans were re-parented here), until none is
    left; zombies are reaped."""
    me = os.getpid()
    for _ in range(100):
        pids = _descendants(me) if os.path.isdir("/proc/self") else []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not pids:
            return


def supervise(child: int) -> int:
    """Wait for ``child`` (reaping adopted orphans), then kill what is left below us."""
    def stop(signum, frame):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_descendants()
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    status = None
    while status is None:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = _status(code)
    kill_descendants()
    return SETUP_FAILED if status is None else status


def _init(cfg: dict, how: str) -> int:
    """PID 1 of the new PID namespace: run the test as PID 2, reap orphans, exit with the
    test's status (the kernel then kills whatever is left in the namespace)."""
    test = os.fork()
    if test == 0:
        try:
            exec_test(cfg, "/tmp", how)
        except BaseException as e:  # noqa: BLE001 - reported to the scorer, never raised
            _report(cfg, f"starting the test: {e}")
            os._exit(SETUP_FAILED)
    while True:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            return SETUP_FAILED
        except InterruptedError:
            continue
        if pid == test:
            return _status(code)


def _send(cfg: dict, line: str) -> None:
    try:
        os.write(cfg["status_fd"], line.replace("\n", " ").encode("utf-8", "replace")[:2000]
                 + b"\n")
    except OSError:
        pass


def _report(cfg: dict, message: str) -> None:
    _send(cfg, "error: " + message)


def main(config_path: str) -> int:
    with open(config_path) as f:
        cfg = json.load(f)
    os.set_inheritable(cfg["status_fd"], False)  # closed in the test process at exec
    mode = cfg["isolation"]
    cfg["outer_uid"] = uid = os.geteuid()
    counting = os.path.isdir("/proc/self") and (uid != 0 or mode == "full")
    cfg["tasks_before"] = user_tasks(uid or NOBODY) if counting else None
    try:
        how = None
        if mode == "full":  # the mount namespace is the first child's alone (see below)
            how = enter_namespaces(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC)
        elif mode == "network":
            how = enter_namespaces(CLONE_NEWNET)
        if sys.platform.startswith("linux"):
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except (SetupError, OSError) as e:
        _report(cfg, f"{mode} isolation: {e}")
        return SETUP_FAILED
    launcher = os.getpid()
    child = os.fork()
    if child == 0:
        try:
            if mode == "full":
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() not in (0, launcher):  # the launcher died already
                    os._exit(SETUP_FAILED)
                # a mount namespace of its own: pivot_root moves every process of the
                # namespace whose root is the old one, and the launcher must stay outside
                _check(_libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
                if how == "root":  # the test writes its user namespace's maps through it
                    cfg["proc_fd"] = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY
                                             | os.O_CLOEXEC)
                build_root(cfg)
                os._exit(_init(cfg, how))
            exec_test(cfg, cfg["workdir"], how if mode != "none" else None)
        except BaseException as e:  # noqa: BLE001 - reported to the scorer, never raised
            _report(cfg, f"{mode} isolation: {e}")
            os._exit(SETUP_FAILED)
    os.close(cfg["status_fd"])
    return supervise(child)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
