"""Provides the zoo's details pane: a part, registry entry or plugin written out as themed markup."""

from __future__ import annotations

import yaml
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import Static

from mmzoo.tui.catalog import shown_path
from mmzoo.zoo.parts import Part
from mmzoo.zoo.plugins import PluginInfo
from mmzoo.zoo.registry import Entry


def _e(value: object) -> str:
    return escape(str(value))


def _yaml(data: object) -> str:
    return _e(yaml.safe_dump(data, sort_keys=False, width=78).rstrip())


def part_markup(part: Part) -> str:
    lines = [f"[b $accent]{_e(part.name)}[/]  [dim]{part.kind}{' · ' + part.modality if part.modality else ''}[/]",
             "", _e(part.description), "", f"[b]plugin[/]  {_e(part.plugin)}", f"[b]factory[/] {_e(part.factory)}"]
    if part.params:
        lines += ["", "[b]parameters[/]"]
        for p in part.params:
            default = "[i]required[/]" if p.required else _e(repr(p.default))
            choices = f"  [dim](one of {_e(', '.join(map(str, p.choices)))})[/]" if p.choices else ""
            lines.append(f"  [$primary]{_e(p.name)}[/] [dim]{p.type}[/] = {default}")
            lines.append(f"      {_e(p.help)}{choices}")
    else:
        lines += ["", "[dim]no parameters[/]"]
    return "\n".join(lines)


def problems_markup(problems: list) -> str:
    return "\n".join(f"[$error]✗[/] {_e(p)}" for p in problems)


def entry_markup(entry: Entry, built: dict | None = None, building: bool = False) -> str:
    """A model or ensemble: validation problems, or its resolved spec plus what building it found."""
    head = f"[b $accent]{_e(entry.name)}[/]  [dim]{entry.kind} · {_e(shown_path(entry.file))}:{entry.line}[/]"
    description = entry.raw.get("description", "")
    lines = [head, ""] + ([_e(description), ""] if description else [])
    if not entry.ok:
        lines += [f"[b $error]invalid: {len(entry.problems)} problem(s)[/]", problems_markup(entry.problems)]
        return "\n".join(lines)
    if entry.kind == "model":
        lines += _build_lines(built, building)
    lines += ["", "[b]resolved spec[/]", _yaml({k: v for k, v in entry.spec.items() if k not in ("name", "kind", "description")})]
    return "\n".join(lines)


def _build_lines(built: dict | None, building: bool) -> list[str]:
    if building:
        return ["[$warning]building the model to count its parameters…[/]"]
    if built is None:
        return ["[dim]parameters: press [b]b[/b] (or enter) to build the model and count them (imports torch)[/]"]
    if "error" in built:
        return [f"[$error]could not build:[/] {_e(built['error'])}"]
    lines = [f"[b]parameters[/] {built['parameters']:,} ({built['trainable_parameters']:,} trainable)"]
    if built.get("weights_available_offline"):
        lines.append("[b]weights[/]    [$success]available offline[/]")
    else:
        lines.append(f"[b]weights[/]    [$error]not available offline:[/] {_e(built.get('weights_error', ''))}")
    return lines


def plugin_markup(plugin: PluginInfo) -> str:
    status = "[$success]loaded[/]" if plugin.ok else "[b $error]failed[/]"
    lines = [f"[b $accent]{_e(plugin.name)}[/]  [dim]plugin · {_e(plugin.package)} {_e(plugin.version)}[/]", "",
             f"[b]status[/] {status}"]
    for kind, names in plugin.registered.items():
        lines.append(f"[b]{kind}s[/] {_e(', '.join(names))}")
    if plugin.errors:
        lines += ["", "[b]errors[/]"] + [f"[$error]✗[/] {_e(e)}" for e in plugin.errors]
    return "\n".join(lines)


class DetailsPane(VerticalScroll):
    """A scrollable pane showing one markup document; `show` replaces it."""

    def compose(self):
        yield Static(id="details-body")

    def show(self, markup: str) -> None:
        self.query_one("#details-body", Static).update(markup)
        self.scroll_home(animate=False)

    @property
    def text(self) -> str:
        """The plain text shown, for tests and screen readers."""
        visual = self.query_one("#details-body", Static).visual
        return getattr(visual, "plain", str(visual))
