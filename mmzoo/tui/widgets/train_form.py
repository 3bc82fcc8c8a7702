"""Provides the train form: model, dataset and the key hyperparameters, validated before anything starts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.validation import Function
from textual.widgets import Button, Input, Label, Select

from mmzoo.app.train import Overrides
from mmzoo.zoo.parts import Param
from mmzoo.zoo.registry import Entry
from mmzoo.zoo.schema import TRAIN_PARAMS


def _parse(param: Param, text: str):
    """The form's text as the param's type, or None when it does not parse."""
    try:
        return int(text) if param.type == "int" else float(text)
    except ValueError:
        return None


def _validator(key: str) -> Function:
    """A validator from the schema's own Param, so the form and the registry check the same ranges."""
    param = next(p for p in TRAIN_PARAMS if p.name == key)
    what = "a whole number" if param.type == "int" else "a number"
    described = f"{key.replace('_', ' ')} must be {what}" + (f" ({param.range_text()})" if param.range_text() else "")

    def ok(text: str) -> bool:
        value = _parse(param, text)
        return value is not None and param.check(value) is None

    return Function(ok, described)


# (field, label): the hyperparameters `mmzoo train` also takes as flags, checked against the schema.
FIELDS = tuple((key, label, _validator(key)) for key, label in
               (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch"), ("seed", "seed")))


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

    def set_running(self, running: bool) -> None:
        for widget in self.query("Select, Input"):
            widget.disabled = running
        start, cancel = self.query_one("#train-start", Button), self.query_one("#train-cancel", Button)
        start.disabled, cancel.disabled = running, not running
        # Park focus on a button, never an input, so the single-key screen bindings keep working.
        (cancel if running else start).focus()
