"""Provides `mmzoo demo`: the main job end to end on emoji, then the comparison table.

Steps: train (or reuse) text-only, image-only and every built-in fusion over frozen
MiniLM + EfficientNet-Lite0; fit mean, weighted, stacking, greedy and moe ensembles
over them on validation; add a seeds ensemble of one fusion model; compare on test.
Then the token task (mmzoo.cli.demo_tokens): two WNUT-17 taggers and their word-level ensembles.
"""

from __future__ import annotations

import time
from pathlib import Path

from mmzoo.cli.output import err

DEMO_MODELS = ("emoji_text", "emoji_image", "emoji_concat", "emoji_late", "emoji_gated", "emoji_bilinear",
               "emoji_cross_attention", "emoji_film")
DEMO_COMBINERS = ("mean", "weighted", "stacking", "greedy", "moe")
DEMO_SEEDS = "emoji_gated_seeds"
DEMO_PARITY_SAMPLES = 128


def add_parsers(sub) -> None:
    from mmzoo.cli.train import add_threads_flag

    p = sub.add_parser("demo", help="train text-only, image-only and every fusion on emoji, ensemble them, compare; "
                       "then two WNUT-17 NER taggers and their ensemble")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/)")
    p.add_argument("--retrain", action="store_true", help="train again even when a finished run matches")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add_threads_flag(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_demo)


def train_or_reuse(name: str, args, step: str):
    from mmzoo.runs.folders import find_finished
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    spec = resolve_spec(name, args.registry)
    run = None if args.retrain else find_finished(spec, args.out)
    if run is not None:
        err(f"{step} {name}: reusing finished run {run.name}")
        return run
    err(f"{step} {name}: training")
    return train(spec, Options(out=args.out, device=args.device))


def cmd_demo(args) -> int:
    from mmzoo.app.ensemble import ensemble_from_registry
    from mmzoo.cli.output import emit_json
    from mmzoo.cli.train import apply_threads, render_compare
    from mmzoo.ensemble.build import build_ensemble, combiner_spec
    from mmzoo.runs.compare import compare_runs

    apply_threads(args)
    started = time.perf_counter()
    total = len(DEMO_MODELS) + 3
    runs = [train_or_reuse(name, args, f"[{i}/{total}]") for i, name in enumerate(DEMO_MODELS, 1)]
    err(f"[{total - 2}/{total}] ensembles of the {len(runs)} models: {', '.join(DEMO_COMBINERS)}")
    ensembles = []
    for combiner in DEMO_COMBINERS:
        spec = {"name": f"emoji_all_{combiner}", "kind": "ensemble",
                "description": f"the demo's {len(runs)} models, {combiner}",
                "recipe": {"members": list(DEMO_MODELS)}, "combiner": combiner_spec(combiner)}
        ensembles.append(build_ensemble(spec, runs, root=args.out))
    err(f"[{total - 1}/{total}] {DEMO_SEEDS}: seeds of one fusion model")
    ensembles.append(ensemble_from_registry(DEMO_SEEDS, registry=args.registry, out=args.out,
                                            device=args.device).run)
    rows = compare_runs(runs + ensembles, args.out)
    # The ensemble to ship is chosen on validation, as a user without test labels would choose it.
    best = max(ensembles, key=lambda r: r.metrics["val"]["accuracy"])
    err(f"[{total}/{total}] exporting {best.name} to ONNX and predicting test samples with onnxruntime")
    shipped = ship(best, args)
    from mmzoo.cli.demo_tokens import render_token_demo, token_demo

    tokens = token_demo(args, train_or_reuse)  # WNUT-17 NER: two taggers, their ensembles, the entity table
    if args.json:
        emit_json({"comparison": rows, "export": shipped, "tokens": tokens})
        return 0
    print(render_compare(rows))
    best_single = max(rows[: len(runs)], key=lambda r: r["accuracy"])
    print(f"\nbest single model: {best_single['run']} ({best_single['accuracy']:.4f}); "
          + "; ".join(f"{r['run'].split('/')[0]} {'beats' if r['accuracy'] > best_single['accuracy'] else 'does not beat'}"
                      f" it" for r in rows[len(runs):]))
    print(f"\n{best.name} exported to {shipped['path']} (parity: max |diff| {shipped['max_abs_diff']:.1e}, "
          f"argmax agreement {100 * shipped['agreement']:.1f}%); onnxruntime on test samples:")
    for sample in shipped["samples"]:
        top = ", ".join(f"{label} {p:.2f}" for label, p in sample["top"])
        print(f"  {sample['text'][:48]:<48} true {sample['label']:<20} -> {top}")
    print("\n" + render_token_demo(tokens))
    err(f"demo finished in {time.perf_counter() - started:.0f}s")
    return 0


def ship(run, args, count: int = 5) -> dict:
    """Export ``run`` as one ONNX graph and predict a few test samples with the torch-free runtime."""
    from mmzoo.onnx.export import export_run
    from mmzoo.onnx.runtime import Predictor
    from mmzoo.train.factory import open_dataset

    exports = Path(args.out).parent / "exports" if args.out else Path("exports")
    # 128 validation samples keep the demo's 8-member parity check to about a minute and still fail a graph
    # that disagrees on more than 3 of them; `mmzoo export` checks all of val up to 512.
    result = export_run(run, exports, samples=DEMO_PARITY_SAMPLES, say=err)
    spec = run.spec["data"]
    dataset = open_dataset(spec["dataset"])
    test = dataset.split("test")
    picks = [test[i] for i in range(0, len(test), max(1, len(test) // count))][:count]
    predictor = Predictor(result["path"], device=args.device)
    probs = predictor.predict([s.text for s in picks], [s.image for s in picks])
    parity = result["parity"]["fp32"]
    return {"path": str(result["path"]), "max_abs_diff": parity["max_abs_diff"],
            "agreement": parity["argmax_agreement"],
            "samples": [{"text": s.text, "label": s.labels[spec["label_set"]], "top": top}
                        for s, top in zip(picks, predictor.top_k(probs, 3), strict=True)]}
