"""The sandbox, attacked from inside: each isolation property is tried for real from a kernel,
in every kind of sandbox this machine can run (bubblewrap, and namespaces through ``unshare``),
and must hold. A kind this machine cannot run is skipped with the reason."""

from __future__ import annotations

import os
import socket
import time

import pytest

from mlsys.grading.labs import BUILTIN_LABS
from mlsys.grading.sandbox import WORKDIR, Confinement, unavailable, visible_paths
from mlsys.grading.session import KernelGone, LearnerError, Session

KINDS = ["bwrap", "unshare"]

PROBE = '''
import ctypes, json, multiprocessing, os, socket, subprocess, sys

def attempt(fn):
    try:
        return f"ok: {fn()!r}"[:200]
    except BaseException as error:
        return f"{type(error).__name__}"

def write(path):
    with open(path, "w") as f:
        f.write("x")
    return path

def probe(secret, sibling, port, host_shm):
    results = {
        "semaphore": attempt(lambda: multiprocessing.Lock().acquire()),  # needs a /dev/shm
        "write_shm": attempt(lambda: write("/dev/shm/mine")),
        "shm_listing": sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else None,
        "read_host_shm": attempt(lambda: open(host_shm).read()),
        "read_secret": attempt(lambda: open(secret).read()),
        "list_secret_folder": attempt(lambda: os.listdir(os.path.dirname(secret))),
        "read_sibling": attempt(lambda: open(sibling).read()),
        "read_lab_source": attempt(lambda: os.listdir(LABS)),
        "read_shadow": attempt(lambda: open("/etc/shadow").read()),
        "write_venv": attempt(lambda: write(os.path.join(sys.prefix, "pwned"))),
        "write_home": attempt(lambda: write("mine.txt")),
        "write_tmp": attempt(lambda: write("/tmp/mine.txt")),
        "cwd": os.getcwd(),
        "tmp_listing": sorted(os.listdir("/tmp")),  # after write_tmp
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "connect": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)),
        "interfaces": sorted(n for _, n in socket.if_nameindex()),
        "new_user_namespace": attempt(lambda: subprocess.run(
            ["unshare", "--user", "true"], check=True, capture_output=True)),
        "ptrace_init": attempt(lambda: open("/proc/1/environ").read()),
    }
    libc = ctypes.CDLL(None, use_errno=True)
    results["mount"] = libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None)
    return results
'''


@pytest.fixture(scope="module", params=KINDS)
def kind(request) -> str:
    why = unavailable(request.param)
    if why is not None:
        pytest.skip(f"{request.param} sandbox unavailable here: {why}")
    return request.param


@pytest.fixture(scope="module")
def probed(kind: str, tmp_path_factory) -> tuple[dict, list[bytes]]:
    """One sandboxed kernel runs every probe; returns what it saw and what reached our port."""
    instructor = tmp_path_factory.mktemp("instructor")
    secret = instructor / "answers.txt"
    secret.write_text("the hidden tests")
    sibling = tmp_path_factory.mktemp("submissions") / "other_student.ipynb"
    sibling.write_text("{}")
    host_shm = f"/dev/shm/sandbox-probe-{os.getpid()}"  # not mlsys-*: tests beside it watch those
    with open(host_shm, "w") as f:
        f.write("a host segment")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    session = Session(kind, Confinement(memory_mb=2048, cpu_seconds=60),
                      hide=[instructor, BUILTIN_LABS.resolve()])
    try:
        session.start(60)
        assert session.run(f"LABS = {str(BUILTIN_LABS.resolve())!r}\n" + PROBE, 30) is None
        results = session.call("probe", [str(secret), str(sibling),
                                         listener.getsockname()[1], host_shm], {}, 60)
    finally:
        session.stop()
        os.unlink(host_shm)
    reached = []
    try:
        reached.append(listener.accept()[0].recv(10))
    except OSError:
        pass
    listener.close()
    return results, reached


def test_files_outside_the_sandbox_cannot_be_read(probed) -> None:
    results, _ = probed
    for key in ("read_secret", "list_secret_folder", "read_sibling", "read_lab_source",
                "read_shadow"):
        assert results[key] in ("FileNotFoundError", "PermissionError"), (key, results[key])


def test_only_the_private_folders_are_writable(probed) -> None:
    results, _ = probed
    assert results["write_venv"] in ("OSError", "PermissionError", "FileNotFoundError")
    assert results["write_home"].startswith("ok") and results["write_tmp"].startswith("ok")
    under_tmp = {p.split("/")[2] for p in visible_paths() if p.startswith("/tmp/")}  # a checkout in /tmp
    assert results["cwd"] == WORKDIR and results["tmp_listing"] == sorted({"mine.txt"} | under_tmp)


