"""Benchmark: a student distilled from an ensemble, against the ensemble and its best member.

Run: .venv/bin/python benchmarks/distill.py [--task digits emoji] [--epochs 10]

For each task: train the members, fit the ensemble's combiner on val, then distill the
best member's model (picked on val, as a user would pick it) from the ensemble's train-split
soft labels, for each (temperature, alpha) in the grid; the setting shipped is the one with
the best val accuracy. Prints test accuracy of the best member, the ensemble and the
student, and the share of the ensemble's gain over its best member that the student closes
("teacher gap closed"). The student has the best member's architecture, so its latency.
"""

from __future__ import annotations

import argparse
import os
import time

TASKS = {
    # members (model or model@seed), combiner
    "digits": (["digits_concat@0", "digits_concat@1", "digits_concat@2", "digits_gated@0"], "mean"),
    "emoji": (["emoji_text", "emoji_image", "emoji_concat", "emoji_late", "emoji_gated", "emoji_bilinear",
               "emoji_cross_attention", "emoji_film"], "weighted"),
}
GRID = ((1.0, 0.5), (2.0, 0.5), (4.0, 0.9))


def run_task(task: str, epochs: int | None, out: str) -> dict:
    from mmzoo.ensemble.build import build_ensemble, combiner_spec
    from mmzoo.ensemble.distill import distill, gap_closed
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
    students = [distill(teacher, best.spec["model"], temperature=t, alpha=a, out=out, quiet=True,
                        run_name=f"{best.model}_T{t:g}_a{a:g}") for t, a in GRID]
    chosen = max(students, key=lambda r: r.metrics["val"]["accuracy"])  # on val, never test
    gap = gap_closed(chosen)
    return {"task": task, "members": len(names), "combiner": combiner, "best_member": best.name,
            "best_member_test": gap["best_member_accuracy"], "teacher_test": gap["teacher_accuracy"],
            "students": [(r.spec["teacher"]["temperature"], r.spec["teacher"]["alpha"], r.metrics["val"]["accuracy"],
                          r.metrics["test"]["accuracy"]) for r in students],
            "chosen": (chosen.spec["teacher"]["temperature"], chosen.spec["teacher"]["alpha"]),
            "student_test": chosen.metrics["test"]["accuracy"], "gap_closed": gap["gap_closed"],
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", default=["digits", "emoji"], choices=sorted(TASKS))
    parser.add_argument("--epochs", type=int, default=0, help="cap on each model's epochs (0: the registry's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = [run_task(task, args.epochs or None, os.path.join(tmp, "runs")) for task in args.task]
    for r in results:
        print(f"{r['task']}: {r['members']} members, {r['combiner']} combiner ({r['seconds']:.0f} s)")
        print(f"  best member {r['best_member']} (picked on val)  test {r['best_member_test']:.4f}")
        print(f"  ensemble (teacher)                      test {r['teacher_test']:.4f}  "
              f"gain {100 * (r['teacher_test'] - r['best_member_test']):+.1f} points")
        for t, a, val, test in r["students"]:
            mark = "  <- chosen on val" if (t, a) == r["chosen"] else ""
            print(f"  student T {t:g} alpha {a:g}: val {val:.4f}  test {test:.4f}{mark}")
        closed = "n/a (the ensemble does not beat its best member)" if r["gap_closed"] is None else \
            f"{100 * r['gap_closed']:.0f}%"
        print(f"  teacher gap closed: {closed}  (target >= 50%)")


if __name__ == "__main__":
    main()
