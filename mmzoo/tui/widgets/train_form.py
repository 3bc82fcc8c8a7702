"""Provides the train form: model, dataset and the key hyperparameters, validated before anything starts."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.validation import Function
from textual.widgets import Button, Input, Label, Select

from mmzoo import schema
from mmzoo.registry import Entry


def _in_schema(field: str):
    """True when the text is a number that registry.yaml's train.<field> accepts (type, range, finite)."""
    param = schema.param("train", field)

    def ok(value: str) -> bool:
        try:
            number = (int if param.type == "int" else float)(value)
        except ValueError:
            return False
        return param.check(number) is None

    return ok


# (field, label, validator): the hyperparameters `mmzoo train` also takes as flags; ranges from mmzoo.schema.
FIELDS = (
    ("epochs", "epochs", Function(_in_schema("epochs"), "epochs must be a whole number of at least 1 (up to 100000)")),
    ("lr", "lr", Function(_in_schema("lr"), "lr must be a positive number, e.g. 0.003")),
    ("batch_size", "batch", Function(_in_schema("batch_size"),
                                     "batch size must be a whole number of at least 1 (up to 1000000)")),
    ("seed", "seed", Function(_in_schema("seed"), "seed must be a whole number of at least 0 (below 2**32)")),
)


@dataclass
class Overrides:
    """What the form asks for, shaped like the CLI's parsed flags so `apply_overrides` reads it unchanged."""

    epochs: int
    lr: float
    batch_size: int
    seed: int
    dataset: str | None  # None: the model's own dataset
    label_set: str | None = None


class TrainForm(Vertical):
    """Pick what to train and how; `read()` returns validated overrides or the problems to show."""

    def __init__(self, entries: list[Entry], datasets: list[str], id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.entries = {e.name: e for e in entries}
        self.datasets = datasets

    def _options(self) -> list[tuple[str, str]]:
        return [(f"{e.name}{'  (ensemble)' if e.kind == 'ensemble' else ''}", e.name) for e in self.entries.values()]

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("model", classes="form-label")
            yield Select(self._options(), prompt="pick a model", id="train-model", compact=True)
            yield Label("data", classes="form-label")
            yield Select([(d, d) for d in self.datasets], prompt="model's own", id="train-dataset", compact=True)
        with Horizontal(classes="form-row"):
            for name, label, validator in FIELDS:
                yield Label(label, classes="form-label")
                yield Input(id=f"train-{name.replace('_', '-')}", validators=[validator], compact=True,
                            classes="form-number")
            yield Button("Start", id="train-start", variant="primary", compact=True)
            yield Button("Cancel", id="train-cancel", variant="error", compact=True, disabled=True)

    def on_mount(self) -> None:
        if self.entries:
            self.pick(next(iter(self.entries)))

    def set_entries(self, entries: list[Entry], datasets: list[str]) -> None:
        """Offer a reloaded registry's entries, keeping the current pick when it still exists."""
        current = self.model
        self.entries, self.datasets = {e.name: e for e in entries}, datasets
        self.query_one("#train-model", Select).set_options(self._options())
        self.query_one("#train-dataset", Select).set_options([(d, d) for d in datasets])
        if current in self.entries:
            self.pick(current)

    def pick(self, name: str) -> None:
        """Select a model or ensemble and fill the form with its own settings."""
        if name not in self.entries:
            return
        self.query_one("#train-model", Select).value = name
        self.fill(name)

    def fill(self, name: str) -> None:
        train, dataset = self.settings(self.entries[name])
        for field, _, _ in FIELDS:
            self.query_one(f"#train-{field.replace('_', '-')}", Input).value = str(train.get(field, ""))
        select = self.query_one("#train-dataset", Select)
        select.value = dataset if dataset in self.datasets else Select.NULL

    def settings(self, entry: Entry) -> tuple[dict, str | None]:
        """(train section, dataset) of a model, or of an ensemble's first member model."""
        spec = entry.spec or {}
        if entry.kind == "ensemble":
            recipe = spec.get("recipe", {})
            first = (recipe.get("members") or [None])[0] or next(
                (v.get("model") for v in recipe.values() if isinstance(v, dict)), None)
            member = self.app.catalog.entry(first) if first else None
            spec = member.spec if member is not None and member.ok else {}
        return spec.get("train", {}), spec.get("task", {}).get("dataset")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "train-model" and event.value in self.entries:
            self.fill(event.value)

    @property
    def model(self) -> str | None:
        value = self.query_one("#train-model", Select).value
        return value if isinstance(value, str) else None

    def read(self) -> tuple[Overrides | None, list[str]]:
        """Validated overrides, or None and one message per invalid field."""
        problems = []
        values = {}
        if self.model is None:
            problems.append("pick a model or ensemble to train")
        for field, _, _ in FIELDS:
            widget = self.query_one(f"#train-{field.replace('_', '-')}", Input)
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                problems.extend(result.failure_descriptions)
            else:
                values[field] = float(widget.value) if field == "lr" else int(widget.value)
        if problems:
            return None, problems
        dataset = self.query_one("#train-dataset", Select).value
        own = self.settings(self.entries[self.model])[1]
        chosen = dataset if isinstance(dataset, str) and dataset != own else None
        return Overrides(dataset=chosen, **values), []

    def set_running(self, running: bool, cancellable: bool = True) -> None:
        for widget in self.query("Select, Input"):
            widget.disabled = running
        start, cancel = self.query_one("#train-start", Button), self.query_one("#train-cancel", Button)
        start.disabled, cancel.disabled = running, not (running and cancellable)
        # Park focus on a button, never an input, so the single-key screen bindings keep working.
        (cancel if running and cancellable else start).focus()
