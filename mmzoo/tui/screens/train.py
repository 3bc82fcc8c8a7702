"""Provides the train screen: the form, then training in a thread worker with live progress, curves and a log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Log, ProgressBar, Static

from mmzoo.app.train import Overrides
from mmzoo.errors import MmzooError
from mmzoo.tui.messages import RunsChanged, RunSelected, TrainingEnded, TrainingEvent
from mmzoo.tui.widgets.curves import CurvesPlot, ema
from mmzoo.tui.widgets.train_form import TrainForm

# What an epoch event may carry for validation, and how the log and the plot name it.
VAL_FIGURES = (("val_accuracy", "accuracy"), ("val_macro_f1", "macro-F1"), ("val_entity_f1", "entity F1"))

class TrainScreen(Screen):
    """Train a registry model or ensemble; the other screens keep working while it runs."""

    BINDINGS = [
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("s", "start", "Start"),
        Binding("c", "cancel", "Cancel"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()
        self.running = False
        self.epochs: int | None = None  # how many epochs the current run trains for, when known
        self.run_path: Path | None = None
        self.losses: tuple[list[float], list[float]] = ([], [])  # (fractional epoch, step loss)
        self.history: list[dict] = []
        self.drawn_at = 0.0  # time.monotonic() of the last plot redraw
        self.member = ""  # "member X of Y · " while an ensemble trains its members

    def action_leave_field(self) -> None:
        """Escape leaves a text field, so letters work as screen keys again."""
        self.set_focus(None)

    def compose(self) -> ComposeResult:
        catalog = self.app.catalog
        yield Header()
        yield TrainForm(catalog.trainable(), catalog.zoo.names("dataset"), id="train-form")
        yield Static("", id="train-message")
        with Horizontal(id="train-progress-row"):
            yield ProgressBar(total=1, show_eta=False, id="train-progress")
            yield Static("idle", id="train-status")
        with Horizontal(id="train-plots"):
            yield CurvesPlot("train loss", id="loss-plot")
            yield CurvesPlot("validation", bounds=(0.0, 1.0), id="metric-plot")
        yield Log(id="train-log", max_lines=500)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Train"

    @property
    def form(self) -> TrainForm:
        return self.query_one(TrainForm)

    def pick(self, name: str) -> None:
        self.form.pick(name)

    def catalog_changed(self) -> None:
        catalog = self.app.catalog
        self.form.set_entries(catalog.trainable(), catalog.zoo.names("dataset"))

    # -- starting ----------------------------------------------------------------------------------------------

    @on(Button.Pressed, "#train-start")
    @on(Input.Submitted)
    def action_start(self) -> None:
        if self.running:
            self.notify("a run is already training; cancel it first", severity="warning")
            return
        overrides, problems = self.form.read()
        message = self.query_one("#train-message", Static)
        message.update("\n".join(problems))
        message.display = bool(problems)
        if overrides is None:
            self.notify("\n".join(problems), title="check the form", severity="error", markup=False)
            return
        entry = self.app.catalog.entry(self.form.model)
        self.begin(f"training {entry.name}", overrides.epochs)
        if entry.kind == "ensemble":
            target = lambda: self._train_ensemble(entry, overrides)  # noqa: E731
        else:
            target = lambda: self._train_model(entry.spec, overrides)  # noqa: E731
        self.run_worker(target, thread=True, group="training", exit_on_error=False)

    @on(Input.Changed)
    def _revalidate(self) -> None:
        """Once problems are shown, they follow the form: fixed fields drop out, and no stale message stays."""
        message = self.query_one("#train-message", Static)
        if not message.display:
            return
        _, problems = self.form.read()
        message.update("\n".join(problems))
        message.display = bool(problems)

    def resume(self, path: Path) -> None:
        """Continue an interrupted run from its last complete checkpoint."""
        if self.running:
            self.notify("a run is already training; cancel it first", severity="warning")
            return
        from mmzoo.runs.folders import Run

        try:
            epochs = Run(path).spec["model"]["train"]["epochs"]
        except (MmzooError, OSError, KeyError, TypeError) as exc:
            self.notify(f"cannot resume {path}: {exc}", title="run error", severity="error", markup=False)
            return
        self.begin(f"resuming {path.parent.name}/{path.name}", epochs)
        self.run_worker(lambda: self._train_model(None, None, resume=path), thread=True, group="training",
                        exit_on_error=False)

    def distill(self, choice) -> None:
        """Distil an ensemble run (a DistillChoice from the runs screen) through mmzoo.app.distill, as the CLI does."""
        if self.running:
            self.notify("a run is already training; cancel it first", severity="warning")
            return
        entry = self.app.catalog.entry(choice.student)
        if entry is not None:
            self.form.pick(choice.student)  # the form shows the model being trained
        epochs = entry.spec["train"]["epochs"] if entry is not None and entry.spec else None
        self.begin(f"distilling {choice.ensemble.parent.name} into {choice.student} (T {choice.temperature:g}, "
                   f"alpha {choice.alpha:g}, augment {choice.augment}"
                   + {True: ", from the member's weights", False: ", from scratch", None: ""}[choice.warm_start] + ")",
                   epochs)
        self.run_worker(lambda: self._distill(choice), thread=True, group="training", exit_on_error=False)

    def begin(self, what: str, epochs: int | None) -> None:
        self.running = True
        self.epochs = epochs
        self.stop.clear()
        self.run_path = None
        self.member = ""
        self.losses, self.history = ([], []), []
        self.form.set_running(True)
        self.query_one("#train-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#train-status", Static).update(what)
        self.query_one("#train-log", Log).write_line(what)
        self.redraw()

    # -- the worker thread -------------------------------------------------------------------------------------

    def _train_model(self, spec: dict | None, overrides: Overrides | None, resume: Path | None = None) -> None:
        """Runs in a thread: train (or resume) one model, reporting through messages only."""
        from mmzoo.app.train import train_model

        def work():
            run = train_model(spec, overrides, registry=self.app.registry_file, out=self.app.runs_dir,
                              resume=resume, on_event=self._post_event, should_stop=self.stop.is_set, quiet=True)
            return run, "training finished"

        self._report(work, "training crashed")

    def _train_ensemble(self, entry, overrides: Overrides) -> None:
        """Runs in a thread: train or reuse the members (as `mmzoo ensemble NAME` does), then fit the combiner."""
        from mmzoo.app.ensemble import ensemble_from_registry

        def work():
            result = ensemble_from_registry(entry.name, overrides, on_event=self._post_event,
                                            should_stop=self.stop.is_set, registry=self.app.registry_file,
                                            out=self.app.runs_dir, quiet=True)
            return result.run, "ensemble finished"

        self._report(work, "ensemble crashed")

    def _distill(self, choice) -> None:
        """Runs in a thread: train the student on the ensemble's soft labels, reporting through messages only."""
        from mmzoo.app.distill import distill_from_run

        def work():
            run = distill_from_run(choice.ensemble, choice.student, temperature=choice.temperature,
                                   alpha=choice.alpha, augment=choice.augment, warm_start=choice.warm_start,
                                   registry=self.app.registry_file,
                                   out=self.app.runs_dir, on_event=self._post_event, should_stop=self.stop.is_set,
                                   quiet=True)
            return run, "distillation finished"

        self._report(work, "distillation crashed")

    def _post_event(self, event: dict) -> None:
        self.post_message(TrainingEvent(event))

    def _report(self, work, crash_title: str) -> None:
        """Run ``work`` and turn its outcome (run, cancel, user error, bug) into one TrainingEnded message."""
        from mmzoo.train.trainer import Cancelled

        try:
            run, title = work()
        except Cancelled as exc:
            # The trainer's hint names the CLI; in the TUI the run resumes from the Runs screen.
            self.post_message(TrainingEnded("cancelled", f"{exc.message}\nto continue it: Runs (r), pick the "
                                            "run, then u (Resume); an ensemble resumes its member when started "
                                            "again", "training cancelled"))
        except MmzooError as exc:
            self.post_message(TrainingEnded("failed", str(exc), exc.title))
        except Exception as exc:  # an unexpected bug must reach the user as a message, not kill the app
            self.post_message(TrainingEnded("failed", f"{type(exc).__name__}: {exc}", crash_title))
        else:
            test = run.metrics["test"]
            self.post_message(TrainingEnded("finished", f"{run.name}: test accuracy {test['accuracy']:.4f}, "
                                            f"macro-F1 {test['macro_f1']:.4f}", title, run.path))

    # -- progress ----------------------------------------------------------------------------------------------

    def on_training_event(self, message: TrainingEvent) -> None:
        event, log = message.event, self.query_one("#train-log", Log)
        kind = event["type"]
        if kind == "log":
            log.write_line(event["text"])
        elif kind == "start":
            from mmzoo.runs.folders import Run

            self.run_path = Path(event["path"])
            run = Run(self.run_path)
            # A resumed run already has epochs behind it: its curves start from epoch 1, not the resume point.
            # An ensemble member starts its own curves, so the plots follow whichever member is training.
            try:
                self.history = run.history()
            except MmzooError as exc:  # a damaged history.jsonl: the curves start afresh, training goes on
                self.history = []
                self.notify(f"{run.name}: earlier curves not shown: {exc}", severity="warning", markup=False)
            self.losses = ([float(h["epoch"]) for h in self.history], [h["loss"] for h in self.history])
            try:
                self.epochs = run.spec["model"]["train"]["epochs"]
            except (KeyError, TypeError, OSError, MmzooError):
                pass
            member = run.spec.get("member_of", {}).get("ensemble") if isinstance(run.spec, dict) else None
            self.member = f"member {run.model} of {member} · " if member else ""
            teacher = run.spec.get("teacher") if isinstance(run.spec, dict) else None
            if isinstance(teacher, dict):  # a distilled run: say whose student it is
                self.member = f"student of {str(teacher.get('run', '?')).split('/')[0]} · "
            self.query_one("#train-status", Static).update(f"{self.member}starting {run.name}")
            log.write_line(f"run {event['run']} -> {event['path']}")
            self.redraw()
            self.post_message(RunsChanged())
        elif kind == "step":
            steps, epoch = event["steps"], event["epoch"]
            bar = self.query_one("#train-progress", ProgressBar)
            bar.update(total=steps * max(self.epochs or epoch, epoch), progress=(epoch - 1) * steps + event["step"])
            self.losses[0].append(epoch - 1 + event["step"] / steps)
            self.losses[1].append(event["loss"])
            self.query_one("#train-status", Static).update(
                f"{self.member}epoch {epoch} · step {event['step']}/{steps} · loss {event['loss']:.4f}")
            # Plotting is pure Python and shares the GIL with the training thread: redraw at most once a second.
            if time.monotonic() - self.drawn_at >= 1.0:
                self.redraw()
        elif kind == "epoch":
            self.history.append(event)
            scores = "  ".join(f"{label} {event[key]:.4f}" for key, label in VAL_FIGURES if key in event)
            log.write_line(f"epoch {event['epoch']:3d}  loss {event['loss']:.4f}  {scores}  "
                           f"({event.get('seconds', 0.0):.1f}s)")
            self.redraw()

    def redraw(self) -> None:
        self.drawn_at = time.monotonic()
        xs, ys = self.losses
        self.query_one("#loss-plot", CurvesPlot).set_series([("loss", xs, ys), ("EMA", xs, ema(ys))])
        epochs = [h["epoch"] for h in self.history]
        # Classifiers report val accuracy and macro-F1; token taggers (NER) report entity F1.
        self.query_one("#metric-plot", CurvesPlot).set_series([
            (label, epochs, [h[key] for h in self.history]) for key, label in VAL_FIGURES
            if self.history and all(key in h for h in self.history)])

    def on_training_ended(self, message: TrainingEnded) -> None:
        self.running = False
        self.form.set_running(False)
        severity = {"finished": "information", "cancelled": "warning"}.get(message.outcome, "error")
        self.query_one("#train-status", Static).update(f"{message.outcome}")
        if message.outcome == "finished":
            bar = self.query_one("#train-progress", ProgressBar)
            bar.update(total=bar.total or 1, progress=bar.total or 1)
        for line in message.message.splitlines():
            self.query_one("#train-log", Log).write_line(line)
        # An error stays up long enough to read its hint; success and cancel are plain news.
        self.notify(message.message, title=message.title, severity=severity, markup=False,
                    timeout=30 if severity == "error" else 8)
        self.post_message(RunsChanged())
        if message.run_path is not None:
            self.post_message(RunSelected(message.run_path))  # so Export offers the new run first

    # -- cancelling --------------------------------------------------------------------------------------------

    @on(Button.Pressed, "#train-cancel")
    def action_cancel(self) -> None:
        if not self.running:
            self.notify("nothing is training", severity="warning")
            return
        self.stop.set()
        self.query_one("#train-status", Static).update("cancelling after this step…")

    def on_unmount(self) -> None:
        # The trainer checks this every step, so a closing app stops the thread and keeps the checkpoint.
        self.stop.set()
