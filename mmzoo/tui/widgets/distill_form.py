"""Provides the distil dialog: a student model from the zoo, temperature, alpha and augmentation for an ensemble run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

AUGMENTS = ("none", "shift", "noise", "mixup", "swap", "shift+swap", "shift+noise", "mixup+swap")
# the dialog's "start from" choices and what each asks of distill_from_run's warm_start
STARTS = {"auto": ("the member's weights when it is a member", None), "member": ("the member's weights", True),
          "scratch": ("scratch", False)}


@dataclass
class DistillChoice:
    """What the dialog returns: the arguments of mmzoo.app.distill.distill_from_run."""

    ensemble: Path
    student: str
    temperature: float
    alpha: float
    augment: str
    warm_start: bool | None = None


def read_settings(temperature: str, alpha: str) -> tuple[tuple[float, float] | None, list[str]]:
    """(temperature, alpha) parsed from the form's text, or None with what is wrong."""
    problems = []
    try:
        t = float(temperature)
        if not t > 0:
            raise ValueError
    except ValueError:
        t = None
        problems.append(f"temperature must be a positive number, got {temperature!r}")
    try:
        a = float(alpha)
        if not 0.0 <= a <= 1.0:
            raise ValueError
    except ValueError:
        a = None
        problems.append(f"alpha must be a number from 0 to 1, got {alpha!r}")
    return (None if problems else (t, a)), problems


class DistillDialog(ModalScreen[DistillChoice | None]):
    """Distil one finished ensemble run; enter or Start starts it on the Train screen, escape closes."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, ensemble: Path, students: list[str], student: str | None, *, temperature: float,
                 alpha: float, augment: str, warm_start: bool | None = None) -> None:
        super().__init__(classes="confirm-screen")
        self.ensemble, self.students = ensemble, students
        self.student = student if student in students else (students[0] if students else None)
        self.defaults = (temperature, alpha, augment, warm_start)

    def compose(self) -> ComposeResult:
        temperature, alpha, augment, warm_start = self.defaults
        with Vertical(id="distill"):
            yield Static(f"Distil {self.ensemble.parent.name}/{self.ensemble.name} into one model: soft labels "
                         "from the train split only", id="distill-title", markup=False)
            with Horizontal(classes="distill-row"):
                yield Label("student", classes="distill-label")
                yield Select([(s, s) for s in self.students], value=self.student or Select.BLANK,
                             allow_blank=not self.students, compact=True, id="distill-student")
            with Horizontal(classes="distill-row"):
                yield Label("temperature", classes="distill-label")
                yield Input(f"{temperature:g}", compact=True, id="distill-temperature")
            with Horizontal(classes="distill-row"):
                yield Label("alpha", classes="distill-label")
                yield Input(f"{alpha:g}", compact=True, id="distill-alpha")
            with Horizontal(classes="distill-row"):
                yield Label("augment", classes="distill-label")
                yield Select([(a, a) for a in AUGMENTS], value=augment if augment in AUGMENTS else "none",
                             allow_blank=False, compact=True, id="distill-augment")
            with Horizontal(classes="distill-row"):
                yield Label("start from", classes="distill-label")
                start = next(key for key, (_, value) in STARTS.items() if value is warm_start)
                yield Select([(text, key) for key, (text, _) in STARTS.items()], value=start,
                             allow_blank=False, compact=True, id="distill-start-from")
            yield Static("", id="distill-message", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Start", id="distill-start", variant="primary", compact=True)
                yield Button("Close", id="distill-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#distill-message", Static).display = False
        self.query_one("#distill-student", Select).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "distill-start":
            self.action_start()
        else:
            self.action_close()

    def on_input_submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        message = self.query_one("#distill-message", Static)
        settings, problems = read_settings(self.query_one("#distill-temperature", Input).value,
                                           self.query_one("#distill-alpha", Input).value)
        student = self.query_one("#distill-student", Select).value
        if not isinstance(student, str):
            problems.append("no registry model learns this ensemble's data: add one to registry.yaml")
        if settings is None or problems:
            message.update("\n".join(problems))
            message.display = True
            return
        self.dismiss(DistillChoice(self.ensemble, student, *settings,
                                   str(self.query_one("#distill-augment", Select).value),
                                   STARTS[str(self.query_one("#distill-start-from", Select).value)][1]))

    def action_close(self) -> None:
        self.dismiss(None)


def best_member_model(ensemble: Path) -> str | None:
    """The registry model of the ensemble's best member (picked on val when it was built): the default student."""
    from mmzoo.errors import MmzooError
    from mmzoo.runs.folders import Run

    try:
        run = Run(ensemble)
        best = run.metrics.get("best_member")
        for member in run.spec.get("members", []):
            if best in (member.get("name"), member.get("path")) or str(member.get("path", "")).endswith(str(best)):
                return Run(Path(member["path"])).spec["model"]["name"]
    except (MmzooError, OSError, KeyError, TypeError, ValueError):
        return None
    return None


def open_distill(screen, ensemble: Path) -> None:
    """Ask for the distillation settings of ``ensemble`` over ``screen``; on Start, post a DistillRequested."""
    from mmzoo.app.distill import student_choices
    from mmzoo.ensemble.distill import (
        DEFAULT_ALPHA,
        DEFAULT_AUGMENT,
        DEFAULT_TEMPERATURE,
        DEFAULT_WARM_START,
        check_teacher,
    )
    from mmzoo.errors import MmzooError
    from mmzoo.runs.folders import Run
    from mmzoo.tui.messages import DistillRequested

    catalog = screen.app.catalog
    try:
        check_teacher(Run(ensemble))
        students = student_choices(ensemble, [e for e in catalog.entries("model") if e.ok])
    except (MmzooError, OSError) as exc:
        screen.notify(f"cannot distil {ensemble.parent.name}/{ensemble.name}: {exc}", title="run error",
                      severity="error", markup=False)
        return

    def chosen(choice: DistillChoice | None) -> None:
        if choice is not None:
            screen.post_message(DistillRequested(choice))

    screen.app.push_screen(DistillDialog(ensemble, students, best_member_model(ensemble),
                                         temperature=DEFAULT_TEMPERATURE, alpha=DEFAULT_ALPHA,
                                         augment=DEFAULT_AUGMENT, warm_start=DEFAULT_WARM_START), chosen)
