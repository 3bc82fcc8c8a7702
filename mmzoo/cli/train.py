"""Provides the training commands: train, eval, runs, compare, data check."""

from __future__ import annotations

from pathlib import Path

from mmzoo.cli.args import schema_value
from mmzoo.cli.output import emit_json, err, table
from mmzoo.errors import DataError, RunError


def positive_int(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def add_threads_flag(p) -> None:
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch CPU threads for training (default: 1 for a head over cached features, every allowed "
                        "CPU when an encoder runs; overrides the model's train.threads)")


def apply_threads(args) -> None:
    from mmzoo.train.threads import set_override

    set_override(getattr(args, "threads", None))


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
    add_threads_flag(p)
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
    c = data_sub.add_parser("check", help="report every bad row of a manifest folder, then row, class, split and "
                                            "group counts; token (CoNLL) datasets too")
    c.add_argument("path", help="a folder with manifest.jsonl/.csv, or a registered dataset name")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_data_check)


def cmd_train(args) -> int:
    from mmzoo.app.train import Overrides, train_model
    from mmzoo.train.distributed import is_main_process

    apply_threads(args)
    run = train_model(args.model, Overrides.from_object(args), registry=args.registry, out=args.out,
                      device=args.device, resume=args.resume)
    if not is_main_process():
        return 0  # under torchrun, rank 0 reports the run
    metrics = run.metrics
    from mmzoo.cli import tokens

    if tokens.is_token_run(run):
        if args.json:
            emit_json({"run": run.name, "path": str(run.path), "task": "tokens", **tokens.summary(metrics)})
        else:
            print(tokens.train_line(run))
        return 0
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
    from mmzoo.runs.folders import find_run, resume_hint
    from mmzoo.train.metrics import classification_report

    run = find_run(args.run, args.out)
    if not run.finished:
        raise RunError(f"{run.name} {run.unfinished()}", hint=resume_hint(run))
    run.verify()  # weights and predictions against the digests recorded when they were written
    m = run.metrics[args.split]
    if args.json:
        emit_json({"run": run.name, "split": args.split, **m})
        return 0
    from mmzoo.cli import tokens

    if tokens.is_token_run(run):
        print(tokens.render_eval(run, args.split))
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
    from mmzoo.runs.folders import list_runs, summary_row

    rows = [summary_row(run) for run in list_runs(args.out)]
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        err(f"no runs under {args.out or 'runs/'}; train one with `mmzoo train MODEL`")
        return 0
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    print(table([(r["run"], r["kind"], r["state"], r["dataset"], fmt(r["test_accuracy"], ".4f"),
                  fmt(r["test_macro_f1"], ".4f"), fmt(r["train_seconds"], ".1f")) for r in rows],
                ("run", "kind", "state", "dataset", "test acc", "macro-F1", "train s"), "llllrrr")
          + ("\n(token runs: the F1 column is entity-level F1)" if any(r["test_accuracy"] is None and
                                                                          r["test_macro_f1"] is not None for r in rows)
             else ""))
    for r in rows:
        if r["state"] == "broken":
            err(f"broken: {r['path']}: {r['error']}")
        elif r.get("hint"):
            err(f"interrupted: {r['run']}: {r['hint']}")
    return 0


def cmd_compare(args) -> int:
    from mmzoo.cli import tokens
    from mmzoo.runs.compare import compare_runs
    from mmzoo.runs.folders import find_run

    selected = [find_run(r, args.out) for r in args.runs]
    token_runs = [tokens.is_token_run(r) for r in selected]
    if any(token_runs):
        if not all(token_runs):
            raise DataError(tokens.MIXED, hint="list them with `mmzoo runs`")
        rows = tokens.compare_rows(selected)
        print(tokens.render_compare(rows)) if not args.json else emit_json(rows)
        return 0
    rows = compare_runs(selected, args.out)
    if args.json:
        emit_json(rows)
        return 0
    print(render_compare(rows))
    return 0


