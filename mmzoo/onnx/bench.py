"""Provides run_bench: torch eager vs onnxruntime (per member, merged, int8) on one run, in one process.

Absolute times on a shared CPU drift by up to ~1.8x between runs, so the settings are
timed round-robin (one call of each, repeated) and compared by ratios within the run.
Only model execution is timed: every setting gets the same preprocessed arrays.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmzoo.errors import ExportError
from mmzoo.onnx.parity import LOW_PRECISION_MIN_AGREEMENT
from mmzoo.onnx.runtime import make_session, physical_cores
from mmzoo.tables import table

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


def count_flops(source, feeds: dict) -> tuple[float, float]:
    """(FLOPs of the torch forward, FLOPs the merged graph runs) on ``feeds``, per FlopCounterMode.

    The merged graph runs an encoder that members share (frozen, same weights and inputs;
    mmzoo.onnx.shared.plan_encoders) once, so each extra use of it is subtracted.
    """
    from mmzoo.onnx.shared import plan_encoders

    total = _flops(lambda: source.probs(feeds))
    shared = 0.0
    for plan in plan_encoders(source.models, source.member_inputs):
        if len(plan.members) > 1:
            inputs = {fld: torch.from_numpy(feeds[name]) for name, fld in plan.inputs.items()}
            shared += (len(plan.members) - 1) * _flops(lambda enc=plan.encoder, x=inputs: enc(x))
    return total, total - shared


def _failure(exc: BaseException) -> str:
    """One line saying why a setting failed (onnxruntime's messages run to several lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def _round_robin(settings: dict[str, Callable[[], object]], rounds: int,
                 failed: dict[str, str]) -> dict[str, list[float]]:
    """Times per setting; a setting that raises (in warm-up or timing) moves to ``failed`` and the rest go on."""
    live = dict(settings)
    for name, fn in settings.items():
        try:
            for _ in range(WARMUP):
                fn()
        except Exception as exc:  # any runtime error of one setting must not stop the others
            failed[name] = _failure(exc)
            del live[name]
    times: dict[str, list[float]] = {name: [] for name in live}
    for _ in range(rounds):
        for name, fn in list(live.items()):
            start = time.perf_counter()
            try:
                fn()
            except Exception as exc:
                failed[name] = _failure(exc)
                del live[name], times[name]
                continue
            times[name].append(time.perf_counter() - start)
    return times


def _settings(source, exports: dict, feeds: dict) -> dict[str, Callable[[], object]]:
    """name -> a zero-argument call running that setting on ``feeds``, for every setting that was prepared."""
    out: dict[str, Callable[[], object]] = {"torch eager": lambda: source.probs(feeds)}
    if "members" in exports:
        members, combiner = exports["members"]
        member_feeds = [{fld: feeds[name] for name, fld in names.items()} for names in source.member_inputs]

        def separate():
            parts = [s.run(["probs"], f)[0] for s, f in zip(members, member_feeds, strict=True)]  # M x (B, C)
            stacked = np.stack(parts, axis=1)  # (B, M, C)
            return combiner.run(["probs"], {"member_probs": stacked})[0]

        out[setting_names(source)["members"]] = separate
    for precision in ("fp32", "int8"):
        if precision in exports:
            out[setting_names(source)[precision]] = lambda s=exports[precision]: s.run(["probs"], feeds)
    return out


def setting_names(source) -> dict[str, str]:
    label = "onnxruntime merged" if source.combiner is not None else "onnxruntime"
    return {"members": f"onnxruntime, {len(source.models)} sessions", "fp32": label, "int8": f"{label} int8"}


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


