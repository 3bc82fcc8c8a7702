"""Provides ensembles as use cases: a registry ensemble (members trained or reused) or one of finished runs.

``ensemble_from_registry`` is the one implementation behind `mmzoo ensemble NAME`, `mmzoo demo` and the
TUI, so each of them reports progress the same way and can stop between and within members.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmzoo.app.train import Overrides, check_task
from mmzoo.errors import RegistryError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class EnsembleResult:
    run: object  # the ensemble's Run
    obtained: object  # mmzoo.ensemble.recipes.Obtained: member runs, which were reused, notes
    tokens: bool = False  # a token-classification (NER) ensemble: word-level combining, entity metrics


def _build(spec: dict, obtained, out) -> EnsembleResult:
    """Fit the combiner and write the ensemble run: per word for token runs, per sample otherwise."""
    from mmzoo.tokens.report import is_token_run

    if any(is_token_run(r) for r in obtained.runs):
        from mmzoo.tokens.ensemble import build_token_ensemble

        return EnsembleResult(build_token_ensemble(spec, obtained.runs, root=out, notes=obtained.notes), obtained,
                              tokens=True)
    from mmzoo.ensemble.build import build_ensemble

    run = build_ensemble(spec, obtained.runs, root=out, notes=obtained.notes, boosting=obtained.boosting)
    return EnsembleResult(run, obtained)


def combiner_needs_recipe_weights(name: str) -> bool:
    """Whether a registered combiner takes its member weights from a boosting recipe (imports its class)."""
    from mmzoo.zoo.plugins import get_zoo

    part = get_zoo().get("combiner", name)
    return bool(part and getattr(part.load(), "weights_from_recipe", False))


def _check_recipe_weights(combiner: dict, where: str) -> None:
    if combiner_needs_recipe_weights(combiner["name"]):
        raise RegistryError(f"{where}: combiner {combiner['name']!r} needs the member weights (alphas) of a "
                            "boosting recipe", hint="use it with a `boosting:` ensemble, or pick another combiner")


def ensemble_from_registry(name: str, overrides: Overrides | None = None, executor=None,
                           on_event: Callable[[dict], None] | None = None,
                           should_stop: Callable[[], bool] | None = None, *, registry: str | None = None,
                           out: Path | None = None, device: str = "auto", combiner: str | None = None,
                           quiet: bool | None = None) -> EnsembleResult:
    """Train or reuse a registry ensemble's members, fit its combiner on val, and write the ensemble run.

    Progress arrives at ``on_event`` as ``{"type": "log", "text": ...}`` lines plus the trainer's own
    events for each member; ``should_stop`` cancels between members and at any training step.
    """
    from mmzoo.ensemble.build import combiner_spec
    from mmzoo.ensemble.members import Control
    from mmzoo.ensemble.recipes import obtain_members
    from mmzoo.train.factory import resolve_spec
    from mmzoo.zoo.registry import load_registry

    entry = load_registry(registry).get(name)
    if entry.kind != "ensemble":
        known = ", ".join(e.name for e in load_registry(registry).ensembles()) or "none"
        raise RegistryError(f"{name!r} is a model, not an ensemble",
                            hint=f"train it with `mmzoo train {name}`; ensembles: {known}")
    if not entry.ok:
        raise RegistryError(f"ensemble {entry.name!r} is invalid:\n" + "\n".join(f"  {p}" for p in entry.problems))
    spec = copy.deepcopy(entry.spec)
    if combiner:
        spec["combiner"] = combiner_spec(combiner)  # NAME or NAME:key=value,...
        if spec["combiner"] != entry.spec["combiner"]:
            # A refit with another combiner is another ensemble: its runs live apart from the registry's own.
            spec["name"] = refit_name(entry.name, spec["combiner"])
    overrides = overrides or Overrides()
    if overrides.dataset:
        spec["name"] = f"{spec['name']}.{re.sub(r'[^A-Za-z0-9_.-]+', '-', Path(overrides.dataset).name).strip('-.')}"
    if "boosting" not in spec["recipe"]:
        _check_recipe_weights(spec["combiner"], f"ensemble {entry.name!r}")
    checked: set[str] = set()

    def resolve(model: str) -> dict:
        member = overrides.apply(resolve_spec(model, registry))
        if model not in checked:
            check_task(member)
            checked.add(model)
        return member

    control = Control(say=lambda text: _emit(on_event, text), on_event=on_event, should_stop=should_stop,
                      quiet=quiet)
    obtained = obtain_members(spec, resolve=resolve, out=out, device=device, executor=executor, control=control)
    control.check_stop("fitting the combiner")
    return _build(spec, obtained, out)


def refit_name(ensemble: str, combiner: dict) -> str:
    """Run folder name of a refit: ``NAME.COMBINER``, plus a short hash when params differ from defaults."""
    import hashlib

    from mmzoo.ensemble.build import combiner_label

    label = combiner_label(combiner)
    if label == combiner["name"]:
        return f"{ensemble}.{combiner['name']}"
    return f"{ensemble}.{combiner['name']}-{hashlib.sha256(label.encode()).hexdigest()[:6]}"


def ensemble_from_runs(refs: list[str], combiner: str | None = None, name: str | None = None, *,
                       out: Path | None = None) -> EnsembleResult:
    """Combine finished runs (same dataset and label set) with a combiner fitted on their val predictions."""
    from mmzoo.ensemble.build import combiner_spec
    from mmzoo.ensemble.members import Obtained
    from mmzoo.runs.folders import find_run

    if len(refs) < 2:
        raise RegistryError(f"--runs needs at least two runs to combine, got {len(refs)}",
                            hint="list the runs with `mmzoo runs`")
    spec_combiner = combiner_spec(combiner or "mean")
    _check_recipe_weights(spec_combiner, "--runs")
    name = name or f"adhoc-{spec_combiner['name']}"
    if not SAFE_NAME.fullmatch(name):
        raise RegistryError(f"--name {name!r} cannot be a folder name", hint="use letters, digits, '_', '.' and '-' only")
    runs = [find_run(ref, out) for ref in refs]
    spec = {"name": name, "kind": "ensemble", "description": f"after-the-fact ensemble of {len(runs)} runs",
            "recipe": {"runs": [r.name for r in runs]}, "combiner": spec_combiner}
    return _build(spec, Obtained(runs, [True] * len(runs), [""] * len(runs)), out)


def _emit(on_event: Callable[[dict], None] | None, text: str) -> None:
    if on_event is None:
        import sys

        print(text, file=sys.stderr)
    else:
        on_event({"type": "log", "text": text})


def summarise(result: EnsembleResult) -> dict:
    """The ensemble run as data: members (trained or reused), scores on val and test, diversity."""
    run, obtained = result.run, result.obtained
    spec, metrics = run.spec, run.metrics
    members = []
    for member, reused, entry in zip(obtained.runs, obtained.reused, spec["members"], strict=True):
        members.append({"name": member.name, "path": str(member.path), "reused": reused,
                        "note": entry.get("weight_note", ""), **metrics["members"][member.name]})
    keys = ("accuracy", "macro_f1", "weighted_f1", "ece", "nll")
    report = {"run": run.name, "path": str(run.path), "ensemble": spec["ensemble"]["name"],
              "combiner": spec["combiner"], "dataset": spec["data"]["dataset"], "label_set": spec["data"]["label_set"],
              "members": members, "trained": [m["name"] for m in members if not m["reused"]],
              "reused": [m["name"] for m in members if m["reused"]],
              **{split: {k: metrics[split][k] for k in keys} for split in ("val", "test")},
              "val_note": metrics["val_note"], "best_member": metrics["best_member"],
              "beat_best_member": metrics["beat_best_member"], "diversity": metrics["diversity"]}
    if "boosting" in metrics:
        report["boosting"] = metrics["boosting"]
    return report
