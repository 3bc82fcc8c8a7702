"""Provides the `mmzoo` command: argparse wiring only; each command lives in its own module."""

from __future__ import annotations

import argparse
import sys

from mmzoo.errors import MmzooError

COMMAND_MODULES = ("mmzoo.cli.zoo", "mmzoo.cli.train", "mmzoo.cli.demo", "mmzoo.cli.ensemble", "mmzoo.cli.distill",
                   "mmzoo.cli.export", "mmzoo.cli.fit",
                   "mmzoo.cli.tui")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="mmzoo",
        description="A plugin-based zoo of text+image classifiers and their ensembles.",
    )
    parser.add_argument("--registry", metavar="FILE", help="a registry.yaml layered over the project's "
                        "(also MMZOO_REGISTRY)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        if not (args.command is None and sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return 0
        from mmzoo.cli.tui import cmd_tui  # a bare `mmzoo` in a terminal opens the TUI

        args.handler = cmd_tui
    from mmzoo.train.threads import prefer_short_spin

    prefer_short_spin()  # before any command imports torch: idle OpenMP threads spin briefly, then sleep
    try:
        return args.handler(args) or 0
    except MmzooError as exc:
        print(f"mmzoo: {exc.title}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line for the user, the traceback in a log file (MMZOO_DEBUG=1 shows it)
        from mmzoo.cli.crash import report

        command = " ".join(["mmzoo"] + [part for part in (args.command, getattr(args, "data_command", None)) if part])
        return report(exc, command, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
