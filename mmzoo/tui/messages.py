"""Provides the TUI's domain messages: what screens tell each other and the app, not raw events."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class RunSelected(Message):
    """The user highlighted a run; other screens (export) default to it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class TrainRequested(Message):
    """Open the train screen with this model or ensemble picked (from the palette or the zoo)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ResumeRequested(Message):
    """Continue an interrupted run from its last complete checkpoint."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class DistillRequested(Message):
    """Distil an ensemble run into one model on the train screen (``choice``: a widgets.distill_form.DistillChoice)."""

    def __init__(self, choice) -> None:
        super().__init__()
        self.choice = choice


class ExportRequested(Message):
    """Open the export screen on this run."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class AnalyseRequested(Message):
    """Open the error-analysis screen on this run."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class RunsRequested(Message):
    """Open the runs screen filtered to this text (a zoo entry's past runs)."""

    def __init__(self, query: str) -> None:
        super().__init__()
        self.query = query


class TrainingEvent(Message):
    """One progress event from the trainer ({"type": "start"|"step"|"epoch", ...}), sent from its thread."""

    def __init__(self, event: dict) -> None:
        super().__init__()
        self.event = event


class TrainingEnded(Message):
    """Training stopped: outcome is "finished", "cancelled" or "failed"; message is what to tell the user."""

    def __init__(self, outcome: str, message: str, title: str = "", run_path: Path | None = None) -> None:
        super().__init__()
        self.outcome = outcome
        self.message = message
        self.title = title
        self.run_path = run_path


class RunsChanged(Message):
    """A run was created or finished, so run listings are stale."""


class ModelBuilt(Message):
    """A registry model was built off the UI thread: its parameter count and weight availability."""

    def __init__(self, name: str, info: dict) -> None:
        super().__init__()
        self.name = name
        self.info = info