def render_compare(rows: list[dict]) -> str:
    def pct(v):
        return "" if v is None else f"{100 * v:+.1f}"

    distilled = any("teacher" in r for r in rows)
    body = [(r["run"], r["kind"], f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}", f"{r['parameters'] / 1e6:.2f}M",
             f"{r['trainable_parameters'] / 1e6:.3f}M", f"{r['train_seconds']:.1f}", pct(r.get("gain_vs_text")),
             pct(r.get("gain_vs_image"))) + ((_closed(r),) if distilled else ()) for r in rows]
    text = table(body, ("run", "kind", "test acc", "macro-F1", "params", "trained", "train s", "vs text",
                        "vs image") + (("teacher gap closed",) if distilled else ()),
                 "llrrrrrrr" + ("r" if distilled else "")) + "\n(vs text / vs image: accuracy gain in points over the " \
        "text-only and image-only run with the same encoder and data)"
    if distilled:
        text += ("\n(teacher gap closed: a distilled run's share of its teacher ensemble's test-accuracy gain over "
                 "the ensemble's best member, picked on val)")
        from mmzoo.runs.compare import teacher_gain_note

        text += "".join(f"\n{r['run']}: {note}" for r in rows if (note := teacher_gain_note(r)))
    return text



def _closed(row: dict) -> str:
    if "teacher" not in row:
        return ""
    from mmzoo.runs.compare import gap_closed_text

    return gap_closed_text(row["teacher_gap_closed"])


def cmd_data_check(args) -> int:
    from mmzoo.data.manifest import check_folder, format_problems
    from mmzoo.data.summary import summarise
    from mmzoo.data.tokens import is_token_folder
    from mmzoo.train.factory import open_dataset
    from mmzoo.zoo.plugins import get_zoo

    if is_token_folder(args.path):  # CoNLL files, or manifest.jsonl rows with tokens and tags
        from mmzoo.cli.tokens import data_check

        return data_check(args.path, args.json)

    registered = get_zoo().get("dataset", args.path) is not None
    if registered:
        dataset = open_dataset(args.path)
        if getattr(dataset, "task", "classification") == "tokens":  # a registered token dataset (e.g. wnut17)
            from mmzoo.cli.tokens import data_check, registered_token_summary

            if Path(dataset.source).is_dir():
                return data_check(dataset.source, args.json)
            return registered_token_summary(dataset, args.json)
    problems = [] if registered else check_folder(args.path)
    errors = [p for p in problems if p.severity == "error"]
    summary = None if errors else summarise(open_dataset(args.path))
    if args.json:
        emit_json({"problems": [p.__dict__ for p in problems], "summary": summary})
    elif errors:
        print(format_problems(problems))
        warnings = len(problems) - len(errors)
        err(f"{len(errors)} problem(s)" + (f" and {warnings} warning(s)" if warnings else "") + f" in {args.path}")
    else:  # clean, or warnings only: the counts help to act on a warning
        if problems:
            print(format_problems(problems))
        print(f"{args.path}: ok" + (f" ({len(problems)} warning(s))" if problems else ""))
        print(render_summary(summary))
    return 1 if errors else 0


def render_summary(summary: dict) -> str:
    """Row, class, split and group counts, then a per-class table."""
    splits = summary["splits"]
    lines = [
        f"{summary['rows']} rows, {summary['classes']} classes (label set {summary['label_set']!r}; largest class "
        f"{summary['imbalance']:.1f}x the smallest)",
        "splits: " + ", ".join(f"{k} {v}" for k, v in splits.items()),
        f"groups: {summary['groups']} ({summary['grouped_rows']} rows share a group with another row, largest "
        f"{summary['largest_group']}; {summary['groups_across_splits']} groups straddle splits)",
        "",
    ]
    rows = [(c[:30], *(n[split] for split in splits), sum(n.values())) for c, n in summary["per_class"].items()]
    lines.append(table(rows, ("class", *splits, "total"), "l" + "r" * (len(splits) + 1)))
    return "\n".join(lines)
