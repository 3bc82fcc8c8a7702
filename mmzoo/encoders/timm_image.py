"""Provides the `timm` encoder: any timm image model, with timm's own preprocessing."""

from __future__ import annotations

import difflib
import math

import torch

from mmzoo.data.preprocess import RESAMPLE, ImagePreprocessor
from mmzoo.encoders.base import Encoder, Features
from mmzoo.encoders.pooling import dry_run, grid_tokens, image_features
from mmzoo.encoders.weights import OFFLINE_HINT, fetch, hub_endpoint, torch_hub_cached
from mmzoo.errors import MmzooError


def _check_name(name: str) -> None:
    import timm

    if ":" in name or timm.is_model(name):  # "hf-hub:org/repo" names are resolved by timm itself
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    raise MmzooError(f"timm encoder: unknown timm model {name!r}",
                     f"did you mean {', '.join(close)}?" if close else "list them with: python -c \"import timm; print(timm.list_models('*resnet*'))\"")


def _create(name: str, pretrained: bool, **kwargs) -> torch.nn.Module:
    import timm
    from timm.models import get_pretrained_cfg

    def make() -> torch.nn.Module:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)

    if not pretrained:
        return make()
    cfg = None if ":" in name else get_pretrained_cfg(name)
    hub = cfg is None or bool(cfg.hf_hub_id)
    url = hub_endpoint() if hub else cfg.url
    if not url:
        raise MmzooError(f"timm encoder: timm has no pretrained weights for {name!r}", "set pretrained: false")
    return fetch(make, url=url, hub=hub, cached=None if hub else torch_hub_cached(url),
                 what=f"timm encoder: pretrained weights for {name!r}",
                 hint=f"set pretrained: false to train from scratch, or {OFFLINE_HINT}")


class TimmEncoder(Encoder):
    """forward_features' final map (cells or patches) as tokens; pooled by the model's own head where widths agree."""

    modality = "image"

    def __init__(self, *, model: str, pretrained: bool, image_size: int | None):
        super().__init__()
        from timm.data import resolve_data_config
        from timm.models import get_pretrained_cfg

        _check_name(model)
        cfg = get_pretrained_cfg(model) if ":" not in model else None
        extra = {}
        if image_size is not None and getattr(cfg, "fixed_input_size", False):
            # ViT-like models bake the image size into their position embeddings
            extra["img_size"] = image_size
        self.model = _create(model, pretrained, **extra)
        override = {"input_size": (3, image_size, image_size)} if image_size else {}
        data = resolve_data_config(override, model=self.model)
        crop = int(data["input_size"][-1])
        interpolation = data.get("interpolation", "bilinear")
        self.preprocessor = ImagePreprocessor(
            resize=int(math.floor(crop / data.get("crop_pct", 1.0))),
            crop=crop,
            mean=data["mean"],
            std=data["std"],
            interpolation=interpolation if interpolation in RESAMPLE else "bilinear",
        )
        self.channels_last = getattr(self.model, "output_fmt", "NCHW") == "NHWC"
        example = torch.zeros(1, 3, crop, crop)
        fmap = dry_run(self.model.forward_features, example, self.model)
        tokens = self._tokens(fmap)  # (1, N, C)
        head = dry_run(lambda f: self.model.forward_head(f, pre_logits=True), fmap, self.model)  # (1, H)
        # Some heads widen the features (MobileNetV3's conv_head: 576 -> 1024). Features needs one width
        # for tokens and pooled, so those models pool by the global average of the cells instead.
        self.use_head = head.shape[-1] == tokens.shape[-1]
        self.output_dim = int(tokens.shape[-1])

    def _tokens(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.dim() == 4:
            return grid_tokens(fmap, channels_last=self.channels_last)  # (B, H*W, C)
        return fmap  # (B, N, C): already tokens (ViT-style patches plus prefix tokens)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        fmap = self.model.forward_features(inputs["pixel_values"])  # (B, C, H, W) | (B, H, W, C) | (B, N, C)
        tokens = self._tokens(fmap)  # (B, N, D)
        pooled = self.model.forward_head(fmap, pre_logits=True) if self.use_head else None  # (B, D)
        return image_features(tokens, pooled)
