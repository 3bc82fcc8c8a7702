"""Provides run folders: their layout, listing, and loading without torch or pickles.

    runs/<model>/<run-id>/
        spec.yaml              resolved model, data and training settings
        model.safetensors      trained weights (frozen encoders are rebuilt from the spec)
        metrics.json           val and test metrics, timing, parameter counts
        history.jsonl          one line per epoch
        probs_val.safetensors  predicted probabilities + labels on val (and probs_test on test)
        status.json            running | finished | failed | cancelled, and who runs it (pid, host)
        digests.json           sha256 of spec.yaml, weights and predictions, recorded as each is written
        checkpoints/           LATEST names the last complete checkpoint folder
        .lock                  held (flock) while a process trains the run; see mmzoo.runs.lock

A run whose status says running but whose owner is gone reads as ``interrupted``. A run
folder that cannot be read (a malformed or hand-edited spec.yaml, a corrupt status) is
listed as broken with the file and the reason; it never stops the others from listing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from mmzoo import atomic
from mmzoo.errors import RunError
from mmzoo.runs import lock as runlock
from mmzoo.runs.shape import history_rows, metrics_problem, spec_problem

DEFAULT_ROOT = Path(os.environ.get("MMZOO_RUNS", "runs"))
# What status.json may say (Run.set_status); "unknown" (no status.json), "broken" and "interrupted" are read-only.
STATES = ("running", "finished", "failed", "cancelled", "unknown")


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
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RunError(f"{file} is corrupt ({exc})", hint="delete the run folder or retrain it") from None
        if not isinstance(data, dict):
            raise RunError(f"{file} is corrupt (holds a {type(data).__name__}, not an object)",
                           hint="delete the run folder or retrain it")
        return data

    @functools.cached_property
    def run_spec(self):
        """spec.yaml as a typed RunSpec (mmzoo.runs.spec), built once."""
        from mmzoo.runs.spec import RunSpec

        return RunSpec.from_dict(self.spec)

    @cached_property
    def spec(self) -> dict:
        """spec.yaml, read once: it is written before anything else and never changes afterwards."""
        file = self.path / "spec.yaml"
        if not file.exists():
            raise RunError(f"{self.path} is not a run folder (no spec.yaml)")
        try:
            spec = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise RunError(f"{file} cannot be read ({detail})", hint=BROKEN_HINT) from None
        problem = spec_problem(spec)
        if problem:
            raise RunError(f"{file}: {problem}", hint=BROKEN_HINT)
        return spec

    @property
    def problem(self) -> str | None:
        """Why this folder cannot be used (spec.yaml, status.json or metrics.json unreadable), or None."""
        try:
            _ = self.spec  # raises RunError naming the problem
            self._json("status.json")
            if self.finished:
                _ = self.metrics
            elif self.status.get("state") in ("finished", "broken"):
                raise RunError(f"{self.name} {self.unfinished()}")
            self.verify("spec.yaml")
        except RunError as exc:
            return exc.message
        return None

    @property
    def metrics(self) -> dict:
        data = self._json("metrics.json")
        tokens = data.get("task") == "tokens" or self.spec.get("data", {}).get("task") == "tokens"
        problem = metrics_problem(data, tokens) if data else None
        if problem:  # a hand-edited file: name the field here rather than fail wherever a command reads it
            raise RunError(f"{self.path / 'metrics.json'}: {problem}", hint=BROKEN_HINT)
        return data

    @property
    def status(self) -> dict:
        """status.json; a run recorded as running whose owner is gone reads ``interrupted``."""
        try:
            status = self._json("status.json") or {"state": "unknown"}
        except RunError as exc:
            return {"state": "broken", "error": exc.message}
        if status.get("state") not in STATES:  # hand-edited: a made-up state would read as "is 5, not finished"
            return {"state": "broken", "error": f"{self.path / 'status.json'}: state is "
                                                f"{repr(status.get('state'))[:40]}, expected one of {', '.join(STATES[:4])}"}
        if status.get("state") == "running" and self._owner_gone(status):
            return {**status, "state": "interrupted", "recorded_state": "running"}
        return status

    def _owner_gone(self, status: dict) -> bool:
        if status.get("host") not in (None, socket.gethostname()):
            return False  # trained on another machine: its processes are not visible from here
        held = runlock.lock_held(self.path)
        if held is not None:
            return not held
        return runlock.alive(status) is False

    @property
    def finished(self) -> bool:
        return self.status.get("state") == "finished" and (self.path / "metrics.json").exists()

    def unfinished(self) -> str:
        """Why the run is not finished, for messages: ``is running, not finished``, or what is damaged."""
        status = self.status
        state = status.get("state")
        if state == "finished":  # status says so, but its metrics are gone: "is finished, not finished" misleads
            return "is damaged: status.json says finished but metrics.json is missing"
        if state == "broken":
            return f"is damaged ({status['error']})"
        if state == "unknown":
            return "has no status.json, so it never finished (or the folder is damaged)"
        return f"is {state}, not finished"

    def history(self) -> list[dict]:
        file = self.path / "history.jsonl"
        if not file.exists():
            return []
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunError(f"{file} is corrupt ({exc})", hint="delete the run folder or retrain it") from None
        rows, line, why = history_rows(text)
        if why:
            raise RunError(f"{file}:{line}: {why}", hint="delete the run folder or retrain it")
        return rows

    def set_status(self, state: str, **extra) -> None:
        owner = runlock.owner() if state == "running" else {}  # who runs it, so a dead run reads interrupted
        atomic.write_json(self.path / "status.json", {"state": state, "time": time.time(), **owner, **extra})

    def record_digests(self, *names: str) -> None:
        """Record the sha256 of files just written into digests.json; ``verify`` checks them on load."""
        digests = self._digests()
        digests.update({name: file_digest(self.path / name) for name in names})
        atomic.write_json(self.path / "digests.json", digests)

    def _digests(self) -> dict:
        try:
            return self._json("digests.json")
        except RunError:
            return {}  # a damaged record is rebuilt by the next write; verify() reports it

    def verify(self, *names: str) -> None:
        """RunError naming the file when it differs from the digest recorded at write time (all when no names)."""
        recorded = self._json("digests.json")
        for name in names or tuple(recorded):
            want = recorded.get(name)
            if not isinstance(want, str):
                continue  # written before digests were recorded, or not recorded for this run
            file = self.path / name
            if not file.is_file():
                hint = resume_hint(self)
                raise RunError(f"{file} is {'not a file' if file.exists() else 'missing'}",
                               hint=hint if hint.startswith("the run folder is damaged") else
                               f"the run folder is damaged; {hint}")
            try:
                got = file_digest(file)
            except OSError as exc:
                raise RunError(f"{file} cannot be read ({exc.strerror})", hint=resume_hint(self)) from None
            if got != want:
                raise RunError(f"{file} was changed or damaged after it was written (sha256 {got[:12]}..., "
                               f"recorded {want[:12]}... in digests.json)",
                               hint="restore the file from a backup, or retrain the run; mmzoo does not load "
                                    "weights or predictions that differ from what training wrote")

    def probabilities(self, split: str):
        """(probs (N, C) float32, labels (N,) int64, ids list) from probs_<split>.safetensors."""
        from safetensors import safe_open
        from safetensors.numpy import load_file

        file = self.path / f"probs_{split}.safetensors"
        if not file.exists():
            raise RunError(f"{self.name} has no {split} predictions ({file.name} missing); is the run finished?")
        self.verify(file.name)
        try:
            arrays = load_file(str(file))
            with safe_open(str(file), "np") as fh:
                meta = fh.metadata() or {}
            probs, labels, ids = arrays["probs"], arrays["labels"], json.loads(meta.get("ids", "[]"))
            if probs.ndim != 2 or labels.shape != (len(probs),) or (ids and len(ids) != len(probs)):
                raise ValueError(f"probs {probs.shape}, labels {labels.shape}, {len(ids)} ids do not line up")
        except Exception as exc:  # safetensors raises its own error types for truncated files
            raise RunError(f"{file} is damaged ({' '.join(str(exc).split())[:200]})",
                           hint=f"retrain {self.name}" + (" (rebuild the ensemble)" if self._is_ensemble() else "")
                           ) from None
        return probs, labels, ids

    def _is_ensemble(self) -> bool:
        try:
            return self.spec.get("kind") == "ensemble"
        except RunError:
            return False


BROKEN_HINT = "restore the file from a backup, or delete the run folder; `mmzoo runs` lists it as broken"


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def resume_hint(run: Run) -> str:
    """The command that continues or rebuilds an unfinished run (model, member or ensemble)."""
    try:
        spec = run.spec
    except RunError:
        return f"the run folder is damaged; delete {run.path} and train again"
    root = run.path.parent.parent
    out = "" if root.resolve() == DEFAULT_ROOT.resolve() else f" --out {root}"
    if spec.get("kind") == "ensemble":
        ens = spec["ensemble"]
        combiner = spec["combiner"]["name"]
        recipe = ens.get("recipe") if isinstance(ens.get("recipe"), dict) else {}
        if "runs" in recipe:
            return (f"rebuild it with `mmzoo ensemble --runs {' '.join(map(str, recipe['runs']))} --combiner "
                    f"{combiner} --name {ens.get('name', run.model)}{out}`")
        return (f"rebuild it with `mmzoo ensemble {ens.get('name', run.model)} --combiner {combiner}{out}`; its "
                "finished members are reused and an interrupted member resumes")
    member_of = spec.get("member_of") if isinstance(spec.get("member_of"), dict) else {}
    if spec.get("resample") is not None and member_of.get("ensemble"):
        return (f"it trained on resampled data for ensemble {member_of['ensemble']}; resume it with "
                f"`mmzoo ensemble {member_of['ensemble']}{out}`")
    return f"resume it with `mmzoo train --resume {run.path}`"


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


def _kind_or_none(run: Run) -> str | None:
    """A run's kind, or None when its spec.yaml cannot be read (a broken run is listed, not classified)."""
    try:
        return run_kind(run.spec)
    except (RunError, OSError, ValueError, AttributeError, TypeError):
        return None


