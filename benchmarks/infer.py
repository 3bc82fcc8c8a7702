"""Benchmark: inference of one run in torch eager vs onnxruntime (per-member sessions, merged graph, int8).

Run: .venv/bin/python benchmarks/infer.py [RUN] [--out RUNS] [--repeats 30] [--batch-size 32] [--json]

Without RUN it builds the digits_pair ensemble (two small digits-match fusions, 3 epochs
each) in a temporary runs folder and benchmarks that. The measurement is `mmzoo bench`'s
own code (mmzoo.onnx.bench.run_bench); see docs/onnx.md for how to read the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def build_digits_pair(root: Path) -> str:
    """Train digits_pair's members and fit its combiner; returns the ensemble run's name."""
    res = subprocess.run([sys.executable, "-m", "mmzoo.cli", "ensemble", "digits_pair", "--epochs", "3",
                          "--out", str(root), "--json"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"building digits_pair failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)["run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run to benchmark (default: build digits_pair in a temp folder)")
    parser.add_argument("--out", type=Path, help="runs folder holding RUN")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="default: physical cores")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mmzoo.onnx.bench import render, run_bench
    from mmzoo.runs.folders import find_run

    with tempfile.TemporaryDirectory(prefix="mmzoo-infer-") as tmp:
        root = args.out
        ref = args.run
        if ref is None:
            root = Path(tmp)
            print("building digits_pair (2 members, 3 epochs each) ...", file=sys.stderr)
            ref = build_digits_pair(root)
        report = run_bench(find_run(ref, root), repeats=args.repeats, batch_size=args.batch_size,
                           threads=args.threads, say=lambda msg: print(msg, file=sys.stderr))
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
