"""Benchmark: on a warm feature cache, a zoo of heads costs its training loops plus a small constant.

Run: .venv/bin/python benchmarks/warm_cache.py [--epochs 3]

Trains the demo's eight emoji models (heads over frozen MiniLM and EfficientNet-Lite0) in
one process, twice, side by side:

- before: what mmzoo did up to now on a cache hit: build every frozen encoder (imports and
  weight loading) and open the dataset again for each model;
- after: frozen encoders stand in by their cached description (mmzoo.train.deferred) and the
  dataset is opened once per process.

For each it prints the zoo's wall time against the sum of the models' training loops
(`train_seconds`: epochs, per-epoch validation), then the cost of one extra model beyond
its loop. A model trained first, outside the figures, pays the process's one-off costs
(torch's lazily imported compiler stack, the encoders' description) and fills the cache
when it is cold (several minutes, once).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager

DEMO_MODELS = ("emoji_text", "emoji_image", "emoji_concat", "emoji_late", "emoji_gated", "emoji_bilinear",
               "emoji_cross_attention", "emoji_film")


@contextmanager
def old_behaviour():
    """The trainer as it was: full frozen encoders built for every model, the dataset opened for every model."""
    from mmzoo.data import open as data_open
    from mmzoo.train import factory

    create, opened = factory.create_model, data_open._OPENED

    def create_full(*args, defer_frozen=False, **kwargs):
        return create(*args, **kwargs)

    class Forgetful(dict):
        def __contains__(self, key):
            return False

    factory.create_model, data_open._OPENED = create_full, Forgetful()
    try:
        yield
    finally:
        factory.create_model, data_open._OPENED = create, opened


def train_one(name: str, epochs: int, out: str, seed: int = 0) -> tuple[float, float]:
    """(wall seconds of train(), its training loop's seconds)."""
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    spec = resolve_spec(name)
    spec["train"].update(epochs=epochs, patience=0, seed=seed)
    start = time.perf_counter()
    run = train(spec, Options(out=out, quiet=True))
    return time.perf_counter() - start, run.metrics["train_seconds"]


def zoo(epochs: int, out: str) -> tuple[float, float, float, float]:
    """(zoo wall, zoo loops, extra model's wall, extra model's loop)."""
    walls, loops = zip(*(train_one(name, epochs, out) for name in DEMO_MODELS), strict=True)
    extra_wall, extra_loop = train_one("emoji_gated", epochs, out, seed=1)  # one more head: another seed
    return sum(walls), sum(loops), extra_wall, extra_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "runs")
        start = time.perf_counter()
        train_one("emoji_concat", 1, out)  # one-off costs; fills the cache when cold
        print(f"warm-up model (cache fill if cold, one-off imports): {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
        after = zoo(args.epochs, out)
        with old_behaviour():
            before = zoo(args.epochs, out)
    print(f"warm feature cache, the demo's {len(DEMO_MODELS)} emoji models, {args.epochs} epochs each, "
          f"torch threads {torch.get_num_threads()} outside training")
    print(f"{'':28}{'zoo wall':>10}{'sum of loops':>14}{'ratio':>8}{'extra model':>13}{'beyond loop':>13}")
    for label, (wall, loops, extra_wall, extra_loop) in (("before (encoders built)", before),
                                                         ("after (encoders deferred)", after)):
        print(f"{label:28}{wall:9.1f}s{loops:13.1f}s{wall / loops:7.2f}x{extra_wall:12.1f}s"
              f"{extra_wall - extra_loop:12.1f}s")
    print(f"targets: ratio <= 1.5x, extra model <= 2 s beyond its loop; "
          f"zoo speed-up after/before {before[0] / after[0]:.1f}x")


if __name__ == "__main__":
    main()
