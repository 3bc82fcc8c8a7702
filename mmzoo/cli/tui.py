"""Provides `mmzoo tui`: the Textual app over the registry and a runs folder."""

from __future__ import annotations

from pathlib import Path


def add_parsers(sub) -> None:
    p = sub.add_parser("tui", help="open the terminal UI: browse the zoo, train, compare runs, export")
    p.add_argument("--out", type=Path, help="runs folder (default: runs/ or MMZOO_RUNS)")
    p.set_defaults(handler=cmd_tui)


def cmd_tui(args) -> int:
    # Imported here so every other command starts without loading Textual.
    from mmzoo.tui.app import make_app

    make_app(registry_file=getattr(args, "registry", None), runs_dir=getattr(args, "out", None)).run()
    return 0
