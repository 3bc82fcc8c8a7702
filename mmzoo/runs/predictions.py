"""Provides a run's per-sample predictions on a split, for error analysis: who was wrong, as what, how sure.

Reads ``probs_<split>.safetensors`` (probabilities, true labels, sample ids, class names) only; joining a
sample id to its text and image is the caller's job (the dataset lives outside the runs package).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmzoo.errors import RunError

SPLITS = ("val", "test")


@dataclass(frozen=True)
class SamplePrediction:
    """One sample of a split: its index and id, true and predicted class, and its top classes."""

    index: int
    id: str
    true: str
    predicted: str
    confidence: float  # the predicted class's probability
    top: tuple[tuple[str, float], ...]

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass
class SplitPredictions:
    """Everything a run predicted on one split; ``select`` narrows it to the samples worth looking at."""

    split: str
    probs: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,) int64
    ids: list[str]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)

    def sample(self, index: int, k: int = 3) -> SamplePrediction:
        row = self.probs[index]
        order = np.argsort(-row, kind="stable")[:k]
        guess = int(order[0])
        return SamplePrediction(index, self.ids[index], self.classes[int(self.labels[index])], self.classes[guess],
                                float(row[guess]), tuple((self.classes[int(j)], float(row[j])) for j in order))

    def select(self, true: str | None = None, predicted: str | None = None, mistakes_only: bool = True,
               k: int = 3) -> list[SamplePrediction]:
        """Samples whose true and predicted class match the filters (None: any), most confident first."""
        keep = np.ones(len(self), dtype=bool)
        guesses = self.predicted
        if mistakes_only:
            keep &= guesses != self.labels
        if true is not None:
            keep &= self.labels == self._class_index(true)
        if predicted is not None:
            keep &= guesses == self._class_index(predicted)
        chosen = np.flatnonzero(keep)
        confidence = self.probs[chosen, guesses[chosen]]
        return [self.sample(int(i), k) for i in chosen[np.argsort(-confidence, kind="stable")]]

    def confusion(self) -> list[list[int]]:
        """Counts with rows as true classes and columns as predicted ones."""
        n = len(self.classes)
        matrix = np.zeros((n, n), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predicted), 1)
        return matrix.tolist()

    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean()) if len(self) else 0.0

    def _class_index(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            raise RunError(f"no class {name!r} in this run's {self.split} predictions",
                           hint=f"classes: {', '.join(self.classes)}") from None


def load_predictions(run_path: Path, split: str, classes: list[str] | None = None) -> SplitPredictions:
    """A finished run's predictions on ``split`` ("val" or "test") from its probs_<split>.safetensors.

    ``classes`` is needed only for files written without their class names (older ensemble runs).
    """
    from safetensors import safe_open
    from safetensors.numpy import load_file

    if split not in SPLITS:
        raise RunError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    file = Path(run_path) / f"probs_{split}.safetensors"
    if not file.exists():
        raise RunError(f"{file} is missing", hint="only finished runs have per-sample predictions; "
                       "finish or retrain the run")
    try:
        arrays = load_file(str(file))
        with safe_open(str(file), "np") as fh:
            meta = fh.metadata() or {}
        ids = json.loads(meta.get("ids", "[]"))
        names = json.loads(meta["classes"]) if "classes" in meta else classes
    except (OSError, ValueError, KeyError) as exc:
        raise RunError(f"{file} is not a readable predictions file ({exc})", hint="retrain the run") from None
    probs, labels = arrays.get("probs"), arrays.get("labels")
    if probs is None or labels is None or probs.ndim != 2 or len(probs) != len(labels):
        raise RunError(f"{file} lacks probs (N, C) and labels (N,)", hint="retrain the run")
    if not names or len(names) != probs.shape[1]:
        raise RunError(f"{file} does not name its {probs.shape[1]} classes", hint="retrain the run")
    if len(ids) != len(labels):
        ids = [str(i) for i in range(len(labels))]  # positions stand in for ids the file did not keep
    return SplitPredictions(split, probs.astype(np.float32), labels.astype(np.int64), [str(i) for i in ids],
                            list(names))
