"""Provides run_bench: torch eager vs onnxruntime (per member, merged, int8) on one run, in one process.

Absolute times on a shared CPU drift by up to ~1.8x between runs, so the settings are
timed round-robin (one call of each, repeated) and compared by ratios within the run.
Only model execution is timed: every setting gets the same preprocessed arrays.
"""

from __future__ import annotations

import hashlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmzoo.tables import table
from mmzoo.onnx.parity import LOW_PRECISION_MIN_AGREEMENT
from mmzoo.onnx.runtime import make_session, physical_cores

WARMUP = 3
PEAK_SIZE = 2048


def matmul_peak_gflops(threads: int, tries: int = 5) -> float:
    """Best float32 GFLOP/s of a square torch matmul: the ceiling the models are measured against."""
    torch.set_num_threads(threads)
    a, b = torch.randn(PEAK_SIZE, PEAK_SIZE), torch.randn(PEAK_SIZE, PEAK_SIZE)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * PEAK_SIZE ** 3 / best / 1e9


def _flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return float(counter.get_total_flops())


def _digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def count_flops(source, feeds: dict) -> tuple[float, float]:
    """(FLOPs of the torch forward, FLOPs the merged graph runs) on ``feeds``, per FlopCounterMode.

    Members that share an encoder's weights and inputs (a frozen encoder) share its nodes in
    the merged graph (see merge.share_identical_initializers), so the graph runs it once.
    """
    from mmzoo.onnx.source import FIELDS

    total = _flops(lambda: source.probs(feeds))
    seen, shared = set(), 0.0
    for model, names in zip(source.models, source.member_inputs, strict=True):
        for modality, encoder in (("text", model.text_encoder), ("image", model.image_encoder)):
            if encoder is None:
                continue
            graph_inputs = {name: fld for name, fld in names.items() if fld in FIELDS[modality]}
            key = (tuple(sorted(graph_inputs)), _digest(encoder))
            if key in seen:
                inputs = {fld: torch.from_numpy(feeds[name]) for name, fld in graph_inputs.items()}
                shared += _flops(lambda enc=encoder, x=inputs: enc(x))
            seen.add(key)
    return total, total - shared


