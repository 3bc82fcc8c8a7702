"""Provides distillation as a use case: a registry model trained on an ensemble run's soft labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmzoo.app.train import Overrides, prepare_spec


def distill_from_run(ensemble: str | Path, student: str | dict, overrides: Overrides | None = None, *,
                     temperature: float, alpha: float, augment: str = "none", registry: str | None = None,
                     out: Path | None = None, device: str = "auto", threads: int | None = None,
                     on_event: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
                     quiet: bool = False, warm_start: bool | None = None):
    """Distil the finished ensemble run ``ensemble`` (folder, model/id or name) into ``student``; returns the run.

    ``warm_start``: True starts from the ensemble's member with the student's spec, False from scratch, None
    (the default) from that member when there is one.

    Raises Cancelled when stopped; the run then resumes like any other (``train_model(resume=...)``).
    """
    from mmzoo.ensemble.distill import check_settings, check_teacher, distill
    from mmzoo.runs.folders import find_run

    check_settings(temperature, alpha, augment)
    teacher = find_run(str(ensemble), out)
    check_teacher(teacher)  # before the student is looked up: the teacher is the likelier mistake
    spec = prepare_spec(student, overrides, registry)
    return distill(teacher, spec, temperature=temperature, alpha=alpha, augment=augment, out=out, device=device,
                   quiet=quiet, threads=threads, on_event=on_event, should_stop=should_stop,
                   warm_start=warm_start)


def student_choices(ensemble_path: Path, models) -> list[str]:
    """Of ``models`` (valid registry Entries), those that learn the ensemble run's dataset and label set."""
    from mmzoo.runs.folders import Run

    data = Run(Path(ensemble_path)).spec.get("data", {})
    names = []
    for entry in models:
        task = (entry.spec or {}).get("task", {})
        if task.get("type", "classification") != "classification" or task.get("dataset") != data.get("dataset"):
            continue
        if task.get("label_set") in (None, data.get("label_set")):
            names.append(entry.name)
    return names
