"""Provides frozen encoder features for fit: computed once per dataset and encoder, then read from disk."""

from __future__ import annotations

import numpy as np

from mmzoo.zoo.plugins import get_zoo


def encoder_spec(name: str, **params) -> dict:
    """A frozen encoder entry with every default filled in, exactly as the registry resolves it."""
    from mmzoo.errors import RegistryError

    part = get_zoo().get("encoder", name)
    if part is None:
        raise RegistryError(f"encoder {name!r} is not registered",
                            hint=f"installed: {', '.join(get_zoo().names('encoder'))}")
    unknown = set(params) - {p.name for p in part.params}
    if unknown:
        raise RegistryError(f"encoder {name!r} has no params {', '.join(sorted(unknown))}",
                            hint=f"its params: {', '.join(p.name for p in part.params) or 'none'}")
    return {"encoder": name, **part.defaults(), **params, "freeze": True}


def training_amp():
    """The autocast dtype the trainer uses here, so fit and `mmzoo train` share one feature cache."""
    import torch

    from mmzoo.train.trainer import autocast_dtype

    return autocast_dtype("auto", torch.device("cpu"))


def encoder_and_features(dataset, spec: dict, show: bool = True):
    """(frozen encoder, pooled features (N, D) float32 of every sample of ``dataset``), via the shared cache."""
    import torch

    from mmzoo.train.factory import build_encoder
    from mmzoo.train.inputs import cached_features

    encoder = build_encoder(spec)
    feats = cached_features(encoder, spec, dataset, dataset.samples, False, torch.device("cpu"),
                            f"{encoder.modality} with {spec['encoder']}", training_amp(), show)
    return encoder, feats.pooled.float().numpy()


def pooled_features(dataset, spec: dict, show: bool = True) -> np.ndarray:
    """Pooled features (N, D) float32 of every sample of ``dataset`` in order, from the shared cache."""
    return encoder_and_features(dataset, spec, show)[1]
