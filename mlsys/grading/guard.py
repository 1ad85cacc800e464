"""The kernel-side half of the grader: a pristine environment for each test and a signed verdict.

The grader sends this module's *source* to a fresh kernel and calls :func:`install` before any
cell of the submission runs. ``install`` snapshots the modules the tests rely on (builtins, numpy,
the check helpers, the engine) and keeps a secret key; it returns ``run``, which the grader calls
once per graded test cell, under a random name, after the student's cells before it:

1. the test's source must hash to the value the grader gave at install time (a submission that
   rewrites the request cannot swap a test for an easier one);
2. every protected module and class is put back as it was at install time, so helpers,
   ``numpy.allclose``, ``builtins.isinstance`` or engine methods the submission replaced are gone;
3. the test runs in a copy of the student's namespace; any exception (``SystemExit`` included)
   fails it, and a protected object replaced *during* the test fails it too;
4. the verdict comes back as the cell's result, signed with HMAC-SHA256 over (test id, a fresh
   nonce, outcome) with the install-time key; the grader trusts nothing else the kernel prints.

The guard stops a submission from raising its own score by ordinary means. Code that digs the
key out of the interpreter (``run.__closure__``, ``gc``) can forge verdicts: only running tests
outside the submission's interpreter prevents that, so the grader flags such code for review
(:func:`mlsys.grading.runner.review_flags`).
Only the standard library is imported at module level: this file runs inside the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

_MISSING = object()
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes whose attributes can be set


def sign(key: bytes, grade_id: str, nonce: str, passed: bool) -> str:
    """The verdict's signature: HMAC-SHA256 over id, nonce and outcome."""
    import hashlib
    import hmac

    message = f"{grade_id}|{nonce}|{int(bool(passed))}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def install(user_ns: dict, key_hex: str, hashes: dict[str, str],
            protected: Iterable[str]) -> Callable[[str, str, str], str]:
    """Snapshot the protected modules and return the per-test ``run(grade_id, source, nonce)``."""
    import hashlib
    import importlib
    import json
    import sys

    names = list(dict.fromkeys(["builtins", "hashlib", "hmac", "json", *protected]))
    for name in names:
        importlib.import_module(name)
    modules = {name: sys.modules[name] for name in names}
    module_dicts = {name: dict(vars(m)) for name, m in modules.items()}
    classes = {}
    for name, module in modules.items():
        for value in vars(module).values():
            if (isinstance(value, type) and value.__flags__ & _HEAPTYPE
                    and getattr(value, "__module__", None) == name):
                classes[value] = dict(vars(value))
    sys_hooks = {k: getattr(sys, k) for k in ("displayhook", "excepthook", "stdout", "stderr")}
    key = bytes.fromhex(key_hex)
    expected = dict(hashes)
    _compile, _exec, _type, _dict, _setattr, _delattr = (compile, exec, type, dict, setattr,
                                                          delattr)

    def differences() -> list[str]:
        """Protected objects that are not what install() saw."""
        found = [f"sys.modules[{n!r}]" for n, m in modules.items() if sys.modules.get(n) is not m]
        for name, snapshot in module_dicts.items():
            now = vars(modules[name])
            found += [f"{name}.{k}" for k, v in snapshot.items() if now.get(k, _MISSING) is not v]
        for cls, snapshot in classes.items():
            now = vars(cls)
            found += [f"{cls.__module__}.{cls.__qualname__}.{k}" for k, v in snapshot.items()
                      if now.get(k, _MISSING) is not v]
            found += [f"{cls.__module__}.{cls.__qualname__}.{k} (added)" for k in now
                      if k not in snapshot]
        return found

    def restore() -> None:
        sys.settrace(None)
        sys.setprofile(None)
        for name, module in modules.items():
            sys.modules[name] = module
            now = vars(module)
            for k, v in module_dicts[name].items():
                if now.get(k, _MISSING) is not v:
                    now[k] = v
        for cls, snapshot in classes.items():
            for k in [k for k in vars(cls) if k not in snapshot]:
                _delattr(cls, k)
            for k, v in snapshot.items():
                if vars(cls).get(k, _MISSING) is not v:
                    _setattr(cls, k, v)
        for k, v in sys_hooks.items():
            _setattr(sys, k, v)

    def describe(error: BaseException) -> str:
        try:
            text = BaseException.__str__(error)
        except BaseException:  # a submission's exception whose __str__ itself fails
            text = "<unprintable>"
        name = _type(error).__name__
        return f"{name}: {text}" if text else name

    def run(grade_id: str, source: str, nonce: str) -> str:
        restore()
        digest = hashlib.sha256(source.encode()).hexdigest()
        if expected.get(grade_id) != digest:
            passed, message = False, f"the source of test {grade_id!r} was altered"
        else:
            try:
                _exec(_compile(source, f"<test {grade_id}>", "exec"), _dict(user_ns))
                passed, message = True, ""
            except BaseException as error:  # SystemExit and KeyboardInterrupt fail a test too
                passed, message = False, describe(error)
            changed = differences()
            if changed:
                passed = False
                message = (f"the submission replaced {', '.join(changed[:3])} while the test "
                           f"ran; tests must run against the real helpers")
            restore()
        return json.dumps({"id": grade_id, "nonce": nonce, "passed": passed,
                           "message": message[:2000],
                           "signature": sign(key, grade_id, nonce, passed)})

    return run
