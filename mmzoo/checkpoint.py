"""Provides training checkpoints: complete folders published by an atomic LATEST pointer.

A checkpoint folder is written under a temporary name, fsynced, renamed, and only
then named in LATEST (itself replaced atomically). A crash at any point leaves
LATEST on the previous complete checkpoint, so a half-written one is never read.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmzoo import atomic
from mmzoo.errors import RunError


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights that training changes: frozen encoders are rebuilt from their spec instead."""
    frozen = [name for name, mod in model.named_children() if getattr(mod, "frozen", False)]
    return {k: v for k, v in model.state_dict().items() if not any(k.startswith(f + ".") for f in frozen)}


def load_trained_state(model: torch.nn.Module, path: Path) -> None:
    if not Path(path).is_file():
        raise RunError(f"{path} is missing", hint="the run did not finish or was damaged; retrain or resume it")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise RunError(f"{path} is not a readable safetensors file ({exc})", hint="retrain the run") from exc
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected = set(trained_state(model))
    lost = [k for k in missing if k in expected]
    if lost or unexpected:
        raise RunError(f"{path} does not match the model built from its spec "
                       f"(missing {lost[:3]}, unexpected {list(unexpected)[:3]})",
                       hint="the encoder or fusion code changed since this run; retrain it")


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        idx, slot = key.split(".", 1)
        state.setdefault(int(idx), {})[slot] = value
    for key, value in meta["scalars"].items():
        idx, slot = key.split(".", 1)
        state.setdefault(int(idx), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save(folder: Path, model, best_state: dict, optimizer, progress: dict) -> None:
    """Write checkpoint ``epoch-NNNN`` and point LATEST at it; older checkpoints are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{progress['epoch']:04d}"
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in trained_state(model).items()}, str(tmp / "model.safetensors"))
    save_file({k: v.detach().cpu().contiguous() for k, v in best_state.items()}, str(tmp / "best.safetensors"))
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    save_file({k: v.detach().cpu().contiguous() for k, v in opt_tensors.items()}, str(tmp / "optimizer.safetensors"))
    save_file({"torch": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**progress, "optimizer": opt_meta}, default=float))
    for file in tmp.iterdir():
        with open(file, "rb") as fh:
            os.fsync(fh.fileno())
    final = folder / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic.write_text(folder / "LATEST", name + "\n")
    for old in folder.glob("epoch-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def latest(folder: Path) -> Path | None:
    pointer = folder / "LATEST"
    if not pointer.exists():
        return None
    path = folder / pointer.read_text().strip()
    return path if (path / "state.json").exists() else None


def restore(path: Path, model, optimizer) -> tuple[dict, dict]:
    """Load a checkpoint into model and optimizer; return (progress, best_state)."""
    load_trained_state(model, path / "model.safetensors")
    meta = json.loads((path / "state.json").read_text())
    _restore_optimizer(optimizer, load_file(str(path / "optimizer.safetensors")), meta.pop("optimizer"))
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch"])
    return meta, load_file(str(path / "best.safetensors"))


def load_run_model(run):
    """Rebuild a finished run's model from its spec.yaml and model.safetensors, in eval mode."""
    from mmzoo.factory import create_model
    from mmzoo.provenance import require

    spec = run.spec
    require(spec.get("plugins"), f"run {run.name}")
    model = create_model(spec["model"], num_classes=len(spec["data"]["classes"]))
    load_trained_state(model, run.path / "model.safetensors")
    return model.eval()
