"""Provides run comparison: metrics side by side and each fusion's gain over its own baselines.

A run folder that cannot be read is never a baseline candidate; naming one to compare is a
RunError with its path and reason, so one damaged run does not stop comparing the others.
"""

from __future__ import annotations

from pathlib import Path

from mmzoo.errors import RunError
from mmzoo.runs.folders import BROKEN_HINT, Run, list_runs


def _encoder_key(entry: dict | None) -> str | None:
    if not entry:
        return None
    return repr(sorted((k, repr(v)) for k, v in entry.items() if k != "freeze"))


def _kind(spec: dict) -> str:
    if spec.get("kind") == "ensemble":
        return f"ensemble:{spec['combiner']['name']}"
    spec = spec["model"]
    if spec.get("fusion"):
        return f"fusion:{spec['fusion']['name']}"
    return "text-only" if spec.get("text") else "image-only"


def member_totals(spec: dict) -> tuple[int, int, float]:
    """An ensemble's parameters, trained parameters and training time: the sums over its members."""
    totals = [0, 0, 0.0]
    for member in spec.get("members", []):
        try:
            metrics = Run(Path(member["path"])).metrics
        except RunError:
            continue  # a damaged member adds nothing it cannot show
        for i, key in enumerate(("parameters", "trainable_parameters", "train_seconds")):
            totals[i] += metrics.get(key, 0)
    return totals[0], totals[1], totals[2]


def find_baseline(run: Run, modality: str, pool: list[Run]) -> Run | None:
    """The newest finished unimodal run with the same encoder, dataset and label set."""
    spec = run.spec
    want = _encoder_key(spec["model"].get(modality))
    data = (spec["data"]["fingerprint"], spec["data"]["label_set"])
    other = "image" if modality == "text" else "text"
    for cand in reversed(pool):
        cs = cand.spec
        m = cs.get("model", {})
        if (cand.finished and not m.get(other) and not cs.get("teacher") and _encoder_key(m.get(modality)) == want
                and (cs["data"]["fingerprint"], cs["data"]["label_set"]) == data):
            return cand
    return None


def compare_runs(selected: list[Run], root: Path | None = None) -> list[dict]:
    for run in selected:
        problem = run.problem
        if problem:
            raise RunError(f"cannot compare {run.name}: {problem}", hint=BROKEN_HINT)
    pool = selected + [r for r in list_runs(root) if r.path not in {s.path for s in selected} and not r.problem]
    rows = []
    for run in selected:
        spec, metrics = run.spec, run.metrics
        test = metrics.get("test", {})
        row = {"run": run.name, "kind": _kind(spec), "dataset": spec["data"]["dataset"],
               "accuracy": test.get("accuracy", float("nan")), "macro_f1": test.get("macro_f1", float("nan")),
               "parameters": metrics.get("parameters", 0), "trainable_parameters": metrics.get("trainable_parameters", 0),
               "train_seconds": metrics.get("train_seconds", 0.0)}
        if spec.get("kind") == "ensemble":
            row["parameters"], row["trainable_parameters"], row["train_seconds"] = member_totals(spec)
        if spec.get("model", {}).get("fusion"):
            for modality in ("text", "image"):
                base = find_baseline(run, modality, pool)
                if base is not None:
                    row[f"{modality}_baseline"] = base.name
                    row[f"gain_vs_{modality}"] = row["accuracy"] - base.metrics.get("test", {}).get("accuracy", float("nan"))
        if spec.get("teacher"):
            gap = gap_closed(run)
            if gap is not None:
                row["teacher"] = gap["teacher"]
                row["teacher_gap_closed"] = gap["gap_closed"]
                row.update({k: gap[k] for k in ("teacher_gain_samples", "test_samples", "teacher_gain_p") if k in gap})
        rows.append(row)
    return rows


def gap_closed(run: Run) -> dict | None:
    """For a distilled run: its teacher's test gain over the best member, and the share of it the student got."""
    teacher = run.spec.get("teacher")
    if not teacher or not run.finished:
        return None
    ensemble = Run(Path(teacher["path"]))
    if not ensemble.finished:
        return None
    metrics = ensemble.metrics
    best = metrics["members"][metrics["best_member"]]["test_accuracy"]  # best member picked on val
    gain = metrics["test"]["accuracy"] - best
    student = run.metrics["test"]["accuracy"]
    return {"teacher": ensemble.name, "teacher_accuracy": metrics["test"]["accuracy"], "best_member":
            metrics["best_member"], "best_member_accuracy": best,
            "gap_closed": (student - best) / gain if gain > 0 else None, **_teacher_gain(ensemble)}


def _teacher_gain(ensemble: Run) -> dict:
    """The teacher's test gain over its best member in samples, and McNemar's exact p for it.

    A gain of a few samples cannot carry a ratio: "gap closed" then moves by tens of points per sample.
    The p-value lets a reader (and the report) see when that is so. Empty if the predictions are unreadable.
    """
    entry = next((m for m in ensemble.spec.get("members", []) if m.get("name") == ensemble.metrics["best_member"]),
                 None)
    try:
        teacher, labels, _ = ensemble.probabilities("test")
        member, member_labels, _ = Run(Path(entry["path"])).probabilities("test")
    except (RunError, TypeError, KeyError):  # no entry, or a member folder since removed: the ratio still stands
        return {}
    if member.shape != teacher.shape or (member_labels != labels).any():
        return {}
    right_t, right_m = teacher.argmax(1) == labels, member.argmax(1) == labels
    wins, losses = int((right_t & ~right_m).sum()), int((right_m & ~right_t).sum())
    return {"teacher_gain_samples": wins - losses, "test_samples": int(len(labels)),
            "teacher_gain_p": mcnemar_p(wins, losses)}


def mcnemar_p(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: the chance of a split at least this uneven if both were equally good."""
    from math import comb

    n, k = wins + losses, min(wins, losses)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def gap_closed_text(share: float | None) -> str:
    """A "teacher gap closed" share as every front end prints it: ``57%``, or ``n/a`` without a gap to close."""
    return "n/a" if share is None else f"{100 * share:.0f}%"


def teacher_gain_note(gap: dict) -> str:
    """What the teacher's gain rests on, in samples; a warning when it is too small to carry a ratio."""
    if "teacher_gain_samples" not in gap:
        return ""
    note = (f"the teacher gains {gap['teacher_gain_samples']:+d} of {gap['test_samples']} test samples over its "
            f"best member (McNemar p = {gap['teacher_gain_p']:.2g})")
    if gap["teacher_gain_p"] > 0.05:
        note += "; a gain this size is within chance, so the share closed says little"
    return note
