"""Provides the training commands: train, eval, runs, compare, data check."""

from __future__ import annotations

import copy
from pathlib import Path

from mmzoo import schema
from mmzoo.cli.args import schema_value
from mmzoo.cli.output import emit_json, err, table
from mmzoo.errors import DataError, RegistryError, TrainingError


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train a model from the registry")
    p.add_argument("model", nargs="?", help="model name in registry.yaml (omit with --resume)")
    p.add_argument("--dataset", help="registered dataset name or folder with manifest.jsonl/.csv")
    p.add_argument("--label-set")
    p.add_argument("--epochs", type=schema_value("train", "epochs"))
    p.add_argument("--lr", type=schema_value("train", "lr"))
    p.add_argument("--batch-size", type=schema_value("train", "batch_size"))
    p.add_argument("--seed", type=schema_value("train", "seed"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("eval", help="show a run's metrics and per-class report")
    p.add_argument("run")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--out", type=Path, help="runs folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--out", type=Path, help="runs folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("compare", help="compare runs side by side, with each fusion's gain over its baselines")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", type=Path, help="runs folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = data_sub.add_parser("check", help="report every bad row of a manifest folder")
    c.add_argument("path")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_data_check)


def apply_overrides(spec: dict, args) -> dict:
    spec = copy.deepcopy(spec)
    for key, attr in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size"), ("seed", "seed")):
        value = getattr(args, attr, None)
        if value is not None:
            complaint = schema.param("train", key).check(value)  # the schema is the one place ranges live
            if complaint:
                raise TrainingError(f"--{key.replace('_', '-')} {complaint}",
                                    hint=f"see `mmzoo train --help`; the same range applies to train.{key} in "
                                         "registry.yaml")
            spec["train"][key] = value
    if getattr(args, "dataset", None):
        spec["task"]["dataset"] = args.dataset
        spec["task"]["label_set"] = None
    if getattr(args, "label_set", None):
        spec["task"]["label_set"] = args.label_set
    return spec


def check_task(spec: dict) -> None:
    """Fail early, before any model is built, on a bad dataset or label set."""
    from mmzoo.data.checks import require_trainable
    from mmzoo.factory import open_dataset

    dataset = open_dataset(spec["task"]["dataset"])
    label_set = spec["task"]["label_set"]
    if label_set is not None and label_set not in dataset.label_sets:
        raise DataError(f"dataset {dataset.name!r} has no label set {label_set!r}",
                        hint=f"choose one of: {', '.join(dataset.label_sets)}")
    require_trainable(dataset, label_set)


def cmd_train(args) -> int:
    from mmzoo.distributed import is_main_process
    from mmzoo.factory import resolve_spec
    from mmzoo.trainer import Options, train

    if not args.model and not args.resume:
        raise RegistryError("name a model to train, or pass --resume RUN", hint="see `mmzoo list models`")
    spec = None
    if not args.resume:
        spec = apply_overrides(resolve_spec(args.model, args.registry), args)
        check_task(spec)
    run = train(spec, Options(out=args.out, device=args.device, resume=args.resume))
    if not is_main_process():
        return 0  # under torchrun, rank 0 reports the run
    metrics = run.metrics
    if args.json:
        emit_json({"run": run.name, "path": str(run.path), **_summary(metrics)})
    else:
        test = metrics["test"]
        print(f"{run.name}: test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} "
              f"(best epoch {metrics['best_epoch']}, {metrics['train_seconds']:.1f}s) -> {run.path}")
    return 0


def _summary(metrics: dict) -> dict:
    return {split: {k: metrics[split][k] for k in ("accuracy", "macro_f1", "weighted_f1", "ece", "nll")}
            for split in ("val", "test") if split in metrics}


def cmd_eval(args) -> int:
    from mmzoo.metrics import classification_report
    from mmzoo.runs import find_run

    run = find_run(args.run, args.out)
    if not run.finished:
        raise TrainingError(f"{run.name} is {run.status.get('state')}, not finished",
                            hint=f"resume it with `mmzoo train --resume {run.path}`")
    m = run.metrics[args.split]
    if args.json:
        emit_json({"run": run.name, "split": args.split, **m})
        return 0
    print(f"{run.name} on {args.split} ({m['n']} samples): accuracy {m['accuracy']:.4f}, macro-F1 "
          f"{m['macro_f1']:.4f}, ECE {m['ece']:.4f}\n")
    print(classification_report(m))
    print("\nconfusion matrix (rows: true, columns: predicted):")
    classes = m["classes"]
    short = [c[:6] for c in classes]
    print(table([[classes[i][:20]] + row for i, row in enumerate(m["confusion_matrix"])], [""] + short,
                "l" + "r" * len(classes)))
    return 0


def cmd_runs(args) -> int:
    from mmzoo.runs import list_runs

    rows = []
    for run in list_runs(args.out):
        metrics = run.metrics if run.finished else {}
        test = metrics.get("test", {})
        rows.append({"run": run.name, "state": run.status.get("state"), "dataset": run.spec["data"]["dataset"],
                     "test_accuracy": test.get("accuracy"), "test_macro_f1": test.get("macro_f1"),
                     "train_seconds": metrics.get("train_seconds")})
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        err(f"no runs under {args.out or 'runs/'}; train one with `mmzoo train MODEL`")
        return 0
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    print(table([(r["run"], r["state"], r["dataset"], fmt(r["test_accuracy"], ".4f"), fmt(r["test_macro_f1"], ".4f"),
                  fmt(r["train_seconds"], ".1f")) for r in rows],
                ("run", "state", "dataset", "test acc", "macro-F1", "train s"), "lllrrr"))
    return 0


def cmd_compare(args) -> int:
    from mmzoo.compare import compare_runs
    from mmzoo.runs import find_run

    rows = compare_runs([find_run(r, args.out) for r in args.runs], args.out)
    if args.json:
        emit_json(rows)
        return 0
    print(render_compare(rows))
    return 0


def render_compare(rows: list[dict]) -> str:
    def pct(v):
        return "" if v is None else f"{100 * v:+.1f}"

    body = [(r["run"], r["kind"], f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}", f"{r['parameters'] / 1e6:.2f}M",
             f"{r['trainable_parameters'] / 1e6:.3f}M", f"{r['train_seconds']:.1f}", pct(r.get("gain_vs_text")),
             pct(r.get("gain_vs_image"))) for r in rows]
    return table(body, ("run", "kind", "test acc", "macro-F1", "params", "trained", "train s", "vs text",
                        "vs image"), "llrrrrrrr") + "\n(vs text / vs image: accuracy gain in points over the " \
        "text-only and image-only run with the same encoder and data)"


def cmd_data_check(args) -> int:
    from mmzoo.data.manifest import check_folder, format_problems

    problems = check_folder(args.path)
    errors = [p for p in problems if p.severity == "error"]
    if args.json:
        emit_json([p.__dict__ if hasattr(p, "__dict__") else p for p in problems])
    elif problems:
        print(format_problems(problems))
        warnings = len(problems) - len(errors)
        err(f"{len(errors)} problem(s)" + (f" and {warnings} warning(s)" if warnings else "") + f" in {args.path}")
    else:
        print(f"{args.path}: ok")
    return 1 if errors else 0
