"""Provides fit's report: a terminal table, report.md, report.html and report.json, with plots.

Plots are PNG through matplotlib when it is installed, else SVG written here. Every figure
keeps the cross-validated estimate (used for choosing) apart from the test score (read once).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from mmzoo import atomic

BAR_COLOURS = ("#4c72b0", "#dd8452")  # CV estimate, test score


def terminal_table(report: dict) -> str:
    """Per-model and per-ensemble rows: CV mean +- std (the choosing estimate), then test with its interval."""
    metric = report["metric"]
    rows = []
    chosen = report["chosen"]["name"]
    for r in report["models"] + report["ensembles"]:
        t = r["test"]
        rows.append(("*" if r["name"] == chosen else "", r["name"], f"{r['cv_mean']:.4f} +- {r['cv_std']:.4f}",
                     f"{t['score']:.4f} [{t['low']:.3f}, {t['high']:.3f}]", f"{t['accuracy']:.4f}"))
    header = ("", "candidate", f"CV {metric} (mean +- sd)", f"test {metric} [95% CI]", "test acc")
    widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def summary_lines(report: dict) -> list[str]:
    c, best = report["chosen"], report["best_cv"]
    lines = [
        f"chosen: {c['name']} -> {c['run']}",
        f"  cross-validated estimate (used for choosing): {report['metric']} {c['cv_mean']:.4f} "
        f"(sd {c['cv_std']:.4f} over {report['folds']} folds, se {c['cv_se']:.4f})",
        f"  test score (never used for choosing): {report['metric']} {c['test']['score']:.4f} "
        f"[{c['test']['low']:.3f}, {c['test']['high']:.3f}], accuracy {c['test']['accuracy']:.4f}",
    ]
    lines += [f"  warning: {w}" for w in report.get("warnings", ())]  # e.g. a class the test split lacks
    if best["name"] != c["name"]:
        lines.append(f"  best CV mean was {best['name']} ({best['cv_mean']:.4f}, se {best['cv_se']:.4f}); the "
                     f"one-standard-error rule prefers the simpler {c['name']}")
    if c.get("weights"):
        lines.append("  combiner weights: " + ", ".join(f"{k} {v:.3f}" for k, v in c["weights"].items()))
    if report.get("export"):
        lines.append(f"  ONNX: {report['export']['path']}")
    lines += finetune_lines(report)
    return lines


def _cost(r: dict) -> str:
    return f"{r['cpu_seconds']:.1f}s CPU, {r['seconds']:.1f}s wall"


def finetune_lines(report: dict) -> list[str]:
    """Frozen against fine-tuned per kind: CV (used for choosing), test (not), and the CPU time each cost."""
    ft = report.get("finetune")
    if not ft:
        return []
    metric = report["metric"]
    lines = [f"  fine-tuning (train_last {ft['settings']['train_last']}, encoder_lr {ft['settings']['encoder_lr']}): "
             f"prefix caches {ft['prefix_cpu_seconds']:.1f}s CPU, {ft['prefix_seconds']:.1f}s wall"]
    for row in ft["kinds"].values():
        for r in [row["frozen"], *row["finetuned"]]:
            test = f", test {r['test']['score']:.4f}" if r.get("test") else ""
            lines.append(f"    {r['name']}: CV {metric} {r['cv_mean']:.4f} +- {r['cv_std']:.4f}{test}; "
                         f"CV cost {_cost(r)}")
    return lines


def write_report(report: dict, folder: Path) -> dict:
    """Write report.json, report.md, report.html and the plots into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots = {"scores": _plot_scores(report, folder)}
    if report["chosen"].get("weights"):
        plots["weights"] = _plot_weights(report["chosen"]["weights"], folder)
    paths = {"json": str(folder / "report.json"), "markdown": str(folder / "report.md"),
             "html": str(folder / "report.html"), "plots": {k: str(v) for k, v in plots.items()}}
    atomic.write_json(folder / "report.json", json.loads(json.dumps({**report, "report": paths}, default=float)))
    atomic.write_text(folder / "report.md", _markdown(report, plots))
    atomic.write_text(folder / "report.html", _html(report, plots))
    return paths