def _changed(params: dict) -> set[str]:
    """Combiner params that differ from the installed combiner's defaults (all of them if it is unknown)."""
    try:
        from mmzoo.zoo.plugins import get_zoo

        part = get_zoo().get("combiner", params.get("name", ""))
    except Exception:  # listing runs must not fail on a broken plugin
        part = None
    defaults = part.defaults() if part is not None else {}
    return {k for k, v in params.items() if defaults.get(k, object()) != v}


def summary_row(run: Run) -> dict:
    """One line of `mmzoo runs`: a broken folder is a row with its path and reason, not an exception."""
    problem = run.problem
    if problem:
        return {"run": run.name, "kind": "", "state": "broken", "dataset": "", "test_accuracy": None, "test_macro_f1": None,
                "train_seconds": None, "path": str(run.path), "error": problem}
    status = run.status
    metrics = run.metrics if run.finished else {}
    test = metrics.get("test", {}) if isinstance(metrics.get("test"), dict) else {}
    row = {"run": run.name, "kind": run_kind(run.spec), "state": status.get("state"),
           "dataset": run.spec["data"]["dataset"],
           "test_accuracy": test.get("accuracy"), "test_macro_f1": test.get("macro_f1", test.get("f1")),  # token runs: entity F1
           "train_seconds": metrics.get("train_seconds")}
    if row["state"] == "interrupted":
        row["hint"] = resume_hint(run)
    return row


