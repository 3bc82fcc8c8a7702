"""Provides everything a plugin author imports, from one place.

    from mmzoo.plugin import Param, hookimpl                 # in the hook module: torch-free
    from mmzoo.plugin import Encoder, Features, Fusion, ...  # in the module holding the parts

Importing this module loads neither torch nor numpy: ``Param``, ``ParamError``,
``REQUIRED`` and ``hookimpl`` are plain, and every other name is imported on first
use (module ``__getattr__``), so a hook module that does
``from mmzoo.plugin import Param, hookimpl`` keeps ``mmzoo list`` fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmzoo.zoo.hookspecs import hookimpl
from mmzoo.zoo.parts import REQUIRED, Param, ParamError

# name -> the module that defines it; imported when the name is first read.
_LAZY = {
    # encoders: the base class, its output, pooling helpers
    "Encoder": "mmzoo.encoders.base",
    "Features": "mmzoo.encoders.base",
    "masked_mean": "mmzoo.encoders.pooling",
    "grid_tokens": "mmzoo.encoders.pooling",
    "image_features": "mmzoo.encoders.pooling",
    # preprocessors (torch-free; they travel into ONNX exports as JSON)
    "TextPreprocessor": "mmzoo.data.preprocess",
    "ImagePreprocessor": "mmzoo.data.preprocess",
    "char_tokenizer_json": "mmzoo.data.preprocess",
    "from_config": "mmzoo.data.preprocess",
    # fusions and the head factory
    "Fusion": "mmzoo.fusions.base",
    "HeadFactory": "mmzoo.fusions.base",
    "mlp_head": "mmzoo.fusions.base",
    "TokenFusion": "mmzoo.fusions.tokens",  # a fusion's token form (register(..., tokens=...))
    # combiners and their shared maths
    "Combiner": "mmzoo.combiners.base",
    "log_probs": "mmzoo.combiners.base",
    "hard_votes": "mmzoo.combiners.base",
    "stratified_folds": "mmzoo.combiners.base",
    # datasets
    "Dataset": "mmzoo.data",
    "Sample": "mmzoo.data",
    "SPLITS": "mmzoo.data",
    # errors a part raises for the user
    "MmzooError": "mmzoo.errors",
    "PluginError": "mmzoo.errors",
    "DataError": "mmzoo.errors",
}

__all__ = ["REQUIRED", "Param", "ParamError", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmzoo.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
