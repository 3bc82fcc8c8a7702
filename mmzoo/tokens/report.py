"""Provides what the front ends show of token runs: which runs are token runs, their decoding, compare rows.

The CLI (`mmzoo eval`, `mmzoo compare`) and the TUI (run detail, compare panel) read the same rows,
so the two never disagree about a tagger's figures. Torch-free.
"""

from __future__ import annotations

MIXED = ("compare token runs (NER) with token runs only: their metrics are entity F1, not accuracy")


def is_token_run(run) -> bool:
    return run.spec.get("data", {}).get("task") == "tokens"


def decoding_text(run) -> str:
    """How a run turns word probabilities into tags, in words: ``P(O) x 0.6, constrained Viterbi (valid BIO)``."""
    from mmzoo.tokens.ensemble import decoding_of

    decoder, scale = decoding_of(run)
    how = "constrained Viterbi (valid BIO)" if decoder == "viterbi" else "argmax, BIO repair"
    return f"P(O) x {scale:g}, {how}"


def kind_of(run) -> str:
    spec = run.spec
    fusion = (spec.get("model") or {}).get("fusion") or {}
    if spec.get("kind") == "ensemble":
        return f"ensemble:{spec['combiner']['name']}"
    return f"tokens+image:{fusion['name']}" if fusion else "tokens"


def compare_rows(runs: list) -> list[dict]:
    """One row per finished token run: test entity P/R/F1, token accuracy, val F1, per-type test F1, time."""
    from mmzoo.runs.compare import member_totals

    rows = []
    for run in runs:
        m = run.metrics
        test = m.get("test", {})
        parameters, seconds = m.get("parameters", 0), m.get("train_seconds", 0.0)
        if run.spec.get("kind") == "ensemble":  # the sums over its members, as for classifier ensembles
            parameters, _, seconds = member_totals(run.spec)
        rows.append({"run": run.name, "kind": kind_of(run), "dataset": run.spec["data"]["dataset"],
                     "entity_f1": test.get("f1"), "precision": test.get("precision"), "recall": test.get("recall"),
                     "token_accuracy": test.get("token_accuracy"), "val_entity_f1": m.get("val", {}).get("f1"),
                     "per_type_f1": {t: v["f1"] for t, v in test.get("per_type", {}).items()},
                     "parameters": parameters, "train_seconds": seconds})
    return rows