def new_run(model: str, root: Path | None = None) -> Run:
    from mmzoo.names import problem

    if problem(model):  # a run folder is always one safe name under root, never '../x' or '/x'
        raise RunError(f"run folder name {problem(model)}", hint="rename the model or ensemble in registry.yaml")
    root = Path(root or DEFAULT_ROOT)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / model / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            runlock.sweep_runs(root)  # temp files that killed writers left in any run folder here
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
    return sorted(runs, key=lambda r: (r.model, _id_key(r.id)))


def _id_key(run_id: str) -> list:
    """Run ids in time order: 20260101-120000-10 after 20260101-120000-9."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[-_.]", run_id)]


def find_run(ref: str, root: Path | None = None, newest: str = "finished") -> Run:
    """A run by folder path, ``model/id``, ``model`` or a unique id.

    A model name means its newest finished run (``newest="finished"``), or its newest unfinished
    one (``"unfinished"``, for resuming); the newest run of any state when there is none such.
    """
    path = Path(ref)
    if (path / "spec.yaml").exists():
        return Run(path)
    runs = list_runs(root)
    hits = [r for r in runs if r.name == ref or r.id == ref]
    if not hits:
        hits = [r for r in runs if r.model == ref]
        # Runs of one name made from different specs (an ensemble refit with another combiner) are
        # ambiguous: say so rather than silently take the newest.
        kinds = {r.name: _kind_or_none(r) for r in hits}
        if len(set(kinds.values()) - {None}) > 1:
            listing = ", ".join(f"{r.name} ({kinds[r.name]})" for r in hits[-6:] if kinds[r.name])
            raise RunError(f"{ref!r} names {len(hits)} runs of different kinds: {listing}",
                           hint="name one as model/run-id")
        wanted = [r for r in hits if r.finished == (newest == "finished")]
        hits = (wanted or hits)[-1:]
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
        if run.model != model_spec["name"] or not run.finished or run.problem:
            continue
        if run.run_spec.matches(model_spec, fingerprint, run.run_spec.resample):
            return run
    return None
