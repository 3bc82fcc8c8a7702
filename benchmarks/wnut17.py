"""Benchmark: WNUT-17 NER with fine-tuned MiniLM taggers and their word-level ensembles, full schedule.

Run: .venv/bin/python benchmarks/wnut17.py [--out runs] [--step-ratio 20]

1. Trains (or reuses finished runs of exactly these specs) the registry's ``wnut17_minilm`` and
   ``wnut17_minilm_1ep``: MiniLM fine-tuned, head lr 1e-3, encoder lr 1e-4, batch 16, for 3 epochs
   and for 1, the best epoch chosen on dev entity F1. ``--runs A B`` uses these finished runs instead.
2. Builds mean, weighted and vote ensembles and picks the one to report on dev (val) F1.
3. With ``--step-ratio N``: times N training steps of mmzoo's loop (length-bucketed batches,
   dynamic padding, bf16 autocast where the CPU has AMX) against N steps of a plain loop
   (random batches padded to their longest, fp32), interleaved, in this one process.
Prints val and test entity F1 for plain argmax decoding and for the decoder (constrained Viterbi or
argmax + repair) and P(O) multiplier chosen on val (every run is re-scored from its stored word
probabilities, so runs trained before these choices existed are read the same way), per-type tables,
epoch times and the machine's conditions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

MEMBERS = ("wnut17_minilm", "wnut17_minilm_1ep")


def conditions() -> str:
    load = os.getloadavg()
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    import torch

    from mmzoo.train.trainer import autocast_dtype

    amp = autocast_dtype("auto", torch.device("cpu"))
    return (f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}, torch threads {torch.get_num_threads()}, "
            f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, autocast {amp or 'off (fp32: no AMX)'}")


def train_or_reuse(name: str, out: Path):
    from mmzoo.runs.folders import find_finished
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    spec = resolve_spec(name)
    run = find_finished(spec, out)
    if run is not None:
        print(f"{name}: reusing {run.name}")
        return run
    print(f"{name}: training ({conditions()})")
    return train(spec, Options(out=out))


def step_ratio(steps: int) -> str:
    """Median seconds per step: mmzoo's bucketed loop vs a plain random-batch fp32 loop, interleaved."""
    import contextlib

    import numpy as np
    import torch
    import torch.nn.functional as F

    from mmzoo.data.tokens import load_wnut17
    from mmzoo.tokens.model import create_tagger
    from mmzoo.tokens.train import _tensors, aligner_for, batches
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import autocast_dtype

    dataset = load_wnut17()
    model = create_tagger(resolve_spec(MEMBERS[0]), dataset.labels)
    aligner = aligner_for(model)
    train = dataset.split("train")
    rows = aligner.rows([s.tokens for s in train])
    index = {t: i for i, t in enumerate(dataset.labels)}
    targets = [w.token_labels([index[t] for t in train[w.sentence].tags]) for w in rows]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    amp = autocast_dtype("auto", torch.device("cpu"))
    bucketed = batches(rows, 16, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    plain = [rng.permutation(len(rows))[:16].tolist() for _ in range(steps)]

    def step(idx, autocast) -> float:
        started = time.perf_counter()
        t = _tensors([rows[i] for i in idx], aligner.pad_id, "cpu")
        y = torch.full(t["input_ids"].shape, -100, dtype=torch.int64)
        for k, i in enumerate(idx):
            y[k, :len(targets[i])] = torch.tensor(targets[i])
        with autocast:
            logits = model(t)["logits"]
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - started

    ours, theirs = [], []
    for k in range(steps):
        ours.append(step(bucketed[k % len(bucketed)],
                         torch.autocast("cpu", dtype=amp) if amp else contextlib.nullcontext()))
        theirs.append(step(plain[k], contextlib.nullcontext()))
    a, b = statistics.median(ours), statistics.median(theirs)
    n = len(bucketed)
    return (f"step time over {steps} interleaved steps: mmzoo {a:.3f}s, plain loop {b:.3f}s (ratio {b / a:.2f}x); "
            f"an epoch is {n} steps: about {a * n:.0f}s vs {b * n:.0f}s here")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--runs", nargs="+", metavar="RUN", help="finished token runs to use as the members")
    parser.add_argument("--step-ratio", type=int, default=0, metavar="N", help="also time N steps side by side")
    args = parser.parse_args()
    from mmzoo.tokens.ensemble import build_token_ensemble, choose_decoding, f1_of, word_probs
    from mmzoo.tokens.metrics import render_table
    from mmzoo.zoo.token_schema import COMBINERS

    print(f"conditions: {conditions()}")
    if args.runs:
        from mmzoo.runs.folders import find_run

        members = [find_run(ref, args.out) for ref in args.runs]
    else:
        members = [train_or_reuse(name, args.out) for name in MEMBERS]
    ensembles = [build_token_ensemble({"name": f"wnut17_pair_{c}", "kind": "ensemble",
                                       "recipe": {"members": [r.name for r in members]}, "combiner": {"name": c}},
                                      members, root=args.out) for c in COMBINERS]
    print("\nentity F1 with plain argmax decoding, and with the decoder and P(O) multiplier chosen on val:")
    print(f"{'run':<40}{'val':>8}{'test':>8}{'decoder':>9}{'P(O)x':>6}{'val':>8}{'test':>8}  epoch train s / weights")
    scored = {}
    for run in members + ensembles:
        val, test = (word_probs(run, split) for split in ("val", "test"))
        labels = run.spec["data"]["classes"]
        choice = choose_decoding(val[0], val[1], val[2], labels)
        f = {(split, how): f1_of(*arrays[:3], labels, how[1], how[0])
             for split, arrays in (("val", val), ("test", test)) for how in (("argmax", 1.0), choice)}
        scored[run.name] = (choice, f)
        m = run.metrics
        extra = (", ".join(f"{s:.0f}" for s in m["epoch_train_seconds"]) if "epoch_train_seconds" in m
                 else "weights " + " ".join(f"{w:.2f}" for w in m["weights"]))
        plain = ("argmax", 1.0)
        print(f"{run.name:<40}{f['val', plain]['f1']:>8.4f}{f['test', plain]['f1']:>8.4f}{choice[0]:>9}"
              f"{choice[1]:>6.1f}{f['val', choice]['f1']:>8.4f}{f['test', choice]['f1']:>8.4f}  {extra}")
    best_member = max(members, key=lambda r: scored[r.name][1]["val", scored[r.name][0]]["f1"])
    chosen = max(ensembles, key=lambda r: scored[r.name][1]["val", scored[r.name][0]]["f1"])
    for title, run in (("best member (on val)", best_member), ("chosen ensemble (on val)", chosen)):
        choice, f = scored[run.name]
        print(f"\n{title} {run.name}, test, {choice[0]}, P(O) x {choice[1]:g}:\n{render_table(f['test', choice])}")
    if args.step_ratio:
        print("\n" + step_ratio(args.step_ratio))
    print(f"\nconditions at the end: {conditions()}")


if __name__ == "__main__":
    main()
