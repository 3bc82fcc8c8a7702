"""Provides word-to-sub-token alignment with sliding windows (tokenizers and numpy only, no torch).

Each word is tokenized on its own position in the sentence (``is_pretokenized``); its FIRST
sub-token carries its label in training (the others get -100, ignored by the loss) and its
prediction at inference. A sentence whose sub-tokens do not fit ``max_length`` (with the
tokenizer's special tokens) is cut into overlapping windows of whole words; each word is
*owned* by one window, the one where it sits farthest from a cut, so no tag is lost and none
is counted twice. A single word longer than a window keeps only its first sub-tokens (its
first one is all the head reads). A word that tokenizes to nothing (e.g. a lone control
character) has no sub-token: it is predicted ``O`` with probability 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmzoo.textfile import require_utf8

IGNORE = -100
# How raw text becomes words at prediction time (stored in ONNX metadata for other runtimes):
# URLs, @mentions/#hashtags and words with inner apostrophes or hyphens stay whole; other punctuation
# marks are words of their own, as in CoNLL/WNUT tokenisation.
WORD_PATTERN = r"https?://\S+|[@#]?\w+(?:['’\-]\w+)*|[^\w\s]"


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Raw text -> (word, start char, end char) with :data:`WORD_PATTERN`."""
    return [(m.group(), m.start(), m.end()) for m in re.finditer(WORD_PATTERN, text)]


@dataclass
class Window:
    """One encoder row: sub-token ids, and the words it owns with their first sub-token's position."""

    sentence: int  # index of the sentence in the batch given to :meth:`WordAligner.rows`
    ids: list[int]
    words: list[int]  # owned words (indices into the sentence)
    positions: list[int]  # first sub-token of each owned word, in ``ids``

    def token_labels(self, word_labels: Sequence[int]) -> list[int]:
        """Per sub-token training labels: the word's label on its first sub-token, -100 everywhere else."""
        out = [IGNORE] * len(self.ids)
        for word, pos in zip(self.words, self.positions, strict=True):
            out[pos] = int(word_labels[word])
        return out


class WordAligner:
    """Sentences of words -> windows of sub-token ids for one tokenizer.json and ``max_length``."""

    def __init__(self, tokenizer_json: str, max_length: int, pad_id: int = 0):
        from tokenizers import Tokenizer

        self.tokenizer_json, self.max_length, self.pad_id = tokenizer_json, int(max_length), int(pad_id)
        self._tok = Tokenizer.from_str(tokenizer_json)
        self._tok.no_padding()
        self._tok.no_truncation()
        probe = self._tok.encode(["a"], is_pretokenized=True, add_special_tokens=True)
        first = next(i for i, w in enumerate(probe.word_ids) if w is not None)
        last = max(i for i, w in enumerate(probe.word_ids) if w is not None)
        self.prefix, self.suffix = list(probe.ids[:first]), list(probe.ids[last + 1:])
        self.budget = self.max_length - len(self.prefix) - len(self.suffix)
        if self.budget < 1:
            raise ValueError(f"max_length {max_length} leaves no room between the special tokens")

    def pieces(self, words: Sequence[str]) -> list[list[int]]:
        """Each word's sub-token ids (cut to one window's room)."""
        out: list[list[int]] = [[] for _ in words]
        if not words:
            return out
        require_utf8(words, "word")  # else the tokenizers library fails with a bare TypeError
        enc = self._tok.encode(list(words), is_pretokenized=True, add_special_tokens=False)
        for token_id, word in zip(enc.ids, enc.word_ids, strict=True):
            if word is not None and len(out[word]) < self.budget:
                out[word].append(token_id)
        return out

    def windows(self, words: Sequence[str], sentence: int = 0) -> list[Window]:
        """The windows of one sentence; every word with sub-tokens is owned by exactly one."""
        pieces = self.pieces(words)
        spans = _window_spans([len(p) for p in pieces], self.budget)
        out = []
        for (start, end), (own_start, own_end) in spans:
            ids, owned, positions = list(self.prefix), [], []
            for w in range(start, end):
                if own_start <= w < own_end and pieces[w]:
                    owned.append(w)
                    positions.append(len(ids))
                ids.extend(pieces[w])
            out.append(Window(sentence, ids + self.suffix, owned, positions))
        return out

    def rows(self, sentences: Sequence[Sequence[str]]) -> list[Window]:
        return [w for i, words in enumerate(sentences) for w in self.windows(words, i)]


def _window_spans(lengths: list[int], budget: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((start, end), (own_start, own_end)) word ranges of the windows covering ``lengths`` sub-tokens."""
    n = len(lengths)
    if sum(lengths) <= budget:
        return [((0, n), (0, n))]
    bounds: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
        end = max(end, start + 1)
        bounds.append((start, end))
        if end >= n:
            break
        # the next window starts where about half a window of context before ``end`` remains
        nxt, room = end, 0
        while nxt - 1 > start and room + lengths[nxt - 1] <= budget // 2:
            nxt -= 1
            room += lengths[nxt]
        start = max(nxt, start + 1)
    out = []
    own_start = 0
    for k, (start, end) in enumerate(bounds):
        own_end = n if k == len(bounds) - 1 else max(own_start + 1, (bounds[k + 1][0] + end) // 2)
        out.append(((start, end), (own_start, min(own_end, end))))
        own_start = min(own_end, end)
    return out


def collate(rows: Sequence[Window], pad_id: int) -> dict[str, np.ndarray]:
    """Rows -> padded ``input_ids``, ``attention_mask`` (B, T) and ``word_positions`` (B, W), all int64."""
    width = max(1, max(len(r.ids) for r in rows))
    words = max(1, max(len(r.positions) for r in rows))
    ids = np.full((len(rows), width), pad_id, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    positions = np.zeros((len(rows), words), np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r.ids)] = r.ids
        mask[i, :len(r.ids)] = 1
        positions[i, :len(r.positions)] = r.positions
    return {"input_ids": ids, "attention_mask": mask, "word_positions": positions}


def scatter(rows: Sequence[Window], row_probs: Sequence[np.ndarray], lengths: Sequence[int],
            num_labels: int, outside: int = 0) -> list[np.ndarray]:
    """Per-row word probabilities (rows, W, L) -> per-sentence (words, L); unowned words get ``O`` = 1."""
    out = []
    for n in lengths:
        sentence = np.zeros((n, num_labels), np.float32)
        sentence[:, outside] = 1.0
        out.append(sentence)
    for r, probs in zip(rows, row_probs, strict=True):
        if r.words:
            out[r.sentence][r.words] = probs[:len(r.words)]
    return out