def _markdown(report: dict, plots: dict) -> str:
    metric = report["metric"]
    out = [f"# mmzoo fit: {report['dataset']} (preset {report['preset']})", "",
           f"{report['rows']['train+val']} train+val rows in {report['groups']} groups, {report['folds']}-fold "
           f"group-aware stratified cross-validation, metric **{metric}**; {report['rows']['test']} test rows were "
           "used only for the test column, after every choice was made.", ""]
    out += [line if not line.startswith("  ") else "- " + line.strip() for line in summary_lines(report)]
    out += ["", f"| candidate | CV {metric} mean | CV sd | test {metric} | 95% interval | test accuracy |",
            "|---|---:|---:|---:|---|---:|"]
    for r in report["models"] + report["ensembles"]:
        t = r["test"]
        mark = " (chosen)" if r["name"] == report["chosen"]["name"] else ""
        out.append(f"| {r['name']}{mark} | {r['cv_mean']:.4f} | {r['cv_std']:.4f} | {t['score']:.4f} | "
                   f"[{t['low']:.3f}, {t['high']:.3f}] | {t['accuracy']:.4f} |")
    out += _finetune_markdown(report)
    out += ["", "All candidates searched (CV only):", "",
            f"| candidate | CV {metric} | sd | epochs | wall seconds | CPU seconds |", "|---|---:|---:|---:|---:|---:|"]
    out += [f"| {r['name']} | {r['cv_mean']:.4f} | {r['cv_std']:.4f} | {r['epochs']} | {r['seconds']:.1f} | "
            f"{r.get('cpu_seconds', 0.0):.1f} |" for r in report["candidates"]]
    out += [""] + [f"![{k}]({Path(v).name})" for k, v in plots.items()] + [""]
    return "\n".join(out)


def _finetune_markdown(report: dict) -> list[str]:
    ft = report.get("finetune")
    if not ft:
        return []
    metric = report["metric"]
    out = ["", "Fine-tuning against frozen features, per model kind (the CV columns chose; test did not). "
           f"Filling the prefix caches cost {ft['prefix_cpu_seconds']:.1f}s CPU ({ft['prefix_seconds']:.1f}s wall) "
           "once per dataset.", "",
           f"| candidate | CV {metric} | sd | test {metric} | CV CPU s | CV wall s | refit CPU s |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    refit = {m["name"]: m for m in report["models"]}
    for row in ft["kinds"].values():
        for r in [row["frozen"], *row["finetuned"]]:
            test = f"{r['test']['score']:.4f}" if r.get("test") else "-"
            cost = r.get("refit_cpu_seconds", refit.get(r["name"], {}).get("refit_cpu_seconds"))
            out.append(f"| {r['name']} | {r['cv_mean']:.4f} | {r['cv_std']:.4f} | {test} | {r['cpu_seconds']:.1f} | "
                       f"{r['seconds']:.1f} | {'-' if cost is None else f'{cost:.1f}'} |")
    return out


def _html(report: dict, plots: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['name'])}</td><td>{r['cv_mean']:.4f} &plusmn; {r['cv_std']:.4f}</td>"
        f"<td>{r['test']['score']:.4f} [{r['test']['low']:.3f}, {r['test']['high']:.3f}]</td></tr>"
        for r in report["models"] + report["ensembles"])
    summary = "".join(f"<li>{html.escape(line.strip())}</li>" for line in summary_lines(report))
    images = "".join(f'<p><img src="{Path(v).name}" alt="{k}"></p>' for k, v in plots.items())
    return (f"<!doctype html><meta charset='utf-8'><title>mmzoo fit {html.escape(report['dataset'])}</title>"
            f"<h1>mmzoo fit: {html.escape(report['dataset'])}</h1><ul>{summary}</ul>"
            f"<table border=1 cellpadding=4><tr><th>candidate</th><th>CV {report['metric']} (mean &plusmn; sd)</th>"
            f"<th>test {report['metric']} [95% CI]</th></tr>{rows}</table>{images}\n")


def _bars(report: dict) -> list[tuple[str, float, float, float, float, float]]:
    """(name, cv mean, cv sd, test, test low, test high) per model and ensemble."""
    return [(r["name"].split("(")[0], r["cv_mean"], r["cv_std"], r["test"]["score"], r["test"]["low"],
             r["test"]["high"]) for r in report["models"] + report["ensembles"]]


