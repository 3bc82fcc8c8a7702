"""Provides `mmzoo fit DATA`: choose, refit, export and report a model by cross-validation, with no YAML."""

from __future__ import annotations

from pathlib import Path

from mmzoo.cli.output import emit_json, err


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "fit", help="cross-validate text, image, fusion models and ensembles on DATA, export the choice to ONNX",
        description="Trains text-only, image-only and every fusion of a preset over frozen encoders, searches "
                    "their hyperparameters, cross-validates everything over train+val (group-aware, stratified), "
                    "picks by the one-standard-error rule, refits, exports the winner to ONNX and writes a report "
                    "that keeps the CV estimate apart from the test score. See docs/fit.md.")
    p.add_argument("data", help="a registered dataset name (`mmzoo list datasets`) or a folder with a manifest")
    p.add_argument("--preset", default="fast", help="search space from registry.yaml's presets: (default: fast)")
    p.add_argument("--label-set", help="label set to predict (default: the dataset's)")
    p.add_argument("--folds", type=int, help="override the preset's number of CV folds")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    p.add_argument("--report", type=Path, help="report folder (default: fits/DATASET-TIME)")
    p.add_argument("--export-dir", type=Path, help="where the ONNX file goes (default: the report folder)")
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_fit)


def cmd_fit(args) -> int:
    from mmzoo.errors import RegistryError
    from mmzoo.fit.pipeline import FitOptions, fit
    from mmzoo.fit.report import summary_lines, terminal_table
    from mmzoo.zoo.presets import range_problem

    overrides = {}
    if args.folds is not None:
        problem = range_problem("folds", args.folds)
        if problem:
            raise RegistryError(f"--{problem}", hint="5 or 10 folds are the usual choice")
        overrides["folds"] = args.folds
    report = fit(args.data, FitOptions(preset=args.preset, registry=args.registry, label_set=args.label_set,
                                       out=args.out, report_dir=args.report, export_dir=args.export_dir,
                                       export=not args.no_export, preset_overrides=overrides, say=err))
    if args.json:
        emit_json(report)
        return 0
    print(terminal_table(report))
    print()
    print("\n".join(summary_lines(report)))
    print(f"report: {report['report']['markdown']} (and report.html, report.json)")
    return 0
