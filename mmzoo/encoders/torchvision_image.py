"""Provides the `torchvision` encoder: a torchvision classification model cut before its pooling."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from mmzoo.data.preprocess import RESAMPLE, ImagePreprocessor
from mmzoo.encoders.base import Encoder, Features
from mmzoo.encoders.pooling import dry_run, grid_tokens, image_features
from mmzoo.encoders.weights import OFFLINE_HINT, fetch, torch_hub_cached
from mmzoo.errors import MmzooError

# Families whose trunk is every child except the pooling and classifier layers.
CHILDREN_TRUNK = ("ResNet", "RegNet", "ShuffleNetV2")
# Families whose trunk is `.features` (its output feeds straight into pooling).
FEATURES_TRUNK = ("AlexNet", "VGG", "SqueezeNet", "MobileNetV2", "MobileNetV3", "EfficientNet", "ConvNeXt")
SUPPORTED = ("resnet", "resnext", "wide_resnet", "regnet", "shufflenet_v2", "alexnet", "vgg", "squeezenet",
             "mobilenet_v2/v3", "efficientnet(_v2)", "convnext", "densenet", "mnasnet", "swin", "maxvit")


def _trunk(model: nn.Module, name: str) -> nn.Module:
    """The part of ``model`` that maps (B, 3, H, W) to its last (B, C, h, w) feature map."""
    kind = type(model).__name__
    if kind in CHILDREN_TRUNK:
        return nn.Sequential(*[m for n, m in model.named_children() if n not in ("avgpool", "fc")])
    if kind in FEATURES_TRUNK:
        return model.features
    if kind == "DenseNet":
        # DenseNet applies its final ReLU in forward(), not inside `.features`
        return nn.Sequential(model.features, nn.ReLU())
    if kind == "MNASNet":
        return model.layers
    if kind == "SwinTransformer":
        return nn.Sequential(model.features, model.norm, model.permute)  # permute: NHWC -> NCHW
    if kind == "MaxVit":
        return nn.Sequential(model.stem, *model.blocks)
    raise MmzooError(f"torchvision encoder: {name!r} ({kind}) cannot be split into a feature map and pooling",
                     f"supported families: {', '.join(SUPPORTED)}; for ViTs use the timm encoder")


def _weights(name: str, weights: str | None):
    from torchvision import models

    if weights is None:
        return None
    enum = models.get_model_weights(name)
    key = weights.rsplit(".", 1)[-1]  # accept "ResNet18_Weights.IMAGENET1K_V1" as well as "IMAGENET1K_V1"
    try:
        return enum[key]
    except KeyError:
        choices = ", ".join(dict.fromkeys(["DEFAULT", *enum.__members__]))
        raise MmzooError(f"torchvision encoder: {name!r} has no weights {weights!r}",
                         f"use one of: {choices}, or null for random initialisation") from None


def _preprocessor(weights, image_size: int | None) -> ImagePreprocessor:
    resize, crop, interpolation = 256, 224, "bilinear"
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    if weights is not None:
        t = weights.transforms()
        resize, crop = int(t.resize_size[0]), int(t.crop_size[0])
        mean, std, interpolation = t.mean, t.std, t.interpolation.value
    if image_size is not None:
        # keep the weights' resize-to-crop ratio at the new size
        resize, crop = int(image_size * resize / crop), int(image_size)
    return ImagePreprocessor(resize=resize, crop=crop, mean=mean, std=std,
                             interpolation=interpolation if interpolation in RESAMPLE else "bilinear")


class TorchvisionEncoder(Encoder):
    """The trunk's last feature map cells as tokens; pooled is their mean (the models' own global pooling)."""

    modality = "image"

    def __init__(self, *, model: str, weights: str | None, image_size: int | None):
        super().__init__()
        from torchvision import models

        names = models.list_models(module=models)
        if model not in names:
            close = difflib.get_close_matches(model, names, n=3, cutoff=0.6)
            raise MmzooError(f"torchvision encoder: unknown torchvision classification model {model!r}",
                             f"did you mean {', '.join(close)}?" if close else f"choose one of: {', '.join(names)}")
        resolved = _weights(model, weights)
        if resolved is None:
            net = models.get_model(model, weights=None)
        else:
            net = fetch(lambda: models.get_model(model, weights=resolved), url=resolved.url,
                        cached=torch_hub_cached(resolved.url),
                        what=f"torchvision encoder: weights {resolved} for {model!r}",
                        hint=f"set weights: null to train from scratch, or {OFFLINE_HINT}")
        self.trunk = _trunk(net, model)
        self.preprocessor = _preprocessor(resolved, image_size)
        crop = self.preprocessor.crop
        fmap = dry_run(self.trunk, torch.zeros(1, 3, crop, crop), self.trunk)  # (1, C, h, w)
        self.output_dim = int(fmap.shape[1])

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        fmap = self.trunk(inputs["pixel_values"])  # (B, C, h, w)
        return image_features(grid_tokens(fmap))  # tokens (B, h*w, C), pooled (B, C)
