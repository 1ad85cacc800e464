"""The package as a user installs it: a wheel built from this checkout, used outside the repository.

The wheel must carry every trace, reference table and lab (package data), and from a folder with
nothing beside it, chapter 8's trace replay and chapter 7's validation table must run on what it
carries alone. Built offline (no build isolation, no dependencies fetched) from a copy of the
checkout's files, so no stale ``build/`` folder can add or hide anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("simulators/data/", "labs/")  # each lab's folder travels in mlsys/grading/builtin_labs

USE_IT = """
import simulators, mlsys
from mlsys.grading import labs
from simulators.data import data_path
from simulators.scheduling import ClusterSpec, simulate, summarize
from simulators.scheduling.traces import read_philly
from simulators.training.validation import sc21_table1

for module in (simulators, mlsys):
    assert module.__file__.startswith({site!r}), module.__file__
philly = read_philly(data_path("traces/pollux_philly/traces/philly.csv"))
jobs = philly.jobs[:300]
result = simulate(jobs, ClusterSpec(nodes_per_switch=8, gpus_per_node=8), "fifo")
print("replayed", len(result.jobs), "jobs; average JCT", round(summarize(result)["avg_jct"]))
rows = sc21_table1()
print("SC'21 Table 1:", len(rows), "rows; worst error", round(max(abs(r.error) for r in rows), 1), "%")
print("labs:", len(labs.available()))
"""


def _checkout_files() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the wheel is built from the checkout's tracked files")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).exists()]


def test_a_wheel_alone_carries_the_data_and_runs_chapters_7_and_8(tmp_path: Path) -> None:
    source = tmp_path / "source"
    files = _checkout_files()
    for name in files:
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():
            target.symlink_to(os.readlink(ROOT / name))
        else:
            shutil.copy2(ROOT / name, target)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "--quiet", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("mlsys-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
        archive.extractall(site)
    expected = {name.replace("labs/", "mlsys/grading/builtin_labs/", 1) for name in files
                if name.startswith(SHIPPED) and not name.endswith(".py") and name != "labs/README.md"}
    missing = sorted(expected - packed)
    assert not missing, f"the wheel lacks package data: {missing[:10]}"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLSYS_DATA"} | {"PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", USE_IT.format(site=str(site))], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "replayed 300 jobs" in run.stdout and "10 rows" in run.stdout
    assert f"labs: {len(list((ROOT / 'labs').glob('*/*.ipynb')))}" in run.stdout, run.stdout
