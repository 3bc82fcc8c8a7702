"""Provides the shape checks of a run's spec.yaml and metrics.json: what every command relies on, named when wrong.

A run folder's files are written by mmzoo, but they are plain text a person may edit or damage; a
value of the wrong type would otherwise surface as a TypeError deep in whichever command read it.
"""

from __future__ import annotations

from numbers import Real

# Every split of a classifier's metrics.json holds these (mmzoo.train.metrics.classification_metrics).
CLASSIFICATION_NUMBERS = ("n", "accuracy", "macro_precision", "macro_recall", "macro_f1", "micro_precision",
                          "micro_recall", "micro_f1", "weighted_precision", "weighted_recall", "weighted_f1",
                          "ece", "nll")
# A token run's splits (mmzoo.tokens.metrics); checked when present, as older runs lack some.
TOKEN_NUMBERS = ("precision", "recall", "f1", "entities", "predicted_entities", "token_accuracy", "sentences", "words")
TOP_NUMBERS = ("best_epoch", "epochs", "train_seconds", "parameters", "trainable_parameters", "outside_scale")


def _problem_in(value, path: str, shape: dict) -> str | None:
    for key, kind in shape.items():
        item = value.get(key)
        if not isinstance(item, kind) or isinstance(item, bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            return f"{path}{key} is {'missing' if key not in value else repr(item)[:60]}, expected a {names}"
    return None


def spec_problem(spec) -> str | None:
    """What makes a loaded spec.yaml unusable (the fields every command relies on), or None."""
    if not isinstance(spec, dict):
        return f"holds a {type(spec).__name__}, not a mapping"
    if not isinstance(spec.get("data"), dict):
        return "data is missing or not a mapping"
    data = spec["data"]
    problem = _problem_in(data, "data.", {"dataset": str, "fingerprint": str, "label_set": str, "classes": list})
    if problem:
        return problem
    if not data["classes"] or not all(isinstance(c, str) for c in data["classes"]):
        return "data.classes must be a non-empty list of class names"
    if spec.get("kind") == "ensemble":
        problem = _problem_in(spec, "", {"ensemble": dict, "combiner": dict, "members": list})
        if problem or _problem_in(spec["combiner"], "combiner.", {"name": str}):
            return problem or _problem_in(spec["combiner"], "combiner.", {"name": str})
        for k, member in enumerate(spec["members"]):
            if not isinstance(member, dict) or _problem_in(member, "", {"name": str, "path": str}):
                return f"members[{k}] must be a mapping with a name and a path"
        return None
    if not isinstance(spec.get("model"), dict):
        return "model is missing or not a mapping"
    model = spec["model"]
    problem = _problem_in(model, "model.", {"name": str, "train": dict, "task": dict})
    if problem:
        return problem
    if not any(isinstance(model.get(m), dict) for m in ("text", "image")):
        return "model has neither a text nor an image encoder"
    return None


def _number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def metrics_problem(metrics: dict, tokens: bool = False) -> str | None:
    """What makes a loaded metrics.json unusable (a missing or mistyped field), or None.

    ``tokens``: a token run's, whose splits hold entity metrics instead of a classifier's.
    """
    for key in TOP_NUMBERS:
        if key in metrics and not _number(metrics[key]):
            return f"{key} is {repr(metrics[key])[:60]}, expected a number"
    for split in ("val", "test"):
        if split not in metrics:
            continue
        m = metrics[split]
        if not isinstance(m, dict):
            return f"{split} is {repr(m)[:60]}, expected a mapping of metrics"
        for key in TOKEN_NUMBERS if tokens else CLASSIFICATION_NUMBERS:
            if (key in m or not tokens) and not _number(m.get(key)):
                return f"{split}.{key} is {'missing' if key not in m else repr(m[key])[:60]}, expected a number"
        if tokens:
            if not isinstance(m.get("per_type", {}), dict):
                return f"{split}.per_type is {repr(m['per_type'])[:60]}, expected a mapping"
            continue
        classes = m.get("classes")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            return f"{split}.classes must be a non-empty list of class names"
        matrix = m.get("confusion_matrix")
        if (not isinstance(matrix, list) or len(matrix) != len(classes)
                or not all(isinstance(r, list) and len(r) == len(classes) and all(map(_number, r)) for r in matrix)):
            return f"{split}.confusion_matrix must be a {len(classes)}x{len(classes)} table of counts"
        per_class = m.get("per_class")
        if not isinstance(per_class, dict) or not all(
                isinstance(v, dict) and all(_number(v.get(k)) for k in ("precision", "recall", "f1", "support"))
                for v in per_class.values()):
            return f"{split}.per_class must map each class to its precision, recall, f1 and support"
    return None


def history_rows(text: str) -> tuple[list[dict], int, str]:
    """history.jsonl's epochs, ``(rows, 0, "")``, or ``([], line, why)`` for its first unusable line.

    Every row is an object of numbers (null allowed) with an ``epoch`` and a ``loss``: the curves plot them.
    """
    from mmzoo.textfile import json_row, numbered_lines

    rows = []
    for number, line in numbered_lines(text):
        if not line.strip():
            continue
        row, why = json_row(line)
        if why:
            return [], number, why
        if not isinstance(row, dict):
            return [], number, f"expected an object per epoch, got {type(row).__name__}"
        for key in ("epoch", "loss"):
            if not _number(row.get(key)):
                return [], number, f"{key} is {'missing' if key not in row else repr(row[key])[:40]}, expected a number"
        bad = next((k for k, v in row.items() if v is not None and not _number(v)), None)
        if bad is not None:
            return [], number, f"{bad} is {repr(row[bad])[:40]}, expected a number"
        rows.append(row)
    return rows, 0, ""
