"""Provides model inputs per split: cached features for frozen encoders, raw inputs otherwise.

A frozen encoder's output never changes during training, so it is computed once
and kept on disk, keyed by dataset content, encoder arguments and preprocessing.
Training many heads over the same frozen encoders then costs seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmzoo import atomic
from mmzoo.encoders.base import Features
from mmzoo.train.progress import progress_bar

CACHE_FORMAT = 2
ENCODE_BATCH = 64


def cache_root() -> Path:
    return Path(os.environ.get("MMZOO_CACHE", Path.home() / ".cache" / "mmzoo")) / "features"


def cache_key(dataset, encoder_spec: dict, preprocessor_config: dict, amp) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "dataset": dataset.fingerprint,
                       "encoder": {k: v for k, v in encoder_spec.items() if k != "freeze"},
                       "preprocess": preprocessor_config, "amp": str(amp)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _path_stamps(entry: dict) -> dict:
    """Modification times of local files or folders an encoder entry names (a changed folder is a new encoder)."""
    stamps = {}
    for key, value in entry.items():
        if isinstance(value, str) and value.startswith(("/", "./", "../", "~")):
            path = Path(value).expanduser()
            if path.exists():
                files = [path, *path.iterdir()] if path.is_dir() else [path]
                stamps[key] = max(f.stat().st_mtime_ns for f in files)
    return stamps


def descriptor_path(entry: dict) -> Path:
    """Where a frozen encoder's description (output width, preprocessing, size) is kept."""
    from mmzoo import __version__
    from mmzoo.zoo.plugins import get_zoo

    part = get_zoo().get("encoder", entry["encoder"])
    origin = (str(part.factory), part.plugin) if part is not None else None
    blob = json.dumps({"format": CACHE_FORMAT, "mmzoo": __version__, "part": origin,
                       "encoder": {k: v for k, v in entry.items() if k != "freeze"}, "files": _path_stamps(entry)},
                      sort_keys=True, default=str)
    return cache_root() / "encoders" / f"{entry['encoder']}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"


def describe(encoder) -> dict:
    """What a model needs from a frozen encoder whose outputs come from the cache."""
    return {"modality": encoder.modality, "output_dim": int(encoder.output_dim),
            "parameters": sum(p.numel() for p in encoder.parameters()), "preprocessor": encoder.preprocessor.config}


def read_descriptor(entry: dict) -> dict | None:
    path = descriptor_path(entry)
    try:
        found = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # never described, or a damaged file: the encoder is built and described again
    return found if set(found) == {"modality", "output_dim", "parameters", "preprocessor"} else None


def write_descriptor(entry: dict, encoder) -> dict:
    description = describe(encoder)
    atomic.write_json(descriptor_path(entry), description)
    return description


def raw_inputs(preprocessor, samples) -> dict[str, torch.Tensor]:
    """Preprocess samples into the tensors an encoder's forward takes."""
    items = [s.text for s in samples] if preprocessor.kind == "text" else [s.image for s in samples]
    return {k: torch.from_numpy(v) for k, v in preprocessor(items).items()}


def pooled_only(pooled: torch.Tensor) -> Features:
    """Fusions that never read tokens get the pooled vector as a single token."""
    return Features(pooled, pooled.unsqueeze(1), torch.ones(len(pooled), 1, dtype=torch.bool))


@torch.inference_mode()
def encode_all(encoder, samples, device: torch.device, label: str, amp=None, show: bool = True) -> Features:
    """Run a frozen encoder over samples in batches; tokens padded to the longest sample."""
    pooled, toks, masks = [], [], []
    with progress_bar(f"encoding {label}", total=len(samples), enabled=show) as bar:
        for start in range(0, len(samples), ENCODE_BATCH):
            chunk = samples[start:start + ENCODE_BATCH]
            inputs = {k: v.to(device) for k, v in raw_inputs(encoder.preprocessor, chunk).items()}
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                out = encoder(inputs)
            pooled.append(out.pooled.float().cpu())
            toks.append(out.tokens.to(torch.float16).cpu())
            masks.append(out.mask.cpu())
            bar.advance(len(chunk))
    pooled_t = torch.cat(pooled)  # (N, D)
    width = max(t.shape[1] for t in toks)
    toks = [torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[1])) for t in toks]
    masks = [torch.nn.functional.pad(m, (0, width - m.shape[1])) for m in masks]
    return Features(pooled_t, torch.cat(toks), torch.cat(masks))  # (N, D), (N, T, D), (N, T)


