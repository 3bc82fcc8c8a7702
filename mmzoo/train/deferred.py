"""Provides DeferredEncoder: a frozen encoder known by its description until something must run it.

Training a head over cached features never runs its frozen encoders, yet building them
costs imports and weight loading (seconds per model). The trainer therefore builds a
model whose frozen encoders stand in by a description kept beside the feature cache:
output width, preprocessing and parameter count. The real encoder is built only when a
feature is missing from the cache, or when something calls the encoder's forward.

A finished run is unaffected: its model.safetensors never held frozen weights, and
export, ensembles and evaluation rebuild full encoders from the run's spec.
"""

from __future__ import annotations

import torch

from mmzoo.encoders.base import Encoder, Features
from mmzoo.errors import TrainingError


class DeferredEncoder(Encoder):
    """Stands in for the frozen encoder ``entry`` describes; :meth:`materialize` builds the real one."""

    def __init__(self, entry: dict, description: dict, built: Encoder | None = None):
        from mmzoo.data.preprocess import from_config

        super().__init__()
        self.entry, self.description = dict(entry), description
        self.modality = description["modality"]
        self.output_dim = int(description["output_dim"])
        self.num_parameters = int(description["parameters"])  # the real encoder's, for run metrics
        self.preprocessor = from_config(description["preprocessor"])
        self.frozen = True
        self.eval()
        self.__dict__["_built"] = built  # kept out of the module tree: never in state_dict or parameters()

    @property
    def built(self) -> bool:
        return self.__dict__["_built"] is not None

    def materialize(self) -> Encoder:
        """The real frozen encoder, built on first use; its description is refreshed if it changed."""
        real = self.__dict__["_built"]
        if real is not None:
            return real
        from mmzoo.train.factory import build_encoder
        from mmzoo.train.inputs import describe, write_descriptor

        real = build_encoder(self.entry)
        self.__dict__["_built"] = real
        if describe(real) != self.description:
            self.description = write_descriptor(self.entry, real)
            if int(real.output_dim) != self.output_dim:
                raise TrainingError(f"encoder {self.entry['encoder']!r} now outputs {real.output_dim} features, "
                                    f"not the {self.output_dim} it was described with",
                                    hint="its description is updated; run the command again")
            self.preprocessor = real.preprocessor
        return real

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        device = next(iter(inputs.values())).device
        return self.materialize().to(device)(inputs)


def frozen_encoder(entry: dict) -> DeferredEncoder:
    """A deferred frozen encoder; the real one is built (once, to describe it) only if never described."""
    from mmzoo.train.factory import build_encoder
    from mmzoo.train.inputs import read_descriptor, write_descriptor

    description = read_descriptor(entry)
    if description is not None:
        return DeferredEncoder(entry, description)
    real = build_encoder(entry)
    return DeferredEncoder(entry, write_descriptor(entry, real), built=real)
