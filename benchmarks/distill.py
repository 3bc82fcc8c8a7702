"""Benchmark: a student distilled from an ensemble, against the ensemble and its best member.

Run: .venv/bin/python benchmarks/distill.py [--task digits emoji] [--epochs 10]

For each task: train the members, fit the ensemble's combiner on val, then distill the
best member's model (picked on val, as a user would pick it) from the ensemble's soft labels
(train split only), for each (temperature, alpha, augment) in the grid; the student reported
is the one with the best val accuracy, and test is read once, for the report. Prints test
accuracy of the best member, the ensemble and the student side by side for every task, and
the share of the ensemble's gain over its best member that the student closes ("teacher gap
closed"). The student has the best member's architecture, so its latency.
"""

from __future__ import annotations

import argparse
import json
import os
import time

TASKS = {
    # members (model or model@seed), combiner
    "digits": (["digits_concat@0", "digits_concat@1", "digits_concat@2", "digits_gated@0"], "mean"),
    "emoji": (["emoji_text", "emoji_image", "emoji_concat", "emoji_late", "emoji_gated", "emoji_bilinear",
               "emoji_cross_attention", "emoji_film"], "weighted"),
}
# (temperature, alpha, augment): without perturbations, then the teacher asked on mixup copies of train batches
GRID = tuple((t, a, aug) for aug in ("none", "mixup") for t, a in ((1.0, 0.5), (2.0, 0.5), (4.0, 0.9)))


def run_task(task: str, epochs: int | None, out: str) -> dict:
    from mmzoo.ensemble.build import build_ensemble, combiner_spec
    from mmzoo.ensemble.distill import distill
    from mmzoo.runs.compare import gap_closed
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    names, combiner = TASKS[task]
    started = time.perf_counter()
    members = []
    for name in names:
        model, _, seed = name.partition("@")
        spec = resolve_spec(model)
        if epochs:
            spec["train"]["epochs"] = min(spec["train"]["epochs"], epochs)
        spec["train"]["seed"] = int(seed or 0)
        members.append(train(spec, Options(out=out, quiet=True, run_name=name.replace("@", "_seed"))))
    teacher = build_ensemble({"name": f"{task}_teacher", "kind": "ensemble", "recipe": {"members": names},
                              "combiner": combiner_spec(combiner)}, members, root=out)
    best = next(m for m in members if m.name == teacher.metrics["best_member"])
    # the student is the best member's exact spec (model, seed, epochs): only the loss differs
    students = [distill(teacher, best.spec["model"], temperature=t, alpha=a, augment=aug, out=out, quiet=True,
                        run_name=f"{best.model}_T{t:g}_a{a:g}_{aug.replace('+', '-')}") for t, a, aug in GRID]
    chosen = max(students, key=lambda r: r.metrics["val"]["accuracy"])  # on val, never test
    gap = gap_closed(chosen)
    return {"task": task, "members": len(names), "combiner": combiner, "best_member": best.name,
            "best_member_test": gap["best_member_accuracy"], "teacher_test": gap["teacher_accuracy"],
            "teacher_val": teacher.metrics["val"]["accuracy"],
            "best_member_val": teacher.metrics["members"][best.name]["val_accuracy"],
            "students": [(*_setting(r), r.metrics["val"]["accuracy"], r.metrics["test"]["accuracy"],
                          r.metrics["train_seconds"]) for r in students],
            "chosen": _setting(chosen),
            "student_test": chosen.metrics["test"]["accuracy"], "gap_closed": gap["gap_closed"],
            "seconds": time.perf_counter() - started}


def _setting(run) -> tuple:
    record = run.spec["teacher"]
    return record["temperature"], record["alpha"], record["augment"]


def _closed(gap) -> str:
    return "n/a" if gap is None else f"{100 * gap:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", default=["digits", "emoji"], choices=sorted(TASKS))
    parser.add_argument("--epochs", type=int, default=0, help="cap on each model's epochs (0: the registry's)")
    parser.add_argument("--json", help="also write each task's results to this file as soon as it is done")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for task in args.task:
            results.append(run_task(task, args.epochs or None, os.path.join(tmp, "runs")))
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(results, fh, indent=1)
    for r in results:
        print(f"{r['task']}: {r['members']} members, {r['combiner']} combiner ({r['seconds']:.0f} s); best member "
              f"{r['best_member']} (val {r['best_member_val']:.4f}), ensemble val {r['teacher_val']:.4f}")
        for t, a, aug, val, test, seconds in r["students"]:
            mark = "  <- chosen on val" if (t, a, aug) == r["chosen"] else ""
            print(f"  student T {t:g} alpha {a:g} augment {aug:<10} val {val:.4f}  test {test:.4f}  "
                  f"({seconds:.0f} s){mark}")
    print()
    print(f"{'task':<8}{'best member':>13}{'ensemble':>10}{'student':>9}{'gap closed':>12}  student setting "
          "(test accuracy; target: gap closed >= 50%)")
    for r in results:
        t, a, aug = r["chosen"]
        print(f"{r['task']:<8}{r['best_member_test']:>13.4f}{r['teacher_test']:>10.4f}{r['student_test']:>9.4f}"
              f"{_closed(r['gap_closed']):>12}  T {t:g}, alpha {a:g}, augment {aug}")

if __name__ == "__main__":
    main()
