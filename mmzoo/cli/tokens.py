"""Provides the token-task (NER) side of train, eval, compare, data check, ensemble and predict output."""

from __future__ import annotations

from mmzoo.cli.output import emit_json, err, table
from mmzoo.tokens.report import MIXED, compare_rows, decoding_text, is_token_run  # noqa: F401  (used by cli.*)


def summary(metrics: dict) -> dict:
    keys = ("precision", "recall", "f1", "token_accuracy")
    return {split: {k: metrics[split][k] for k in keys} for split in ("val", "test") if split in metrics}


def train_line(run) -> str:
    m = run.metrics
    test = m.get("test") or m["val"]
    split = "test" if "test" in m else "val"
    return (f"{run.name}: {split} entity F1 {test['f1']:.4f} (P {test['precision']:.4f}, R {test['recall']:.4f}; "
            f"token accuracy {test['token_accuracy']:.4f}) (best epoch {m['best_epoch']}, {m['train_seconds']:.1f}s) "
            f"-> {run.path}")


def render_eval(run, split: str) -> str:
    from mmzoo.tokens.metrics import render_table

    m = run.metrics[split]
    return (f"{run.name} on {split} ({m['sentences']} sentences, {m['words']} words, {m['entities']} entities): "
            f"entity-level exact match, micro F1 {m['f1']:.4f}\n"
            f"decoding: {decoding_text(run)} (chosen on val)\n\n"
            + render_table(m))


def render_compare(rows: list[dict]) -> str:
    types = sorted({t for r in rows for t in r["per_type_f1"]})
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    body = [(r["run"], r["kind"], fmt(r["val_entity_f1"]), fmt(r["entity_f1"]), fmt(r["precision"]),
             fmt(r["recall"]), *[fmt(r["per_type_f1"].get(t)) for t in types]) for r in rows]
    return (table(body, ("run", "kind", "val F1", "test F1", "P", "R", *types), "ll" + "r" * (4 + len(types)))
            + "\n(entity-level exact-match micro F1; per-type columns are test F1)")


SHOWN_PROBLEMS, SHOWN_REPAIRS = 200, 20  # lines printed; a 20,000-sentence file must not flood the terminal


def data_check(path, as_json: bool) -> int:
    from mmzoo.data.tokens import entity_counts, scan

    raws, types, problems, notes = scan(path, decode=True)
    pictures = sum(1 for r in raws if r.image)
    counts = entity_counts(raws)
    unlearnable = [t for t, c in counts.items() if c["train"] == 0]
    if as_json:
        emit_json({"task": "tokens", "types": types, "problems": [p.__dict__ for p in problems],
                   "repaired": [p.__dict__ for p in notes], "sentences": len(raws), "with_image": pictures,
                   "entities": counts, "types_without_train_entities": unlearnable})
        return 1 if problems else 0
    for p in problems[:SHOWN_PROBLEMS]:
        print(str(p))
    if len(problems) > SHOWN_PROBLEMS:
        print(f"... and {len(problems) - SHOWN_PROBLEMS} more problem(s), each with its line: `--json` lists all")
    repaired = [p for p in notes if p.field == "tag"]
    for p in notes:
        if p.field != "tag":
            print(f"note: {p}")
    for p in repaired[:SHOWN_REPAIRS]:  # an IOB1 file repairs most entities: a sample, then the count
        print(f"{p} (repaired on load)")
    if len(repaired) > SHOWN_REPAIRS:
        print(f"... and {len(repaired) - SHOWN_REPAIRS} more orphan I- tag(s) repaired the same way: `--json` lists all")
    if problems:
        err(f"{len(problems)} problem(s) in {path} (token dataset; refused until fixed)"
            + (f"; {len(repaired)} tag(s) will be repaired" if repaired else ""))
    else:
        for typ in unlearnable:  # the head gets an output for it, but nothing to learn it from
            print(f"warning: type {typ!r} has {counts[typ]['val']} val and {counts[typ]['test']} test entities "
                  "but none in train: no tagger can learn it, and it will count as missed")
        print(f"{path}: ok (token dataset, types: {', '.join(types)})"
              + (f"; {pictures} of {len(raws)} sentences have an image (the others read the tagger's "
                 "no-image embedding)" if pictures else "")
              + (f"; {len(repaired)} orphan I- tag(s) repaired to B-" if repaired else ""))
        rows = [(t, c["train"], c["val"], c["test"]) for t, c in counts.items()]
        if rows:
            print("\nentities per split:\n" + table(rows, ("type", "train", "val", "test"), "lrrr"))
    return 1 if problems else 0


