"""Provides run folders: their layout, listing, and loading without torch or pickles.

    runs/<model>/<run-id>/
        spec.yaml              resolved model, data and training settings
        model.safetensors      trained weights (frozen encoders are rebuilt from the spec)
        metrics.json           val and test metrics, timing, parameter counts
        history.jsonl          one line per epoch
        probs_val.safetensors  predicted probabilities + labels on val (and probs_test on test)
        status.json            running | finished | failed | cancelled
        checkpoints/           LATEST names the last complete checkpoint folder
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from mmzoo import atomic
from mmzoo.errors import RunError

DEFAULT_ROOT = Path(os.environ.get("MMZOO_RUNS", "runs"))


@dataclass
class Run:
    path: Path

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def model(self) -> str:
        return self.path.parent.name

    @property
    def id(self) -> str:
        return self.path.name

    def _json(self, name: str) -> dict:
        file = self.path / name
        if not file.exists():
            return {}
        try:
            return json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise RunError(f"{file} is corrupt ({exc}); delete the run or retrain it") from exc

    @cached_property
    def spec(self) -> dict:
        """spec.yaml, read once: it is written before anything else and never changes afterwards."""
        file = self.path / "spec.yaml"
        if not file.exists():
            raise RunError(f"{self.path} is not a run folder (no spec.yaml)")
        return yaml.safe_load(file.read_text())

    @property
    def metrics(self) -> dict:
        return self._json("metrics.json")

    @property
    def status(self) -> dict:
        return self._json("status.json") or {"state": "unknown"}

    @property
    def finished(self) -> bool:
        return self.status.get("state") == "finished" and (self.path / "metrics.json").exists()

    def history(self) -> list[dict]:
        file = self.path / "history.jsonl"
        if not file.exists():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def set_status(self, state: str, **extra) -> None:
        atomic.write_json(self.path / "status.json", {"state": state, "time": time.time(), **extra})

    def probabilities(self, split: str):
        """(probs (N, C) float32, labels (N,) int64, ids list) from probs_<split>.safetensors."""
        from safetensors import safe_open
        from safetensors.numpy import load_file

        file = self.path / f"probs_{split}.safetensors"
        if not file.exists():
            raise RunError(f"{self.name} has no {split} predictions ({file.name} missing); is the run finished?")
        arrays = load_file(str(file))
        with safe_open(str(file), "np") as fh:
            meta = fh.metadata() or {}
        return arrays["probs"], arrays["labels"], json.loads(meta.get("ids", "[]"))


def new_run(model: str, root: Path | None = None) -> Run:
    root = Path(root or DEFAULT_ROOT)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / model / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return Run(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"cannot create run folder {path}: {exc.strerror}", hint="pass a writable --out DIR") from exc
    raise RunError(f"could not create a run folder under {root / model}")


def list_runs(root: Path | None = None) -> list[Run]:
    root = Path(root or DEFAULT_ROOT)
    if not root.exists():
        return []
    runs = [Run(p.parent) for p in root.glob("*/*/spec.yaml")]
    return sorted(runs, key=lambda r: (r.model, r.id))


def run_kind(spec: dict) -> str:
    """``text-only``, ``image-only``, ``fusion:NAME`` or ``ensemble:COMBINER[:params]`` of a run's spec.yaml."""
    if spec.get("kind") == "ensemble":
        combiner = spec.get("combiner") or {}
        label = ",".join(f"{k}={v}" for k, v in sorted(combiner.items()) if k != "name" and k in _changed(combiner))
        return f"ensemble:{combiner.get('name', '?')}" + (f":{label}" if label else "")
    model = spec.get("model", {})
    if model.get("fusion"):
        return f"fusion:{model['fusion']['name']}"
    return "text-only" if model.get("text") else "image-only"


def _changed(params: dict) -> set[str]:
    """Combiner params that differ from the installed combiner's defaults (all of them if it is unknown)."""
    try:
        from mmzoo.plugins import get_zoo

        part = get_zoo().get("combiner", params.get("name", ""))
    except Exception:  # listing runs must not fail on a broken plugin
        part = None
    defaults = part.defaults() if part is not None else {}
    return {k for k, v in params.items() if defaults.get(k, object()) != v}


def find_run(ref: str, root: Path | None = None) -> Run:
    """A run by folder path, ``model/id``, ``model`` (its latest run) or a unique id.

    A bare model name whose runs were made from different specs (e.g. an ensemble refit with
    another combiner under the same name) is ambiguous: the error lists them instead of
    silently taking the newest.
    """
    path = Path(ref)
    if (path / "spec.yaml").exists():
        return Run(path)
    runs = list_runs(root)
    hits = [r for r in runs if r.name == ref or r.id == ref]
    if not hits:
        hits = [r for r in runs if r.model == ref]
        kinds = {run_kind(r.spec) for r in hits}
        if len(kinds) > 1:
            listing = ", ".join(f"{r.name} ({run_kind(r.spec)})" for r in hits[-6:])
            raise RunError(f"{ref!r} names {len(hits)} runs of different kinds: {listing}",
                           hint="name one as model/run-id")
        hits = hits[-1:]  # a model name means its newest run
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise RunError(f"{ref!r} matches {len(hits)} runs: {', '.join(r.name for r in hits[:5])}",
                       hint="use model/run-id")
    known = ", ".join(r.name for r in runs[-8:]) or "none yet"
    raise RunError(f"no run {ref!r} under {Path(root or DEFAULT_ROOT)}", hint=f"recent runs: {known}; see `mmzoo runs`")


def find_finished(model_spec: dict, root: Path | None = None, fingerprint: str | None = None) -> Run | None:
    """The newest finished run of exactly this resolved spec (and data, when given): reusable as is."""
    for run in reversed(list_runs(root)):
        if run.model != model_spec["name"] or not run.finished:
            continue
        spec = run.spec
        if spec.get("model") == model_spec and (fingerprint is None or spec["data"]["fingerprint"] == fingerprint):
            return run
    return None
