"""Provides the Combiner contract: fit on validation member probabilities, combine them per sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmzoo.errors import MmzooError, RunError, TrainingError
from mmzoo.zoo.partbuild import expect

ArrayLike = np.ndarray | torch.Tensor

# safetensors metadata key holding the combiner's JSON config next to its tensors.
META_KEY = "mmzoo_combiner"
# A member's row must sum to 1 within this: loose enough for float32 softmax, tight enough
# to catch logits or unnormalised scores passed by mistake.
SUM_TOLERANCE = 1e-3
# log(0) would poison log-prob inputs; this floor is far below any probability a softmax
# member reports with meaning, yet representable in float32.
PROB_FLOOR = 1e-7


class Combiner(nn.Module):
    """Base of every ensemble combiner.

    ``fit(probs (N, M, C), labels (N,), features=None, groups=None)`` sees the VALIDATION split
    only; ``forward(probs (B, M, C)) -> (B, C)`` returns one probability distribution per sample.
    Every fitted value lives in a buffer or parameter (plus the ``fitted`` flag), so
    ``save``/``load`` round-trip the combiner through safetensors with its JSON ``config``.

    What the core asks of a combiner besides fit/forward is the small interface below
    (``weights_from_recipe``, ``set_member_weights``, ``member_weights``, ``out_of_fold_predictions``,
    ``reads_member_features``); the core never recognises a combiner by its name.
    """

    name = ""
    # Combiners without learned state (mean, vote) are usable straight away.
    requires_fit = True
    # True when the member weights come from the recipe that trained the members (SAMME's alphas from
    # boosting) rather than from validation; the core then calls set_member_weights before fit.
    weights_from_recipe = False

    def __init__(self, num_members: int, num_classes: int, **params: Any) -> None:
        super().__init__()
        self.num_members = num_members
        self.num_classes = num_classes
        self.params = dict(params)
        self.register_buffer("fitted", torch.tensor(not self.requires_fit))
        # (N,) int64 group ids of the samples being fitted, or None; set by fit() for _fit to read, so
        # combiners that split validation into folds keep near-duplicates inside one fold.
        self.fit_groups: torch.Tensor | None = None

    # ---- what the core reads besides fit/forward ------------------------------------

    def set_member_weights(self, weights: ArrayLike) -> Combiner:
        """Take member weights (M,) from the recipe; only for combiners with ``weights_from_recipe``."""
        raise TrainingError(f"combiner {self.name!r} learns its own weights on validation; it takes none from a "
                            "recipe")

    def member_weights(self) -> np.ndarray | None:
        """Each member's weight (M,) for reports, when the combiner is a weighted average or vote; else None."""
        return None

    def out_of_fold_predictions(self) -> np.ndarray | None:
        """Validation predictions (N, C), each made without its own fold, when fit cross-fits; else None.

        The core scores validation on these, so a cross-fitting combiner's val score is not in-sample.
        """
        return None

    @property
    def reads_member_features(self) -> bool:
        """True when forward needs the members' features besides their probabilities."""
        return False

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild an empty twin; JSON-able."""
        cls = type(self)
        return {
            "combiner": self.name,
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "num_members": self.num_members,
            "num_classes": self.num_classes,
            "params": dict(self.params),
        }

    def fit(self, probs: ArrayLike, labels: ArrayLike, features: ArrayLike | None = None,
            groups: ArrayLike | None = None) -> Combiner:
        """Fit on validation member probabilities (N, M, C) and labels (N,); returns self.

        ``groups`` (N,) ints mark near-duplicate samples (e.g. skin-tone variants of one emoji);
        combiners that split validation into folds keep each group inside one fold.
        """
        p = self.check_probs(probs, "fit")
        y = self.check_labels(labels, len(p))
        f = None if features is None else self.check_features(features, len(p))
        self.fit_groups = None if groups is None else torch.as_tensor(np.asarray(groups), dtype=torch.int64)
        if self.fit_groups is not None and self.fit_groups.shape != y.shape:
            raise TrainingError(f"combiner {self.name!r}: groups has shape {tuple(self.fit_groups.shape)}, "
                                f"expected ({len(y)},)")
        self._fit(p, y, f)
        self.fitted.fill_(True)
        return self

    def _fit(self, probs: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None) -> None:
        """Learn from float64 probs (N, M, C), int64 labels (N,), float64 features (N, M, F) or None."""

    def predict(self, probs: ArrayLike, features: ArrayLike | None = None) -> np.ndarray:
        """Combine member probabilities (N, M, C) into (N, C) as numpy, with input checks."""
        if not self.is_fitted:
            raise TrainingError(
                f"combiner {self.name!r} is not fitted yet",
                "call fit(val_probs, val_labels) first, or load a saved combiner",
            )
        p = self.check_probs(probs, "predict").float()
        extra = () if features is None else (self.check_features(features, len(p)).float(),)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = self(p, *extra)  # (N, C)
        self.train(was_training)
        return out.numpy()

    # ---- input checks -------------------------------------------------------------

    def check_probs(self, probs: ArrayLike, where: str) -> torch.Tensor:
        """Return probs as float64 (N, M, C) or raise a TrainingError saying what is wrong."""
        p = _as_tensor(probs, f"combiner {self.name!r} {where}: member probabilities", torch.float64)
        want = f"(N, {self.num_members}, {self.num_classes})"
        if p.ndim != 3 or p.shape[1:] != (self.num_members, self.num_classes) or len(p) == 0:
            raise TrainingError(
                f"combiner {self.name!r} {where}: member probabilities must have shape {want} "
                f"(samples, members, classes), got {tuple(p.shape)}",
                "stack each member's softmax output along axis 1; member and class counts must match the combiner",
            )
        sums = p.sum(dim=-1)  # (N, M)
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or bool(((sums - 1).abs() > SUM_TOLERANCE).any()):
            raise TrainingError(
                f"combiner {self.name!r} {where}: member outputs are not probabilities "
                "(every row must be finite, non-negative and sum to 1)",
                "pass softmax probabilities, not logits or scores",
            )
        return p

    def check_labels(self, labels: ArrayLike, n: int) -> torch.Tensor:
        """Return labels as int64 (N,) or raise a TrainingError."""
        raw = labels if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if isinstance(raw, torch.Tensor):
            integral = not (raw.dtype.is_floating_point or raw.dtype.is_complex or raw.dtype == torch.bool)
        else:
            integral = np.issubdtype(raw.dtype, np.integer)
        y = _as_tensor(labels, f"combiner {self.name!r} fit: labels", torch.int64) if integral else None
        if y is None or y.ndim != 1 or len(y) != n or bool((y < 0).any()) or bool((y >= self.num_classes).any()):
            raise TrainingError(
                f"combiner {self.name!r} fit: labels must be {n} integer class ids in [0, {self.num_classes}), "
                f"got {getattr(raw, 'dtype', '?')} of shape {tuple(raw.shape)}",
                "pass the validation labels aligned with the member probabilities",
            )
        return y

    def check_features(self, features: ArrayLike, n: int) -> torch.Tensor:
        """Return member features as float64 (N, M, F) or raise a TrainingError."""
        f = _as_tensor(features, f"combiner {self.name!r}: member features", torch.float64)
        if f.ndim != 3 or len(f) != n or f.shape[1] != self.num_members or not bool(torch.isfinite(f).all()):
            raise TrainingError(
                f"combiner {self.name!r}: member features must be finite with shape ({n}, {self.num_members}, F), "
                f"got {tuple(f.shape)}",
                "stack each member's pooled features along axis 1, aligned with the probabilities",
            )
        return f

    # ---- persistence --------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the fitted state and config to one safetensors file."""
        from safetensors.torch import save_file

        tensors = {key: value.detach().cpu().contiguous() for key, value in self.state_dict().items()}
        save_file(tensors, str(path), metadata={META_KEY: json.dumps(self.config)})

    @classmethod
    def load(cls, path: str | Path) -> Combiner:
        """Rebuild a saved combiner; on the base class the saved config picks the subclass."""
        config, tensors = _read(path)
        target = _registered_combiner(config, path, cls)
        if not issubclass(target, cls):
            raise RunError(
                f"{path} holds a {config['class']} combiner, not a {cls.__name__}",
                "load it with Combiner.load(path), which picks the saved class",
            )
        combiner = _rebuild(target, config, path)
        combiner._apply_state(tensors, path)
        return combiner

    def _apply_state(self, tensors: dict[str, torch.Tensor], path: str | Path) -> Combiner:
        try:
            self.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise RunError(f"{path}: saved tensors do not match combiner {self.name!r}: {exc}") from exc
        return self


