"""``mlsys serve``: serve a digits model over HTTP with dynamic batching and model replicas.

    mlsys serve --model digits-mlp --port 8000 --replicas 2 --max-batch-size 16 --max-wait-ms 2

then ``curl localhost:8000/v2/health/ready``, ``curl localhost:8000/metrics``, or POST to
``/v2/models/digits-mlp/infer`` (see ``mlsys.serve.protocol``). Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import sys

from .. import cliargs
from .models import MODELS
from .policy import MaxSizeMaxWait
from .server import ServeConfig, run_server


def main(argv: list[str]) -> int:
    p = cliargs.ArgumentParser(prog="mlsys serve", description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="digits-mlp", choices=sorted(MODELS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=cliargs.int_range(0, 65535), default=8000,
                   help="0 picks a free port (default 8000)")
    p.add_argument("--replicas", type=cliargs.positive_int, default=1, help="model worker processes")
    p.add_argument("--max-batch-size", type=cliargs.positive_int, default=8, help="requests per batch")
    p.add_argument("--max-wait-ms", type=cliargs.non_negative_float, default=2.0,
                   help="longest a request waits for its batch to fill (default 2)")
    p.add_argument("--max-queue", type=cliargs.positive_int, default=256,
                   help="waiting requests beyond which new ones get 503 (default 256)")
    p.add_argument("--max-rows", type=cliargs.positive_int, default=64, help="rows one request may carry")
    p.add_argument("--max-body-kb", type=cliargs.positive_int, default=1024, help="largest request body")
    p.add_argument("--threads", type=cliargs.positive_int, default=1, help="BLAS threads per replica")
    p.add_argument("--checkpoint", type=cliargs.output_file,
                   help="weights (.npz): loaded if present, else trained and saved there "
                        "(default: trained at start, not kept)")
    args = p.parse_args(argv)
    if args.checkpoint and args.checkpoint.suffix != ".npz":
        p.error(f"argument --checkpoint: expected a .npz file, got {str(args.checkpoint)!r}")
    config = ServeConfig(args.model, args.replicas,
                         MaxSizeMaxWait(args.max_batch_size, args.max_wait_ms / 1e3),
                         args.max_queue, args.max_rows, args.max_body_kb * 1024, args.threads)
    try:
        run_server(config, args.host, args.port, args.checkpoint)
    except OSError as error:
        print(f"mlsys serve: error: {error}", file=sys.stderr)
        return 1
    return 0