def _prepare(run, source, folder: Path, threads: int, say, failed: dict[str, str]) -> tuple[dict, dict]:
    """Export and load every onnxruntime setting; one that fails is recorded in ``failed`` and left out.

    Returns (sessions by setting key, export results by precision).
    """
    from mmzoo.onnx.export import export_run

    names = setting_names(source)
    exports, results = {}, {}
    for precision in ("fp32", "int8"):
        say(f"exporting the {precision} graph (parity-checked)")
        try:
            results[precision] = export_run(run, folder / precision, precision=precision,
                                            strict=precision == "fp32")
            # Spinning off everywhere: round-robin timing would otherwise let one setting's idle
            # threads busy-wait through the next setting's call.
            exports[precision] = make_session(results[precision]["path"], "cpu", threads, spinning=False)
        except Exception as exc:  # an export or session error of one setting must not stop the others
            failed[names[precision]] = _failure(exc)
            say(f"{names[precision]}: failed ({failed[names[precision]]})")
    if source.combiner is not None:
        say("exporting each member separately")
        try:
            exports["members"] = _member_sessions(source, folder / "members", threads)
        except Exception as exc:
            failed[names["members"]] = _failure(exc)
            say(f"{names['members']}: failed ({failed[names['members']]})")
    return exports, results


