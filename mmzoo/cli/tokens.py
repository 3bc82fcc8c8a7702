"""Provides the token-task (NER) side of train, eval, compare, data check, ensemble and predict output."""

from __future__ import annotations

from mmzoo.cli.output import emit_json, err, table


def is_token_run(run) -> bool:
    return run.spec.get("data", {}).get("task") == "tokens"


def summary(metrics: dict) -> dict:
    keys = ("precision", "recall", "f1", "token_accuracy")
    return {split: {k: metrics[split][k] for k in keys} for split in ("val", "test") if split in metrics}


def train_line(run) -> str:
    m = run.metrics
    test = m.get("test") or m["val"]
    split = "test" if "test" in m else "val"
    return (f"{run.name}: {split} entity F1 {test['f1']:.4f} (P {test['precision']:.4f}, R {test['recall']:.4f}; "
            f"token accuracy {test['token_accuracy']:.4f}) (best epoch {m['best_epoch']}, {m['train_seconds']:.1f}s) "
            f"-> {run.path}")


def render_eval(run, split: str) -> str:
    from mmzoo.tokens.metrics import render_table

    m = run.metrics[split]
    return (f"{run.name} on {split} ({m['sentences']} sentences, {m['words']} words, {m['entities']} entities): "
            f"entity-level exact match, micro F1 {m['f1']:.4f}\n\n" + render_table(m))


def compare_rows(runs: list) -> list[dict]:
    rows = []
    for run in runs:
        spec, m = run.spec, run.metrics
        test = m.get("test", {})
        kind = f"ensemble:{spec['combiner']['name']}" if spec.get("kind") == "ensemble" else "tokens"
        rows.append({"run": run.name, "kind": kind, "dataset": spec["data"]["dataset"],
                     "entity_f1": test.get("f1"), "precision": test.get("precision"), "recall": test.get("recall"),
                     "token_accuracy": test.get("token_accuracy"), "val_entity_f1": m.get("val", {}).get("f1"),
                     "per_type_f1": {t: v["f1"] for t, v in test.get("per_type", {}).items()},
                     "train_seconds": m.get("train_seconds", 0.0)})
    return rows


def render_compare(rows: list[dict]) -> str:
    types = sorted({t for r in rows for t in r["per_type_f1"]})
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    body = [(r["run"], r["kind"], fmt(r["val_entity_f1"]), fmt(r["entity_f1"]), fmt(r["precision"]),
             fmt(r["recall"]), *[fmt(r["per_type_f1"].get(t)) for t in types]) for r in rows]
    return (table(body, ("run", "kind", "val F1", "test F1", "P", "R", *types), "ll" + "r" * (4 + len(types)))
            + "\n(entity-level exact-match micro F1; per-type columns are test F1)")


def data_check(path, as_json: bool) -> int:
    from mmzoo.tokens.data import scan

    _, types, problems, notes = scan(path)
    if as_json:
        emit_json({"task": "tokens", "types": types, "problems": [p.__dict__ for p in problems],
                   "repaired": [p.__dict__ for p in notes]})
        return 1 if problems else 0
    for p in problems:
        print(str(p))
    for p in notes:
        print(f"{p} (repaired on load)")
    if problems:
        err(f"{len(problems)} problem(s) in {path} (token dataset; refused until fixed)"
            + (f"; {len(notes)} tag(s) will be repaired" if notes else ""))
    else:
        print(f"{path}: ok (token dataset, types: {', '.join(types)})"
              + (f"; {len(notes)} orphan I- tag(s) repaired to B-" if notes else ""))
    return 1 if problems else 0
