"""Helpers for the TUI tests: what the screen shows as text, notifications, waiting on the pilot, tiny runs."""

from __future__ import annotations

import io
import time
from pathlib import Path

# Tiny digits-match models (a few seconds an epoch), layered over the project registry.
TINY_BASE = """
models:
  tiny_concat:
    description: a very small digits-match fusion for UI tests
    text: {encoder: small_text, dim: 16, layers: 1}
    image: {encoder: small_cnn, dim: 16, image_size: 16, channels: [4, 8]}
    fusion: concat
    task: {dataset: digits-match}
    train: {epochs: 2, lr: 0.003, batch_size: 128, patience: 0, precision: fp32}
  tiny_text:
    description: the text-only baseline of tiny_concat
    text: {encoder: small_text, dim: 16, layers: 1}
    task: {dataset: digits-match}
    train: {epochs: 1, lr: 0.003, batch_size: 128, patience: 0, precision: fp32}
ensembles:
  tiny_pair:
    description: the two tiny models, soft-voted
    members: [tiny_text, tiny_concat]
    combiner: mean
"""
TINY = TINY_BASE + """  tiny_weighted:
    description: the two tiny models, weights fitted on val
    members: [tiny_text, tiny_concat]
    combiner: weighted
"""
SMALL = (80, 24)


def screen_text(app) -> str:
    """The characters on the terminal now, line by line: what a user at this size can actually read."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


def record_notifications(app) -> list[dict]:
    """Keep every notification the app shows, with its severity, for assertions."""
    seen: list[dict] = []
    original = app.notify

    def notify(message, *, title="", severity="information", timeout=None, markup=True):
        seen.append({"message": message, "title": title, "severity": severity})
        return original(message, title=title, severity=severity, timeout=timeout, markup=markup)

    app.notify = notify
    return seen


async def wait_for(pilot, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.2)


async def type_into(pilot, selector: str, text: str) -> None:
    await pilot.click(selector)
    await pilot.press("ctrl+a", "ctrl+k", *text)


def train_tiny(registry: Path, root: Path, names=("tiny_text", "tiny_concat"), epochs: int = 1) -> None:
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    for name in names:
        spec = resolve_spec(name, str(registry))
        spec["train"]["epochs"] = epochs
        train(spec, Options(out=root, quiet=True))


TOY_TAGGER = """
models:
  toy_tagger:
    description: a tiny tagger for the TUI's token-run tests
    text: {{encoder: small_text, dim: 16, layers: 1, max_length: 32}}
    task: {{dataset: {data}, type: tokens}}
    train: {{epochs: 8, lr: 0.01, encoder_lr: null, batch_size: 16, patience: 0, precision: fp32}}
"""


def train_toy_taggers(root: Path) -> list:
    """Two tiny taggers (seeds 0 and 1) on a generated PER/LOC manifest, and their word-level mean ensemble."""
    import json
    import random

    from mmzoo.tokens.ensemble import build_token_ensemble
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    data = root / "toy-ner"
    data.mkdir(parents=True)
    rng = random.Random(0)
    rows = []
    for split, n in (("train", 120), ("val", 30), ("test", 30)):
        for _ in range(n):
            words = [rng.choice(["alice", "bob", "oslo", "rome", "we", "went", "to", "saw"]) for _ in range(4)]
            tags = ["B-PER" if w in ("alice", "bob") else "B-LOC" if w in ("oslo", "rome") else "O" for w in words]
            rows.append(json.dumps({"tokens": words, "tags": tags, "split": split}))
    (data / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    registry = root / "toy-ner.yaml"
    registry.write_text(TOY_TAGGER.format(data=data))
    runs = []
    for seed in (0, 1):
        spec = resolve_spec("toy_tagger", str(registry))
        spec["train"]["seed"] = seed
        runs.append(train(spec, Options(out=root / "runs", quiet=True, run_name=f"toy_tagger_s{seed}")))
    pair = build_token_ensemble({"name": "toy_tagger_pair", "kind": "ensemble", "recipe": {"members": []},
                                 "combiner": {"name": "mean"}}, runs, root=root / "runs")
    return runs + [pair]
