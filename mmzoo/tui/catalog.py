"""Provides the TUI's view of the zoo: plugins, parts and registry entries, loaded without ever raising.

A broken plugin or registry must show up on screen, so everything that can go
wrong while loading is kept as data (``PluginInfo.errors``, ``Entry.problems``,
``Catalog.error``) instead of propagating. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmzoo.errors import MmzooError
from mmzoo.zoo.parts import KINDS
from mmzoo.zoo.plugins import Zoo, get_zoo
from mmzoo.zoo.registry import Entry, Registry, load_registry

PLURAL = {"encoder": "encoders", "fusion": "fusions", "combiner": "combiners", "dataset": "datasets"}


@dataclass
class Catalog:
    """Everything the zoo screen lists, plus why any of it failed to load."""

    zoo: Zoo
    registry: Registry | None
    error: str | None = None  # the registry could not be read at all (e.g. --registry names a missing file)
    warnings: list[str] = field(default_factory=list)  # what plugin loading printed to stderr

    def entries(self, kind: str) -> list[Entry]:
        if self.registry is None:
            return []
        return self.registry.models() if kind == "model" else self.registry.ensembles()

    def entry(self, name: str) -> Entry | None:
        if self.registry is None:
            return None
        for kind in ("model", "ensemble"):
            if (kind, name) in self.registry.entries:
                return self.registry.entries[(kind, name)]
        return None

    def trainable(self) -> list[Entry]:
        """Valid models, then valid ensembles: what the train screen offers."""
        return [e for kind in ("model", "ensemble") for e in self.entries(kind) if e.ok]

    def failed_plugins(self) -> list:
        return [p for p in self.zoo.plugins if not p.ok]

    def summary(self) -> list[str]:
        """One line per thing the user should look at, for a notification on load."""
        lines = []
        for plugin in self.failed_plugins():
            lines.append(f"plugin {plugin.name!r} ({plugin.package}) failed: {plugin.errors[0]}")
        if self.error:
            lines.append(self.error)
        elif self.registry is not None:
            bad = [e.name for e in self.registry.entries.values() if not e.ok]
            if bad:
                lines.append(f"{len(bad)} invalid registry entr{'y' if len(bad) == 1 else 'ies'}: {', '.join(bad)}")
            if self.registry.problems:
                lines.append(str(self.registry.problems[0]))
        return lines


def load_catalog(registry_file: str | None = None, refresh: bool = False) -> Catalog:
    """Load plugins and the registry; problems become data on the catalog, never exceptions."""
    # Plugin warnings are kept on the zoo rather than printed: stderr would scribble over the display.
    zoo = get_zoo(refresh=refresh, on_warning=lambda message: None)
    try:
        registry, error = load_registry(registry_file, zoo), None
    except MmzooError as exc:
        registry, error = None, f"{exc.title}: {exc}"
    return Catalog(zoo=zoo, registry=registry, error=error, warnings=list(zoo.warnings))


def part_kinds() -> list[tuple[str, str]]:
    return [(kind, PLURAL[kind]) for kind in KINDS]


def shown_path(path: str) -> str:
    """A path as the user would type it: relative to the current folder when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
