"""Provides a run's own detail view: state, tags, settings, val and test metrics; for an ensemble its members,
combiner weights and diversity."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from mmzoo.errors import MmzooError
from mmzoo.runs.folders import Run

METRICS = (("accuracy", "accuracy", ".4f"), ("macro_f1", "macro-F1", ".4f"), ("weighted_f1", "weighted-F1", ".4f"),
           ("ece", "ECE", ".4f"), ("nll", "NLL", ".4f"), ("n", "samples", "d"))


def _metric_lines(metrics: dict) -> list[str]:
    val, test = metrics.get("val", {}), metrics.get("test", {})
    lines = [f"  {'':<12}{'val':>10}{'test':>10}"]
    for key, label, fmt in METRICS:
        cells = [format(split[key], fmt) if key in split else "" for split in (val, test)]
        if any(cells):
            lines.append(f"  {label:<12}{cells[0]:>10}{cells[1]:>10}")
    return lines


TOKEN_METRICS = (("f1", "entity F1"), ("precision", "precision"), ("recall", "recall"),
                 ("token_accuracy", "token acc"))


def _token_lines(run: Run, spec: dict, metrics: dict) -> list[str]:
    """A tagger's (or token ensemble's) entity-level figures, its decoding and the per-type table on test."""
    from mmzoo.tokens.metrics import render_table
    from mmzoo.tokens.report import decoding_text

    val, test = metrics.get("val", {}), metrics.get("test", {})
    lines = [f"  {'':<12}{'val':>10}{'test':>10}"]
    for key, label in TOKEN_METRICS:
        cells = [format(split[key], ".4f") if key in split else "" for split in (val, test)]
        lines.append(f"  {label:<12}{cells[0]:>10}{cells[1]:>10}")
    lines.append(f"  decoding: {escape(decoding_text(run))} (chosen on val)")
    if test.get("per_type") is not None:
        lines += ["", "[b]entities on test[/] (entity-level exact match)",
                  *(f"  {escape(line)}" for line in render_table(test).splitlines())]
    if spec.get("kind") == "ensemble":
        name = spec.get("combiner", {}).get("name", "?")
        lines += ["", f"[b]ensemble[/] combiner [b]{escape(str(name))}[/] (per word, decoded after combining)",
                  "[b]members[/]  val F1 / test F1 (each decoded as its own run)"]
        scores = metrics.get("members", {}) if isinstance(metrics.get("members"), dict) else {}
        for i, member in enumerate(spec.get("members", []), 1):
            score = scores.get(member.get("name"), {})
            shown = (f"  {score['val_f1']:.4f} / {score['test_f1']:.4f}" if {"val_f1", "test_f1"} <= set(score)
                     else "")
            weight = f"  weight {member['weight']:.2f}" if isinstance(member.get("weight"), (int, float)) else ""
            lines.append(f"  {i}. {escape(str(member.get('name', '?')))}{shown}{weight}")
        if "best_member" in metrics:
            lines.append(f"  best member on val: {escape(str(metrics['best_member']))}; the ensemble "
                         f"{'matches or beats' if metrics.get('beat_best_member') else 'does not beat'} it on test")
    return lines


def _ensemble_lines(spec: dict, metrics: dict) -> list[str]:
    combiner = spec.get("combiner", {})
    name = combiner.get("name", "?") if isinstance(combiner, dict) else str(combiner)
    lines = ["", f"[b]ensemble[/] combiner [b]{escape(name)}[/]  [dim](k: distil it into one model)[/]"]
    if metrics.get("val_note"):
        lines.append(f"  val: {escape(str(metrics['val_note']))}")
    lines.append("[b]members[/] (weight notes from spec.yaml)")
    member_scores = {m.get("name"): m for m in metrics.get("members", []) if isinstance(m, dict)}
    for i, member in enumerate(spec.get("members", []), 1):
        note = member.get("weight_note", "equal weight" if name in ("mean", "vote") else "")
        score = member_scores.get(member.get("name"), {})
        test = score.get("test", {}).get("accuracy") if isinstance(score.get("test"), dict) else None
        shown = f"  test acc {test:.4f}" if isinstance(test, float) else ""
        lines.append(f"  {i}. {escape(str(member.get('name', '?')))}{shown}  [dim]{escape(note)}[/]")
    diversity = metrics.get("diversity")
    if isinstance(diversity, dict):
        lines.append("[b]diversity[/] on test")
        for key, value in diversity.items():
            if isinstance(value, (int, float)):
                lines.append(f"  {key.replace('_', ' ')}: {value:.4f}")
    if "beat_best_member" in metrics:
        lines.append(f"  beats its best member: {'yes' if metrics['beat_best_member'] else 'no'}")
    return lines


def detail_markup(path: Path) -> str:
    """Everything the detail view shows of one run, as Textual markup."""
    from mmzoo.runs.manage import read_tags

    run = Run(path)
    try:
        spec, status, metrics, tags = run.spec, run.status, run.metrics, read_tags(path)
    except (MmzooError, OSError, ValueError) as exc:
        return f"[b]{escape(run.name)}[/]\n[$error]unreadable:[/] {escape(str(exc))}"
    lines = [f"[b]{escape(run.name)}[/]  {escape(str(status.get('state', 'unknown')))}",
             f"folder  {escape(str(path))}",
             f"tags    {escape(', '.join(tags)) if tags else '[dim]none (g to tag)[/]'}"]
    data = spec.get("data", {})
    labels = (f"{len(data.get('classes', []))} BIO tags" if data.get("task") == "tokens"
              else f"{len(data.get('classes', []))} classes")
    lines.append(f"data    {escape(str(data.get('dataset', '')))} · label set {escape(str(data.get('label_set', '')))}"
                 f" · {labels}")
    if spec.get("kind") != "ensemble":
        model = spec.get("model", {})
        parts = [f"{k} {model[k].get('encoder', '')}" for k in ("text", "image") if isinstance(model.get(k), dict)]
        if isinstance(model.get("fusion"), dict):
            parts.append(f"fusion {model['fusion'].get('name')}")
        train = model.get("train", {})
        lines.append(f"model   {escape(' · '.join(parts))}")
        lines.append("train   " + escape(" · ".join(f"{k} {train[k]}" for k in ("epochs", "lr", "batch_size", "seed")
                                                      if k in train)))
        teacher = spec.get("teacher")
        if isinstance(teacher, dict):  # a distilled run: its teacher and settings
            lines.append(f"teacher {escape(str(teacher.get('run', '?')))} · T {teacher.get('temperature')} · alpha "
                         f"{teacher.get('alpha')} · augment {escape(str(teacher.get('augment', 'none')))}")
            if isinstance(teacher.get("warm_start"), dict):
                lines.append(f"        started from {escape(str(teacher['warm_start'].get('run', '?')))}")
            lines += _gap_lines(run)
        if metrics:
            lines.append(f"        best epoch {metrics.get('best_epoch')} of {metrics.get('epochs')} · "
                         f"{metrics.get('train_seconds', 0):.1f}s · {metrics.get('parameters', 0):,} parameters")
    if metrics and metrics.get("task") == "tokens":
        return "\n".join(lines + ["", "[b]metrics[/]", *_token_lines(run, spec, metrics)])
    if metrics:
        lines += ["", "[b]metrics[/]", *_metric_lines(metrics)]
    if spec.get("kind") == "ensemble":
        lines += _ensemble_lines(spec, metrics)
    return "\n".join(lines)


class RunDetail(ModalScreen):
    """One run, scrollable; escape closes, a opens its error analysis, x its export, k distils an ensemble."""

    BINDINGS = [
        Binding("escape,enter", "close", "Close"),
        Binding("a", "analyse", "Analyse errors"),
        Binding("x", "export", "To export"),
        Binding("k", "distill", "Distil"),
    ]

    def __init__(self, path: Path) -> None:
        super().__init__(classes="detail-screen")
        self.path = path

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="run-detail"):
            yield Static(detail_markup(self.path), id="run-detail-text")
        yield Footer(compact=True)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_analyse(self) -> None:
        self.dismiss("analyse")

    def action_export(self) -> None:
        self.dismiss("export")

    def action_distill(self) -> None:
        self.dismiss("distill")


def _gap_lines(run) -> list[str]:
    """A distilled run's teacher gap closed, with what the teacher's gain rests on (as `mmzoo distill` prints)."""
    from mmzoo.errors import MmzooError
    from mmzoo.runs.compare import gap_closed, gap_closed_text, teacher_gain_note

    try:
        gap = gap_closed(run)
    except (MmzooError, KeyError, TypeError):  # a teacher folder removed or damaged since: the run still shows
        return []
    if gap is None:
        return []
    note = teacher_gain_note(gap)
    return [f"        teacher gap closed {gap_closed_text(gap['gap_closed'])}" + (f" ({escape(note)})" if note else "")]