def _plot_scores(report: dict, folder: Path) -> Path:
    bars = _bars(report)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _svg_scores(bars, report["metric"], folder / "scores.svg")
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.2))
    pos = list(range(len(bars)))
    ax.errorbar([b[1] for b in bars], [p - 0.15 for p in pos], xerr=[b[2] for b in bars], fmt="o",
                color=BAR_COLOURS[0], label="CV mean +- sd (choosing)")
    ax.errorbar([b[3] for b in bars], [p + 0.15 for p in pos],
                xerr=[[b[3] - b[4] for b in bars], [b[5] - b[3] for b in bars]], fmt="s", color=BAR_COLOURS[1],
                label="test, 95% bootstrap interval")
    ax.set_yticks(pos, [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel(report["metric"])
    ax.legend(loc="lower left")
    fig.tight_layout()
    path = folder / "scores.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _svg_scores(bars, metric: str, path: Path) -> Path:
    """A dot-and-whisker chart in plain SVG: CV mean +- sd above, test with its interval below."""
    lo = min(min(b[1] - b[2], b[4]) for b in bars)
    hi = max(max(b[1] + b[2], b[5]) for b in bars)
    lo, hi = max(0.0, lo - 0.02), min(1.0, hi + 0.02)
    left, width, row = 200, 480, 28
    height = row * len(bars) + 60

    def sx(v: float) -> float:
        return left + (v - lo) / max(hi - lo, 1e-9) * width

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{height}" '
             'font-family="sans-serif" font-size="12">']
    for k, (name, mean, sd, test, low, high) in enumerate(bars):
        y = 20 + k * row
        parts.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end">{html.escape(name)}</text>')
        parts.append(f'<line x1="{sx(mean - sd):.1f}" x2="{sx(mean + sd):.1f}" y1="{y + 6}" y2="{y + 6}" '
                     f'stroke="{BAR_COLOURS[0]}" stroke-width="2"/><circle cx="{sx(mean):.1f}" cy="{y + 6}" r="4" '
                     f'fill="{BAR_COLOURS[0]}"/>')
        parts.append(f'<line x1="{sx(low):.1f}" x2="{sx(high):.1f}" y1="{y + 16}" y2="{y + 16}" '
                     f'stroke="{BAR_COLOURS[1]}" stroke-width="2"/><rect x="{sx(test) - 4:.1f}" y="{y + 12}" '
                     f'width="8" height="8" fill="{BAR_COLOURS[1]}"/>')
    axis = height - 30
    parts.append(f'<line x1="{left}" x2="{left + width}" y1="{axis}" y2="{axis}" stroke="black"/>')
    for i in range(6):
        v = lo + (hi - lo) * i / 5
        parts.append(f'<text x="{sx(v):.1f}" y="{axis + 14}" text-anchor="middle">{v:.3f}</text>')
    parts.append(f'<text x="{left}" y="{height - 2}" fill="{BAR_COLOURS[0]}">&#9679; CV {metric} mean &#177; sd '
                 f'(choosing)</text><text x="{left + 260}" y="{height - 2}" fill="{BAR_COLOURS[1]}">&#9632; test, '
                 '95% bootstrap interval</text></svg>')
    atomic.write_text(path, "\n".join(parts) + "\n")
    return path


def _plot_weights(weights: dict, folder: Path) -> Path:
    names = [n.split("(")[0] for n in weights]
    values = list(weights.values())
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        left, width, row = 200, 400, 24
        top = max(max(values), 1e-9)
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
                 f'height="{row * len(values) + 20}" font-family="sans-serif" font-size="12">']
        for k, (name, v) in enumerate(zip(names, values, strict=True)):
            y = 10 + k * row
            parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{html.escape(name)}</text>'
                         f'<rect x="{left}" y="{y}" width="{max(v, 0) / top * width:.1f}" height="16" '
                         f'fill="{BAR_COLOURS[0]}"/><text x="{left + max(v, 0) / top * width + 4:.1f}" '
                         f'y="{y + 13}">{v:.3f}</text>')
        parts.append("</svg>")
        path = folder / "weights.svg"
        atomic.write_text(path, "\n".join(parts) + "\n")
        return path
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(values) + 1))
    ax.barh(names, values, color=BAR_COLOURS[0])
    ax.invert_yaxis()
    ax.set_xlabel("combiner weight")
    fig.tight_layout()
    path = folder / "weights.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
