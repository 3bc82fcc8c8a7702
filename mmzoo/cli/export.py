"""Provides the ONNX commands: export, predict (torch-free) and bench."""

from __future__ import annotations

import sys
from pathlib import Path

from mmzoo.cli.args import int_range, utf8_text
from mmzoo.cli.output import emit_json, err, table
from mmzoo.errors import DataError, ExportError

DEVICES = ("auto", "cpu", "cuda")


def add_parsers(sub) -> None:
    p = sub.add_parser("export", help="export a finished run (model or whole ensemble) as one parity-checked .onnx")
    p.add_argument("run", help="run folder, model/run-id, or a model/ensemble name (its newest run)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder for the .onnx file")
    p.add_argument("--opset", type=int_range(7, 30), help="ONNX opset (default 17; 18 with --raw-image)")
    p.add_argument("--quantize", choices=("int8",), help="int8 weights for MatMul/Gemm (dynamic quantization)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and maths (float32 inputs and outputs)")
    p.add_argument("--samples", type=int_range(1, 1_000_000), help="validation samples for the parity checks (default: all of the "
                   "validation split, up to 512)")
    p.add_argument("--raw-image", action="store_true", help="the image input is the decoded picture, uint8 "
                   "(batch, height, width, 3 or 4); resizing, cropping, flattening and normalising run in the graph")
    p.add_argument("--sidecar", action="store_true", help="also write the metadata as JSON beside the model "
                   "(NAME.json), for runtimes that cannot read metadata_props")
    p.add_argument("--fixture", type=int, nargs="?", const=4, default=0, metavar="N",
                   help="also write N validation samples (default 4) with their inputs and expected outputs to "
                        "NAME.fixture/, for checking a port of the preprocessing")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("predict", help="predict with an exported .onnx file (no torch needed)")
    p.add_argument("file", type=Path, help="an .onnx file written by `mmzoo export`")
    p.add_argument("--text", type=utf8_text, help="the text of the sample")
    p.add_argument("--image", help="path of the sample's image")
    p.add_argument("--manifest", type=Path, metavar="DIR", help="predict a dataset folder (manifest.jsonl/.csv) "
                   "and report its metrics")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="all",
                   help="with --manifest: which split to predict (default: all rows)")
    p.add_argument("--top-k", type=int_range(1, 1_000_000), default=5)
    p.add_argument("--batch-size", type=int_range(1, 1_000_000), default=32)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("bench", help="time torch eager vs onnxruntime (per member, merged, int8) on a run")
    p.add_argument("run", help="run folder, model/run-id, or a model/ensemble name (its newest run)")
    p.add_argument("--repeats", type=int_range(1, 1_000_000), default=30, help="timed calls per setting at batch 1 (default 30)")
    p.add_argument("--batch-size", type=int_range(1, 1_000_000), default=32, help="batch size for the throughput columns (default 32)")
    p.add_argument("--threads", type=int_range(1, 4096), help="threads for torch and onnxruntime alike (default: physical cores)")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_bench)


def cmd_export(args) -> int:
    from mmzoo.onnx.export import export_run
    from mmzoo.onnx.parity import summary
    from mmzoo.runs.folders import find_run

    if args.quantize and args.fp16:
        raise ExportError("--quantize int8 and --fp16 are alternatives; pick one")
    precision = args.quantize or ("fp16" if args.fp16 else "fp32")
    run = find_run(args.run, args.out)
    from mmzoo.cli import tokens

    if tokens.is_token_run(run):  # a tagger or token ensemble: word probabilities, parity on val entity F1
        from mmzoo.tokens.export import export_token_run

        result = export_token_run(run, args.output, opset=args.opset, precision=precision,
                                  say=lambda msg: err(f"{run.name}: {msg}"))
        emit_json(result) if args.json else print(tokens.render_export(result))
        return 0
    result = export_run(run, args.output, opset=args.opset, precision=precision, samples=args.samples,
                        say=lambda msg: err(f"{run.name}: {msg}"), raw_image=args.raw_image, sidecar=args.sidecar,
                        fixture=args.fixture)
    if args.json:
        emit_json(result)
        return 0
    print(f"{result['path']}: {result['kind']} {result['run']}, {precision}, opset {result['opset']}, "
          f"{result['bytes'] / 1e6:.1f} MB, inputs {', '.join(result['inputs'])}")
    for prec, figures in result["parity"].items():
        print(f"  parity {prec}: {summary(figures)}")
    for key in ("sidecar", "fixture"):
        if key in result:
            print(f"  {key}: {result[key]}")
    return 0


