"""Shipped data: every dataset has its SOURCE note, files are found by name, compressed or not."""

from __future__ import annotations

import gzip

import pytest

from simulators.data import PACKAGE_DATA, data_path, file_stem, list_data, open_text, read_text, resolve
from simulators.scheduling import read_trace


def test_every_dataset_folder_has_a_source_note() -> None:
    folders = [p for p in (PACKAGE_DATA / "traces").iterdir() if p.is_dir()]
    folders.append(PACKAGE_DATA / "reference")
    assert len(folders) >= 8
    for folder in folders:
        note = (folder / "SOURCE.md").read_text()
        for field in ("Origin", "License") if folder.name != "reference" else ("SC 2021",):
            assert field in note, f"{folder.name}/SOURCE.md does not state its {field}"


def test_shipped_data_stays_small() -> None:
    total = sum(p.stat().st_size for p in PACKAGE_DATA.rglob("*") if p.is_file())
    assert total < 4_000_000, f"package data is {total / 1e6:.1f} MB; keep it a few MB"


def test_compressed_files_are_found_by_their_plain_name() -> None:
    path = data_path("traces/pollux_philly/traces/philly.csv")
    assert path.name == "philly.csv.gz"
    lines = read_text(path).splitlines()
    assert lines[0] == "timestamp,duration,num_gpus,gpu_time,cluster"
    assert sum(1 for line in lines[1:] if line) == 82_247
    assert "traces/pollux_philly/traces/philly.csv" in list_data("traces")
    assert file_stem(path) == "philly"


def test_traces_resolve_by_shipped_name_or_path(tmp_path) -> None:
    assert resolve("tiresias/60_job.csv") == data_path("traces/tiresias/60_job.csv")
    assert len(read_trace("tiresias/60_job.csv")) == 60
    own = tmp_path / "mine.csv"
    own.write_text("x")
    assert resolve(own) == own
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped dataset"):
        resolve("tiresias/no_such.csv")
    with pytest.raises(ValueError, match="relative to the data folder"):
        data_path("../secrets.csv")


def test_environment_copy_is_searched_first(tmp_path, monkeypatch) -> None:
    (tmp_path / "traces" / "tiresias").mkdir(parents=True)
    mine = tmp_path / "traces" / "tiresias" / "60_job.csv"
    mine.write_text("job_id,num_gpu,submit_time,duration\n1,1,0,10\n")
    monkeypatch.setenv("MLSYS_DATA", str(tmp_path))
    assert data_path("traces/tiresias/60_job.csv") == mine
    assert data_path("traces/helios/philly_vc.csv").parent.parent.parent == PACKAGE_DATA
    monkeypatch.setenv("MLSYS_DATA", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="MLSYS_DATA"):
        data_path("traces/helios/philly_vc.csv")


def test_text_is_utf8_with_bom_dropped_and_gzip_read(tmp_path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfa,b\r\n1,2\r\n")
    assert open_text(bom).readline() == "a,b\n"
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(b"a,b\n"))
    assert read_text(packed) == "a,b\n"
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"name\ncaf\xe9\n")
    with pytest.raises(ValueError, match=r"latin.csv is not UTF-8 text \(byte 8"):
        open_text(latin)
