"""Provides entity-level exact-match precision, recall and F1 (micro and per type), plus token accuracy.

An entity counts as correct only when its type, first word and last word all match, as in the
CoNLL evaluation; spans are read by :func:`mmzoo.data.bio.spans`. tests/tokens/test_tokens.py
checks these numbers against seqeval's default mode on random sequences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mmzoo.data.bio import spans


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def entity_metrics(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Scores of predicted tag sequences against true ones (one sequence per sentence)."""
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true sentences but {len(pred)} predicted")
    tp, n_true, n_pred = Counter(), Counter(), Counter()
    correct_words = words = 0
    for t, p in zip(true, pred, strict=True):
        if len(t) != len(p):
            raise ValueError(f"a sentence has {len(t)} true tags but {len(p)} predicted")
        true_spans, pred_spans = set(spans(t)), set(spans(p))
        n_true.update(s[0] for s in true_spans)
        n_pred.update(s[0] for s in pred_spans)
        tp.update(s[0] for s in true_spans & pred_spans)
        words += len(t)
        correct_words += sum(a == b for a, b in zip(t, p, strict=True))
    precision, recall, f1 = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_true.values()))
    per_type = {}
    for typ in sorted(set(n_true) | set(n_pred)):
        p_, r_, f_ = _prf(tp[typ], n_pred[typ], n_true[typ])
        per_type[typ] = {"precision": p_, "recall": r_, "f1": f_, "support": n_true[typ], "predicted": n_pred[typ]}
    return {"precision": precision, "recall": recall, "f1": f1, "per_type": per_type,
            "entities": sum(n_true.values()), "predicted_entities": sum(n_pred.values()),
            "token_accuracy": correct_words / words if words else 0.0, "sentences": len(true), "words": words}


def render_table(metrics: dict) -> str:
    """The per-type table, then the micro average, as fixed-width text."""
    rows = [(typ, m["precision"], m["recall"], m["f1"], m["support"]) for typ, m in metrics["per_type"].items()]
    rows.append(("micro avg", metrics["precision"], metrics["recall"], metrics["f1"], metrics["entities"]))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'type':<{width}}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}"]
    for i, (typ, p, r, f, n) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * (width + 39))
        lines.append(f"{typ:<{width}}{p:>10.4f}{r:>10.4f}{f:>10.4f}{n:>9d}")
    lines.append(f"token accuracy {metrics['token_accuracy']:.4f} over {metrics['words']} words "
                 f"(secondary: most words are O)")
    return "\n".join(lines)
