"""``mlsys sim train``: simulate one training step of a configuration given as JSON or YAML.

The config has a ``model`` section (layers, hidden, heads, seq_len, vocab, tied_embeddings), and
optional ``parallel`` (dp, tp, pp, micro_batch, global_batch, schedule, chunks, zero, recompute,
overlap, bucket_mb, dtype and the switches sequence_parallel, fused_attention, tp_comm_overlap,
param_gather_overlap, p2p_overlap, fp32_grads) and ``cluster`` (gpu, gpus_per_node, intra, inter,
efficiencies) sections. Unknown keys, values of the wrong type and NaN or infinite numbers are
refused with a message naming them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mlsys import cliargs
from mlsys.bench.report import emit

from ..data import read_text
from .config import from_dict
from .hybrid import simulate


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON (``.json``) or YAML (``.yaml``/``.yml``) training config; a ``ValueError``
    naming the file and the place for anything that is not one."""
    path = Path(path)
    if path.suffix not in (".json", ".yaml", ".yml"):
        raise ValueError(f"config {path} must end in .json, .yaml or .yml, got {path.suffix!r}")
    text = read_text(path)
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        place = getattr(error, "problem_mark", None)
        where = f" at line {place.line + 1}, column {place.column + 1}" if place else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{where}: {problem}") from None


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys sim train", description=__doc__)
    p.add_argument("--config", required=True, type=cliargs.input_file,
                   help="training config (.json, .yaml or .yml)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--trace", type=cliargs.output_file,
                   help="write the step's Chrome trace (open it in Perfetto)")
    args = p.parse_args(argv)
    try:
        result = simulate(*from_dict(load_config(args.config)))
    except (ValueError, OSError) as error:
        return cliargs.fail("mlsys sim train", str(error))
    summary = result.summary()
    notes = [] if result.fits else [
        f"does not fit: {summary['memory_gb']:.1f} GB per GPU > "
        f"{result.cluster.device.memory / 1e9:.0f} GB on {result.cluster.gpu}"]
    if args.trace:
        notes.append(f"trace written to {result.recorder.save_chrome_trace(args.trace)}")
    rows = [{"metric": k, "value": v} for k, v in summary.items()]
    print(emit(rows, as_json=args.json, title="Simulated training step", notes=notes))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
