"""Benchmark: mmzoo's training step against a hand-written PyTorch loop, and the frozen-feature cache.

Run: .venv/bin/python benchmarks/train_overhead.py [--epochs 3] [--zoo 6]

1. The same model (digits_concat: trainable small_text + small_cnn), data, batch size and
   optimiser, trained by `mmzoo.train.trainer.train` and by a plain loop over pre-made tensors.
   Step time is measured from mmzoo's own per-step events, so per-epoch evaluation and
   checkpointing are reported separately as what they are: extra work, not step overhead.
2. A 6-model zoo of fusion heads over frozen MiniLM + EfficientNet-Lite0 on emoji: the
   first model pays for encoding, the rest read the cache. Compared with encoding every time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch


def hand_loop(spec: dict, epochs: int) -> float:
    """Median seconds per step of a plain PyTorch loop on the same model and data."""
    import torch.nn.functional as F

    from mmzoo.train.factory import create_model, open_dataset

    torch.manual_seed(spec["train"]["seed"])
    dataset = open_dataset(spec["task"]["dataset"])
    model = create_model(spec, num_classes=len(dataset.classes()))
    train = dataset.split("train")
    text = model.text_encoder.preprocessor([s.text for s in train])
    image = model.image_encoder.preprocessor([s.image for s in train])
    ids, mask = torch.from_numpy(text["input_ids"]), torch.from_numpy(text["attention_mask"])
    pixels = torch.from_numpy(image["pixel_values"])
    y = torch.tensor(dataset.targets(train))
    opt = torch.optim.AdamW(model.parameters(), lr=spec["train"]["lr"], weight_decay=spec["train"]["weight_decay"])
    bs = spec["train"]["batch_size"]
    times = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for b in range(0, len(y), bs):
            idx = order[b:b + bs]
            start = time.perf_counter()
            out = model({"input_ids": ids[idx], "attention_mask": mask[idx], "pixel_values": pixels[idx]})
            loss = F.cross_entropy(out["logits"], y[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def mmzoo_loop(spec: dict, epochs: int, out: str) -> tuple[float, float]:
    """(median seconds per step, total seconds) of mmzoo's trainer on the same model."""
    from mmzoo.train.trainer import Options, train

    stamps: list[tuple[int, float]] = []
    spec = {**spec, "train": {**spec["train"], "epochs": epochs, "patience": 0}}

    def on_event(event: dict) -> None:
        if event["type"] == "step":
            stamps.append((event["epoch"], time.perf_counter()))

    start = time.perf_counter()
    train(spec, Options(out=out, quiet=True, on_event=on_event))
    total = time.perf_counter() - start
    gaps = [b[1] - a[1] for a, b in zip(stamps, stamps[1:], strict=False) if a[0] == b[0]]  # within one epoch only
    return statistics.median(gaps), total


def cache_speedup(zoo: int, out: str) -> tuple[float, float]:
    """(first model's seconds, mean seconds of the cached rest)."""
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    # the first model reads both modalities, so it pays for all the encoding the rest reuse
    names = ["emoji_concat", "emoji_gated", "emoji_bilinear", "emoji_film", "emoji_late", "emoji_text",
             "emoji_image", "emoji_cross_attention"][:zoo]
    seconds = []
    for name in names:
        spec = resolve_spec(name)
        spec = {**spec, "train": {**spec["train"], "epochs": 3, "patience": 0}}
        start = time.perf_counter()
        train(spec, Options(out=out, quiet=True))
        seconds.append(time.perf_counter() - start)
    return seconds[0], statistics.mean(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--zoo", type=int, default=6, help="models in the cache benchmark (0 skips it)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmzoo.train.factory import resolve_spec

    spec = resolve_spec("digits_concat")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MMZOO_CACHE"] = os.path.join(tmp, "cache")
        hand = hand_loop(spec, args.epochs)
        step, total = mmzoo_loop(spec, args.epochs, os.path.join(tmp, "runs"))
        hand_again = hand_loop(spec, args.epochs)  # again, so drift hits both sides
        hand = min(hand, hand_again)
        print(f"training step, digits_concat, batch {spec['train']['batch_size']}, torch threads "
              f"{torch.get_num_threads()}")
        print(f"  hand-written loop  {1000 * hand:8.2f} ms/step")
        print(f"  mmzoo trainer      {1000 * step:8.2f} ms/step   overhead {100 * (step / hand - 1):+.1f}%")
        print(f"  mmzoo, whole run   {total:8.2f} s for {args.epochs} epochs (includes eval, checkpoints, files)")
        if args.zoo:
            first, rest = cache_speedup(args.zoo, os.path.join(tmp, "runs"))
            print(f"frozen-feature cache, {args.zoo}-model emoji zoo (3 epochs each)")
            print(f"  first model (encodes and caches) {first:8.1f} s")
            print(f"  each later model (cache hit)     {rest:8.1f} s   speed-up {first / rest:.1f}x")
            print(f"  whole zoo: {first + rest * (args.zoo - 1):.0f} s with the cache, "
                  f"~{first * args.zoo:.0f} s if every model encoded again")


if __name__ == "__main__":
    main()
