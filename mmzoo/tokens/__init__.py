"""Provides token classification (named-entity recognition): data, BIO, alignment, training, ensembles, ONNX.

Torch-free modules: data, bio, metrics, align, runtime. The rest import torch when used.
"""

from mmzoo.zoo.token_schema import COMBINERS, TASK  # noqa: F401  (declared with the registry schema)
