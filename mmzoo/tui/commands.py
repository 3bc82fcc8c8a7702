"""Provides mmzoo's command-palette commands: train a model, open, resume or export a run, switch screens."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from mmzoo.tui.messages import ExportRequested, ResumeRequested, TrainRequested

SCREENS = (("zoo", "Browse the zoo"), ("train", "Train a model"), ("runs", "Runs and comparisons"),
           ("export", "Export, benchmark and predict"))


class MmzooCommands(Provider):
    """Everything you can name in mmzoo, searchable by fuzzy match."""

    async def startup(self) -> None:
        from mmzoo.runs.folders import list_runs

        app = self.app
        self.commands: list[tuple[str, object, str]] = []  # (text, callback, help)
        for mode, help_text in SCREENS:
            self.commands.append((f"Go to {mode}", partial(app.switch_mode, mode), help_text))
        for entry in app.catalog.trainable():
            self.commands.append((f"Train {entry.kind} {entry.name}", partial(app.post_message,
                                  TrainRequested(entry.name)), str(entry.raw.get("description", ""))))
        try:
            runs = list_runs(app.runs_dir)
        except OSError:
            runs = []
        for run in reversed(runs):  # newest first
            state = run.status.get("state", "unknown")
            self.commands.append((f"Open run {run.name}", partial(app.open_run, run.path), state))
            if state == "finished":
                self.commands.append((f"Export run {run.name}", partial(app.post_message,
                                      ExportRequested(run.path)), "to ONNX, with a parity check"))
            elif state in ("cancelled", "failed", "running", "interrupted"):
                self.commands.append((f"Resume run {run.name}", partial(app.post_message,
                                      ResumeRequested(run.path)), f"{state}; continue from its last checkpoint"))
        self.commands.append(("Reload plugins and registry", app.action_reload, "after editing registry.yaml"))

    async def discover(self) -> Hits:
        for text, callback, help_text in self.commands[:12]:
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self.commands:
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, text=text, help=help_text)
