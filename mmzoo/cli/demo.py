"""Provides `mmzoo demo`: the main job end to end on emoji, then the comparison table."""

from __future__ import annotations

import time
from pathlib import Path

from mmzoo.cli.output import err

DEMO_MODELS = ("emoji_text", "emoji_image", "emoji_concat", "emoji_late", "emoji_gated", "emoji_bilinear",
               "emoji_cross_attention", "emoji_film")


def add_parsers(sub) -> None:
    p = sub.add_parser("demo", help="train text-only, image-only and every fusion on emoji, then compare")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/)")
    p.add_argument("--retrain", action="store_true", help="train again even when a finished run matches")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args) -> int:
    from mmzoo.cli.train import render_compare
    from mmzoo.compare import compare_runs
    from mmzoo.factory import resolve_spec
    from mmzoo.runs import find_finished
    from mmzoo.trainer import Options, train

    started = time.perf_counter()
    runs = []
    for i, name in enumerate(DEMO_MODELS, 1):
        spec = resolve_spec(name, args.registry)
        run = None if args.retrain else find_finished(spec, args.out)
        if run is not None:
            err(f"[{i}/{len(DEMO_MODELS)}] {name}: reusing finished run {run.name}")
        else:
            err(f"[{i}/{len(DEMO_MODELS)}] {name}: training")
            run = train(spec, Options(out=args.out, device=args.device))
        runs.append(run)
    print(render_compare(compare_runs(runs, args.out)))
    err(f"demo finished in {time.perf_counter() - started:.0f}s")
    return 0