def registered_token_summary(dataset, as_json: bool) -> int:
    """`data check NAME` for a plugin's token dataset built in memory (no folder to scan): its counts."""
    splits = {s: len(dataset.split(s)) for s in ("train", "val", "test")}
    if as_json:
        emit_json({"task": "tokens", "types": dataset.types, "problems": [], "sentences": splits})
    else:
        print(f"{dataset.name}: ok (token dataset, types: {', '.join(dataset.types)}; sentences: "
              + ", ".join(f"{k} {v}" for k, v in splits.items()) + ")")
    return 0


def ensemble_report(run, reused: list[bool]) -> dict:
    spec, m = run.spec, run.metrics
    members = [{"name": e["name"], "path": e["path"], "weight": e["weight"], "reused": r, **m["members"][e["name"]]}
               for e, r in zip(spec["members"], reused, strict=True)]
    return {"run": run.name, "path": str(run.path), "task": "tokens", "combiner": spec["combiner"],
            "dataset": spec["data"]["dataset"], "members": members, "best_member": m["best_member"],
            "beat_best_member": m["beat_best_member"], "val_note": m["val_note"],
            **{split: m[split] for split in ("val", "test")}}


def render_ensemble(report: dict) -> str:
    from mmzoo.tokens.metrics import render_table

    rows = [(x["name"], "reused" if x["reused"] else "trained", f"{x['weight']:.3f}", f"{x['val_f1']:.4f}",
             f"{x['test_f1']:.4f}") for x in report["members"]]
    rows.append((f"= {report['run']}", report["combiner"]["name"], "", f"{report['val']['f1']:.4f}*",
                 f"{report['test']['f1']:.4f}"))
    best = next(x for x in report["members"] if x["name"] == report["best_member"])
    gain = 100 * (report["test"]["f1"] - best["test_f1"])
    verdict = "matched or beat" if report["beat_best_member"] else "did NOT beat"
    return "\n".join([
        f"token ensemble on {report['dataset']}, combiner {report['combiner']['name']} (per word, then BIO decoding)",
        "",
        table(rows, ("run", "member", "weight", "val F1", "test F1"), "llrrr"),
        f"* {report['val_note']}; F1 is entity-level exact match",
        f"best member (by val F1): {best['name']}, test F1 {best['test_f1']:.4f}; the ensemble {verdict} it "
        f"({gain:+.1f} points)",
        "",
        "ensemble on test:",
        render_table(report["test"]),
        f"-> {report['path']}",
    ])


def render_export(result: dict) -> str:
    figures = result["parity"]["fp32"]
    return (f"{result['path']}: token {result['kind']} {result['run']}, fp32, opset {result['opset']}, "
            f"{result['bytes'] / 1e6:.1f} MB, inputs {', '.join(result['inputs'])} -> word probabilities\n"
            f"  parity fp32 on {figures['sentences']} val sentences: entity F1 {figures['onnx_f1']:.4f} (torch "
            f"{figures['torch_f1']:.4f}), max |diff| {figures['max_abs_diff']:.1e}, argmax agreement "
            f"{100 * figures['argmax_agreement']:.2f}%")


def predict(args) -> int:
    from mmzoo.errors import DataError
    from mmzoo.tokens.runtime import TokenPredictor

    if args.manifest:
        raise DataError(f"{args.file.name} is a token (NER) model: give --text '...' (and --image PATH when it "
                        "reads pictures)", hint="score a token dataset with `mmzoo eval` on its run instead of "
                                                "--manifest")
    if args.text is None:
        raise DataError("nothing to tag", hint="give --text '...'")
    predictor = TokenPredictor(args.file, device=args.device)
    if args.image is not None and not predictor.reads_images:
        raise DataError(f"{args.file.name} is a text-only token (NER) model: give --text '...' only",
                        hint="--image is for taggers conditioned on a picture (a token model with a fusion)")
    image = None if args.image is None else str(args.image)
    entities = predictor.entities([args.text], [image])[0]
    if predictor.reads_images and image is None:
        err(f"note: {args.file.name} reads a picture with the text; without --image it tags as for a sentence "
            "with no picture")
    if args.json:
        emit_json({"file": str(args.file), "text": args.text, "image": None if args.image is None else
                   str(args.image), "entities": entities})
        return 0
    if not entities:
        print("no entities found")
        return 0
    print(table([(e["type"], e["text"], e["start"], e["end"], f"{e['score']:.3f}") for e in entities],
                ("type", "text", "start", "end", "score"), "llrrr"))
    return 0