def _read(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise RunError(
            f"combiner file {path} does not exist", "fit and save the combiner first, or check the run folder"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
        config = json.loads(metadata[META_KEY])
    except Exception as exc:  # safetensors raises its own error types; any of them means "unreadable"
        raise RunError(f"{path} is not a saved mmzoo combiner ({exc})", "re-save it with Combiner.save") from exc
    return config, tensors


def _rebuild(target: type, config: dict, path: str | Path) -> Combiner:
    """An empty twin of the saved combiner: through its registered part (params checked) when it is one."""
    from mmzoo.zoo.plugins import get_zoo

    part = get_zoo().get("combiner", config.get("combiner") or "")
    args = (config["num_members"], config["num_classes"])
    try:
        if part is not None and part.load() is target:
            return part.create(*args, **config["params"])
        return target(*args, **config["params"])  # a combiner class used without registering it
    except (TypeError, MmzooError) as exc:
        reason = exc.message if isinstance(exc, MmzooError) else str(exc)
        raise RunError(f"{path}: saved combiner config does not fit {target.__name__} ({reason})") from exc


def _registered_combiner(config: dict, path: str | Path, cls: type) -> type:
    """The class of the saved combiner, found by its registered name: a file never chooses what is imported."""
    from mmzoo.zoo.partbuild import load_factory
    from mmzoo.zoo.plugins import get_zoo

    name = config.get("combiner")
    if not isinstance(name, str) or not name:
        raise RunError(f"{path} does not name its combiner", "re-save it with Combiner.save")
    if cls is not Combiner and cls.name == name:
        return cls  # the caller chose the class itself
    part = get_zoo().get("combiner", name)
    if part is None:
        raise RunError(f"{path} holds a {name!r} combiner, which no installed plugin registers",
                       f"install the plugin that provides it (the run's spec.yaml names it under 'plugins'); "
                       f"installed: {', '.join(get_zoo().names('combiner'))}")
    target = load_factory(part)
    if not (isinstance(target, type) and issubclass(target, Combiner)):
        raise RunError(f"{path}: combiner {name!r} is registered with a factory that is not a Combiner class",
                       "register the combiner class itself, not a function that makes one")
    return target


def _as_tensor(value: Any, what: str, dtype: torch.dtype) -> torch.Tensor:
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().to("cpu", dtype)
        return torch.as_tensor(np.asarray(value), dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TrainingError(
            f"{what} could not be read as numbers ({exc})", "pass a numpy array or torch tensor"
        ) from exc


# ---- shared maths --------------------------------------------------


def hard_votes(probs: torch.Tensor) -> torch.Tensor:
    """One-hot of each member's argmax: (B, M, C) -> (B, M, C); ties go to the lowest class id."""
    winner = probs.argmax(dim=-1, keepdim=True)  # (B, M, 1)
    return torch.zeros_like(probs).scatter(-1, winner, 1.0)


def log_probs(probs: torch.Tensor) -> torch.Tensor:
    return probs.clamp_min(PROB_FLOOR).log()


def stratified_folds(labels: torch.Tensor, folds: int, seed: int, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Assign each sample a fold id in [0, folds), spreading every class evenly; seeded.

    With ``groups``, whole groups are dealt to folds (largest first, each to the fold with the
    fewest samples of its majority class), so near-duplicates never sit on both sides of a fold
    and the out-of-fold score stays honest (see mmzoo.data.folds).
    """
    if groups is not None:
        from mmzoo.data.folds import stratified_group_folds

        return torch.as_tensor(stratified_group_folds(labels.numpy(), folds, seed, groups.numpy()))
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(labels), generator=generator)  # (N,)
    # A stable sort by label keeps the random order within each class; dealing the sorted
    # positions round-robin then puts every class in every fold where it has enough samples.
    order = shuffled[torch.sort(labels[shuffled], stable=True).indices]
    fold = torch.empty_like(labels)
    fold[order] = torch.arange(len(labels)) % folds
    return fold


def _group_index(groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(unique groups, index of each group's first sample, each sample's group position)."""
    unique, inverse = torch.unique(groups, return_inverse=True)
    first = torch.full((len(unique),), len(groups), dtype=torch.int64)
    first = first.scatter_reduce(0, inverse, torch.arange(len(groups)), reduce="amin")
    return unique, first, inverse


expect("combiner", Combiner)  # what every registered combiner must build (checked by Part.create)
