"""Provides the BIO scheme: label lists, parsing, repair, entity spans and decoding (numpy only).

An ``I-X`` that does not continue an ``X`` entity (it follows ``O``, the start, or another
type) is read as the start of a new ``X`` entity, as conlleval and seqeval's default mode
read it; :func:`repair` rewrites it to ``B-X`` so every sequence mmzoo emits is valid BIO.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OUTSIDE = "O"
OUTSIDE_SCALES = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2)  # candidate P(O) multipliers for decoding, chosen on val


def labels_for(types: Sequence[str]) -> list[str]:
    """The label list of a BIO scheme: ``O`` first, then ``B-t``, ``I-t`` per type in the given order."""
    out = [OUTSIDE]
    for t in types:
        out += [f"B-{t}", f"I-{t}"]
    return out


def types_of(labels: Sequence[str]) -> list[str]:
    """Entity types of a label list, in order of first appearance."""
    seen: list[str] = []
    for label in labels:
        parsed = parse(label)
        if parsed and parsed[1] and parsed[1] not in seen:
            seen.append(parsed[1])
    return seen


def parse(tag: str) -> tuple[str, str] | None:
    """``"B-person"`` -> ``("B", "person")``; ``"O"`` -> ``("O", "")``; None when it is not a BIO tag."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-" and tag[2:].strip() == tag[2:]:
        return tag[0], tag[2:]
    return None


def orphans(tags: Sequence[str]) -> list[int]:
    """Positions of ``I-X`` tags that continue no ``X`` entity (they would be repaired to ``B-X``)."""
    out, previous = [], ""
    for i, tag in enumerate(tags):
        parsed = parse(tag)
        kind, typ = parsed if parsed else (OUTSIDE, "")
        if kind == "I" and previous != typ:
            out.append(i)
        previous = typ if kind in "BI" else ""
    return out


def repair(tags: Sequence[str]) -> list[str]:
    """Valid BIO: each orphan ``I-X`` becomes ``B-X`` (the entities, as conlleval reads them, do not change)."""
    out = list(tags)
    for i in orphans(tags):
        out[i] = "B-" + out[i][2:]
    return out


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities as ``(type, start, end)`` with ``end`` exclusive, read like conlleval (orphan I starts one)."""
    out: list[tuple[str, int, int]] = []
    start, typ = -1, ""
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        parsed = parse(tag) or (OUTSIDE, "")
        kind, t = parsed
        continues = kind == "I" and t == typ and start >= 0
        if start >= 0 and not continues:
            out.append((typ, start, i))
            start, typ = -1, ""
        if kind == "B" or (kind == "I" and not continues):
            start, typ = i, t
    return out


def decode(probs: np.ndarray, labels: Sequence[str], outside_scale: float = 1.0) -> list[str]:
    """Word probabilities (W, L) -> valid BIO tags: argmax per word, then :func:`repair`.

    ``outside_scale`` multiplies P(O) before the argmax (chosen on validation: below 1 trades
    precision for recall, which entity F1 often rewards when entities are rare).
    """
    if len(probs) == 0:
        return []
    probs = np.asarray(probs)
    if outside_scale != 1.0:
        probs = probs.copy()
        probs[:, list(labels).index(OUTSIDE)] *= outside_scale
    return repair([labels[int(i)] for i in probs.argmax(axis=-1)])


def scored_spans(probs: np.ndarray, labels: Sequence[str], outside_scale: float = 1.0) -> list[dict]:
    """Decoded entities with a score: the mean probability of the chosen tag over the entity's words."""
    tags = decode(probs, labels, outside_scale)
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for typ, start, end in spans(tags):
        chosen = [float(probs[w, index[tags[w]]]) for w in range(start, end)]
        out.append({"type": typ, "start_word": start, "end_word": end, "score": float(np.mean(chosen))})
    return out