def test_shared_memory_is_private_and_works(probed) -> None:
    results, _ = probed
    assert results["semaphore"] == "ok: True" and results["write_shm"].startswith("ok")
    assert results["read_host_shm"] == "FileNotFoundError" and "mine" in results["shm_listing"]
    assert not any(name.startswith(("mlsys-", "sandbox-probe-")) for name in results["shm_listing"])


def test_processes_and_the_network_of_the_host_are_invisible(probed) -> None:
    results, reached = probed
    assert len(results["processes"]) < 10 and max(results["processes"]) < 100  # its own only
    assert results["connect"] in ("ConnectionRefusedError", "OSError", "TimeoutError")
    assert reached == [] and results["interfaces"] in ([], ["lo"])


def test_no_privileges_can_be_regained(probed) -> None:
    results, _ = probed
    assert results["mount"] != 0  # no capability left to mount (or unmount) anything
    assert not results["new_user_namespace"].startswith("ok")


def test_limits_hold_and_the_kernel_survives_them(kind: str) -> None:
    session = Session(kind, Confinement(memory_mb=1024, cpu_seconds=60, processes=24,
                                        file_mb=4, disk_mb=16))
    try:
        session.start(60)
        error = session.run("hog = bytearray(2 * 2**30)", 30)
        assert error == "MemoryError", error
        session.run("import os, time\nforks = 0\ntry:\n    for _ in range(200):\n"
                    "        if os.fork() == 0:\n            time.sleep(60)\n"
                    "            os._exit(0)\n        forks += 1\nexcept OSError:\n    pass\n"
                    "def forks_made():\n    return forks", 30)
        assert session.call("forks_made", [], {}, 10) < 24
        assert "OSError" in (session.run("open('big', 'wb').write(b'0' * (8 << 20))", 10) or "")
        session.run("def fill():\n    n = 0\n    try:\n        for i in range(64):\n"
                    "            open(f'part{i}', 'wb').write(b'0' * (2 << 20))\n"
                    "            n += 1\n    except OSError:\n        pass\n    return n", 10)
        assert session.call("fill", [], {}, 30) < 8  # a 16 MiB disk, 2 MiB per file
    finally:
        session.stop()


def test_cpu_time_is_limited(kind: str) -> None:
    session = Session(kind, Confinement(memory_mb=1024, cpu_seconds=2))
    try:
        session.start(60)
        session.run("def spin():\n    while True:\n        pass", 10)
        with pytest.raises((KernelGone, LearnerError), match="CPU-seconds|longer than"):
            session.call("spin", [], {}, 30)
    finally:
        session.stop()


def test_nothing_it_started_survives_stop(kind: str) -> None:
    marker = f"mlsys-sandbox-test-{os.getpid()}-{time.monotonic_ns()}"
    session = Session(kind, Confinement(memory_mb=1024, cpu_seconds=60))
    session.start(60)
    session.run(f"import os, sys\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                f"        os.execv(sys.executable, [{marker!r}, '-c', 'import time; "
                f"time.sleep(600)'])\n    os._exit(0)\nimport time\ntime.sleep(0.3)", 10)
    assert _alive(marker), "the detached process should be running before stop()"
    assert session.sandbox.survivors()
    assert session.stop() == []
    assert not _alive(marker) and session.sandbox.survivors() == []


def _alive(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_a_missing_tool_is_a_clear_error(monkeypatch) -> None:
    from mlsys.grading import sandbox

    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.unavailable.cache_clear()
    try:
        assert "bubblewrap" in sandbox.unavailable("bwrap")
        with pytest.raises(sandbox.SandboxUnavailable, match="--sandbox none"):
            sandbox.choose("auto")
    finally:
        sandbox.unavailable.cache_clear()


def test_without_a_sandbox_the_limits_still_apply_and_processes_may_fork() -> None:
    session = Session("none", Confinement(memory_mb=1024, cpu_seconds=60))
    try:
        session.start(60)
        assert session.run("hog = bytearray(2 * 2**30)", 30) == "MemoryError"
        session.run("import os\ndef child():\n    pid = os.fork()\n    if pid == 0:\n"
                    "        os._exit(7)\n    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])", 10)
        assert session.call("child", [], {}, 10) == 7  # a learner's own multiprocessing works
    finally:
        assert session.stop() == []
