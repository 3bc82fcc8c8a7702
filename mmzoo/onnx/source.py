"""Provides what an export or benchmark starts from: a run's torch members, combiner, inputs and samples.

A member run is an ensemble of one without a combiner, so export, parity and
benchmarks handle both kinds through the same ``Source``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmzoo.errors import ExportError, RunError
from mmzoo.runs.folders import Run

# Model field -> graph input; a member whose preprocessing differs from the first member
# with that modality gets these names with an ``m<k>_`` prefix.
FIELDS = {"text": ("input_ids", "attention_mask"), "image": ("pixel_values",)}


@dataclass
class Preprocessing:
    """One distinct preprocessor and the graph inputs it feeds."""

    id: str
    modality: str
    config: dict
    inputs: dict[str, str]  # preprocessor output field -> graph input name
    members: list[int] = field(default_factory=list)
    runner: object = None  # the mmzoo.data.preprocess object, for building feeds

    def describe(self) -> dict:
        return {"id": self.id, "modality": self.modality, "inputs": self.inputs, "members": self.members,
                "config": self.config}


@dataclass
class Source:
    run: Run
    kind: str  # "model" or "ensemble"
    member_names: list[str]
    models: list  # MultimodalClassifier per member, eval mode, float32
    combiner: object | None  # fitted mmzoo Combiner, None for a single model
    classes: list[str]
    preprocessing: list[Preprocessing]
    member_inputs: list[dict[str, str]]  # per member: graph input name -> model field
    dataset_spec: str
    label_set: str

    def feeds(self, texts: list[str], images: list) -> dict[str, np.ndarray]:
        """Graph inputs for a batch, each preprocessor run once."""
        out: dict[str, np.ndarray] = {}
        for prep in self.preprocessing:
            produced = prep.runner(texts if prep.modality == "text" else images)
            out.update({name: produced[fld] for fld, name in prep.inputs.items()})
        return out

    @torch.inference_mode()
    def member_probs(self, feeds: dict[str, np.ndarray]) -> torch.Tensor:
        """Each member's float32 softmax on the raw encoders: (B, M, C)."""
        probs = []
        for model, names in zip(self.models, self.member_inputs, strict=True):
            inputs = {fld: torch.from_numpy(feeds[name]) for name, fld in names.items()}
            probs.append(torch.softmax(model(inputs)["logits"].float(), dim=-1))  # (B, C)
        return torch.stack(probs, dim=1)  # (B, M, C)

    @torch.inference_mode()
    def probs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """What the export must reproduce: the ensemble's (or the model's) probabilities (B, C)."""
        member = self.member_probs(feeds)  # (B, M, C)
        if self.combiner is None:
            return member[:, 0].numpy()
        return self.combiner(member).float().numpy()

    def validation(self, limit: int):
        """Up to ``limit`` validation samples (first in split order) and their class ids."""
        from mmzoo.train.factory import open_dataset

        dataset = open_dataset(self.dataset_spec)
        if dataset.classes(self.label_set) != self.classes:
            raise ExportError(f"dataset {self.dataset_spec!r} now has classes {dataset.classes(self.label_set)}, "
                              f"but {self.run.name} was trained on {self.classes}",
                              hint="parity needs the run's own validation data; retrain the run on this dataset")
        samples = dataset.split("val")[:limit]
        if not samples:
            raise ExportError(f"dataset {self.dataset_spec!r} has no validation samples to check the export on")
        return samples, np.asarray(dataset.targets(samples, self.label_set), dtype=np.int64)


def _member_runs(run: Run, spec: dict) -> list[Run]:
    members = []
    for entry in spec.get("members", []):
        path = Path(entry["path"])
        member = Run(path)
        if not member.finished:
            raise RunError(f"ensemble {run.name} member {entry['name']} is missing or unfinished ({path})",
                           hint="rebuild the ensemble with `mmzoo ensemble`")
        members.append(member)
    if not members:
        raise RunError(f"ensemble {run.name} lists no members in its spec.yaml")
    return members