def cmd_predict(args) -> int:
    from mmzoo.onnx.runtime import Predictor

    if args.top_k < 1 or args.batch_size < 1:
        raise DataError("--top-k and --batch-size must be at least 1")
    if args.manifest and (args.text is not None or args.image is not None):
        raise DataError("give --manifest DIR, or --text/--image for one sample, not both")
    if not args.manifest and args.text is None and args.image is None:
        raise DataError("nothing to predict", hint="give --text '...' and/or --image PATH, or --manifest DIR")
    from mmzoo.onnx import metadata as md
    from mmzoo.tokens.runtime import is_token_export

    if is_token_export(md.read(args.file)):  # NER: entities with types, character offsets and scores
        from mmzoo.cli.tokens import predict

        return predict(args)
    predictor = Predictor(args.file, device=args.device)
    if args.manifest:
        return _predict_manifest(predictor, args)
    unused = [flag for flag, modality, value in (("--text", "text", args.text), ("--image", "image", args.image))
              if value is not None and modality not in predictor.modalities]
    if unused:
        err(f"note: {args.file.name} does not read {' or '.join(unused)}; ignoring it")
    probs = predictor.predict(None if args.text is None or "text" not in predictor.modalities else [args.text],
                              None if args.image is None or "image" not in predictor.modalities else [args.image])
    top = predictor.top_k(probs, args.top_k)[0]
    if args.json:
        emit_json({"file": str(args.file), "top_k": [{"label": lab, "probability": p} for lab, p in top],
                   "probabilities": dict(zip(predictor.labels, probs[0].tolist(), strict=True))})
        return 0
    print(table([(lab, f"{p:.4f}") for lab, p in top], ("label", "probability"), "lr"))
    return 0


def _predict_manifest(predictor, args) -> int:
    from mmzoo.data.manifest import load_manifest
    from mmzoo.train.metrics import classification_metrics, classification_report

    dataset = load_manifest(args.manifest)
    samples = dataset.samples if args.split == "all" else dataset.split(args.split)
    if not samples:
        raise DataError(f"{args.manifest} has no {args.split} rows to predict")
    index = {label: i for i, label in enumerate(predictor.labels)}
    unknown = sorted({s.labels["label"] for s in samples} - set(index))
    if unknown:
        raise DataError(f"{args.manifest} has labels the model does not predict: {', '.join(unknown[:8])}",
                        hint=f"the model's labels: {', '.join(predictor.labels[:20])}")
    probs = predictor.predict([s.text for s in samples] if "text" in predictor.modalities else None,
                              [s.image for s in samples] if "image" in predictor.modalities else None,
                              batch_size=args.batch_size, where=[f" (row id {s.id})" for s in samples])
    labels = [index[s.labels["label"]] for s in samples]
    metrics = classification_metrics(probs, labels, predictor.labels)
    if args.json:
        predictions = [{"id": s.id, "label": s.labels["label"], "predicted": predictor.labels[int(row.argmax())],
                        "probability": float(row.max())} for s, row in zip(samples, probs, strict=True)]
        emit_json({"file": str(args.file), "manifest": str(args.manifest), "split": args.split, "metrics": metrics,
                   "predictions": predictions})
        return 0
    print(f"{args.file.name} on {args.manifest} ({args.split}, {metrics['n']} samples): accuracy "
          f"{metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, ECE {metrics['ece']:.4f}\n")
    print(classification_report(metrics))
    return 0


def cmd_bench(args) -> int:
    from mmzoo.onnx.bench import render, run_bench
    from mmzoo.runs.folders import find_run

    if args.repeats < 1 or args.batch_size < 1 or (args.threads is not None and args.threads < 1):
        raise ExportError("--repeats, --batch-size and --threads must be at least 1")
    report = run_bench(find_run(args.run, args.out), repeats=args.repeats, batch_size=args.batch_size,
                       threads=args.threads, say=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        emit_json(report)
    else:
        print(render(report))
    return 0
