"""Provides `mmzoo distill`: train one model on an ensemble run's soft labels (see mmzoo.ensemble.distill)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmzoo.cli.output import emit_json


def add_parsers(sub) -> None:
    from mmzoo.cli.train import add_threads_flag
    from mmzoo.ensemble.distill import DEFAULT_ALPHA, DEFAULT_AUGMENT, DEFAULT_TEMPERATURE, DEFAULT_WARM_START

    p = sub.add_parser("distill", help="train one model on an ensemble run's soft labels (train split only)")
    p.add_argument("ensemble", metavar="ENSEMBLE_RUN", help="a finished ensemble run (folder, model/id or name)")
    p.add_argument("--student", required=True, metavar="MODEL", help="model name in registry.yaml to train")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                   help=f"softening of teacher and student (default {DEFAULT_TEMPERATURE:g})")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"weight of the soft-label term; 1 - alpha weighs the hard labels (default {DEFAULT_ALPHA:g})")
    p.add_argument("--augment", default=DEFAULT_AUGMENT, metavar="KINDS",
                   help="also ask the teacher on perturbed copies of each train batch: none, or shift, noise, "
                        f"mixup, swap joined by '+' (e.g. mixup, shift+swap; default {DEFAULT_AUGMENT})")
    p.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=DEFAULT_WARM_START,
                   help="start from the weights of the ensemble's best member (on val) with the student's exact "
                        "spec (--no-warm-start: from scratch; default: from that member when there is one)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    add_threads_flag(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_distill)


def cmd_distill(args) -> int:
    from mmzoo.app.distill import distill_from_run
    from mmzoo.app.train import Overrides
    from mmzoo.cli.train import apply_threads
    from mmzoo.ensemble.distill import check_settings
    from mmzoo.runs.compare import gap_closed, gap_closed_text, teacher_gain_note

    check_settings(args.temperature, args.alpha, args.augment)
    apply_threads(args)
    run = distill_from_run(args.ensemble, args.student, Overrides.from_object(args), temperature=args.temperature,
                           alpha=args.alpha, augment=args.augment, registry=args.registry, out=args.out,
                           device=args.device, warm_start=args.warm_start)
    teacher = run.spec["teacher"]
    test = run.metrics["test"]
    gap = gap_closed(run)
    if args.json:
        emit_json({"run": run.name, "path": str(run.path), "teacher": teacher["run"], "test_accuracy": test["accuracy"],
                   "test_macro_f1": test["macro_f1"], **(gap or {})})
        return 0
    print(f"{run.name}: test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}, distilled from "
          f"{teacher['run']} (T {args.temperature:g}, alpha {args.alpha:g}, augment {teacher['augment']}"
          + (f", started from {teacher['warm_start']['run']}" if teacher.get("warm_start") else "") + ") "
          f"-> {run.path}")
    if gap is not None:
        closed = gap_closed_text(gap["gap_closed"]) + (
            " (the teacher does not beat its best member on test)" if gap["gap_closed"] is None else "")
        print(f"teacher {gap['teacher_accuracy']:.4f}, best member {gap['best_member']} "
              f"{gap['best_member_accuracy']:.4f}: teacher gap closed {closed}")
        if note := teacher_gain_note(gap):
            print(f"({note})")
    return 0