def _round_robin(settings: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    for fn in settings.values():
        for _ in range(WARMUP):
            fn()
    times: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(rounds):
        for name, fn in settings.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _settings(source, exports: dict, feeds: dict) -> dict[str, Callable[[], object]]:
    """name -> a zero-argument call running that setting on ``feeds``."""
    out: dict[str, Callable[[], object]] = {"torch eager": lambda: source.probs(feeds)}
    if "members" in exports:
        members, combiner = exports["members"]
        member_feeds = [{fld: feeds[name] for name, fld in names.items()} for names in source.member_inputs]

        def separate():
            parts = [s.run(["probs"], f)[0] for s, f in zip(members, member_feeds, strict=True)]  # M x (B, C)
            stacked = np.stack(parts, axis=1)  # (B, M, C)
            return combiner.run(["probs"], {"member_probs": stacked})[0]

        out[f"onnxruntime, {len(members)} sessions"] = separate
    label = "onnxruntime merged" if source.combiner is not None else "onnxruntime"
    out[label] = lambda: exports["fp32"].run(["probs"], feeds)
    out[f"{label} int8"] = lambda: exports["int8"].run(["probs"], feeds)
    return out


def _member_sessions(source, folder: Path, threads: int):
    """One session per member plus one for the combiner, as a serving stack without merging would run."""
    import onnx

    from mmzoo.onnx import graphs
    from mmzoo.onnx.export import export_run
    from mmzoo.runs.folders import Run

    sessions = []
    for k, entry in enumerate(source.run.spec["members"]):
        result = export_run(Run(Path(entry["path"])), folder / f"m{k}")
        sessions.append(make_session(result["path"], "cpu", threads, spinning=False))
    combiner = graphs.combiner_graph(source.combiner, len(sessions), len(source.classes), graphs.DEFAULT_OPSET)
    onnx.save(combiner, str(folder / "combiner.onnx"))
    return sessions, make_session(folder / "combiner.onnx", "cpu", threads, spinning=False)


def run_bench(run, repeats: int = 30, batch_size: int = 32, threads: int | None = None,
              say: Callable[[str], None] = lambda m: None) -> dict:
    """Benchmark ``run`` (a model or an ensemble run); returns a JSON-able report.

    ``threads`` (default: physical cores) applies to torch and to every onnxruntime session alike.
    """
    import onnxruntime as ort

    from mmzoo.onnx.export import export_run
    from mmzoo.onnx.source import load_source

    threads = threads or physical_cores()
    torch.set_num_threads(threads)
    source = load_source(run)
    samples, _ = source.validation(batch_size)
    batch = [samples[i % len(samples)] for i in range(batch_size)]  # repeats samples when val is small
    feeds_1 = source.feeds([batch[0].text], [batch[0].image])
    feeds_b = source.feeds([s.text for s in batch], [s.image for s in batch])
    with tempfile.TemporaryDirectory(prefix="mmzoo-bench-") as tmp:
        folder = Path(tmp)
        say("exporting fp32 and int8 graphs (parity-checked)")
        fp32 = export_run(run, folder / "fp32")
        int8 = export_run(run, folder / "int8", precision="int8", strict=False)
        # Spinning off everywhere: round-robin timing would otherwise let one setting's idle
        # threads busy-wait through the next setting's call.
        exports: dict = {"fp32": make_session(fp32["path"], "cpu", threads, spinning=False),
                         "int8": make_session(int8["path"], "cpu", threads, spinning=False)}
        if source.combiner is not None:
            say("exporting each member separately")
            exports["members"] = _member_sessions(source, folder / "members", threads)
        say("measuring the float32 matmul peak and the model's FLOPs")
        peak = matmul_peak_gflops(threads)
        flops_1, flops_b = count_flops(source, feeds_1), count_flops(source, feeds_b)  # (torch, graph) each
        say(f"timing batch 1 ({repeats} rounds) and batch {batch_size} ({max(3, repeats // 5)} rounds)")
        load_before = os.getloadavg()[0]
        t1 = _round_robin(_settings(source, exports, feeds_1), repeats)
        tb = _round_robin(_settings(source, exports, feeds_b), max(3, repeats // 5))
        load = (load_before, os.getloadavg()[0])
        # Measured again after timing: under fluctuating load the better of the two is the ceiling.
        peak = max(peak, matmul_peak_gflops(threads))
    rows = []
    base_1, base_b = statistics.median(t1["torch eager"]), statistics.median(tb["torch eager"])
    for name in t1:
        m1, mb = statistics.median(t1[name]), statistics.median(tb[name])
        which = 1 if name.startswith("onnxruntime") and "sessions" not in name else 0  # one graph: shared FLOPs
        f1, fb = flops_1[which] / m1 / 1e9, flops_b[which] / mb / 1e9  # achieved GFLOP/s
        rows.append({"setting": name, "batch1_ms": 1e3 * m1, "batch1_speedup": base_1 / m1,
                     "batch_per_s": batch_size / mb, "batch_speedup": base_b / mb,
                     "flops": "graph" if which else "torch", "batch1_gflops": f1, "batch_gflops": fb,
                     "batch1_peak_fraction": f1 / peak, "batch_peak_fraction": fb / peak})
    fp32_row, int8_row = rows[-2], rows[-1]
    return {
        "run": run.name, "kind": source.kind, "members": source.member_names, "batch_size": batch_size,
        "repeats": repeats, "threads": threads, "load_average": load, "cpu": _cpu_name(), "torch": torch.__version__,
        "onnxruntime": ort.__version__, "peak_gflops": peak, "gflop_per_sample_batch1": flops_1[0] / 1e9,
        "gflop_per_sample_batch": flops_b[0] / batch_size / 1e9,
        "graph_gflop_per_sample_batch1": flops_1[1] / 1e9, "rows": rows,
        "int8_vs_fp32_batch1": fp32_row["batch1_ms"] / int8_row["batch1_ms"],
        "int8_parity": int8["parity"]["int8"], "fp32_parity": fp32["parity"]["fp32"],
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render(report: dict) -> str:
    """The report as a text table plus the figures around it."""
    rows = [(r["setting"], f"{r['batch1_ms']:.2f}", f"{r['batch1_speedup']:.2f}x", f"{r['batch_per_s']:.1f}",
             f"{r['batch_speedup']:.2f}x", f"{r['batch1_gflops']:.1f} ({r['batch1_peak_fraction']:.1%})",
             f"{r['batch_gflops']:.1f} ({r['batch_peak_fraction']:.1%})") for r in report["rows"]]
    b = report["batch_size"]
    head = ("setting", "batch 1 ms", "vs torch", f"batch {b} samples/s", "vs torch", "GFLOP/s b1 (of peak)",
            f"GFLOP/s b{b} (of peak)")
    p8 = report["int8_parity"]
    shared = ""
    if report["kind"] == "ensemble":
        shared = (f" in torch, {report['graph_gflop_per_sample_batch1']:.3f} G in the merged graph (members sharing "
                  "a frozen encoder run it once)")
    below = " (below the 99% an int8 export needs)" if p8["argmax_agreement"] < LOW_PRECISION_MIN_AGREEMENT else ""
    return "\n".join([
        f"{report['run']} ({report['kind']}, {len(report['members'])} member(s)) on {report['cpu']}, "
        f"{report['threads']} threads; torch {report['torch']}, onnxruntime {report['onnxruntime']}; "
        f"1-min load average {report['load_average'][0]:.1f} -> {report['load_average'][1]:.1f}",
        table(rows, head, "lrrrrrr"),
        f"FLOPs per sample at batch 1: {report['gflop_per_sample_batch1']:.3f} G{shared}; "
        f"float32 matmul peak {report['peak_gflops']:.0f} GFLOP/s (torch.mm {PEAK_SIZE}^2, same run)",
        f"int8 vs fp32 onnxruntime at batch 1: {report['int8_vs_fp32_batch1']:.2f}x; int8 argmax agreement "
        f"{p8['argmax_agreement']:.2%}{below}, val accuracy change {p8['val_accuracy_change']:+.4f} on "
        f"{p8['samples']} samples",
    ])
