"""Benchmark: a merged ensemble graph against one fused member, with and without shared encoders.

Run: .venv/bin/python benchmarks/ensemble_latency.py [--out RUNS] [--repeats 30] [--threads 1] [--json]

Two ensembles of the demo's frozen MiniLM + EfficientNet-Lite0 models, fitted with the
weighted combiner:
- ``emoji_all_weighted``: the demo's 8 members (text, image and six fusions);
- ``emoji_mixed_weighted``: the same, with the text-only member replaced by one whose MiniLM
  was fine-tuned (``freeze: false``, 1 epoch), so its encoder cannot be shared.
Members are reused from RUNS when a finished run of the same spec exists, otherwise trained
(the first emoji model encodes the dataset once, several minutes on 2 cores).

For each ensemble, in one process and timed round-robin (onnxruntime CPU, batch 1, median):
one fused member (``--member``, default emoji_gated) alone, the merged graph as before
(every member traced whole; only identical weights deduplicated), and the merged graph with
shared encoders (mmzoo.onnx.shared, what `mmzoo export` writes); each in fp32 and int8.
Every fp32 graph passes the export's parity check against torch, and int8 graphs report
their argmax agreement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMO_MODELS = ("emoji_text", "emoji_image", "emoji_concat", "emoji_late", "emoji_gated", "emoji_bilinear",
               "emoji_cross_attention", "emoji_film")
TUNED = "emoji_text_tuned"
TARGET = 1.3  # issue 13: K members sharing frozen encoders cost at most 1.3x one fused member
TUNED_REGISTRY = """
models:
  emoji_text_tuned:
    description: text-only baseline whose MiniLM is fine-tuned (1 epoch), for the mixed-ensemble benchmark
    text: {encoder: minilm, freeze: false}
    task: {dataset: emoji, label_set: category}
    train: {epochs: 1, lr: 0.0001, batch_size: 32, patience: 0}
"""


def _cli(*args: str) -> dict:
    res = subprocess.run([sys.executable, "-m", "mmzoo.cli", *args, "--json"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"`mmzoo {' '.join(args)}` failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)


def obtain(model: str, root: Path, registry: str | None = None) -> str:
    """A finished run of ``model``'s current spec under ``root``: reused, or trained now."""
    from mmzoo.runs.folders import find_finished
    from mmzoo.train.factory import resolve_spec

    run = find_finished(resolve_spec(model, registry), root)
    if run is not None:
        return run.name
    print(f"training {model} ...", file=sys.stderr)
    return _cli(*(["--registry", registry] if registry else []), "train", model, "--out", str(root))["run"]


def ensemble(name: str, members: list[str], root: Path) -> str:
    from mmzoo.runs.folders import list_runs

    for run in reversed(list_runs(root)):  # reuse an ensemble of exactly these member runs
        if run.model == name and run.finished and [m["name"] for m in run.spec.get("members", [])] == members:
            return run.name
    print(f"fitting {name} ...", file=sys.stderr)
    return _cli("ensemble", "--runs", *members, "--combiner", "weighted", "--name", name, "--out", str(root))["run"]


def _session(path: Path, threads: int):
    from mmzoo.onnx.runtime import make_session

    return make_session(path, "cpu", threads, spinning=False)


def graphs_of(source, member: str, folder: Path, samples: int) -> tuple[dict, dict, dict]:
    """Setting -> .onnx path, setting -> node counts, setting -> parity figures, for one ensemble."""
    import onnx

    from mmzoo.onnx import graphs, parity, shared
    from mmzoo.onnx.quantize import quantize_int8
    from mmzoo.onnx.runtime import make_session

    val, labels = source.validation(samples)
    ref = parity.reference(source, val, labels)
    example = {k: v[:2] for k, v in ref.feeds[0].items()}
    k = next(i for i, n in enumerate(source.member_names) if n.split("/")[0] == member)
    built = {
        "one fused member": graphs.member_graph(source.models[k], source.member_inputs[k], example,
                                                graphs.DEFAULT_OPSET, what=member),
        "merged, before (no dedupe)": shared.build_graph(source, example, graphs.DEFAULT_OPSET, share_encoders=False),
        "merged, shared encoders": shared.build_graph(source, example, graphs.DEFAULT_OPSET),
    }
    paths, counts, figures = {}, {}, {}
    # The fused member is compared with that member's own torch probabilities, on its own inputs.
    member_ref = parity.Reference([{n: f[n] for n in source.member_inputs[k]} for f in ref.feeds],
                                  _member_probs(source, k, ref.feeds), ref.labels)
    for name, model in built.items():
        fp32 = folder / f"{len(paths)}.onnx"
        onnx.save(model, str(fp32))
        int8 = folder / f"{len(paths)}-int8.onnx"
        quantize_int8(fp32, int8)
        counts[name] = {"nodes": len(model.graph.node), "encoder_copies": _encoder_copies(model),
                        "int8_nodes": len(onnx.load(str(int8)).graph.node)}
        want = member_ref if name == "one fused member" else ref
        for precision, path in (("fp32", fp32), ("int8", int8)):
            figures[f"{name} {precision}"] = got = parity.measure(make_session(path, "cpu", 1), want)
            if precision == "fp32":
                parity.check(got, "fp32", f"{source.run.name}: {name}")
            paths[f"{name} {precision}"] = path
    return paths, counts, figures


def _member_probs(source, k: int, feeds: list[dict]):
    import numpy as np

    return np.concatenate([source.member_probs(f)[:, k].numpy() for f in feeds]).astype(np.float32)