def cached_features(encoder, encoder_spec: dict, dataset, samples, tokens: bool, device, label: str,
                    amp=None, show: bool = True) -> Features:
    """Features of ``samples`` (all of the dataset's samples, in order), from disk when cached.

    One pass stores pooled and token features together; readers that need no tokens
    load only the small pooled tensor.
    """
    from safetensors import safe_open

    key = cache_key(dataset, encoder_spec, encoder.preprocessor.config, amp)
    path = cache_root() / f"{dataset.name}-{encoder_spec['encoder']}-{key}.safetensors"
    if not path.exists():
        if hasattr(encoder, "materialize"):  # a deferred frozen encoder: build it now, a feature is missing
            described = encoder.preprocessor.config
            built = encoder.materialize()
            if built.preprocessor.config != described:  # its description was stale: the key changes
                return cached_features(built, encoder_spec, dataset, samples, tokens, device, label, amp, show)
            encoder = built
        feats = encode_all(encoder.to(device), samples, device, label, amp, show)
        atomic.save_tensors(path, {"pooled": feats.pooled, "tokens": feats.tokens, "mask": feats.mask})
    with safe_open(str(path), "pt") as fh:
        pooled = fh.get_tensor("pooled")
        if pooled.shape[0] != len(samples):
            path.unlink()  # stale: written for other content under the same key
            return cached_features(encoder, encoder_spec, dataset, samples, tokens, device, label, amp, show)
        if not tokens:
            return pooled_only(pooled)
        # tokens stay float16 in memory (half the RAM); batches are widened to float32
        return Features(pooled, fh.get_tensor("tokens"), fh.get_tensor("mask").bool())


def _pad_cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate batches along the first axis, padding the second (tokens) with zeros to the widest."""
    if parts[0].dim() >= 2 and len({p.shape[1] for p in parts}) > 1:
        width = max(p.shape[1] for p in parts)
        parts = [torch.nn.functional.pad(p, (0, 0) * (p.dim() - 2) + (0, width - p.shape[1])) for p in parts]
    return torch.cat(parts)


@torch.inference_mode()
def encode_prefix_all(encoder, samples, device, label: str, amp=None, show: bool = True) -> dict[str, torch.Tensor]:
    """The state entering a partly frozen encoder's trained blocks, for every sample (float16, like tokens)."""
    n = encoder.trained_blocks
    out: dict[str, list[torch.Tensor]] = {}
    with progress_bar(f"encoding {label} up to its last {n} blocks", total=len(samples), enabled=show) as bar:
        for start in range(0, len(samples), ENCODE_BATCH):
            chunk = samples[start:start + ENCODE_BATCH]
            inputs = {k: v.to(device) for k, v in raw_inputs(encoder.preprocessor, chunk).items()}
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                state = encoder.forward_prefix(inputs, n)
            for key, value in state.items():
                value = value.to(torch.float16) if value.is_floating_point() else value
                out.setdefault(key, []).append(value.cpu())
            bar.advance(len(chunk))
    return {key: _pad_cat(parts) for key, parts in out.items()}


def cached_prefix(encoder, encoder_spec: dict, dataset, samples, device, label: str, amp=None,
                  show: bool = True) -> dict[str, torch.Tensor]:
    """A partly frozen encoder's prefix states (``train_last``) of every sample, from disk when cached.

    Keyed like frozen features, with ``train_last`` in the encoder entry: the frozen part's output
    never changes while its last blocks train, so it is computed once per dataset.
    """
    from safetensors.torch import load_file

    key = cache_key(dataset, encoder_spec, encoder.preprocessor.config, amp)
    path = cache_root() / f"{dataset.name}-{encoder_spec['encoder']}-prefix{encoder.trained_blocks}-{key}.safetensors"
    if not path.exists():
        atomic.save_tensors(path, encode_prefix_all(encoder.to(device), samples, device, label, amp, show))
    state = load_file(str(path))
    if any(v.shape[0] != len(samples) for v in state.values()):
        path.unlink()  # stale: written for other content under the same key
        return cached_prefix(encoder, encoder_spec, dataset, samples, device, label, amp, show)
    return state


@torch.no_grad()
def initial_pooled(model, data: SplitInputs, device="cpu", batch: int = 256) -> dict[str, torch.Tensor]:
    """Pooled features (N, D) of every modality before training: cached ones, and trained suffixes run once."""
    pooled = {m: f.pooled for m, f in data.cached.items()}
    if data.prefixes:
        model.eval()
        parts = [model.encode_suffix(data.prefix_batch(torch.arange(s, min(s + batch, len(data))), device))
                 for s in range(0, len(data), batch)]
        pooled.update({m: torch.cat([p[m].pooled.float().cpu() for p in parts]) for m in data.prefixes})
    return pooled


