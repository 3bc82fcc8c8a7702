"""Provides training as a use case: a model by name or spec, with overrides, reporting through callbacks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from mmzoo.errors import DataError, RegistryError


@dataclass
class Overrides:
    """What a user may change about a registry model for one run; None keeps the registry's value."""

    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    seed: int | None = None
    dataset: str | None = None
    label_set: str | None = None

    @classmethod
    def from_object(cls, source) -> Overrides:
        """Take the fields an object has (an argparse Namespace, a form's values); others stay None."""
        return cls(**{f.name: getattr(source, f.name, None) for f in fields(cls)})

    def apply(self, spec: dict) -> dict:
        """A copy of a resolved model spec with these overrides, checked against the train schema."""
        from mmzoo.zoo.schema import check_override

        spec = copy.deepcopy(spec)
        for key in ("epochs", "lr", "batch_size", "seed"):
            value = getattr(self, key)
            if value is not None:
                spec["train"][key] = check_override(key, value)
        if self.dataset:
            spec["task"]["dataset"] = self.dataset
            spec["task"]["label_set"] = None
        if self.label_set:
            spec["task"]["label_set"] = self.label_set
        return spec


def check_task(spec: dict) -> None:
    """Fail early, before any model is built, on a bad dataset or label set, or data that cannot train honestly."""
    from mmzoo.data.checks import require_trainable
    from mmzoo.train.factory import open_dataset

    dataset = open_dataset(spec["task"]["dataset"])
    label_set = spec["task"]["label_set"]
    if label_set is not None and label_set not in dataset.label_sets:
        raise DataError(f"dataset {dataset.name!r} has no label set {label_set!r}",
                        hint=f"choose one of: {', '.join(dataset.label_sets)}")
    if getattr(dataset, "task", "classification") == "classification":  # token data is checked as it loads
        require_trainable(dataset, label_set)


def prepare_spec(model: str | dict, overrides: Overrides | None = None, registry: str | None = None) -> dict:
    """A registry model (by name, or an entry's resolved spec) with overrides applied and its data checked."""
    from mmzoo.train.factory import resolve_spec

    spec = (overrides or Overrides()).apply(resolve_spec(model, registry))
    check_task(spec)
    return spec


def train_model(model: str | dict | None = None, overrides: Overrides | None = None, *, registry: str | None = None,
                out: Path | None = None, device: str = "auto", resume: str | Path | None = None,
                on_event: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
                quiet: bool = False):
    """Train one model (or resume a run) and return its finished Run; raises Cancelled when stopped."""
    from mmzoo.train.trainer import Options, train

    if model is None and resume is None:
        raise RegistryError("name a model to train, or pass --resume RUN", hint="see `mmzoo list models`")
    if resume is not None:
        from mmzoo.runs.folders import find_run

        try:
            run = find_run(str(resume), out, newest="unfinished")
            distilled = isinstance(run.spec, dict) and bool(run.spec.get("teacher"))
        except Exception:  # a bad reference or a damaged folder: the trainer reports it, with its own message
            distilled = False
        if distilled:  # a distilled run resumes with its teacher and settings
            from mmzoo.ensemble.distill import resume_distill

            return resume_distill(run, out=out, device=device, quiet=quiet, on_event=on_event,
                                  should_stop=should_stop)
    spec = None if resume is not None else prepare_spec(model, overrides, registry)
    options = Options(out=out, device=device, resume=str(resume) if resume is not None else None, quiet=quiet,
                      on_event=on_event, should_stop=should_stop)
    return train(spec, options)
