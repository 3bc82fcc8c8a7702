"""Provides `mmzoo ensemble`: a registry ensemble (members trained or reused) or one of finished runs."""

from __future__ import annotations

from pathlib import Path

from mmzoo.app.train import Overrides
from mmzoo.cli.args import safe_name, schema_value
from mmzoo.cli.output import emit_json, table
from mmzoo.errors import RegistryError


def add_parsers(sub) -> None:
    from mmzoo.cli.train import add_threads_flag

    p = sub.add_parser("ensemble", help="train or reuse an ensemble's members, fit its combiner on val, score on test",
                       description="mmzoo ensemble NAME [--combiner C]  |  mmzoo ensemble --runs RUN1 RUN2 ... "
                                   "--combiner C [--name NAME]")
    p.add_argument("ensemble", nargs="?", metavar="NAME", help="ensemble name in registry.yaml")
    p.add_argument("--runs", nargs="+", metavar="RUN", help="combine these finished runs instead (same dataset and "
                   "label set)")
    p.add_argument("--combiner", metavar="NAME[:K=V,...]",
                   help="override the combiner, e.g. stacking or stacking:weight_decay=0.1,folds=3 (default with "
                        "--runs: mean); a registry ensemble refit this way runs as NAME.COMBINER")
    p.add_argument("--name", type=safe_name, help="name of a --runs ensemble's run folder (default: adhoc-<combiner>)")
    p.add_argument("--dataset", help="train and combine the members on this registered dataset or manifest folder "
                   "instead of their own (the run is named NAME.DATASET)")
    p.add_argument("--label-set", help="with --dataset: the label set to predict (default: the dataset's)")
    p.add_argument("--epochs", type=schema_value("train", "epochs"), help="train members that need training for this many epochs")
    p.add_argument("--batch-size", type=schema_value("train", "batch_size"), help="batch size of members that need training")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="train members one after another here (local), or as parallel Ray tasks (ray)")
    p.add_argument("--address", help="with --executor ray: a Ray cluster to join (default: start a local one)")
    p.add_argument("--cpus-per-member", type=float, help="with --executor ray: CPUs per member task (default 1)")
    p.add_argument("--gpus-per-member", type=float, help="with --executor ray: GPUs per member task (default 0)")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    add_threads_flag(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_ensemble)


def cmd_ensemble(args) -> int:
    from mmzoo.app.ensemble import ensemble_from_registry, ensemble_from_runs, summarise
    from mmzoo.cli.train import apply_threads

    if bool(args.ensemble) == bool(args.runs):
        raise RegistryError("give an ensemble name or --runs RUN1 RUN2 ..., not both" if args.ensemble else
                            "name an ensemble, or pass --runs RUN1 RUN2 ...",
                            hint="see `mmzoo list ensembles` and `mmzoo runs`")
    apply_threads(args)
    if args.runs:
        check_runs_flags(args)
        result = ensemble_from_runs(args.runs, args.combiner, args.name, out=args.out)
    else:
        if args.name:
            raise RegistryError("--name names a --runs ensemble; a registry ensemble's runs are named after it")
        result = ensemble_from_registry(args.ensemble, Overrides.from_object(args), make_executor_from(args),
                                        registry=args.registry, out=args.out, device=args.device,
                                        combiner=args.combiner)
    if result.tokens:  # NER runs: word-level combiners, entity metrics
        from mmzoo.cli import tokens

        report = tokens.ensemble_report(result.run, result.obtained.reused)
        emit_json(report) if args.json else print(tokens.render_ensemble(report))
        return 0
    report = summarise(result)
    if args.json:
        emit_json(report)
    else:
        print(render(report))
    return 0


def check_runs_flags(args) -> None:
    """--runs combines finished runs, so the flags that say how members train make no sense with it."""
    if args.epochs is not None or args.batch_size is not None or args.dataset or args.label_set:
        raise RegistryError("--epochs, --batch-size, --dataset and --label-set set how members train; --runs "
                            "combines finished runs only")
    if args.executor != "local" or any(v is not None for v in (args.address, args.cpus_per_member,
                                                              args.gpus_per_member)):
        raise RegistryError("--executor, --address and --cpus/--gpus-per-member set how members train; --runs "
                            "combines finished runs only")


def make_executor_from(args):
    """The executor the flags ask for; registry `resources:` fill what the flags leave out."""
    from mmzoo.ensemble.executors import make_executor
    from mmzoo.zoo.registry import load_registry

    entry = load_registry(args.registry).get(args.ensemble)
    resources = entry.spec.get("resources") if entry.ok and entry.kind == "ensemble" else None
    return make_executor(args.executor, address=args.address, cpus=args.cpus_per_member, gpus=args.gpus_per_member,
                         resources=resources)


def render(report: dict) -> str:
    from mmzoo.ensemble.build import combiner_label

    rows = [(m["name"], "reused" if m["reused"] else "trained", f"{m['val_accuracy']:.4f}",
             f"{m['test_accuracy']:.4f}", f"{m['test_macro_f1']:.4f}", m["note"]) for m in report["members"]]
    rows.append((f"= {report['run']}", report["combiner"]["name"], f"{report['val']['accuracy']:.4f}*",
                 f"{report['test']['accuracy']:.4f}", f"{report['test']['macro_f1']:.4f}", ""))
    best = next(m for m in report["members"] if m["name"] == report["best_member"])
    gain = 100 * (report["test"]["accuracy"] - best["test_accuracy"])
    verdict = "beat" if report["beat_best_member"] else "did NOT beat"
    div = report["diversity"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        f"ensemble {report['ensemble']} on {report['dataset']} (label set {report['label_set']}), combiner "
        f"{combiner_label(report['combiner'])}: {len(report['trained'])} member(s) trained, {len(report['reused'])} reused",
        "",
        table(rows, ("run", "member", "val acc", "test acc", "macro-F1", "note"), "llrrrl"),
        f"* ensemble val accuracy is {report['val_note']}",
        "",
        f"best member (by val accuracy): {best['name']}, test accuracy {best['test_accuracy']:.4f}",
        f"the ensemble {verdict} its best member on test ({gain:+.1f} points)",
        f"diversity on test: mean pairwise disagreement {fmt(div['mean_disagreement'])}, "
        f"mean error correlation {fmt(div['mean_error_correlation'])}",
    ]
    if "boosting" in report:
        b = report["boosting"]
        lines.append("boosting: alphas " + " ".join(f"{a:.3f}" for a in b["alphas"]) + "; train error with 1.."
                     f"{len(b['alphas'])} members " + " ".join(f"{e:.4f}" for e in b["train_error"]))
        if b["stopped"]:
            lines.append(f"boosting stopped early: {b['stopped']}")
    lines.append(f"-> {report['path']}")
    return "\n".join(lines)
