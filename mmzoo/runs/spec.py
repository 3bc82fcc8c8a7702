"""Provides RunSpec: a run folder's spec.yaml as a typed record, and the two questions asked of it everywhere.

Which finished (or interrupted) run can stand in for a model that is asked for (``matches``), and the
dataset a run was trained on, reopened and checked to be the same data (``reopen_dataset``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmzoo.errors import RunError


@dataclass(frozen=True)
class DataRecord:
    """What a run was trained and scored on."""

    dataset: str
    label_set: str
    fingerprint: str
    classes: tuple[str, ...]
    source: str = ""
    task: str = "classification"


@dataclass(frozen=True)
class RunSpec:
    """spec.yaml of a run, typed; ``raw`` keeps the mapping for what is not modelled here."""

    name: str
    kind: str  # "model" or "ensemble"
    data: DataRecord
    model: dict | None = None  # the resolved model spec of a model run
    members: tuple[dict, ...] = ()  # an ensemble's member runs: {name, path, ...}
    combiner: dict | None = None
    resample: dict | None = None  # bagging rows / boosting weights a member trained on
    member_of: dict | None = None
    teacher: dict | None = None  # a distilled run's ensemble
    plugins: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, spec: dict) -> RunSpec:
        """From a spec.yaml mapping that has passed ``runs.shape.spec_problem``."""
        data = spec["data"]
        kind = "ensemble" if spec.get("kind") == "ensemble" else "model"
        name = (spec.get("ensemble") or {}).get("name", "") if kind == "ensemble" else spec["model"]["name"]
        return cls(name=name, kind=kind,
                   data=DataRecord(data["dataset"], data["label_set"], data["fingerprint"], tuple(data["classes"]),
                                   data.get("source", ""), data.get("task", "classification")),
                   model=spec.get("model") if kind == "model" else None, members=tuple(spec.get("members") or ()),
                   combiner=spec.get("combiner"), resample=spec.get("resample"), member_of=spec.get("member_of"),
                   teacher=spec.get("teacher"), plugins=spec.get("plugins") or {}, raw=spec)

    def matches(self, model_spec: dict, fingerprint: str | None = None, resample: Any = None) -> bool:
        """Whether this run trained exactly ``model_spec`` on this data (and this resample record)."""
        return (self.kind == "model" and _comparable(self.model) == _comparable(model_spec)
                and (fingerprint is None or self.data.fingerprint == fingerprint) and self.resample == resample)

    def reopen_dataset(self, run_name: str = "", opened=None):
        """The dataset this run was trained on, refused when its content has changed since."""
        if opened is None:
            from mmzoo.data.open import open_dataset

            opened = open_dataset(self.data.dataset)
        if opened.fingerprint != self.data.fingerprint:
            raise RunError(f"{run_name or self.name} was trained on other data than {opened.name!r} holds now",
                           hint="retrain it, or restore the dataset it was trained on")
        return opened


# Train settings declared after runs existed, at the value that means "as before": a spec holding one of
# these compares equal to an older spec without it, so finished runs are still reused.
AS_BEFORE = {"encoder_lr": None, "freeze_embeddings": False}


def _comparable(model: dict | None) -> dict | None:
    """A model spec without the settings whose value means "as before they existed" (``AS_BEFORE``)."""
    train = model.get("train") if isinstance(model, dict) else None
    if not isinstance(train, dict):
        return model
    return {**model, "train": {k: v for k, v in train.items() if not _as_before(k, v)}}


def _as_before(key: str, value) -> bool:
    return key in AS_BEFORE and type(value) is type(AS_BEFORE[key]) and value == AS_BEFORE[key]
