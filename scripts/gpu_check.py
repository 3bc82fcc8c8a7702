"""Check mmzoo's CUDA paths in one run; say plainly that they were skipped when there is no CUDA.

Run: make gpu-check   (or .venv/bin/python scripts/gpu_check.py [--epochs 2])

With CUDA present, each check runs and prints a line; a failing check is reported and the
script exits 1 after the rest have run:

1. device selection: `--device auto` picks cuda, `--device cuda` is accepted;
2. autocast: the precision `auto` picks bf16 (fp16 where bf16 is unsupported); one forward
   and backward of a fusion model under bf16 and under fp16 (with a GradScaler) on CUDA;
3. training throughput: the same model (digits_concat) trained by mmzoo's trainer on CPU
   and on CUDA, samples per second side by side;
4. DDP: a 2-process `torchrun` training step with NCCL (needs 2 GPUs; reported as skipped on 1);
5. onnxruntime: the trained run exported, then its CUDA execution provider with I/O binding
   against the CPU provider: outputs compared, batch-1 latency side by side.

Without CUDA it prints why it skipped and exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "digits_concat"
results: list[tuple[str, str, str]] = []  # (check, status, detail)


def report(check: str, status: str, detail: str) -> None:
    results.append((check, status, detail))
    print(f"[{status:7}] {check}: {detail}", flush=True)


def attempt(check: str, fn, *args) -> object:
    try:
        return fn(*args)
    except Exception as exc:  # a check that fails is reported; the others still run
        report(check, "FAILED", f"{type(exc).__name__}: {exc}")
        return None


def check_devices() -> None:
    import torch

    from mmzoo.train.trainer import pick_device

    auto, cuda = pick_device("auto"), pick_device("cuda")
    if auto.type != "cuda" or cuda.type != "cuda":
        raise RuntimeError(f"auto picked {auto}, cuda gave {cuda}")
    report("device selection", "ok", f"auto -> {auto}; {torch.cuda.device_count()} GPU(s), "
           f"{torch.cuda.get_device_name(0)}")


def check_autocast() -> None:
    import torch
    import torch.nn.functional as F

    from mmzoo.train.factory import create_model
    from mmzoo.train.trainer import autocast_dtype

    device = torch.device("cuda")
    chosen = autocast_dtype("auto", device)
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if chosen != expected:
        raise RuntimeError(f"precision auto chose {chosen}, expected {expected}")
    model = create_model(MODEL).to(device)
    inputs = {"input_ids": torch.randint(2, 30, (16, 12), device=device),
              "attention_mask": torch.ones(16, 12, dtype=torch.long, device=device),
              "pixel_values": torch.randn(16, 3, 16, 16, device=device)}
    y = torch.randint(0, 2, (16,), device=device)
    details = []
    for dtype in (torch.bfloat16, torch.float16):
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            logits = model(inputs)["logits"]
        loss = F.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if logits.dtype != dtype or not torch.isfinite(loss) or not grads:
            raise RuntimeError(f"{dtype}: logits {logits.dtype}, loss {loss.item()}, {len(grads)} gradients")
        details.append(f"{str(dtype).split('.')[-1]} loss {loss.item():.3f}")
    report("autocast on CUDA", "ok", f"auto -> {str(chosen).split('.')[-1]}; " + ", ".join(details))


def throughput(device: str, epochs: int, out: str):
    from mmzoo.train.factory import open_dataset, resolve_spec
    from mmzoo.train.trainer import Options, train

    spec = resolve_spec(MODEL)
    spec["train"].update(epochs=epochs, patience=0, precision="auto")
    run = train(spec, Options(out=out, device=device, quiet=True, run_name=f"{MODEL}_{device}"))
    samples = len(open_dataset(spec["task"]["dataset"]).split("train")) * epochs
    return run, samples / run.metrics["train_seconds"]


def check_training(epochs: int, out: str):
    cpu_run, cpu = throughput("cpu", epochs, out)
    gpu_run, gpu = throughput("cuda", epochs, out)
    report("training throughput", "ok", f"{MODEL}, {epochs} epochs: CPU {cpu:,.0f} samples/s, GPU {gpu:,.0f} "
           f"samples/s ({gpu / cpu:.1f}x); test accuracy CPU {cpu_run.metrics['test']['accuracy']:.4f}, "
           f"GPU {gpu_run.metrics['test']['accuracy']:.4f}")
    return gpu_run


def check_ddp(out: str) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        report("NCCL DDP (2 processes)", "skipped", f"needs 2 GPUs (one per process), found "
               f"{torch.cuda.device_count()}")
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mmzoo",
           "train", MODEL, "--epochs", "1", "--device", "cuda", "--out", out, "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"torchrun exited {res.returncode}: {res.stderr[-1500:]}")
    report("NCCL DDP (2 processes)", "ok", f"one epoch of {MODEL} on 2 GPUs: {res.stdout.strip()[-200:]}")


def check_onnx(run, out: str) -> None:
    import numpy as np
    import onnxruntime as ort

    from mmzoo.onnx.export import export_run
    from mmzoo.onnx.runtime import Predictor
    from mmzoo.train.factory import open_dataset

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        report("onnxruntime CUDA provider", "skipped", "this onnxruntime offers only "
               f"{', '.join(ort.get_available_providers())} (install onnxruntime-gpu for CUDA)")
        return
    path = export_run(run, Path(out) / "exports")["path"]
    cpu, gpu = Predictor(path, device="cpu"), Predictor(path, device="cuda")
    if not gpu.on_gpu:
        raise RuntimeError(f"session providers {gpu.session.get_providers()}")
    test = open_dataset(run.spec["data"]["dataset"]).split("test")[:64]
    texts, images = [s.text for s in test], [s.image for s in test]
    diff = float(np.abs(cpu.predict(texts, images) - gpu.predict(texts, images)).max())
    feeds = cpu.feeds(texts[:1], images[:1])
    timings: dict[str, list[float]] = {"cpu": [], "cuda": []}
    for _ in range(10):  # warm-up, then interleaved timed calls
        cpu.run(feeds), gpu.run(feeds)
    for _ in range(50):
        for name, predictor in (("cpu", cpu), ("cuda", gpu)):
            start = time.perf_counter()
            predictor.run(feeds)
            timings[name].append(time.perf_counter() - start)
    c, g = (1000 * statistics.median(timings[k]) for k in ("cpu", "cuda"))
    if diff > 1e-3:
        raise RuntimeError(f"CUDA provider differs from CPU by {diff:.2e}")
    report("onnxruntime CUDA provider + I/O binding", "ok", f"max |CPU - CUDA| {diff:.1e}; batch-1 latency CPU "
           f"{c:.2f} ms, CUDA {g:.2f} ms ({c / g:.1f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if not torch.cuda.is_available():
        print(f"gpu-check skipped: CUDA is not available here (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda or 'none'}, {torch.cuda.device_count()} device(s) visible); nothing was run.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MMZOO_CACHE", os.path.join(tmp, "cache"))
        attempt("device selection", check_devices)
        attempt("autocast on CUDA", check_autocast)
        run = attempt("training throughput", check_training, args.epochs, os.path.join(tmp, "runs"))
        attempt("NCCL DDP (2 processes)", check_ddp, os.path.join(tmp, "ddp"))
        if run is not None:
            attempt("onnxruntime CUDA provider", check_onnx, run, tmp)
    failed = [r for r in results if r[1] == "FAILED"]
    print(f"gpu-check: {sum(r[1] == 'ok' for r in results)} ok, {sum(r[1] == 'skipped' for r in results)} skipped, "
          f"{len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
