"""Benchmark: OpenMP's wait policy for encoder fine-tuning, on a quiet machine and next to a busy process.

Run: .venv/bin/python benchmarks/wait_policy.py [--steps 40] [--model wnut17_minilm]

An encoder that fine-tunes uses every allowed CPU (mmzoo.train.threads), so between two of
its hundreds of small parallel regions per step each idle OpenMP thread either spins
(fast to resume, but it holds a core another process wants) or sleeps (frees the core,
pays a wake-up). Each measurement is a fresh process, so OpenMP starts with that policy:

- spin: libgomp's default (OMP_WAIT_POLICY and GOMP_SPINCOUNT unset);
- passive: OMP_WAIT_POLICY=PASSIVE (what mmzoo's CLI set before);
- short spin: GOMP_SPINCOUNT=3000, what mmzoo's CLI sets now (mmzoo.train.threads.prefer_short_spin).

Each times --steps training steps of the model's real loop pieces (the registry model, its
word-aligned WNUT-17 batches, fused AdamW, gradient clipping; the first 3 steps are warm-up),
on the machine as it is and next to one pure-Python spin loop this script starts and stops.
The figure is the median step time and the epoch it implies; settings alternate within each round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

POLICIES = {"spin": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "short spin": {"GOMP_SPINCOUNT": "3000"}}
SPIN = "import time\nend = time.time() + {limit}\nwhile time.time() < end:\n    pass\n"


def child(model_name: str, steps: int) -> None:
    """Time ``steps`` training steps in this process; print {"step": median s, "steps_per_epoch": n} as JSON."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mmzoo.tokens.align import IGNORE
    from mmzoo.tokens.model import create_tagger
    from mmzoo.tokens.train import _tensors, aligner_for, batches
    from mmzoo.train import threads
    from mmzoo.train.factory import open_dataset, resolve_spec
    from mmzoo.train.optim import adamw, optimizer_step

    threads.use(threads.choose(threads.ENCODER))
    spec = resolve_spec(model_name)
    dataset = open_dataset(spec["task"]["dataset"])
    model = create_tagger(spec, dataset.labels)
    aligner = aligner_for(model)
    train = dataset.split("train")
    rows = aligner.rows([s.tokens for s in train])
    index = {label: i for i, label in enumerate(dataset.labels)}
    targets = [w.token_labels([index[t] for t in train[w.sentence].tags]) for w in rows]
    plan = batches(rows, spec["train"]["batch_size"], np.random.default_rng(0))
    optimizer = adamw(model.parameters(), 1e-4, 0.01)
    model.train()
    times = []
    for idx in plan[:steps + 3]:
        t = _tensors([rows[i] for i in idx], aligner.pad_id, "cpu")
        y = torch.full(t["input_ids"].shape, IGNORE, dtype=torch.int64)
        for k, i in enumerate(idx):
            y[k, :len(targets[i])] = torch.tensor(targets[i])
        started = time.perf_counter()
        loss = F.cross_entropy(model(t)["logits"].flatten(0, 1), y.flatten(), ignore_index=IGNORE)
        optimizer_step(optimizer, loss, model.trainable_parameters(), 1.0)
        times.append(time.perf_counter() - started)
    print(json.dumps({"step": statistics.median(times[3:]), "steps_per_epoch": len(plan),
                      "threads": torch.get_num_threads()}))


def measure(policy: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy], HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, __file__, "--child", "--model", args.model, "--steps", str(args.steps)],
                         capture_output=True, text=True, env=env, timeout=args.child_limit)
    if res.returncode != 0:
        raise SystemExit(f"{policy} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wnut17_minilm")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--competitor-limit", type=int, default=900, help="the busy process exits after this")
    parser.add_argument("--child-limit", type=int, default=600, help="seconds allowed to one measurement")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, args.steps)
        return
    steps: dict[tuple[str, str], list[float]] = {}
    info = {}
    for _ in range(args.repeat):
        for load in ("quiet", "busy"):
            competitor = None
            if load == "busy":
                competitor = subprocess.Popen([sys.executable, "-c", SPIN.format(limit=args.competitor_limit)])
                time.sleep(0.5)
            try:
                for policy in POLICIES:
                    info = measure(policy, args)
                    steps.setdefault((policy, load), []).append(info["step"])
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    n = info["steps_per_epoch"]
    print(f"{args.model}: fine-tuning steps, {info['threads']} threads, {n} steps an epoch; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'policy':14}{'quiet step':>12}{'epoch':>8}{'busy step':>12}{'epoch':>8}{'busy/quiet':>12}")
    median = {key: statistics.median(v) for key, v in steps.items()}
    for policy in POLICIES:
        quiet, busy = median[(policy, "quiet")], median[(policy, "busy")]
        print(f"{policy:14}{quiet * 1000:10.0f}ms{quiet * n:7.0f}s{busy * 1000:10.0f}ms{busy * n:7.0f}s"
              f"{busy / quiet:11.2f}x")
    for load in ("quiet", "busy"):
        base = median[("passive", load)]
        print(f"{load}: short spin / passive {median[('short spin', load)] / base:.2f}x, "
              f"spin / passive {median[('spin', load)] / base:.2f}x")


if __name__ == "__main__":
    main()
