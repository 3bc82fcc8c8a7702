"""Provides `mmzoo ensemble`: a registry ensemble (members trained or reused) or one of finished runs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from mmzoo.cli.output import emit_json, err, table
from mmzoo.errors import RegistryError


def add_parsers(sub) -> None:
    p = sub.add_parser("ensemble", help="train or reuse an ensemble's members, fit its combiner on val, score on test",
                       description="mmzoo ensemble NAME [--combiner C]  |  mmzoo ensemble --runs RUN1 RUN2 ... "
                                   "--combiner C [--name NAME]")
    p.add_argument("ensemble", nargs="?", metavar="NAME", help="ensemble name in registry.yaml")
    p.add_argument("--runs", nargs="+", metavar="RUN", help="combine these finished runs instead (same dataset and "
                   "label set)")
    p.add_argument("--combiner", help="override the combiner, with its default params (default with --runs: mean)")
    p.add_argument("--name", help="name of a --runs ensemble's run folder (default: adhoc-<combiner>)")
    p.add_argument("--epochs", type=int, help="train members that need training for this many epochs")
    p.add_argument("--batch-size", type=int, help="batch size of members that need training")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="train members one after another here (local), or as parallel Ray tasks (ray)")
    p.add_argument("--address", help="with --executor ray: a Ray cluster to join (default: start a local one)")
    p.add_argument("--cpus-per-member", type=float, help="with --executor ray: CPUs per member task (default 1)")
    p.add_argument("--gpus-per-member", type=float, help="with --executor ray: GPUs per member task (default 0)")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_ensemble)


def cmd_ensemble(args) -> int:
    from mmzoo.ensemble import build_ensemble

    if bool(args.ensemble) == bool(args.runs):
        raise RegistryError("give an ensemble name or --runs RUN1 RUN2 ..., not both" if args.ensemble else
                            "name an ensemble, or pass --runs RUN1 RUN2 ...",
                            hint="see `mmzoo list ensembles` and `mmzoo runs`")
    spec, obtained = from_runs(args) if args.runs else from_registry(args)
    from mmzoo.cli import tokens

    if any(tokens.is_token_run(r) for r in obtained.runs):  # NER runs: word-level combiners
        from mmzoo.tokens.ensemble import build_token_ensemble

        run = build_token_ensemble(spec, obtained.runs, root=args.out, notes=obtained.notes)
        report = tokens.ensemble_report(run, obtained.reused)
        emit_json(report) if args.json else print(tokens.render_ensemble(report))
        return 0
    run = build_ensemble(spec, obtained.runs, root=args.out, notes=obtained.notes, boosting=obtained.boosting)
    report = summarise(run, obtained)
    if args.json:
        emit_json(report)
    else:
        print(render(report))
    return 0


def from_runs(args):
    from mmzoo.ensemble import combiner_spec
    from mmzoo.ensemble_recipes import Obtained
    from mmzoo.runs import find_run

    if args.epochs is not None or args.batch_size is not None:
        raise RegistryError("--epochs and --batch-size set how members train; --runs combines finished runs only")
    if args.executor != "local" or any(v is not None for v in (args.address, args.cpus_per_member,
                                                              args.gpus_per_member)):
        raise RegistryError("--executor, --address and --cpus/--gpus-per-member set how members train; --runs "
                            "combines finished runs only")
    if len(args.runs) < 2:
        raise RegistryError(f"--runs needs at least two runs to combine, got {len(args.runs)}",
                            hint="list the runs with `mmzoo runs`")
    combiner = combiner_spec(args.combiner or "mean")
    _check_samme(combiner, "--runs")
    name = args.name or f"adhoc-{combiner['name']}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise RegistryError(f"--name {name!r} cannot be a folder name",
                            hint="use letters, digits, '_', '.' and '-' only")
    runs = [find_run(ref, args.out) for ref in args.runs]
    spec = {"name": name, "kind": "ensemble", "description": f"after-the-fact ensemble of {len(runs)} runs",
            "recipe": {"runs": [r.name for r in runs]}, "combiner": combiner}
    return spec, Obtained(runs, [True] * len(runs), [""] * len(runs))


def from_registry(args):
    from mmzoo.cli.train import apply_overrides, check_task
    from mmzoo.ensemble import combiner_spec
    from mmzoo.ensemble_recipes import obtain_members
    from mmzoo.executors import make_executor
    from mmzoo.factory import resolve_spec
    from mmzoo.registry import load_registry

    if args.name:
        raise RegistryError("--name names a --runs ensemble; a registry ensemble's runs are named after it")
    registry = load_registry(args.registry)
    entry = registry.get(args.ensemble)
    if entry.kind != "ensemble":
        known = ", ".join(e.name for e in registry.ensembles()) or "none"
        raise RegistryError(f"{args.ensemble!r} is a model, not an ensemble",
                            hint=f"train it with `mmzoo train {args.ensemble}`; ensembles: {known}")
    if not entry.ok:
        raise RegistryError(f"ensemble {entry.name!r} is invalid:\n" + "\n".join(f"  {p}" for p in entry.problems))
    spec = copy.deepcopy(entry.spec)
    executor = make_executor(args.executor, address=args.address, cpus=args.cpus_per_member,
                             gpus=args.gpus_per_member, resources=spec.get("resources"))
    if args.combiner:
        spec["combiner"] = combiner_spec(args.combiner)
    if "boosting" not in spec["recipe"]:
        _check_samme(spec["combiner"], f"ensemble {entry.name!r}")
    checked: set[str] = set()

    def resolve(model: str) -> dict:
        member = apply_overrides(resolve_spec(model, args.registry), args)
        if model not in checked:
            check_task(member)
            checked.add(model)
        return member

    return spec, obtain_members(spec, resolve=resolve, out=args.out, device=args.device, say=err, executor=executor)


def _check_samme(combiner: dict, where: str) -> None:
    if combiner["name"] == "samme":
        raise RegistryError(f"{where}: combiner 'samme' needs the member weights (alphas) of a boosting recipe",
                            hint="use it with a `boosting:` ensemble, or pick another combiner")


def summarise(run, obtained) -> dict:
    spec, metrics = run.spec, run.metrics
    members = []
    for member, reused, entry in zip(obtained.runs, obtained.reused, spec["members"], strict=True):
        members.append({"name": member.name, "path": str(member.path), "reused": reused,
                        "note": entry.get("weight_note", ""),
                        **metrics["members"][member.name]})
    keys = ("accuracy", "macro_f1", "weighted_f1", "ece", "nll")
    report = {"run": run.name, "path": str(run.path), "ensemble": spec["ensemble"]["name"],
              "combiner": spec["combiner"], "dataset": spec["data"]["dataset"], "label_set": spec["data"]["label_set"],
              "members": members, "trained": [m["name"] for m in members if not m["reused"]],
              "reused": [m["name"] for m in members if m["reused"]],
              **{split: {k: metrics[split][k] for k in keys} for split in ("val", "test")},
              "val_note": metrics["val_note"], "best_member": metrics["best_member"],
              "beat_best_member": metrics["beat_best_member"], "diversity": metrics["diversity"]}
    if "boosting" in metrics:
        report["boosting"] = metrics["boosting"]
    return report


def render(report: dict) -> str:
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
        f"{report['combiner']['name']}: {len(report['trained'])} member(s) trained, {len(report['reused'])} reused",
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
