"""Provides the zoo screen: a filterable tree of parts, models, ensembles and plugins, with a details pane."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Tree

from mmzoo.errors import MmzooError
from mmzoo.tui.catalog import Catalog, part_kinds, shown_path
from mmzoo.tui.messages import ModelBuilt, RunsRequested, TrainRequested
from mmzoo.tui.widgets.details import DetailsPane, entry_markup, part_markup, plugin_markup, problems_markup


def _matches(name: str, text: str, query: str) -> bool:
    return not query or query in name.lower() or query in text.lower()


class ZooScreen(Screen):
    """Browse what is installed and registered; building a model happens only on request, off the UI thread."""

    AUTO_FOCUS = "#zoo-tree"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("b", "build", "Build"),
        Binding("n", "train_selected", "New run"),
        Binding("p", "past_runs", "Past runs"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.built: dict[str, dict] = {}  # model name -> show_entry() result, so each model builds once
        self.building: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="zoo-body"):
            with Vertical(id="zoo-left"):
                yield Input(placeholder="/ filter", id="zoo-filter", compact=True)
                yield Tree("zoo", id="zoo-tree")
            yield DetailsPane(id="zoo-details")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Zoo"
        tree = self.query_one("#zoo-tree", Tree)
        tree.show_root = False
        self.populate()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.populate())
        self.query_one(DetailsPane).show(self.overview())

    @property
    def catalog(self) -> Catalog:
        return self.app.catalog

    def _label(self, name: str, note: str = "", bad: bool = False) -> Text:
        # Tree labels are Rich text, so theme colours are looked up by name rather than written as $variables.
        colours = self.app.theme_variables
        label = Text("✗ " + name if bad else name, style=colours.get("error", "") if bad else "")
        if note:
            label.append(f"  {note}", style=colours.get("foreground-muted", ""))
        return label

    def populate(self) -> None:
        """(Re)build the tree from the catalog, keeping only what matches the filter."""
        query = self.query_one("#zoo-filter", Input).value.strip().lower()
        tree = self.query_one("#zoo-tree", Tree)
        tree.clear()
        zoo = self.catalog.zoo
        groups = []  # (category label, category data, expand, [(leaf label, leaf data)])
        for kind, label in part_kinds():
            parts = [p for p in (zoo.get(kind, n) for n in zoo.names(kind)) if _matches(p.name, p.description, query)]
            groups.append((label, ("category", kind), False,
                           [(self._label(p.name, p.modality or ""), ("part", kind, p.name)) for p in parts]))
        for kind, label in (("model", "models"), ("ensemble", "ensembles")):
            entries = [e for e in self.catalog.entries(kind)
                       if _matches(e.name, str(e.raw.get("description", "")), query)]
            groups.append((label, ("category", kind), kind == "model" or any(not e.ok for e in entries),
                           [(self._label(e.name, bad=not e.ok), ("entry", kind, e.name)) for e in entries]))
        plugins = [p for p in zoo.plugins if _matches(p.name, p.package, query)]
        groups.append(("plugins", ("category", "plugin"), any(not p.ok for p in plugins),
                       [(self._label(p.name, p.package, bad=not p.ok), ("plugin", p.name)) for p in plugins]))
        problems = self.registry_problems()
        groups.append(("registry problems", ("category", "problems"), True,
                       [(self._label(text.split(": ", 1)[-1][:60], bad=True), ("problem", i))
                        for i, text in enumerate(problems)]))
        first = None
        for label, data, expand, leaves in groups:
            if not leaves and (query or data[1] == "problems"):
                continue  # while filtering, and for a clean registry, empty groups are noise
            node = tree.root.add(f"{label} ({len(leaves)})", data=data, expand=expand or bool(query))
            for leaf_label, leaf_data in leaves:
                leaf = node.add_leaf(leaf_label, data=leaf_data)
                first = first or leaf
        if query and first is not None:
            # Empty groups are skipped while filtering, so the first match sits right under the first group.
            tree.move_cursor_to_line(1)
            self.show(first.data)

    def registry_problems(self) -> list[str]:
        """File-level problems: the registry could not be read, or has malformed YAML or unknown keys."""
        if self.catalog.error:
            return [self.catalog.error]
        return [str(p) for p in self.catalog.registry.problems] if self.catalog.registry else []

    def overview(self) -> str:
        zoo, catalog = self.catalog.zoo, self.catalog
        counts = ", ".join(f"{len(zoo.names(kind))} {label}" for kind, label in part_kinds())
        models, ensembles = len(catalog.entries("model")), len(catalog.entries("ensemble"))
        files = ", ".join(map(shown_path, catalog.registry.files)) if catalog.registry else "(unreadable)"
        lines = ["[b $accent]mmzoo[/]", "", f"{counts} from {len(zoo.plugins)} plugin(s)",
                 f"{models} models and {ensembles} ensembles in {escape(files)}", ""]
        summary = catalog.summary()
        lines += [f"[$error]✗[/] {escape(line)}" for line in summary] or ["[$success]no problems found[/]"]
        lines += ["", "[dim]arrows move, enter selects, / filters; z t r e switch screens; ctrl+p opens the "
                  "command palette[/]"]
        return "\n".join(lines)

    @on(Input.Changed, "#zoo-filter")
    def _filter(self) -> None:
        self.populate()

    @on(Input.Submitted, "#zoo-filter")
    def _filter_done(self) -> None:
        self.query_one("#zoo-tree", Tree).focus()

    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        self.show(event.node.data)

    @on(Tree.NodeSelected)
    def _selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data
        if data and data[0] == "entry" and data[1] == "model":
            self.build(data[2])

    def show(self, data: tuple | None) -> None:
        pane = self.query_one(DetailsPane)
        if not data:
            pane.show(self.overview())
        elif data[0] == "part":
            pane.show(part_markup(self.catalog.zoo.get(data[1], data[2])))
        elif data[0] == "entry":
            entry = self.catalog.entry(data[2])
            pane.show(entry_markup(entry, self.built.get(entry.name), entry.name in self.building)
                      + self.past_runs_markup(entry.name))
        elif data[0] == "plugin":
            plugin = next(p for p in self.catalog.zoo.plugins if p.name == data[1])
            pane.show(plugin_markup(plugin))
        elif data[0] == "problem":
            pane.show("[b $error]registry problem[/]\n\n" + problems_markup([self.registry_problems()[data[1]]]))
        else:
            pane.show(self.category_markup(data[1]))

    def category_markup(self, kind: str) -> str:
        if kind in ("model", "ensemble"):
            rows = [(e.name, str(e.raw.get("description", "")), e.ok) for e in self.catalog.entries(kind)]
        elif kind == "plugin":
            rows = [(p.name, p.package, p.ok) for p in self.catalog.zoo.plugins]
        elif kind == "problems":
            return problems_markup(self.registry_problems())
        else:
            zoo = self.catalog.zoo
            rows = [(n, zoo.get(kind, n).description, True) for n in zoo.names(kind)]
        return "\n".join(f"{'' if ok else '[$error]✗[/] '}[$primary]{escape(name)}[/]  {escape(text)}"
                         for name, text, ok in rows) or "[dim]none[/]"

    def current(self) -> tuple | None:
        node = self.query_one("#zoo-tree", Tree).cursor_node
        return node.data if node else None

    def action_focus_filter(self) -> None:
        self.query_one("#zoo-filter", Input).focus()

    def action_build(self) -> None:
        data = self.current()
        if not data or data[0] != "entry" or data[1] != "model":
            self.notify("highlight a model in the tree first", severity="warning")
            return
        self.build(data[2])

    def action_train_selected(self) -> None:
        data = self.current()
        if data and data[0] == "entry":
            self.post_message(TrainRequested(data[2]))
        else:
            self.notify("highlight a model or ensemble to train", severity="warning")

    def past_runs_markup(self, name: str) -> str:
        """The entry's runs under the runs folder, newest first (p lists them on the runs screen)."""
        from mmzoo.runs.folders import list_runs

        try:
            runs = [r for r in list_runs(self.app.runs_dir) if r.model == name]
        except OSError:
            return ""
        if not runs:
            return "\n\n[b]past runs[/] [dim]none yet (n to train)[/]"
        lines = [f"\n\n[b]past runs[/] {len(runs)} [dim](p lists them)[/]"]
        for run in reversed(runs[-3:]):
            try:
                state = run.status.get("state", "unknown")
                accuracy = run.metrics.get("test", {}).get("accuracy") if run.finished else None
            except (OSError, ValueError, MmzooError):
                state, accuracy = "unreadable", None
            shown = f"  test acc {accuracy:.4f}" if isinstance(accuracy, float) else ""
            lines.append(f"  {escape(run.id)}  {escape(state)}{shown}")
        return "\n".join(lines)

    def action_past_runs(self) -> None:
        data = self.current()
        if data and data[0] == "entry":
            self.post_message(RunsRequested(f"{data[2]}/"))  # "name/" matches this entry's runs only
        else:
            self.notify("highlight a model or ensemble to list its runs", severity="warning")

    def action_reload(self) -> None:
        self.app.action_reload()

    def catalog_changed(self) -> None:
        self.built.clear()
        self.populate()
        self.query_one(DetailsPane).show(self.overview())

    def build(self, name: str) -> None:
        entry = self.catalog.entry(name)
        if entry is None or not entry.ok or name in self.built or name in self.building:
            return
        self.building.add(name)
        self.show(self.current())
        self.run_worker(lambda: self._build(entry), thread=True, group="build", exit_on_error=False)

    def _build(self, entry) -> None:
        """Runs in a thread: building imports torch and may load weights."""
        from mmzoo.app.zoo import show_entry

        try:
            info = show_entry(entry)
        except Exception as exc:  # a plugin's build bug must land in the pane, not crash the app
            info = {"error": f"{type(exc).__name__}: {exc}"}
        self.post_message(ModelBuilt(entry.name, info))

    def on_model_built(self, message: ModelBuilt) -> None:
        self.building.discard(message.name)
        self.built[message.name] = message.info
        data = self.current()
        if data and data[0] == "entry" and data[2] == message.name:
            self.show(data)
