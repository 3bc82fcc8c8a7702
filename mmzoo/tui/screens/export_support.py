"""Provides what the export screen needs besides widgets: where exports go, how to reload a run's data,
and short parity lines that fit 80 columns."""

from __future__ import annotations

from pathlib import Path


def export_dir(run_path: Path) -> Path:
    """Where the TUI writes a run's exports: beside the run's own files, so each run keeps its models."""
    return run_path / "onnx"


def dataset_ref(spec: dict) -> str:
    """What open_dataset needs to reload a run's data: a folder it came from, else the registered name."""
    data = spec["data"]
    source = data.get("source", "")
    return source if source and Path(source).is_dir() else data["dataset"]


def open_image(path: str):
    """A user's image for display, with the same kind of message the predictor gives for a bad path."""
    from PIL import Image, UnidentifiedImageError

    from mmzoo.errors import DataError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"image {path} not found", hint="check the path (relative paths start at the current "
                        "folder)") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"image {path} could not be read: {exc}", hint="use a PNG, JPEG or WebP file") from None
    return image


def short_summary(precision: str, figures: dict) -> str:
    """One parity line of at most about 78 characters (the full figures go to the log)."""
    if "onnx_f1" in figures:  # a token export: parity on val entity F1
        return (f"{precision}: val entity F1 {figures['onnx_f1']:.4f} (torch {figures['torch_f1']:.4f}) · "
                f"max |diff| {figures['max_abs_diff']:.1e} · n={figures['sentences']} sentences")
    return (f"{precision}: agreement {figures['argmax_agreement']:.1%} · max |diff| {figures['max_abs_diff']:.1e}"
            f" · val acc {figures['onnx_val_accuracy']:.3f} ({figures['val_accuracy_change']:+.3f}) · "
            f"n={figures['samples']}")


def parity_hint(message: str, samples: str) -> str | None:
    """What helps when a low-precision export fails its parity check, in the TUI's own terms."""
    if "parity check" not in message or "its fp32 parity" in message:
        return None  # fp32 failing is a bug in the graph, not a matter of samples
    now = f"now {samples}" if samples else "now the export's default"
    return (f"raise 'parity samples' ({now}) so that one disagreement weighs less, then press x again; "
            "or export fp32")


def onnx_files(folders: list[Path]) -> list[Path]:
    """The .onnx files in these folders, newest first, each once."""
    seen: dict[Path, float] = {}
    for folder in folders:
        if folder.is_dir():
            for file in folder.glob("*.onnx"):
                seen[file.resolve()] = file.stat().st_mtime
    return sorted(seen, key=lambda f: -seen[f])