# Live (trainable) encoders' inputs are preprocessed once per split when they fit in this budget;
# above it (e.g. 224 px images of a large dataset) they are preprocessed per batch instead.
PREPROCESS_BUDGET_BYTES = 512 * 2**20


@dataclass
class SplitInputs:
    """One split's samples, targets, and for each modality either cached Features or raw inputs."""

    samples: list
    targets: torch.Tensor  # (N,)
    cached: dict[str, Features]
    preprocessors: dict  # modality -> preprocessor, for modalities computed live
    pretensored: dict[str, torch.Tensor] = field(default_factory=dict)  # input name -> (N, ...) for live modalities
    prefixes: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # modality -> prefix state (N, ...)

    def __len__(self) -> int:
        return len(self.samples)

    def preload(self) -> None:
        """Preprocess live modalities once, if they fit the budget, so batches are just slices."""
        for prep in self.preprocessors.values():
            probe = raw_inputs(prep, self.samples[:8])
            per_sample = sum(v[0].numel() * v.element_size() for v in probe.values())
            if per_sample * len(self.samples) <= PREPROCESS_BUDGET_BYTES:
                self.pretensored.update(raw_inputs(prep, self.samples))

    def prefix_batch(self, idx: torch.Tensor, device) -> dict[str, dict[str, torch.Tensor]]:
        """Cached prefix states of partly frozen encoders for this batch, widened to float32."""
        out = {}
        for modality, state in self.prefixes.items():
            part = {k: v[idx] for k, v in state.items()}
            if "attention_mask" in part:  # trim the dataset-wide padding to this batch's longest text
                width = max(1, int(part["attention_mask"].sum(dim=1).max()))
                part = {k: v[:, :width] for k, v in part.items()}
            out[modality] = {k: (v.float() if v.is_floating_point() else v).to(device) for k, v in part.items()}
        return out

    def batch(self, idx: torch.Tensor, device) -> tuple[dict[str, Features], dict[str, torch.Tensor]]:
        """(cached features for this batch, raw encoder inputs for live modalities)."""
        feats = {m: Features(f.pooled[idx].to(device), f.tokens[idx].to(device).float(), f.mask[idx].to(device))
                 for m, f in self.cached.items()}
        raw: dict[str, torch.Tensor] = {}
        chosen = None
        for prep in self.preprocessors.values():
            names = ("input_ids", "attention_mask") if prep.kind == "text" else ("pixel_values",)
            if all(n in self.pretensored for n in names):
                part = {n: self.pretensored[n][idx] for n in names}
                if prep.kind == "text":  # trim the split-wide padding to this batch's longest text
                    width = max(1, int(part["attention_mask"].sum(dim=1).max()))
                    part = {n: v[:, :width] for n, v in part.items()}
            else:
                chosen = chosen or [self.samples[i] for i in idx.tolist()]
                part = raw_inputs(prep, chosen)
            raw.update({k: v.to(device) for k, v in part.items()})
        return feats, raw


def prepare(model, dataset, label_set: str | None, device, amp=None, show: bool = True) -> dict[str, SplitInputs]:
    """Split the dataset and cache what frozen encoders produce for every sample."""
    tokens = bool(getattr(model.fusion, "uses_tokens", False))
    everything = dataset.samples
    position = {id(s): i for i, s in enumerate(everything)}
    cached_all: dict[str, Features] = {}
    prefix_all: dict[str, dict[str, torch.Tensor]] = {}
    live = {}
    for modality, encoder in (("text", model.text_encoder), ("image", model.image_encoder)):
        if encoder is None:
            continue
        if getattr(encoder, "trained_blocks", 0):  # frozen but for its last blocks: cache what enters them
            prefix_all[modality] = cached_prefix(encoder, model.spec[modality], dataset, everything, device,
                                                 f"{modality} with {model.spec[modality]['encoder']}", amp, show)
        elif getattr(encoder, "frozen", False):
            cached_all[modality] = cached_features(encoder, model.spec[modality], dataset, everything, tokens,
                                                   device, f"{modality} with {model.spec[modality]['encoder']}", amp,
                                                   show)
        else:
            live[modality] = encoder.preprocessor
    out = {}
    for split in ("train", "val", "test"):
        samples = dataset.split(split)
        rows = torch.tensor([position[id(s)] for s in samples], dtype=torch.long)
        cached = {m: Features(f.pooled[rows], f.tokens[rows], f.mask[rows]) for m, f in cached_all.items()}
        targets = torch.tensor(dataset.targets(samples, label_set), dtype=torch.long)
        prefixes = {m: {k: v[rows] for k, v in state.items()} for m, state in prefix_all.items()}
        out[split] = SplitInputs(samples, targets, cached, live, prefixes=prefixes)
        out[split].preload()
    return out
