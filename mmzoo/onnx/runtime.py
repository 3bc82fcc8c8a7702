"""Provides the torch-free inference runtime: load an mmzoo ONNX export, preprocess, predict.

Only onnxruntime, tokenizers, numpy and Pillow are imported (the metadata is read from
the file's protobuf directly), so a process that predicts starts in well under a second.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmzoo.data.preprocess import decode_array, from_config
from mmzoo.errors import DataError, ExportError, MmzooError
from mmzoo.onnx import metadata as md

DEVICES = ("auto", "cpu", "cuda")


def physical_cores() -> int:
    """Cores this process may use, counting hyper-threads once (sysfs topology; cpu_count as fallback)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in allowed:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device not in DEVICES:
        raise MmzooError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise MmzooError(f"--device cuda was asked for, but this onnxruntime offers only {', '.join(available)}",
                         hint="install onnxruntime-gpu with a matching CUDA, or use --device cpu")
    if device == "cuda" or (device == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: str | Path, device: str = "cpu", threads: int | None = None, spinning: bool = True):
    """An onnxruntime session with mmzoo's thread settings.

    ``spinning=False`` stops idle worker threads from busy-waiting: several sessions in
    one process (or one beside other work) otherwise steal each other's cores.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=providers(device))


def _image(item: Any, where: str):
    """Open an image path (or pass through an array / PIL image) with user-facing errors."""
    if not isinstance(item, (str, Path)):
        return item
    from PIL import Image, UnidentifiedImageError

    path = Path(item)
    if not path.exists():
        raise DataError(f"image {path} not found{where}", hint="check the path (relative paths start at the "
                                                               "current folder)")
    if not path.is_file():
        raise DataError(f"image {path} is not a file{where}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise DataError(f"image {path} could not be read{where}: {exc}",
                        hint="use a PNG, JPEG, WebP or other format Pillow reads") from None
    return img


class Predictor:
    """One mmzoo export, ready to predict: ``predict(texts, images) -> probs (N, C)``."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None, spinning: bool = True):
        self.path = Path(path)
        self.meta = md.read(self.path)
        self.labels: list[str] = list(self.meta["labels"])
        try:
            self.preprocessing = [(p, from_config(p["config"])) for p in self.meta["preprocessing"]]
        except Exception as exc:  # KeyError, ValueError, or the tokenizers library's own error on a bad tokenizer
            raise ExportError(f"{self.path}: its mmzoo.preprocessing metadata is unusable ({exc!r})",
                              hint="re-export the run with this mmzoo version") from None
        self.modalities = {p["modality"] for p, _ in self.preprocessing}
        # A raw-image export reads the decoded picture; one batch holds images of one size.
        self.raw_image = any(p["config"].get("kind") == "raw_image" for p, _ in self.preprocessing)
        try:
            self.session = make_session(self.path, device, threads, spinning)
        except MmzooError:
            raise
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ExportError(f"onnxruntime could not load {self.path}: {exc}",
                              hint="re-export the run; the file may be damaged") from None
        graph_inputs = {i.name for i in self.session.get_inputs()}
        if graph_inputs != {i["name"] for i in self.meta["inputs"]}:
            raise ExportError(f"{self.path}: mmzoo.inputs lists {sorted(i['name'] for i in self.meta['inputs'])} but "
                              f"the graph's inputs are {sorted(graph_inputs)}", hint="export the run again")
        self.on_gpu = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.output = self.session.get_outputs()[0].name

    def feeds(self, texts: Sequence[str] | None = None, images: Sequence | None = None,
              where: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Graph inputs for a batch; ``where`` labels each sample in error messages (e.g. a manifest line)."""
        count = len(texts) if texts is not None else len(images) if images is not None else 0
        if count == 0:
            raise DataError("nothing to predict", hint="give texts and/or images")
        if texts is not None and images is not None and len(texts) != len(images):
            raise DataError(f"got {len(texts)} texts but {len(images)} images; each sample needs one of each")
        labels = list(where) if where is not None else [""] * count
        if "text" in self.modalities:
            if texts is None:
                raise DataError(f"{self.path.name} reads text: give --text", hint="its inputs: "
                                + ", ".join(sorted(self.modalities)))
            for text, at in zip(texts, labels, strict=True):
                if not isinstance(text, str) or not text.strip():
                    raise DataError(f"text is empty{at}", hint="pass the text to classify, e.g. --text 'a red apple'")
        if "image" in self.modalities:
            if images is None:
                raise DataError(f"{self.path.name} reads an image: give --image PATH", hint="its inputs: "
                                + ", ".join(sorted(self.modalities)))
            images = [_image(item, at) for item, at in zip(images, labels, strict=True)]
        out: dict[str, np.ndarray] = {}
        for desc, prep in self.preprocessing:
            try:
                produced = prep(list(texts) if desc["modality"] == "text" else images)
            except ValueError as exc:  # a raw-image batch of mixed sizes
                raise DataError(f"{self.path.name}: {exc}", hint="predict() batches images by size; "
                                "give feeds() images of one size") from None
            out.update({name: produced[fld] for fld, name in desc["inputs"].items()})
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Probabilities (B, C) for prepared graph inputs."""
        if not self.on_gpu:
            return self.session.run([self.output], feeds)[0]
        # I/O binding copies inputs to the GPU once and keeps intermediates there.
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        binding.bind_output(self.output, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def predict(self, texts: Sequence[str] | None = None, images: Sequence | None = None,
                batch_size: int = 32, where: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities (N, C) in ``labels`` order."""
        n = len(texts) if texts is not None else len(images) if images is not None else 0
        if n == 0:
            raise DataError(f"nothing to predict: {self.path.name} reads {' and '.join(sorted(self.modalities))}",
                            hint="give --text '...' and/or --image PATH")
        out = []
        for start in range(0, n, batch_size):
            for part in self._parts(start, min(n, start + batch_size), images, where):
                out.append(self.run(self.feeds(None if texts is None else texts[part[0]],
                                               None if images is None else part[1],
                                               None if where is None else where[part[0]])))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def _parts(self, start: int, end: int, images, where) -> list[tuple[slice, list | None]]:
        """Samples start..end as (rows, their images); a raw-image export gets runs of equal image size."""
        if images is None or not self.raw_image or "image" not in self.modalities:
            return [(slice(start, end), None if images is None else images[start:end])]
        labels = where[start:end] if where is not None else [""] * (end - start)
        pictures = [decode_array(_image(item, at)) for item, at in zip(images[start:end], labels, strict=True)]
        parts, first = [], 0
        for k in range(1, len(pictures) + 1):
            if k == len(pictures) or pictures[k].shape[:2] != pictures[first].shape[:2]:
                parts.append((slice(start + first, start + k), pictures[first:k]))
                first = k
        return parts

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per sample, the ``k`` most probable (label, probability) pairs, best first."""
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.labels[i], float(row[i])) for i in idx] for row, idx in zip(probs, order, strict=True)]
