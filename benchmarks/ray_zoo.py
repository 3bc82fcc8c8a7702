"""Benchmark: wall time of a 4-member zoo of tiny digits models, trained locally vs as Ray tasks.

Run: .venv/bin/python benchmarks/ray_zoo.py [--epochs 3] [--members 4]

Each variant is the real command, timed end to end from a fresh process (imports, Ray
start-up and shut-down included), into its own empty runs folder so nothing is reused:
- local:        `mmzoo ensemble bench_zoo` (members one after another; torch uses every core)
- local 1 thr:  the same with OMP_NUM_THREADS=1 (the thread count Ray's 1-CPU tasks use)
- ray:          `mmzoo ensemble bench_zoo --executor ray --cpus-per-member 1`
                (a local Ray instance; as many members at once as there are cores)
The members are four seeds of a digits_concat-sized fusion. The load average is printed
first: on a shared machine other work changes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REGISTRY = """
models:
  bench_member:
    description: digits_concat-sized fusion for the Ray benchmark
    text: {{encoder: small_text, dim: 48, max_length: 32}}
    image: {{encoder: small_cnn, image_size: 16, channels: [16, 32], dim: 48}}
    fusion: concat
    task: {{dataset: digits-match}}
    train: {{epochs: {epochs}, lr: 0.003, batch_size: 32, patience: 0, precision: fp32}}
ensembles:
  bench_zoo:
    seeds: {{model: bench_member, n: {members}}}
    combiner: mean
"""


def timed(args: list[str], env: dict) -> tuple[float, dict]:
    """(wall seconds, JSON report) of one `mmzoo` command in a fresh process."""
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "mmzoo.cli", *args, "--json"], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    wall = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return wall, json.loads(res.stdout)


def member_seconds(report: dict) -> float:
    return sum(json.loads((Path(m["path"]) / "metrics.json").read_text())["train_seconds"] for m in report["members"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--members", type=int, default=4)
    args = parser.parse_args()
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs Ray: pip install 'mmzoo[ray]'")
    cores = os.cpu_count()
    print(f"{args.members}-member zoo, {args.epochs} epochs each, {cores} cores; load average before: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        reg = Path(tmp) / "registry.yaml"
        reg.write_text(REGISTRY.format(epochs=args.epochs, members=args.members))
        # One shared feature cache; these models encode live, so it stays empty, but it keeps ~/.cache clean.
        env = {"MMZOO_CACHE": str(Path(tmp) / "cache")}
        variants = [("local", [], {}), ("local 1 thr", [], {"OMP_NUM_THREADS": "1"}),
                    ("ray", ["--executor", "ray", "--cpus-per-member", "1"], {})]
        rows = []
        for name, extra, more_env in variants:
            out = Path(tmp) / name.replace(" ", "_")
            wall, report = timed(["--registry", str(reg), "ensemble", "bench_zoo", "--out", str(out), *extra],
                                 {**env, **more_env})
            rows.append((name, wall, member_seconds(report), report["test"]["accuracy"]))
    base = rows[0][1]
    print(f"{'variant':<12} {'wall s':>8} {'sum of member train s':>22} {'ensemble test acc':>18} {'local/this':>11}")
    for name, wall, train_s, acc in rows:
        print(f"{name:<12} {wall:8.1f} {train_s:22.1f} {acc:18.4f} {base / wall:10.2f}x")
    print("(wall includes process start, imports and, for ray, starting and stopping a local Ray instance; "
          "'sum of member train s' is the trainer's own epoch time, summed over members)")


if __name__ == "__main__":
    main()
