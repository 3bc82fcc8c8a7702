"""Provides the export screen: ONNX export (folder, precision, parity samples) with its parity result, a benchmark,
and torch-free predictions with the exported file of your choice."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.validation import Integer
from textual.widgets import Button, Footer, Header, Input, Label, Log, ProgressBar, Select, Static

from mmzoo.errors import ExportError, MmzooError
from mmzoo.runs.folders import Run
from mmzoo.tui.screens.export_support import dataset_ref, export_dir, onnx_files, open_image, parity_hint, short_summary
from mmzoo.tui.widgets.halfblock import HalfBlockImage
from mmzoo.tui.widgets.run_picker import FinishedRunPicker

PRECISIONS = ("fp32", "int8", "fp16")
TOP_K = 5


class ExportDone(Message):
    """A worker finished: ``what`` is "export", "bench" or "predict"; ``error`` is set when it failed."""

    def __init__(self, what: str, result: dict | None = None, error: str | None = None, title: str = "") -> None:
        super().__init__()
        self.what, self.result, self.error, self.title = what, result, error, title


class ExportLog(Message):
    """A progress line from a worker, for the log."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ExportScreen(FinishedRunPicker, Screen):
    """Pick a finished run; export it (fp32, int8 or fp16), benchmark it, and try predictions on the export."""

    RUN_SELECT = "#export-run"

    BINDINGS = [
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("x", "export", "Export"),
        Binding("b", "bench", "Benchmark"),
        Binding("p", "predict_sample", "Predict sample"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.busy = False
        self.run_paths: list[str] = []  # the finished runs offered, newest first

    def action_leave_field(self) -> None:
        """Escape leaves a text field, so letters work as screen keys again."""
        self.set_focus(None)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="form-row"):
            yield Label("run", classes="form-label")
            yield Select([], prompt="pick a finished run", id="export-run", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("precision", classes="form-label")
            yield Select([(p, p) for p in PRECISIONS], value="fp32", allow_blank=False, id="export-precision",
                         compact=True)
            yield Label("parity samples", classes="form-label")
            yield Input(placeholder="default", id="export-samples", validators=[Integer(minimum=1)], compact=True,
                        classes="form-number")
            yield Label("folder", classes="form-label")
            yield Input(placeholder="<run>/onnx", id="export-folder", compact=True)
            yield Button("Export", id="export-go", variant="primary", compact=True)
            yield Button("Bench", id="bench-go", compact=True)
        with Horizontal(id="export-progress-row"):
            yield ProgressBar(total=1, show_eta=False, id="export-progress")
            yield Static("", id="export-status")
        yield Static("no export yet", id="export-result")
        with Horizontal(classes="form-row"):
            yield Label("predict with", classes="form-label")
            yield Select([], prompt="no exported file yet", id="predict-file", compact=True)
            yield Label("test sample", classes="form-label")
            yield Input("0", id="predict-index", validators=[Integer(minimum=0)], compact=True, classes="form-number")
            yield Button("Predict sample", id="predict-sample-go", compact=True)
        with Horizontal(classes="form-row"):
            yield Label("text", classes="form-label")
            yield Input(placeholder="your text", id="predict-text", compact=True)
            yield Label("image", classes="form-label")
            yield Input(placeholder="path/to/image.png", id="predict-image", compact=True)
            yield Button("Predict", id="predict-go", compact=True)
        with Horizontal(id="predict-row"):
            yield HalfBlockImage(id="predict-picture")
            yield Static("", id="predict-topk")
        yield Log(id="export-log", max_lines=300)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Export / Predict"
        self.reload()

    @on(Select.Changed, "#export-run")
    def _run_changed(self) -> None:
        """Say whether the picked run already has an export, and what its parity check found."""
        run = self.run
        self.refresh_files()
        path = self.exported(run) if run is not None else None
        if path is None:
            self.query_one("#export-result", Static).update("no export yet" if run is None else
                                                            f"{escape(run.name)} has no export yet: press x")
            return
        from mmzoo.onnx.metadata import read

        try:
            parity = read(path).get("parity", {})
        except (MmzooError, OSError, ValueError) as exc:
            self.query_one("#export-result", Static).update(f"[$error]{escape(str(path))} is unreadable:[/] "
                                                            f"{escape(str(exc))}; press x to export again")
            return
        lines = [f"exported earlier: {escape(path.name)}"]
        lines += [escape(short_summary(precision, figures)) for precision, figures in parity.items()]
        self.query_one("#export-result", Static).update("\n".join(lines))

    @on(Input.Submitted, "#export-folder")
    def _folder_changed(self) -> None:
        self.refresh_files()

    @property
    def run(self) -> Run | None:
        value = self.query_one("#export-run", Select).value
        return Run(Path(value)) if isinstance(value, str) else None

    def _start(self, what: str, target) -> None:
        if self.busy:
            self.notify("wait for the current export, benchmark or prediction", severity="warning")
            return
        self.busy = True
        for button in self.query(Button):
            button.disabled = True
        self.query_one("#export-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#export-status", Static).update(what)
        self.query_one("#export-log", Log).write_line(what)
        self.run_worker(target, thread=True, group="export", exit_on_error=False)

    def _guarded(self, what: str, work) -> None:
        """Runs in a thread: do the work, report success or the user-facing error as a message."""
        try:
            result = work()
        except MmzooError as exc:
            self.post_message(ExportDone(what, error=str(exc), title=exc.title))
        except Exception as exc:  # a bug in export code must be a notification, not a crashed app
            self.post_message(ExportDone(what, error=f"{type(exc).__name__}: {exc}", title=f"{what} crashed"))
        else:
            self.post_message(ExportDone(what, result))

    def _say(self, text: str) -> None:
        self.post_message(ExportLog(text))

    # -- export and bench --------------------------------------------------------------------------------------

    @on(Button.Pressed, "#export-go")
    def action_export(self) -> None:
        run = self.run
        if run is None:
            self.notify("pick a finished run to export", severity="warning")
            return
        precision = self.query_one("#export-precision", Select).value
        samples_input = self.query_one("#export-samples", Input)
        samples_text = samples_input.value.strip()
        if samples_text and not samples_input.validate(samples_text).is_valid:
            self.notify("parity samples must be a whole number from 1 (empty: the export's default)",
                        severity="error")
            return
        options = {"samples": int(samples_text)} if samples_text else {}
        folder = self.output_folder(run)

        def work() -> dict:
            from mmzoo.onnx.export import export_run
            from mmzoo.tokens.report import is_token_run

            self._say(f"rebuilding {run.name} and tracing it to ONNX ({precision}) into {folder}")
            if is_token_run(run):  # a tagger or token ensemble: word probabilities, parity on val entity F1
                from mmzoo.tokens.export import export_token_run

                return export_token_run(run, folder, precision=precision, say=self._say)
            return export_run(run, folder, precision=precision, say=self._say, **options)

        self._start(f"exporting {run.name} ({precision})", lambda: self._guarded("export", work))

    @on(Button.Pressed, "#bench-go")
    def action_bench(self) -> None:
        run = self.run
        if run is None:
            self.notify("pick a finished run to benchmark", severity="warning")
            return

        def work() -> dict:
            from mmzoo.onnx.bench import render, run_bench
            from mmzoo.tokens.report import is_token_run

            if is_token_run(run):
                raise ExportError(f"{run.name} is a token (NER) run: the benchmark compares a classifier's "
                                  "export settings (fp32, int8, fp16), and token exports are fp32 only",
                                  hint="press x to export it, then predict your own text below")
            report = run_bench(run, repeats=10, batch_size=16, say=self._say)
            report["text"] = render(report)
            return report

        self._start(f"benchmarking {run.name}", lambda: self._guarded("bench", work))

    # -- predictions -------------------------------------------------------------------------------------------

    def output_folder(self, run: Run) -> Path:
        """The folder typed in the form (relative to the current folder), else the run's own onnx/."""
        typed = self.query_one("#export-folder", Input).value.strip()
        return Path(typed).expanduser() if typed else export_dir(run.path)

    def exported(self, run: Run) -> Path | None:
        """The newest exported file of this run (in its onnx/ or the chosen folder)."""
        files = self.files(run)
        return files[0] if files else None

    def files(self, run: Run) -> list[Path]:
        folders = [export_dir(run.path), self.output_folder(run)]
        return [f for f in onnx_files(folders) if f.stem == run.model or f.stem.startswith(f"{run.model}-")]

    def refresh_files(self, chosen: Path | None = None) -> None:
        """Offer the run's exported files to predict with, keeping (or setting) the choice."""
        select = self.query_one("#predict-file", Select)
        run = self.run
        files = self.files(run) if run is not None else []
        current = chosen or (Path(select.value) if isinstance(select.value, str) else None)
        select.set_options([(f.name, str(f)) for f in files])
        if files:
            select.value = str(current if current in files else files[0])

    def _predictor_path(self) -> Path | None:
        run = self.run
        if run is None:
            self.notify("pick a finished run first", severity="warning")
            return None
        value = self.query_one("#predict-file", Select).value
        if not isinstance(value, str):
            self.notify(f"{run.name} has no export yet: press x to export it first", severity="warning",
                        markup=False)
            return None
        return Path(value)

    @on(Button.Pressed, "#predict-sample-go")
    def action_predict_sample(self) -> None:
        index_input = self.query_one("#predict-index", Input)
        result = index_input.validate(index_input.value)
        if result is not None and not result.is_valid:
            self.notify("sample must be a whole number from 0", severity="error")
            return
        path, run = self._predictor_path(), self.run
        if path is None:
            return
        index = int(index_input.value)

        def work() -> dict:
            from mmzoo.data import load_image
            from mmzoo.errors import DataError
            from mmzoo.train.factory import open_dataset

            spec = run.spec
            dataset = open_dataset(dataset_ref(spec))
            samples = dataset.split("test")
            if index >= len(samples):
                raise DataError(f"sample {index} is past the end of the test split ({len(samples)} samples)")
            sample = samples[index]
            from mmzoo.tokens.report import is_token_run

            if is_token_run(run):  # a sentence: its words, and its true entities
                from mmzoo.data.bio import spans

                truth = ", ".join(f"{t} '{' '.join(sample.tokens[a:b])}'" for t, a, b in spans(sample.tags))
                return self._predict(path, " ".join(sample.tokens), sample.image,
                                     open_image(sample.image) if sample.image else None,
                                     f"test sentence {index} ({sample.id}), true entities: {truth or 'none'}")
            truth = sample.labels.get(spec["data"]["label_set"], "")
            return self._predict(path, sample.text, sample.image, load_image(sample), f"test sample {index} "
                                 f"({sample.id}), true class {truth}")

        self._start(f"predicting test sample {index}", lambda: self._guarded("predict", work))

    @on(Button.Pressed, "#predict-go")
    @on(Input.Submitted, "#predict-text, #predict-image")
    def action_predict_own(self) -> None:
        path = self._predictor_path()
        if path is None:
            return
        text = self.query_one("#predict-text", Input).value
        image = self.query_one("#predict-image", Input).value.strip()

        def work() -> dict:
            picture = open_image(image) if image else None
            return self._predict(path, text, image or None, picture, "your sample")

        self._start("predicting your sample", lambda: self._guarded("predict", work))

    def _predict(self, path: Path, text: str, image, picture, what: str) -> dict:
        """Runs in a thread: torch-free onnxruntime inference on one sample."""
        from mmzoo.onnx import metadata as md
        from mmzoo.onnx.runtime import Predictor
        from mmzoo.tokens.runtime import TokenPredictor, is_token_export

        if is_token_export(md.read(path)):  # a tagger: the entities of the text, with offsets and scores
            tagger = TokenPredictor(path, device="cpu")
            found = tagger.entities([text], [image] if tagger.reads_images else None)[0]
            return {"what": what, "text": text, "picture": picture, "file": path.name, "entities": found}

        predictor = Predictor(path, device="cpu")
        if "image" in predictor.modalities and image is None:
            from mmzoo.errors import DataError

            raise DataError(f"{path.name} reads an image as well as text: give an image path",
                            hint="or press p to predict a test sample of the run's own dataset")
        probs = predictor.predict([text] if "text" in predictor.modalities else None,
                                  [image] if "image" in predictor.modalities else None)
        return {"what": what, "text": text, "picture": picture, "top": predictor.top_k(probs, TOP_K)[0],
                "file": path.name}

    # -- results -----------------------------------------------------------------------------------------------

    def on_export_log(self, message: ExportLog) -> None:
        self.query_one("#export-log", Log).write_line(message.text)

    def on_export_done(self, message: ExportDone) -> None:
        self.busy = False
        for button in self.query(Button):
            button.disabled = False
        self.query_one("#export-go", Button).focus()  # off any input, so screen keys work again
        bar = self.query_one("#export-progress", ProgressBar)
        bar.update(total=1, progress=1 if message.error is None else 0)
        log = self.query_one("#export-log", Log)
        if message.error is not None:
            self.query_one("#export-status", Static).update(f"{message.what} failed")
            error = message.error
            hint = parity_hint(error, self.query_one("#export-samples", Input).value.strip())
            if hint is not None:  # the library's hint names CLI flags; say what this form offers instead
                error = f"{error.split(chr(10) + '  hint: ')[0]}\n  hint: {hint}"
                self.query_one("#export-samples", Input).focus()
            log.write_lines(error.splitlines())
            self.notify(error, title=message.title, severity="error", markup=False, timeout=30)
            return
        self.query_one("#export-status", Static).update(f"{message.what} done")
        getattr(self, f"_show_{message.what}")(message.result)

    def _show_export(self, result: dict) -> None:
        from mmzoo.onnx.parity import summary

        path = Path(result["path"])
        lines = [f"[$success]✓ parity passed[/] {escape(path.name)} [dim]{result['bytes'] / 1e6:.1f} MB, "
                 f"{result['seconds']:.1f}s (folder in the log)[/]"]
        lines += [escape(short_summary(precision, figures)) for precision, figures in result["parity"].items()]
        self.query_one("#export-result", Static).update("\n".join(lines))
        log = self.query_one("#export-log", Log)
        log.write_line(f"wrote {path}")
        log.write_lines(f"{precision}: {summary(figures)}" for precision, figures in result["parity"].items())
        self.refresh_files(path.resolve())  # predict with what was just exported
        self.notify(f"exported {result['run']} ({result['precision']}); parity passed", timeout=6)

    def _show_bench(self, report: dict) -> None:
        self.query_one("#export-log", Log).write_lines(report["text"].splitlines())
        best = max(report["rows"], key=lambda r: r["batch1_speedup"])
        self.query_one("#export-result", Static).update(
            f"benchmark of {escape(report['run'])}: fastest at batch 1 is {escape(best['setting'])} "
            f"({best['batch1_ms']:.2f} ms, {best['batch1_speedup']:.2f}x torch eager); full table in the log")

    def _show_predict(self, result: dict) -> None:
        picture = self.query_one("#predict-picture", HalfBlockImage)
        picture.show(result["picture"])
        if "entities" in result:
            rows = [f"[b]{escape(result['what'])}[/]", f"[dim]{escape(result['file'])}: {escape(result['text'])}[/]",
                    "", *(f"{escape(e['type'])}  {escape(e['text'])}  [dim][{e['start']}, {e['end']})[/] "
                          f"{e['score']:.3f}" for e in result["entities"])]
            if not result["entities"]:
                rows.append("no entities found")
            self.query_one("#predict-topk", Static).update("\n".join(rows))
            return
        width = max(len(label) for label, _ in result["top"])
        rows = [f"[b]{escape(result['what'])}[/]", f"[dim]{escape(result['file'])}: {escape(result['text'])}[/]", ""]
        for label, p in result["top"]:
            bar = "█" * round(20 * p)
            rows.append(f"{escape(label):<{width}} {p:6.3f} [$primary]{bar}[/]")
        self.query_one("#predict-topk", Static).update("\n".join(rows))
