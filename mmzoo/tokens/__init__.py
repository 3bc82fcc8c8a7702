"""Provides token classification (named-entity recognition): data, BIO, alignment, training, ensembles, ONNX.

Torch-free modules: data, bio, metrics, align, runtime. The rest import torch when used.
"""

TASK = "tokens"  # the value of a registry model's `task.type` (and a token dataset's `task`)
COMBINERS = ("mean", "weighted", "vote")  # per-word combiners; the others learn from one label per sample
