"""Benchmark: wall time of `mmzoo list` against `python -c pass` (and `import torch` for scale).

Run: .venv/bin/python benchmarks/list_startup.py [--repeats 7]
All commands are timed side by side in one run, interleaved, so the ratio is fair
even when the machine's speed drifts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "mmzoo list": [sys.executable, "-m", "mmzoo", "list"],
    "mmzoo --help": [sys.executable, "-m", "mmzoo", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<28} {'median s':>9} {'vs python -c pass':>18}")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:<28} {med:9.3f} {med / base:17.1f}x")


if __name__ == "__main__":
    main()
