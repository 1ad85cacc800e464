"""An operating-system sandbox per submission, and proof that nothing of it outlives grading.

A learner's kernel runs in fresh user, PID, mount, network, IPC and UTS namespaces. Its file
system holds only what Python needs, read-only (the system libraries, the interpreter, the
installed packages, ``mlsys`` and ``simulators``), with the lab sources hidden even where they
sit inside those folders, an empty private working directory and ``/tmp`` of limited size, and
its own ``/proc``. It cannot see the instructor's files, other submissions, the gradebook or
other kernels; it has no network; it holds no capability, and it cannot make new namespaces.
Resource limits: address space, CPU seconds and file size (``setrlimit``), processes
(``RLIMIT_NPROC`` inside the user namespace, or a pids cgroup when the grader runs as root, where
``RLIMIT_NPROC`` does not apply). :meth:`Sandbox.stop` kills the PID namespace (and the cgroup)
and then checks that no process of it is left.

Kinds, best first (:func:`choose` picks the first this machine supports):

* ``bwrap``: bubblewrap (Debian/Ubuntu package ``bubblewrap``), the sandbox of Flatpak;
* ``unshare``: util-linux ``unshare`` for the namespaces, and :mod:`.jail` to build the same file
  system inside them (needs unprivileged user namespaces, or root);
* ``none``: a plain child process in its own session with the same resource limits and a private
  temporary working directory, but no file or network isolation. ``mlsys lab check`` uses it (a
  learner running their own notebook); grading untrusted submissions with it must be asked for.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import json
import os
import resource
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("bwrap", "unshare", "none")
PACKAGES = ("mlsys", "simulators")  # what lab notebooks import, besides installed packages
WORKDIR = "/home/learner"  # the kernel's private working directory inside bwrap and unshare
SANDBOX_UID = 65534  # "nobody" inside the user namespace
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
        "localtime", "alternatives", "fonts", "mime.types")
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 5.0


class SandboxUnavailable(RuntimeError):
    """The requested kind of sandbox cannot run on this machine (the message says why)."""


@dataclass(frozen=True)
class Confinement:
    """Resource limits of one sandboxed kernel (MiB, seconds, processes)."""

    memory_mb: int = 4096
    cpu_seconds: float = 600.0
    processes: int = 256
    file_mb: int = 64
    disk_mb: int = 256

    def __post_init__(self) -> None:
        for name in ("memory_mb", "cpu_seconds", "processes", "file_mb", "disk_mb"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name} must be positive, got {value!r}")


def package_folders() -> list[Path]:
    """Where the ``mlsys`` and ``simulators`` packages live (found, not imported: labs import
    ``simulators``, so kernels need its folder, but ``mlsys`` never depends on it)."""
    folders = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            folders.append(Path(list(spec.submodule_search_locations)[0]).resolve())
    return folders


def visible_paths() -> list[str]:
    """Absolute paths a kernel needs (read-only): system libraries, a few files of /etc, the
    interpreter, the installed packages and the folders holding ``mlsys`` and ``simulators``."""
    paths = [p for p in _SYSTEM if os.path.lexists(p)]
    paths += [f"/etc/{name}" for name in _ETC if os.path.lexists(f"/etc/{name}")]
    python = [sys.base_prefix, sys.prefix, *site.getsitepackages()]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        python.append(site.getusersitepackages())
    python += [str(folder) for folder in package_folders()]
    python.append(str(Path(sys.executable).parent))
    for path in python:
        path = os.path.realpath(path)
        if os.path.isdir(path) and not any(path == p or path.startswith(p + "/") for p in paths):
            paths = [p for p in paths if not p.startswith(path + "/")] + [path]
    return paths


@functools.cache
def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run here (None when it can); the check runs a trivial sandbox once."""
    if kind not in KINDS:
        raise ValueError(f"unknown sandbox kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "none":
        return None
    if not sys.platform.startswith("linux"):
        return f"{kind} sandboxes need Linux namespaces (this is {sys.platform})"
    tool = "bwrap" if kind == "bwrap" else "unshare"
    if shutil.which(tool) is None:
        return (f"{tool} is not installed (Debian/Ubuntu: apt-get install "
                f"{'bubblewrap' if kind == 'bwrap' else 'util-linux'})")
    box = Sandbox(kind, Confinement(memory_mb=1024, cpu_seconds=30, processes=64))
    try:
        proc = box.start([sys.executable, "-c", "import os; print(os.getcwd())"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{tool} failed to start a sandbox: {error}"
    finally:
        box.stop()
    if proc.returncode != 0 or out.decode().strip() != WORKDIR:
        last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        return f"{tool} could not start a sandbox here: {last}"
    return None


def choose(kind: str = "auto") -> str:
    """``kind`` itself if it runs here, or for ``"auto"`` the best kind that does."""
    if kind != "auto":
        why = unavailable(kind)
        if why is not None:
            raise SandboxUnavailable(f"sandbox {kind!r} is unavailable: {why}")
        return kind
    reasons = []
    for candidate in ("bwrap", "unshare"):
        why = unavailable(candidate)
        if why is None:
            return candidate
        reasons.append(f"{candidate}: {why}")
    raise SandboxUnavailable("no sandbox can run on this machine (" + "; ".join(reasons) +
                             "). Install bubblewrap, or pass --sandbox none to grade without "
                             "isolation (never for untrusted submissions)")


class Sandbox:
    """One sandboxed process tree: :meth:`start` it, and always :meth:`stop` it."""

    def __init__(self, kind: str, confinement: Confinement, *, hide: Sequence[Path | str] = (),
                 env: dict[str, str] | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown sandbox kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind, self.confinement = kind, confinement
        self.hide = [os.path.realpath(p) for p in hide]
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self._scratch = Path(tempfile.mkdtemp(prefix="mlsys-sandbox-"))
        self._cgroup = _PidsCgroup.create(confinement.processes) if os.geteuid() == 0 else None
        self._namespace: str | None = None

    @property
    def workdir(self) -> str:
        """The kernel's working directory, as the kernel sees it."""
        return str(self._scratch / "work") if self.kind == "none" else WORKDIR

    def start(self, argv: Sequence[str], *, pass_fds: Sequence[int] = (), stdout: Any = None,
              stderr: Any = None) -> subprocess.Popen:
        """Start ``argv`` (an absolute program path first) inside the sandbox."""
        if self.proc is not None:
            raise RuntimeError("this sandbox was started already")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **self.env,
               "HOME": self.workdir, "TMPDIR": "/tmp" if self.kind != "none" else self.workdir}
        if self.kind == "none":
            os.makedirs(self.workdir, mode=0o700)
        self.proc = subprocess.Popen(
            [*self._wrapper(), *argv], env=env, cwd=self.workdir if self.kind == "none" else "/",
            pass_fds=tuple(pass_fds), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if stdout is None else stdout,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            preexec_fn=_limits(self.confinement, self._cgroup), start_new_session=True)
        return self.proc

    def _wrapper(self) -> list[str]:
        c = self.confinement
        if self.kind == "none":
            return []
        if self.kind == "bwrap":
            args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns",
                    "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--die-with-parent",
                    "--new-session", "--hostname", "sandbox", "--cap-drop", "ALL"]
            # the private /tmp first: a checkout or a virtual environment under /tmp is bound into it
            args += ["--size", str(c.disk_mb << 20), "--tmpfs", "/tmp"]
            for path in visible_paths():
                args += (["--symlink", os.readlink(path), path] if os.path.islink(path)
                         else ["--ro-bind", path, path])
            for path in self._hidden():
                args += ["--tmpfs", path, "--remount-ro", path]
            args += ["--dev", "/dev", "--proc", "/proc",
                     "--size", str(c.disk_mb << 20), "--tmpfs", WORKDIR, "--chdir", WORKDIR, "--"]
            return args
        root = self._scratch / "root"
        root.mkdir()
        spec = {"root": str(root), "binds": visible_paths(), "hide": self._hidden(),
                "workdir": WORKDIR, "tmp_mb": c.disk_mb, "workdir_mb": c.disk_mb}
        jail = str(Path(__file__).resolve().with_name("jail.py"))
        return ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork",
                "--kill-child", "--net", "--ipc", "--uts", "--propagation", "private",
                sys.executable, "-I", "-S", jail, json.dumps(spec), "--"]

    def _hidden(self) -> list[str]:
        """Folders to hide that lie inside a visible path (elsewhere they are not mounted)."""
        visible = visible_paths()
        return [p for p in self.hide if os.path.isdir(p)
                and any(p == v or p.startswith(v + "/") for v in visible)]

    def seal(self) -> None:
        """Remember the sandbox's PID namespace; call once its first process is running and
        before any untrusted code runs, so :meth:`stop` can find every process started in it."""
        if self.proc is not None and self.kind != "none":
            self._namespace = _namespace_below(self.proc.pid)

    def stop(self) -> list[str]:
        """Kill everything the sandbox started and verify it is gone; returns problems found."""
        problems: list[str] = []
        if self.proc is not None:
            _kill_group(self.proc.pid)
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
            deadline = time.monotonic() + STOP_GRACE_S
            while True:
                left = self.survivors()
                if not left:
                    break
                for pid in left:
                    _kill(pid)
                if time.monotonic() > deadline:
                    problems.append(f"{len(left)} sandboxed process(es) survived SIGKILL: {left}")
                    break
                time.sleep(0.02)
        if self._cgroup is not None:
            if not self._cgroup.remove():
                problems.append(f"could not remove the pids cgroup {self._cgroup.path}")
            self._cgroup = None
        shutil.rmtree(self._scratch, ignore_errors=True)
        return problems

    def survivors(self) -> list[int]:
        """Processes still alive in the sandbox's PID namespace, cgroup or session (a zombie,
        dead and waiting for its parent to collect its exit status, does not count)."""
        found: set[int] = set(self._cgroup.pids()) if self._cgroup is not None else set()
        for pid in _all_pids():
            if _state(pid) in (None, "Z", "X"):
                continue
            if self._namespace is not None:
                if _readlink(f"/proc/{pid}/ns/pid") == self._namespace:
                    found.add(pid)
            elif self.proc is not None and _session_of(pid) == self.proc.pid:
                found.add(pid)
        return sorted(p for p in found if _state(p) not in (None, "Z", "X"))


def _limits(c: Confinement, cgroup: _PidsCgroup | None) -> Any:
    """The ``preexec_fn`` of a sandbox: resource limits, die with the grader, join the cgroup."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    memory, cpu, files = c.memory_mb << 20, int(c.cpu_seconds), c.file_mb << 20
    procs = cgroup.procs_file if cgroup is not None else None

    def apply() -> None:  # in the child, between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if procs is not None:
            fd = os.open(procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)

    return apply


class _PidsCgroup:
    """A pids cgroup (v1 or v2) capping how many processes a sandbox may hold; root only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.procs_file = str(path / "cgroup.procs")

    @classmethod
    def create(cls, limit: int) -> _PidsCgroup | None:
        for base in _pids_hierarchies():
            path = base / f"mlsys-sandbox-{os.getpid()}-{time.monotonic_ns()}"
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                (path / "pids.max").write_text(str(int(limit)))
                return cls(path)
            except OSError:
                path.rmdir()
        return None

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in Path(self.procs_file).read_text().split()]
        except OSError:
            return []

    def remove(self) -> bool:
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            for pid in self.pids():
                _kill(pid)
            try:
                self.path.rmdir()
                return True
            except OSError:
                time.sleep(0.02)
        return False


def _pids_hierarchies() -> list[Path]:
    """Where this process may create a pids cgroup: its own cgroup in the v1 pids hierarchy, or
    in the v2 hierarchy when the pids controller is enabled for children there."""
    found = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            found.append(Path("/sys/fs/cgroup/pids") / path.lstrip("/"))
        elif controllers == "":
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            try:
                if "pids" in (base / "cgroup.subtree_control").read_text().split():
                    found.append(base)
            except OSError:
                pass
    return [p for p in found if p.is_dir()]


def _all_pids() -> list[int]:
    """Every process id (none where there is no /proc: then only the session is killed)."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields after the command name


def _state(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[0] if fields else None


def _session_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[3]) if fields else None


def _namespace_below(root: int) -> str | None:
    """The PID namespace of the first descendant of ``root`` that is not in ours."""
    ours = _readlink("/proc/self/ns/pid")
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    queue = [root]
    while queue:
        pid = queue.pop(0)
        namespace = _readlink(f"/proc/{pid}/ns/pid")
        if namespace is not None and namespace != ours:
            return namespace
        queue += children.get(pid, [])
    return None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
