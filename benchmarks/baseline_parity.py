"""Benchmarks mmzoo fit against a hand-written scikit-learn baseline on the same frozen features and splits.

For each dataset, the baseline is logistic regression on standardised frozen MiniLM and
EfficientNet-Lite0 features (224 px), C tuned on val from a grid, then refit on train+val:
text only, image only, early fusion (concatenated features), late fusion (mean of the text
and image models' probabilities) and the mean of those four models. mmzoo's side is
`mmzoo fit DATA --preset fast`: its text-only, image-only and concat models (each the best
of its kind by cross-validation, refit on train+val) and the model or ensemble it chose.
Nothing on either side is chosen on test. Both read the same feature cache.

    python benchmarks/baseline_parity.py [emoji digits-match flags] [--preset fast] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    pred = probs.argmax(1)
    return float(f1_score(y, pred, average="macro")), float((pred == y).mean())


def sklearn_baselines(dataset, text: np.ndarray, image: np.ndarray, label_set: str) -> dict:
    """Test (macro-F1, accuracy) of the five baselines; C of each LR tuned on val, then refit on train+val."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    split = np.array([s.split for s in dataset.samples])
    y = np.array(dataset.targets(dataset.samples, label_set))
    tr, va, te, trva = split == "train", split == "val", split == "test", split != "test"

    def lr(x: np.ndarray) -> np.ndarray:
        best = None
        for c in C_GRID:
            scaler = StandardScaler().fit(x[tr])
            model = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x[tr]), y[tr])
            f1 = scores(_full(model, scaler.transform(x[va]), y), y[va])[0]
            if best is None or f1 > best[0]:
                best = (f1, c)
        scaler = StandardScaler().fit(x[trva])
        model = LogisticRegression(C=best[1], max_iter=3000).fit(scaler.transform(x[trva]), y[trva])
        return _full(model, scaler.transform(x[te]), y)

    probs = {"text LR": lr(text), "image LR": lr(image), "early-fusion LR": lr(np.hstack([text, image]))}
    probs["late-fusion LR"] = (probs["text LR"] + probs["image LR"]) / 2
    probs["4-model mean"] = sum(probs.values()) / 4
    return {name: scores(p, y[te]) for name, p in probs.items()}


def _full(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """predict_proba over every class id, also those missing from the fit."""
    out = np.zeros((len(x), int(y.max()) + 1))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=["emoji", "digits-match", "flags"])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--image-size", type=int, help="EfficientNet-Lite0 input side for both sides (default: "
                        "the preset's, native 224); a smaller side makes encoding a large dataset affordable")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--save", type=Path, help="also write the rows as JSON here (to render several runs)")
    parser.add_argument("--render", type=Path, nargs="+", metavar="JSON", help="only render saved rows together")
    args = parser.parse_args(argv)
    if args.render:
        rows = [row for path in args.render for row in json.loads(path.read_text())]
        print(render(rows))
        if args.out:
            args.out.write_text(render(rows) + "\n")
        return

    from mmzoo.fit.features import encoder_spec, pooled_features
    from mmzoo.fit.pipeline import FitOptions, fit
    from mmzoo.train.factory import open_dataset

    rows = []
    for name in args.datasets:
        dataset = open_dataset(name)
        label_set = dataset.default_label_set
        text = pooled_features(dataset, encoder_spec("minilm"))
        sized = {"image_size": args.image_size} if args.image_size else {}
        image = pooled_features(dataset, encoder_spec("efficientnet_lite0", **sized))
        started = time.perf_counter()
        base = sklearn_baselines(dataset, text, image, label_set)
        base_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            overrides = {"image": {"encoder": "efficientnet_lite0", **sized}} if sized else {}
            report = fit(name, FitOptions(preset=args.preset, out=Path(tmp) / "runs", report_dir=Path(tmp) / "rep",
                                          export=False, preset_overrides=overrides,
                                          say=lambda msg: print(msg, file=sys.stderr)))
        ours = {}
        for model in report["models"]:
            kind = model["name"].split("/")[0]
            if kind in ("text", "image", "concat"):
                ours[f"mmzoo {kind}"] = (model["test"]["macro_f1"], model["test"]["accuracy"], model["name"])
        chosen = report["chosen"]
        ours["mmzoo fit choice"] = (chosen["test"]["macro_f1"], chosen["test"]["accuracy"], chosen["name"])
        rows.append({"dataset": name + (f" @{args.image_size}px" if sized else ""), "test_rows": report["rows"]["test"], "metric": report["metric"],
                     "sklearn": base, "mmzoo": ours, "fit_seconds": report["seconds"],
                     "sklearn_seconds": base_seconds})
        print(render([rows[-1]]), flush=True)
        if args.save:
            args.save.write_text(json.dumps(rows, indent=1))
    table = render(rows)
    print("\n" + table)
    if args.out:
        args.out.write_text(table + "\n")


def render(rows: list[dict]) -> str:
    """Markdown: one row per dataset, test macro-F1 (accuracy in brackets) of every baseline and mmzoo model."""
    base_names = list(rows[0]["sklearn"])
    our_names = ["mmzoo text", "mmzoo image", "mmzoo concat", "mmzoo fit choice"]
    head = "| dataset (test rows) | " + " | ".join(base_names + our_names) + " | fit's choice |"
    lines = [head, "|---|" + "---:|" * (len(base_names) + len(our_names)) + "---|"]
    for r in rows:
        cells = [f"{r['sklearn'][n][0]:.3f} ({r['sklearn'][n][1]:.3f})" for n in base_names]
        cells += [f"{r['mmzoo'][n][0]:.3f} ({r['mmzoo'][n][1]:.3f})" if n in r["mmzoo"] else "" for n in our_names]
        lines.append(f"| {r['dataset']} ({r['test_rows']}) | " + " | ".join(cells)
                     + f" | {r['mmzoo']['mmzoo fit choice'][2]} |")
    if len(rows) > 1:
        mean_base = max(np.mean([r["sklearn"][n][0] for r in rows]) for n in base_names)
        mean_fit = np.mean([r["mmzoo"]["mmzoo fit choice"][0] for r in rows])
        lines.append(f"\nmean test macro-F1 over {len(rows)} datasets: fit's choice {mean_fit:.3f}, best single "
                     f"scikit-learn baseline {mean_base:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
