"""The fallback sandbox's inside half: build a private root, drop every capability, run the kernel.

When bubblewrap is missing, :mod:`.sandbox` starts this file as a script under util-linux's
``unshare --user --map-root-user --mount --pid --fork --net --ipc --uts``. It then runs as root of
fresh user, mount, PID and network namespaces (root over nothing outside them) and does what
bubblewrap would: mounts a tmpfs as the new root, binds the allowed paths into it read-only, hides
the listed ones under empty tmpfs, adds a private ``/tmp`` and working directory of limited size,
``/proc`` for the new PID namespace, a few device nodes and a private ``/dev/shm``, makes that the
root (``pivot_root``, the host's root detached), forbids nested user namespaces, drops the
capability bounding set, sets no-new-privileges and runs the command as a child it reaps (it is
PID 1 of the namespace: when it exits, the kernel kills every process left in the sandbox).

Usage: ``python jail.py SPEC_JSON -- COMMAND...`` where the spec holds ``root`` (an empty folder
for the mount point), ``binds``, ``hide``, ``workdir``, ``tmp_mb`` and ``workdir_mb``.
Standard library only, and no import of the package: it runs before the sandbox exists.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
DEVICES = ("null", "zero", "full", "random", "urandom")
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    encode = lambda s: None if s is None else s.encode()  # noqa: E731
    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def _bind(root: str, path: str) -> None:
    target = root + path
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(path, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build(spec: dict) -> None:
    """Mount the private root described by ``spec`` and make it the root (``pivot_root``, then
    the old root is detached: nothing of the host's file system stays in the namespace)."""
    root = spec["root"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    # the private /tmp and working directory first: a checkout or a virtual environment under /tmp
    # is bound into them
    for path, megabytes in (("/tmp", spec["tmp_mb"]), (spec["workdir"], spec["workdir_mb"])):
        os.makedirs(root + path, exist_ok=True)
        _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={int(megabytes)}m,mode=1777")
    for path in spec["binds"]:
        if os.path.lexists(path):
            if os.path.islink(path):
                os.makedirs(os.path.dirname(root + path), exist_ok=True)
                os.symlink(os.readlink(path), root + path)
            else:
                _bind(root, path)
    for path in spec["hide"]:
        if os.path.isdir(root + path):
            _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k")
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV)
    os.makedirs(root + "/dev", exist_ok=True)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{root}/dev/{name}", "a").close()
            _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    os.makedirs(root + "/dev/shm")  # private POSIX shared memory (multiprocessing's locks), as bwrap's
    _mount("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(spec['tmp_mb'])}m,mode=1777")
    os.mkdir(root + "/.old")
    if _libc.pivot_root(root.encode(), (root + "/.old").encode()) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"pivot_root to {root}: {os.strerror(errno)}")
    os.chdir("/")
    if _libc.umount2(b"/.old", MNT_DETACH) != 0:  # the host's file system leaves the namespace
        errno = ctypes.get_errno()
        raise OSError(errno, f"umount /.old: {os.strerror(errno)}")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    with open("/proc/sys/user/max_user_namespaces", "w") as f:  # no nested user namespaces
        f.write("0")
    os.chdir(spec["workdir"])


def drop_privileges() -> None:
    """Empty the capability bounding set and forbid gaining privileges: after ``exec`` the
    command holds no capability, even as root of its namespaces."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def main(argv: list[str]) -> int:
    spec, command = json.loads(argv[0]), argv[2:]
    build(spec)
    drop_privileges()
    child = os.fork()
    if child == 0:
        os.execve(command[0], command, os.environ)
    while True:  # PID 1: reap every orphan, leave with the command's status
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
