"""Provides ONNX export, a torch-free inference runtime and inference benchmarks.

``runtime`` and ``metadata`` never import torch; ``export``, ``source`` and ``bench``
do, and are only imported when exporting or benchmarking.
"""