def run_bench(run, repeats: int = 30, batch_size: int = 32, threads: int | None = None,
              say: Callable[[str], None] = lambda m: None) -> dict:
    """Benchmark ``run`` (a model or an ensemble run); returns a JSON-able report.

    ``threads`` (default: physical cores) applies to torch and to every onnxruntime session alike.
    A setting that fails to export, load or run becomes a row with a ``failed`` message.
    """
    import onnxruntime as ort

    from mmzoo.onnx.source import load_source

    if run.spec.get("data", {}).get("task") == "tokens":
        raise ExportError(f"{run.name} is a token (NER) run: the benchmark compares a classifier's export "
                          "settings (fp32, int8, fp16), and token exports are fp32 only",
                          hint=f"export it with `mmzoo export {run.path}` and time `mmzoo predict FILE --text ...`")
    threads = threads or physical_cores()
    torch.set_num_threads(threads)
    source = load_source(run)
    samples, _ = source.validation(batch_size)
    batch = [samples[i % len(samples)] for i in range(batch_size)]  # repeats samples when val is small
    feeds_1 = source.feeds([batch[0].text], [batch[0].image])
    feeds_b = source.feeds([s.text for s in batch], [s.image for s in batch])
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mmzoo-bench-") as tmp:
        exports, results = _prepare(run, source, Path(tmp), threads, say, failed)
        say("measuring the float32 matmul peak and the model's FLOPs")
        peak = matmul_peak_gflops(threads)
        flops_1, flops_b = count_flops(source, feeds_1), count_flops(source, feeds_b)  # (torch, graph) each
        say(f"timing batch 1 ({repeats} rounds) and batch {batch_size} ({max(3, repeats // 5)} rounds)")
        load_before = os.getloadavg()[0]
        t1 = _round_robin(_settings(source, exports, feeds_1), repeats, failed)
        tb = _round_robin(_settings(source, exports, feeds_b), max(3, repeats // 5), failed)
        load = (load_before, os.getloadavg()[0])
        # Measured again after timing: under fluctuating load the better of the two is the ceiling.
        peak = max(peak, matmul_peak_gflops(threads))
    names = setting_names(source)
    order = ["torch eager", *(names[k] for k in ("members", "fp32", "int8") if k != "members" or source.combiner)]
    rows = []
    base_1 = statistics.median(t1["torch eager"]) if t1.get("torch eager") else None
    base_b = statistics.median(tb["torch eager"]) if tb.get("torch eager") else None
    for name in order:
        if name in failed or name not in t1 or name not in tb:
            rows.append({"setting": name, "failed": failed.get(name, "not timed")})
            continue
        m1, mb = statistics.median(t1[name]), statistics.median(tb[name])
        which = 1 if name.startswith("onnxruntime") and "sessions" not in name else 0  # one graph: shared FLOPs
        f1, fb = flops_1[which] / m1 / 1e9, flops_b[which] / mb / 1e9  # achieved GFLOP/s
        rows.append({"setting": name, "batch1_ms": 1e3 * m1, "batch1_speedup": base_1 / m1 if base_1 else None,
                     "batch_per_s": batch_size / mb, "batch_speedup": base_b / mb if base_b else None,
                     "flops": "graph" if which else "torch", "batch1_gflops": f1, "batch_gflops": fb,
                     "batch1_peak_fraction": f1 / peak, "batch_peak_fraction": fb / peak})
    timed = {r["setting"]: r for r in rows if "failed" not in r}
    fp32_row, int8_row = timed.get(names["fp32"]), timed.get(names["int8"])
    return {
        "run": run.name, "kind": source.kind, "members": source.member_names, "batch_size": batch_size,
        "repeats": repeats, "threads": threads, "load_average": load, "cpu": _cpu_name(), "torch": torch.__version__,
        "onnxruntime": ort.__version__, "peak_gflops": peak, "gflop_per_sample_batch1": flops_1[0] / 1e9,
        "gflop_per_sample_batch": flops_b[0] / batch_size / 1e9,
        "graph_gflop_per_sample_batch1": flops_1[1] / 1e9, "rows": rows,
        "failed": [{"setting": name, "error": error} for name, error in failed.items()],
        "int8_vs_fp32_batch1": fp32_row["batch1_ms"] / int8_row["batch1_ms"] if fp32_row and int8_row else None,
        "int8_parity": results["int8"]["parity"]["int8"] if "int8" in results else None,
        "fp32_parity": results["fp32"]["parity"]["fp32"] if "fp32" in results else None,
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
    """The report as a text table plus the figures around it; a failed setting's row says why."""
    def ratio(value):
        return "-" if value is None else f"{value:.2f}x"

    rows = []
    for r in report["rows"]:
        if "failed" in r:
            rows.append((r["setting"], "FAILED", "", "", "", "", ""))
            continue
        rows.append((r["setting"], f"{r['batch1_ms']:.2f}", ratio(r["batch1_speedup"]), f"{r['batch_per_s']:.1f}",
                     ratio(r["batch_speedup"]), f"{r['batch1_gflops']:.1f} ({r['batch1_peak_fraction']:.1%})",
                     f"{r['batch_gflops']:.1f} ({r['batch_peak_fraction']:.1%})"))
    b = report["batch_size"]
    head = ("setting", "batch 1 ms", "vs torch", f"batch {b} samples/s", "vs torch", "GFLOP/s b1 (of peak)",
            f"GFLOP/s b{b} (of peak)")
    shared = ""
    if report["kind"] == "ensemble":
        shared = (f" in torch, {report['graph_gflop_per_sample_batch1']:.3f} G in the merged graph (members sharing "
                  "a frozen encoder run it once)")
    lines = [
        f"{report['run']} ({report['kind']}, {len(report['members'])} member(s)) on {report['cpu']}, "
        f"{report['threads']} threads; torch {report['torch']}, onnxruntime {report['onnxruntime']}; "
        f"1-min load average {report['load_average'][0]:.1f} -> {report['load_average'][1]:.1f}",
        table(rows, head, "lrrrrrr"),
        f"FLOPs per sample at batch 1: {report['gflop_per_sample_batch1']:.3f} G{shared}; "
        f"float32 matmul peak {report['peak_gflops']:.0f} GFLOP/s (torch.mm {PEAK_SIZE}^2, same run)",
    ]
    p8 = report["int8_parity"]
    if p8 is not None and report["int8_vs_fp32_batch1"] is not None:
        below = " (below the 99% an int8 export needs)" if p8["argmax_agreement"] < LOW_PRECISION_MIN_AGREEMENT else ""
        lines.append(f"int8 vs fp32 onnxruntime at batch 1: {report['int8_vs_fp32_batch1']:.2f}x; int8 argmax "
                     f"agreement {p8['argmax_agreement']:.2%}{below}, val accuracy change "
                     f"{p8['val_accuracy_change']:+.4f} on {p8['samples']} samples")
    lines += [f"FAILED {f['setting']}: {f['error']}" for f in report["failed"]]
    return "\n".join(lines)
