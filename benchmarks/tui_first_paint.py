"""Benchmark: time from process start to the TUI's first painted frame, against `python -c pass`.

Run: .venv/bin/python benchmarks/tui_first_paint.py [--repeats 5] [--json]
Each repeat spawns a fresh interpreter that opens the app headless (120x40) and
stops at Textual's Ready event, which is posted once the first frame has been
composited. It also reports which heavy modules (torch, transformers, timm,
onnxruntime) the first screen pulled in; there should be none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HEAVY = ("torch", "transformers", "timm", "onnxruntime")


def probe() -> None:
    """Child process: open the app, wait for its first frame, report timing and imports as JSON."""
    import asyncio

    spawned = float(os.environ["MMZOO_SPAWNED_AT"])
    from textual import events

    from mmzoo.tui.app import make_app

    painted: dict[str, float] = {}

    def hook(message) -> None:
        if isinstance(message, events.Ready) and "at" not in painted:
            painted["at"] = time.time()

    async def run() -> list[str]:
        with tempfile.TemporaryDirectory() as runs:
            app = make_app(runs_dir=runs)
            async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
                while "at" not in painted:
                    await pilot.pause(0.005)
                return [name for name in HEAVY if name in sys.modules]

    heavy = asyncio.run(run())
    print(json.dumps({"first_paint_s": painted["at"] - spawned, "heavy_modules": heavy}))


def spawn(cmd: list[str]) -> tuple[float, str]:
    started = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MMZOO_SPAWNED_AT": repr(started)},
                          check=True)
    return time.time() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe()
        return
    python, paint, heavy = [], [], set()
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        python.append(spawn([sys.executable, "-c", "pass"])[0])
        _, out = spawn([sys.executable, __file__, "--probe"])
        report = json.loads(out.strip().splitlines()[-1])
        paint.append(report["first_paint_s"])
        heavy.update(report["heavy_modules"])
    result = {"python_c_pass_s": statistics.median(python), "first_paint_s": statistics.median(paint),
              "repeats": args.repeats, "heavy_modules": sorted(heavy)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"python -c pass        {1000 * result['python_c_pass_s']:7.0f} ms (median of {args.repeats})")
    print(f"TUI first paint       {1000 * result['first_paint_s']:7.0f} ms (process start to first frame)")
    print("heavy modules at first paint: " + (", ".join(result["heavy_modules"]) or "none"))


if __name__ == "__main__":
    main()
