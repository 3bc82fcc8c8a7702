"""Provides a live teacher: an ensemble run's members and combiner, queried on perturbed copies of train batches.

Every member is rebuilt from its run folder (frozen encoders read the feature cache) and reads the TRAIN
split only, in the split's order, so a batch's row indices mean the same samples for the student and each
member. Validation and test inputs are never loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmzoo.ensemble import augment
from mmzoo.errors import RunError
from mmzoo.runs.folders import Run


class LiveTeacher:
    """``probs(idx, draw)``: the ensemble's probabilities (B, C) on train rows ``idx`` perturbed by ``draw``."""

    def __init__(self, ensemble: Run, dataset, device) -> None:
        from mmzoo.combiners.base import Combiner
        from mmzoo.train.checkpoint import load_trained_state
        from mmzoo.train.factory import create_model
        from mmzoo.train.inputs import prepare

        self.device = device
        self.members = []  # (model, train SplitInputs)
        train_ids = [s.id for s in dataset.split("train")]
        for entry in ensemble.spec["members"]:
            member = Run(Path(entry["path"]))
            spec = member.spec
            member.verify("model.safetensors")
            model = create_model(spec["model"], num_classes=len(spec["data"]["classes"]), defer_frozen=True)
            load_trained_state(model, member.path / "model.safetensors")
            model = model.to(device).eval()
            with torch.no_grad():
                data = prepare(model, dataset, spec["data"]["label_set"], device, show=False)["train"]
            if [s.id for s in data.samples] != train_ids:
                raise RunError(f"member {member.name} reads other train samples than {dataset.name!r} holds",
                               hint="retrain the member on the current dataset")
            for p in model.parameters():
                p.requires_grad_(False)
            self.members.append((model, data))
        self.combiner = Combiner.load(ensemble.path / "combiner.safetensors")

    @torch.no_grad()
    def probs(self, idx: torch.Tensor, draw: augment.Draw | None) -> torch.Tensor:
        columns = []
        for model, data in self.members:
            cached, raw = augment.apply(draw, *data.batch(idx, self.device))
            feats = dict(cached)
            if raw:
                feats.update(model.encode(raw))
            columns.append(torch.softmax(model.head(feats)["logits"].float(), dim=-1).cpu().numpy())  # (B, C)
        combined = self.combiner.predict(np.stack(columns, axis=1))  # (B, M, C) -> (B, C)
        return torch.as_tensor(combined, dtype=torch.float32)