def _dataset_ref(data: dict, model_spec: dict) -> str:
    """What open_dataset needs: the training task's dataset (a registered name or a folder)."""
    task = model_spec.get("task", {})
    if task.get("dataset"):
        return task["dataset"]
    source = data.get("source", "")
    return source if source and Path(source).is_dir() else data["dataset"]


def plan_inputs(models: list) -> tuple[list[Preprocessing], list[dict[str, str]]]:
    """Group members by identical preprocessing; members in a group share graph inputs."""
    groups: list[Preprocessing] = []
    member_inputs: list[dict[str, str]] = []
    for k, model in enumerate(models):
        names: dict[str, str] = {}
        for modality, prep in model.preprocessors().items():
            config = prep.config
            key = json.dumps(config, sort_keys=True)
            group = next((g for g in groups if g.modality == modality
                          and json.dumps(g.config, sort_keys=True) == key), None)
            if group is None:
                first = not any(g.modality == modality for g in groups)
                prefix = "" if first else f"m{k}_"
                group = Preprocessing(id=f"{prefix}{modality}", modality=modality, config=config,
                                      inputs={f: prefix + f for f in FIELDS[modality]}, runner=prep)
                groups.append(group)
            group.members.append(k)
            names.update({name: fld for fld, name in group.inputs.items()})
        member_inputs.append(names)
    return groups, member_inputs


def load_source(run: Run) -> Source:
    """Rebuild a finished run (model or ensemble) for export: members, combiner, inputs."""
    from mmzoo.train.checkpoint import load_run_model

    if not run.finished:
        raise RunError(f"{run.name} {run.unfinished()}; only finished runs export",
                       hint="wait for it to finish, or resume it with `mmzoo train --resume`")
    spec = run.spec
    data = spec["data"]
    if spec.get("kind") == "ensemble":
        member_runs = _member_runs(run, spec)
        models = [load_run_model(m) for m in member_runs]
        names = [m.name for m in member_runs]
        for member in member_runs:
            if member.spec["data"]["classes"] != data["classes"]:
                raise RunError(f"member {member.name} predicts {member.spec['data']['classes']}, but ensemble "
                               f"{run.name} has classes {data['classes']}")
        combiner = _load_combiner(run, len(models), len(data["classes"]))
        model_spec = member_runs[0].spec["model"]
    else:
        models, names, combiner, model_spec = [load_run_model(run)], [run.name], None, spec["model"]
    groups, member_inputs = plan_inputs(models)
    return Source(run=run, kind="ensemble" if combiner is not None else "model", member_names=names,
                  models=models, combiner=combiner, classes=list(data["classes"]), preprocessing=groups,
                  member_inputs=member_inputs, dataset_spec=_dataset_ref(data, model_spec),
                  label_set=data["label_set"])


def _load_combiner(run: Run, members: int, classes: int):
    from mmzoo.combiners.base import Combiner
    from mmzoo.zoo.provenance import require

    require(run.spec.get("plugins"), f"ensemble run {run.name}")
    run.verify("spec.yaml", "combiner.safetensors")  # against the digests recorded when the ensemble was built
    combiner = Combiner.load(run.path / "combiner.safetensors").eval()
    if (combiner.num_members, combiner.num_classes) != (members, classes):
        raise RunError(f"{run.name}: its combiner expects {combiner.num_members} members and "
                       f"{combiner.num_classes} classes, but the run has {members} and {classes}",
                       hint="rebuild the ensemble with `mmzoo ensemble`")
    if combiner.reads_member_features:
        raise ExportError(f"{run.name}: combiner {combiner.name!r} gates on member features, which an export "
                          "of member probabilities cannot feed",
                          hint="export an ensemble whose combiner reads probabilities (moe without feature_dim)")
    return combiner
