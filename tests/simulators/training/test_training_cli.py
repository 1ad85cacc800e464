"""``mlsys sim train``: JSON and YAML configs in, table/JSON and Chrome trace out."""

from __future__ import annotations

import json

import pytest

from simulators.training.cli import main

CONFIG = {"model": {"layers": 8, "hidden": 1024, "heads": 16, "seq_len": 512},
          "parallel": {"dp": 2, "tp": 2, "pp": 2, "global_batch": 16, "zero": 1}}


def test_json_config_with_trace(tmp_path, capsys) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    trace = tmp_path / "trace.json"
    assert main(["--config", str(cfg), "--json", "--trace", str(trace)]) == 0
    out = json.loads(capsys.readouterr().out)
    values = {row["metric"]: row["value"] for row in out["rows"]}
    assert values["gpus"] == 8 and values["step_s"] > 0 and values["fits"] is True
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" and e["cat"] == "F" for e in events)


def test_yaml_config_table(tmp_path, capsys) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {layers: 8, hidden: 1024, heads: 16, seq_len: 512}\n"
                   "cluster: {gpu: H100, intra: nvswitch-h100, inter: ib-ndr}\n")
    assert main(["--config", str(cfg)]) == 0
    assert "achieved_tflops_per_gpu" in capsys.readouterr().out


def test_bad_configs_exit_2_with_message(tmp_path, capsys) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": {"layers": 8}}))
    assert main(["--config", str(cfg)]) == 2
    assert "missing required keys ['hidden', 'heads', 'seq_len']" in capsys.readouterr().err
    cfg.write_text(json.dumps({**CONFIG, "paralel": {}}))
    assert main(["--config", str(cfg)]) == 2
    assert "unknown config sections ['paralel']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(tmp_path / "missing.json")])
    assert stop.value.code == 2 and "no such file" in capsys.readouterr().err


def test_todays_megatron_switches_in_a_config(tmp_path, capsys) -> None:
    cfg = tmp_path / "h100.yaml"
    cfg.write_text("model: {layers: 8, hidden: 1024, heads: 16, seq_len: 1024, tied_embeddings: false}\n"
                   "parallel: {dp: 2, tp: 2, pp: 2, global_batch: 16, zero: 1, fp32_grads: true,\n"
                   "  sequence_parallel: true, tp_comm_overlap: true, fused_attention: true,\n"
                   "  param_gather_overlap: true, p2p_overlap: false}\n"
                   "cluster: {gpu: H100, intra: nvswitch-h100, inter: ib-ndr}\n")
    assert main(["--config", str(cfg), "--json"]) == 0
    values = {row["metric"]: row["value"] for row in json.loads(capsys.readouterr().out)["rows"]}
    assert values["gpus"] == 8 and values["fits"] is True
    for bad, message in (("sequence_parallel: 'yes'", "parallel.sequence_parallel must be true or false"),
                         ("tp_comm_overlap: true", "tp_comm_overlap=true needs sequence_parallel=true"),
                         ("fused_attention: 1", "parallel.fused_attention must be true or false"),
                         ("param_gather_overlap: true", "needs zero 1 or 2")):
        cfg.write_text("model: {layers: 8, hidden: 1024, heads: 16, seq_len: 1024}\n"
                       f"parallel: {{dp: 2, {bad}}}\n")
        assert main(["--config", str(cfg)]) == 2
        assert message in capsys.readouterr().err
