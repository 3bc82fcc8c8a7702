"""Provides training checkpoints: complete folders published by an atomic LATEST pointer.

A checkpoint folder is written under a temporary name, fsynced, renamed, and only
then named in LATEST (itself replaced atomically). A crash at any point leaves
LATEST on the previous complete checkpoint, so a half-written one is never read.
A LATEST that names nothing usable (garbage, ``../``, a missing folder) is not
followed: resume falls back to the newest complete checkpoint and says so, and a
save deletes only the older checkpoints that its own, newer one replaces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmzoo import atomic
from mmzoo.errors import MmzooError, RunError

NAME = re.compile(r"epoch-(\d{4,})")  # what a checkpoint folder, and so LATEST, may be called
FILES = ("state.json", "model.safetensors", "best.safetensors", "optimizer.safetensors", "rng.safetensors")
# Progress keys a checkpoint must hold, early stopping's state included, so resume continues exactly.
PROGRESS = {"epoch": int, "step": int, "best": (int, float), "best_epoch": int, "bad_epochs": int,
            "seconds": (int, float), "history": list, "optimizer": dict}


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights that training changes: frozen encoders are rebuilt from their spec instead."""
    frozen = [name for name, mod in model.named_children() if getattr(mod, "frozen", False)]
    # a frozen encoder's last blocks may train (train_last): those parameters are trained weights
    trained = {f"{name}.{key}" for name in frozen for key, p in getattr(model, name).named_parameters()
               if p.requires_grad}
    return {k: v for k, v in model.state_dict().items()
            if k in trained or not any(k.startswith(f + ".") for f in frozen)}


def load_trained_state(model: torch.nn.Module, path: Path) -> None:
    if not Path(path).is_file():
        raise RunError(f"{path} is missing", hint="the run did not finish or was damaged; retrain or resume it")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise RunError(f"{path} is not a readable safetensors file ({exc})", hint="retrain the run") from exc
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise RunError(f"{path} does not fit the model built from its spec ({str(exc).splitlines()[-1].strip()})",
                       hint="the spec.yaml beside it was changed, or the weights belong to another run; "
                            "restore it or retrain") from None
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
    for group in optimizer.param_groups:  # a wrong shape would only fail at the next step, as a traceback
        for param in group["params"]:
            for slot, value in optimizer.state.get(param, {}).items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape != param.shape:
                    raise ValueError(f"slot {slot!r} has shape {tuple(value.shape)}, its parameter {tuple(param.shape)}")


def save(folder: Path, model, best_state: dict, optimizer, progress: dict) -> None:
    """Write checkpoint ``epoch-NNNN`` and point LATEST at it; the older checkpoints it replaces are removed."""
    try:
        _save(folder, model, best_state, optimizer, progress)
    except OSError as exc:  # a full disk, or a checkpoints/ or LATEST that is not what mmzoo wrote
        raise RunError(f"cannot write the checkpoint of epoch {progress['epoch']} into {folder}: "
                       f"{exc.strerror or exc}", hint="free disk space, or move the damaged path out of the way, "
                       "then resume the run") from None


def _save(folder: Path, model, best_state: dict, optimizer, progress: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    epoch = progress["epoch"]
    name = f"epoch-{epoch:04d}"
    tmp = folder / f".{name}.{os.getpid()}.tmp"  # the pid lets a later run spot a crash's leftover
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
    old = folder / f".{name}.{os.getpid()}.old"
    if final.exists():  # the same epoch trained again after a resume: move it aside, never leave a gap
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    atomic.write_text(folder / "LATEST", name + "\n")
    shutil.rmtree(old, ignore_errors=True)
    for other in folder.glob("epoch-*"):
        match = NAME.fullmatch(other.name)
        if match and int(match[1]) < epoch:  # only what this checkpoint supersedes
            shutil.rmtree(other, ignore_errors=True)


def complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in FILES)


def find_latest(folder: Path) -> tuple[Path | None, str | None]:
    """(checkpoint to resume from, note) where the note says what happened when LATEST could not be followed."""
    folder = Path(folder)
    pointer = folder / "LATEST"
    found = sorted(((int(m[1]), p) for p in folder.glob("epoch-*") if (m := NAME.fullmatch(p.name)) and complete(p)),
                   key=lambda pair: pair[0])
    newest = found[-1][1] if found else None
    if not pointer.exists():
        if newest is None:
            return None, None
        return newest, f"{pointer} is missing; resuming from the newest complete checkpoint, {newest.name}"
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        text, why = None, f"{pointer} is unreadable ({exc.__class__.__name__})"
    else:
        if NAME.fullmatch(text) and complete(folder / text):
            return folder / text, None
        why = (f"{pointer} names {text[:60]!r}, which is not a complete checkpoint folder" if NAME.fullmatch(text)
               else f"{pointer} holds {text[:60]!r}, not a checkpoint name (epoch-NNNN)")
    if newest is None:
        return None, f"{why}, and no complete checkpoint is left; restarting from epoch 1"
    return newest, f"{why}; ignoring it and resuming from the newest complete checkpoint, {newest.name}"


def latest(folder: Path) -> Path | None:
    return find_latest(folder)[0]


def _damaged(file: Path, exc: BaseException) -> RunError:
    detail = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
    return RunError(f"{file} is damaged ({detail})",
                    hint=f"move {file.parent} out of the way and resume again: mmzoo then resumes from an older "
                         "complete checkpoint, or restarts the run from epoch 1 if none is left")


def _progress(file: Path) -> dict:
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _damaged(file, exc) from None
    if not isinstance(meta, dict):
        raise _damaged(file, ValueError(f"holds a {type(meta).__name__}, not an object"))
    for key, kind in PROGRESS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise _damaged(file, ValueError(f"field {key!r} is missing or not a {getattr(kind, '__name__', 'number')}"))
    return meta


def restore(path: Path, model, optimizer) -> tuple[dict, dict]:
    """Load a checkpoint into model and optimizer; return (progress, best_state).

    A damaged file raises RunError naming it; nothing else is read from a checkpoint.
    """
    load_trained_state(model, path / "model.safetensors")
    meta = _progress(path / "state.json")
    file = path / "optimizer.safetensors"
    try:
        _restore_optimizer(optimizer, load_file(str(file)), meta.pop("optimizer"))
    except MmzooError:
        raise
    except Exception as exc:  # safetensors' own errors, or a state that does not fit the optimizer
        raise _damaged(file, exc) from None
    file = path / "rng.safetensors"
    try:
        torch.set_rng_state(load_file(str(file))["torch"])
    except Exception as exc:
        raise _damaged(file, exc) from None
    file = path / "best.safetensors"
    try:
        return meta, load_file(str(file))
    except Exception as exc:
        raise _damaged(file, exc) from None


def load_run_model(run):
    """Rebuild a finished run's model from its spec.yaml and model.safetensors, in eval mode."""
    from mmzoo.train.factory import create_model
    from mmzoo.zoo.provenance import require

    spec = run.spec
    require(spec.get("plugins"), f"run {run.name}")
    run.verify("spec.yaml", "model.safetensors")  # against the digests recorded when they were written
    try:
        model = create_model(spec["model"], num_classes=len(spec["data"]["classes"]))
    except MmzooError:
        raise
    except Exception as exc:  # a hand-edited spec.yaml that validates but cannot build
        raise RunError(f"{run.path / 'spec.yaml'} does not describe a model mmzoo can build ({exc!r})",
                       hint="restore the run's spec.yaml, or retrain the run") from None
    load_trained_state(model, run.path / "model.safetensors")
    return model.eval()
