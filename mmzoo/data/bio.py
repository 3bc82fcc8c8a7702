"""Provides the BIO scheme: label lists, parsing, repair, entity spans and decoding (numpy only).

Decoding turns word probabilities into tags that are always valid BIO, by constrained Viterbi
or by argmax plus repair (:func:`decode`; which one, and the P(O) multiplier, are chosen on val).

An ``I-X`` that does not continue an ``X`` entity (it follows ``O``, the start, or another
type) is read as the start of a new ``X`` entity, as conlleval and seqeval's default mode
read it; :func:`repair` rewrites it to ``B-X`` so every sequence mmzoo emits is valid BIO.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np

OUTSIDE = "O"
OUTSIDE_SCALES = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2)  # candidate P(O) multipliers for decoding, chosen on val
# "viterbi": the most probable VALID BIO sequence; "argmax": each word's best tag, then repair. Chosen on
# val with the P(O) multiplier (files and runs written before the choice existed used "argmax").
DECODERS = ("viterbi", "argmax")
LEGACY_DECODER = "argmax"


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


# Schemes read as BIO on load, lossless: a single-word entity starts (B-), an entity's last word continues (I-).
OTHER_SCHEMES = {"BIOES": {"S": "B", "E": "I"}, "BILOU": {"U": "B", "L": "I"}}


def scheme_of(tags: Iterable[str]) -> str | None:
    """``"BIOES"`` or ``"BILOU"`` when the tags use both of that scheme's own prefixes and no other; else None.

    Both must appear (S- and E-, or U- and L-): any real dataset in these schemes has single-word and
    multi-word entities, while a lone E- in a BIO file is more likely a typo, reported line by line.
    """
    prefixes = {t[0] for t in tags if len(t) > 2 and t[1] == "-"}
    found = [name for name, extra in OTHER_SCHEMES.items() if set(extra) <= prefixes]
    if len(found) != 1 or prefixes - set("BI") - set(OTHER_SCHEMES[found[0]]):
        return None  # plain BIO, or a mixture that the per-tag check reports line by line
    return found[0]


def to_bio(tags: Sequence[str], scheme: str) -> list[str]:
    """Tags of ``scheme`` (BIOES or BILOU) as BIO tags with the same entities."""
    mapping = OTHER_SCHEMES[scheme]
    return [mapping[t[0]] + t[1:] if len(t) > 2 and t[1] == "-" and t[0] in mapping else t for t in tags]


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


def decode(probs: np.ndarray, labels: Sequence[str], outside_scale: float = 1.0,
           decoder: str = "viterbi") -> list[str]:
    """Word probabilities (W, L) -> valid BIO tags, by ``decoder`` (one of :data:`DECODERS`).

    ``outside_scale`` multiplies P(O) first (chosen on validation: below 1 trades precision for
    recall, which entity F1 often rewards when entities are rare). ``argmax`` takes each word's
    best tag and repairs orphans; ``viterbi`` finds the sequence with the highest product of word
    probabilities among those where every ``I-X`` continues an ``X`` entity. They differ where
    argmax would emit an orphan: repair makes it a new entity, viterbi weighs continuing the
    previous word's entity, starting one, or dropping it against the whole sentence.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown BIO decoder {decoder!r}; expected one of {DECODERS}")
    if len(probs) == 0:
        return []
    probs = np.asarray(probs, dtype=np.float64)
    if outside_scale != 1.0:
        probs = probs.copy()
        probs[:, list(labels).index(OUTSIDE)] *= outside_scale
    if decoder == "argmax":
        return repair([labels[int(i)] for i in probs.argmax(axis=-1)])
    return [labels[i] for i in _viterbi(np.log(np.clip(probs, 1e-30, None)), _transitions(tuple(labels)))]


_NEVER = -1e30  # log-score of a forbidden step: finite, so a sentence of all-forbidden words still decodes


@functools.lru_cache(maxsize=32)
def _transitions(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(start (L,), step (L, L)) log-scores: 0 where BIO allows the tag (after the row's tag), else _NEVER."""
    parsed = [parse(t) or (OUTSIDE, "") for t in labels]
    start = np.array([_NEVER if kind == "I" else 0.0 for kind, _ in parsed])
    step = np.zeros((len(labels), len(labels)))
    for j, (kind, typ) in enumerate(parsed):
        if kind == "I":  # I-X only after B-X or I-X
            step[:, j] = [0.0 if k in "BI" and t == typ else _NEVER for k, t in parsed]
    return start, step


def _viterbi(logp: np.ndarray, transitions: tuple[np.ndarray, np.ndarray]) -> list[int]:
    start, step = transitions
    score = start + logp[0]
    back = np.empty((len(logp), logp.shape[1]), dtype=np.int64)
    for w in range(1, len(logp)):
        candidates = score[:, None] + step  # (previous tag, this tag)
        back[w] = candidates.argmax(axis=0)
        score = candidates[back[w], np.arange(logp.shape[1])] + logp[w]
    path = [int(score.argmax())]
    for w in range(len(logp) - 1, 0, -1):
        path.append(int(back[w][path[-1]]))
    return path[::-1]


def choose_decoding(val_f1) -> tuple[str, float]:
    """The (decoder, P(O) multiplier) with the best VALIDATION entity F1, ``val_f1(decoder, scale)``.

    Ties go to viterbi, then to the multiplier closest to 1 (the least change to the model's output).
    """
    grid = [(val_f1(d, s), -i, s, d) for i, d in enumerate(DECODERS) for s in OUTSIDE_SCALES]
    _, _, scale, decoder = max(grid)
    return decoder, scale


def scored_spans(probs: np.ndarray, labels: Sequence[str], outside_scale: float = 1.0,
                 decoder: str = "viterbi") -> list[dict]:
    """Decoded entities with a score: the mean probability of the chosen tag over the entity's words."""
    tags = decode(probs, labels, outside_scale, decoder)
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for typ, start, end in spans(tags):
        chosen = [float(probs[w, index[tags[w]]]) for w in range(start, end)]
        out.append({"type": typ, "start_word": start, "end_word": end, "score": float(np.mean(chosen))})
    return out