def _encoder_copies(model) -> dict[str, int]:
    """How many text and image encoder copies the graph computes: the distinct graph parts
    (``m<k>_`` member or ``e<j>_`` encoder prefixes; none for a lone member) reading the raw inputs."""
    parts: dict[str, set] = {"text": set(), "image": set()}
    for node in model.graph.node:
        head = node.name.split("_", 1)[0]
        part = head if head[:1] in "em" and head[1:].isdigit() else ""
        if any(i.endswith("input_ids") for i in node.input):
            parts["text"].add(part)
        if any(i.endswith("pixel_values") for i in node.input):
            parts["image"].add(part)
    return {modality: len(found) for modality, found in parts.items()}


def time_settings(paths: dict[str, Path], feeds: dict, threads: int, repeats: int) -> dict[str, float]:
    """Median batch-1 milliseconds per setting, timed round-robin (one call of each, repeated)."""
    sessions = {name: _session(path, threads) for name, path in paths.items()}
    inputs = {name: {i.name: feeds[i.name] for i in s.get_inputs()} for name, s in sessions.items()}
    for name, s in sessions.items():
        for _ in range(3):
            s.run(["probs"], inputs[name])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(repeats):
        for name, s in sessions.items():
            start = time.perf_counter()
            s.run(["probs"], inputs[name])
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def measure(run, member: str, threads: int, repeats: int, samples: int) -> dict:
    from mmzoo.onnx.source import load_source

    with tempfile.TemporaryDirectory(prefix="mmzoo-ens-latency-") as tmp:
        print(f"{run.name}: tracing, quantizing and parity-checking 6 graphs ...", file=sys.stderr)
        source = load_source(run)
        paths, counts, figures = graphs_of(source, member, Path(tmp), samples)
        sample = source.validation(1)[0][0]
        feeds = source.feeds([sample.text], [sample.image])
        print(f"{run.name}: timing ({repeats} rounds) ...", file=sys.stderr)
        load = os.getloadavg()[0]
        ms = time_settings(paths, feeds, threads, repeats)
    return {"run": run.name, "members": len(source.models), "member": member, "ms": ms, "counts": counts,
            "parity": figures, "load_average": (load, os.getloadavg()[0])}


def render(report: dict) -> str:
    lines = [f"{report['run']} ({report['members']} members), batch 1, {report['threads']} thread(s), "
             f"1-min load {report['load_average'][0]:.1f} -> {report['load_average'][1]:.1f}",
             f"{'graph':<28} {'nodes':>6} {'text/image encoders':>20} {'fp32 ms':>8} {'x member':>9} "
             f"{'int8 ms':>8} {'x member':>9} {'int8 agree':>10}"]
    base = {p: report["ms"][f"one fused member {p}"] for p in ("fp32", "int8")}
    for name, c in report["counts"].items():
        fp32, int8 = report["ms"][f"{name} fp32"], report["ms"][f"{name} int8"]
        copies = f"{c['encoder_copies']['text']}/{c['encoder_copies']['image']}"
        agree = report["parity"][f"{name} int8"]["argmax_agreement"]
        lines.append(f"{name:<28} {c['nodes']:>6} {copies:>20} {fp32:>8.2f} {fp32 / base['fp32']:>8.2f}x "
                     f"{int8:>8.2f} {int8 / base['int8']:>8.2f}x {agree:>10.2%}")
    after = {p: report["ms"][f"merged, shared encoders {p}"] / base[p] for p in ("fp32", "int8")}
    lines.append(f"merged with shared encoders / one fused member: {after['fp32']:.2f}x fp32, {after['int8']:.2f}x int8 "
                 + (f"(target <= {TARGET}x: {'met' if max(after.values()) <= TARGET else 'NOT met'})"
                    if report["counts"]["merged, shared encoders"]["encoder_copies"]
                    == report["counts"]["one fused member"]["encoder_copies"]
                    else f"(the {TARGET}x target is for members that all share frozen encoders; here a fine-tuned "
                         "encoder runs as its own copy)"))
    before, after = report["ms"]["merged, before (no dedupe) fp32"], report["ms"]["merged, shared encoders fp32"]
    lines.append(f"shared encoders vs before: {before / after:.2f}x faster (fp32), "
                 f"{report['ms']['merged, before (no dedupe) int8'] / report['ms']['merged, shared encoders int8']:.2f}x"
                 f" (int8); fp32 parity max |diff| {report['parity']['merged, shared encoders fp32']['max_abs_diff']:.1e}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("MMZOO_RUNS", "runs")),
                        help="runs folder: members are reused from it, or trained into it")
    parser.add_argument("--member", default="emoji_gated", help="the fused member to compare against")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=64, help="validation samples for the parity checks")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed ensemble (no fine-tuning)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mmzoo.runs.folders import find_run

    members = [obtain(m, args.out) for m in DEMO_MODELS]
    runs = [find_run(ensemble("emoji_all_weighted", members, args.out), args.out)]
    if not args.no_mixed:
        with tempfile.TemporaryDirectory(prefix="mmzoo-tuned-") as tmp:
            registry = Path(tmp) / "registry.yaml"
            registry.write_text(TUNED_REGISTRY)
            tuned = obtain(TUNED, args.out, str(registry))
        runs.append(find_run(ensemble("emoji_mixed_weighted", [tuned, *members[1:]], args.out), args.out))
    reports = []
    for run in runs:
        report = measure(run, args.member, args.threads, args.repeats, args.samples)
        report["threads"] = args.threads
        reports.append(report)
        if not args.json:
            print(render(report) + "\n", flush=True)
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
