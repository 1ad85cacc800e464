"""Every option of every command, fed bad values: one line on stderr, exit code 2, no traceback,
no output file, and no work done first.

The options come from the commands' own parsers (captured as each ``main`` parses), so an option
added without bad values here fails :func:`test_every_option_has_bad_values`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlsys import cli, cliargs

ROOT = Path(__file__).resolve().parents[2]

COUNT = ["0", "-1", "2.5", ""]
FLOAT_POSITIVE = ["0", "nan", "inf", "x"]
FLOAT_NON_NEGATIVE = ["-1", "nan", "inf"]
RANKS = ["", "2,,4", "2,x", "1", "300"]
SIZES = ["", "6", "0", "4096,abc"]
ALGORITHMS = ["", "rng", "ring,spiral"]
MISSING_FILE = "{tmp}/missing.json"
INPUT_FILE = [MISSING_FILE, "{tmp}"]
OUTPUT_FILE = ["{tmp}", "{tmp}/no/such/folder/out.json", ""]

# command -> (arguments that make the rest valid, {option: bad values})
FUZZ: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "bench autodiff": ([], {"--batch": COUNT + ["100000"], "--hidden": COUNT,
                            "--repeat": COUNT, "--threads": COUNT}),
    "bench compile": ([], {}),
    "bench kernels": ([], {"--n": COUNT + ["4", "100000"], "--repeat": COUNT,
                           "--bandwidth-mb": COUNT}),
    "bench allreduce": ([], {"--ranks": RANKS, "--sizes": SIZES, "--algorithms": ALGORITHMS,
                             "--rounds": COUNT, "--hidden": COUNT, "--depth": COUNT,
                             "--batch": COUNT, "--steps": COUNT,
                             "--bucket-mb": FLOAT_POSITIVE, "--mpi-worker": []}),
    "bench sim": ([], {"--only": ["bogus", ""]}),
    "bench grading": ([], {"--lab": ["nosuchlab"], "--n": COUNT, "--jobs": COUNT,
                           "--sandbox": ["bogus"]}),
    "run": (["--nprocs", "2", "{script}"], {"--nprocs": COUNT + ["300"], "--backend": ["tcp"],
                                            "--timeout": FLOAT_POSITIVE}),
    "comm calibrate": (["--plot", "{tmp}/plot.png"], {
        "--ranks": COUNT + ["1", "300"], "--sizes": SIZES + ["4096"],
        "--algorithms": ALGORITHMS + ["ring,ring"], "--plot": OUTPUT_FILE}),
    "sim train": (["--config", "{config}", "--trace", "{tmp}/trace.json"], {
        "--config": INPUT_FILE, "--trace": OUTPUT_FILE}),
    "sim collectives": ([], {"--ranks": RANKS, "--sizes": SIZES, "--algorithms": ALGORITHMS,
                             "--calibration": INPUT_FILE + ["{bad_calibration}"],
                             "--repeat": COUNT}),
    "sim schedule": (["--chrome-trace", "{tmp}/timeline.json",
                      "--policy", "fifo,las,gittins,gandiva,themis"], {
        "--trace": ["{tmp}", MISSING_FILE, "{empty}", "{latin1}"],
        "--format": ["bogus"], "--jobs": COUNT + ["100000000"], "--seed": ["-1", "x", "1.5"],
        "--jobs-per-hour": FLOAT_POSITIVE, "--policy": ["", "lifo", "fifo,,las"],
        "--cluster": INPUT_FILE, "--gpus": COUNT + ["1", "1000000000"],
        "--gpus-per-node": COUNT + ["3", "5000"], "--placement": ["bogus"],
        "--spread-slowdown": FLOAT_NON_NEGATIVE + ["0.5"], "--restart-cost": FLOAT_NON_NEGATIVE,
        "--chrome-trace": OUTPUT_FILE, "--jobs-out": OUTPUT_FILE, "--segments-out": OUTPUT_FILE,
        "--las-thresholds": ["", "0,10", "20,10", "10,x", "nan"], "--promote-knob": FLOAT_POSITIVE,
        "--gittins-samples": [MISSING_FILE, "{tmp}", "{empty}", "{latin1}"],
        "--gittins-delta": FLOAT_POSITIVE, "--gittins-bins": COUNT + ["1", "200000"],
        "--quantum": FLOAT_POSITIVE, "--lease": FLOAT_POSITIVE}),
    "serve": ([], {"--model": ["bogus"], "--host": [], "--port": ["-1", "65536", "x"],
                   "--replicas": COUNT, "--max-batch-size": COUNT,
                   "--max-wait-ms": FLOAT_NON_NEGATIVE, "--max-queue": COUNT,
                   "--max-rows": COUNT, "--max-body-kb": COUNT, "--threads": COUNT,
                   "--checkpoint": OUTPUT_FILE + ["{tmp}/weights.txt"]}),
    "bench serve": ([], {"--model": ["bogus"], "--replicas": RANKS[:3] + ["1,1"],
                         "--batch": RANKS[:3], "--max-wait-ms": ["", "-1", "nan", "2,2"],
                         "--concurrency": COUNT, "--duration": FLOAT_POSITIVE,
                         "--rate": FLOAT_POSITIVE, "--rounds": COUNT, "--part": ["bogus"]}),
    "bench loader": ([], {"--workers": ["", "abc", "1,,2", "-1"], "--upsample": COUNT,
                          "--hidden": COUNT, "--batches": COUNT, "--prefetch-factor": COUNT,
                          "--rounds": COUNT}),
    "bench parallel": ([], {"--processes": ["", "1", "5", "2,,4", "2,x", "2,2"],
                            "--batch": COUNT + ["4", "12", "2048"], "--rounds": COUNT + ["1"]}),
}
NOT_FUZZED = {"lab": "mlsys lab validates its own options (tests/grading/test_lab_cli.py)"}


class _Parsed(Exception):
    """Raised instead of parsing, carrying the parser a command built."""


def parser_of(words: str) -> cliargs.ArgumentParser:
    """The parser ``mlsys WORDS`` builds (its ``main`` is stopped at ``parse_args``)."""
    main = cli.commands()[tuple(words.split())].load()
    original = cliargs.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise _Parsed(self)

    cliargs.ArgumentParser.parse_args = capture
    try:
        main([])
    except _Parsed as parsed:
        return parsed.args[0]
    finally:
        cliargs.ArgumentParser.parse_args = original
    raise AssertionError(f"mlsys {words} did not parse its arguments with cliargs.ArgumentParser")


def valued_options(parser: cliargs.ArgumentParser) -> set[str]:
    """Each option that takes a value, by its longest name (``--nprocs`` for ``-n``)."""
    return {max(a.option_strings, key=len) for a in parser._actions
            if a.option_strings and a.nargs != 0}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"model": {"layers": 2, "hidden": 64, "heads": 4, "seq_len": 32}}))
    script = tmp_path / "script.py"
    script.write_text("print('never run')\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "latin1.csv").write_bytes("job_id,num_gpu\n1,caf\xe9\n".encode("latin-1"))
    (tmp_path / "cal.json").write_text('{"alpha": "fast", "beta": 1}')
    return {"tmp": str(tmp_path), "config": str(config), "script": str(script),
            "empty": str(tmp_path / "empty.csv"), "latin1": str(tmp_path / "latin1.csv"),
            "bad_calibration": str(tmp_path / "cal.json")}


def test_every_registered_command_is_fuzzed() -> None:
    registered = {" ".join(words) for words in cli.commands()}
    missing = registered - set(FUZZ) - set(NOT_FUZZED)
    assert not missing, f"add the bad values of {sorted(missing)} to FUZZ in {__file__}"


@pytest.mark.parametrize("words", sorted(FUZZ))
def test_every_option_has_bad_values(words: str) -> None:
    options = valued_options(parser_of(words))
    assert options == set(FUZZ[words][1]), f"mlsys {words}: options and fuzz table differ"


def _cases() -> list[tuple[str, str, str]]:
    return [(words, option, bad) for words, (_, table) in sorted(FUZZ.items())
            for option, values in table.items() for bad in values]


@pytest.mark.parametrize("words,option,bad", _cases())
def test_a_bad_value_is_one_line_and_exit_code_2(words: str, option: str, bad: str,
                                                   files: dict[str, str],
                                                   capsys: pytest.CaptureFixture) -> None:
    base, _ = FUZZ[words]
    argv = [a.format(**files) for a in base]
    if option in argv:  # the option under test replaces its valid value
        i = argv.index(option)
        del argv[i: i + 2]
    value = bad.format(**files)
    argv = [option, value, *argv]
    before = set(Path(files["tmp"]).rglob("*"))
    main = cli.commands()[tuple(words.split())].load()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, f"mlsys {words} {argv}: exit code {code}\n{err}"
    assert len(lines) == 1 and "Traceback" not in err, f"mlsys {words} {argv}:\n{err}"
    assert lines[0].startswith(f"mlsys {words}: error: ")
    assert option in lines[0] or value in lines[0], "the message names neither option nor value"
    assert set(Path(files["tmp"]).rglob("*")) == before, "an output file was written"


def test_unknown_commands_get_one_line(capsys: pytest.CaptureFixture) -> None:
    for argv, expected in ((["frobnicate"], "mlsys: error: unknown command 'frobnicate'"),
                           (["bench"], "mlsys bench: error: expected one of"),
                           (["bench", "nosuch"], "got 'nosuch'")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1


def test_the_installed_command_refuses_bad_numbers(tmp_path: Path) -> None:
    runs = [[str(Path(sys.executable).parent / "mlsys"), "run", "-n", "2", "--timeout", "nan",
             str(tmp_path)],
            [sys.executable, "-m", "mlsys.cli", "sim", "schedule", "--gpus-per-node", "0"]]
    for argv in runs:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
