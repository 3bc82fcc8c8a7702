"""Provides the zoo commands: plugins, list, show, validate."""

from __future__ import annotations

from mmzoo.cli.output import emit_json, err, table
from mmzoo.errors import RegistryError
from mmzoo.zoo.listing import LIST_KINDS, collect


def add_parsers(sub) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, what they registered, and any errors")
    p.add_argument("--json", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any plugin failed")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("plugin", help="start a new plugin package")
    plugin_sub = p.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    new = plugin_sub.add_parser("new", help="write a working plugin package mmzoo-NAME from mmzoo's template")
    new.add_argument("name", help="the plugin's name: lowercase letters, digits and _")
    new.add_argument("--dir", default=".", help="folder to create mmzoo-NAME in (default: here)")
    new.set_defaults(handler=cmd_plugin_new)

    p = sub.add_parser("list", help="list parts, models and ensembles")
    p.add_argument("kind", nargs="?", choices=list(LIST_KINDS), help="only this kind")
    p.add_argument("pattern", nargs="?", help="glob on names, e.g. '*gated*'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("show", help="show a part, model or ensemble in full")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("validate", help="validate registry.yaml (or FILE) without building anything")
    p.add_argument("file", nargs="?", help="a registry file, checked layered over the project's registry.yaml as "
                   "every command reads it (default: the project's and --registry's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_validate)


def cmd_plugins(args) -> int:
    from mmzoo.zoo.plugins import get_zoo

    zoo = get_zoo()
    failed = 1 if args.strict and not all(p.ok for p in zoo.plugins) else 0
    if args.json:
        emit_json([p.to_dict() for p in zoo.plugins])
        return failed
    rows = []
    for p in zoo.plugins:
        what = "; ".join(f"{k}s: {', '.join(v)}" for k, v in p.registered.items()) or "-"
        rows.append((p.name, p.package, p.version, "ok" if p.ok else "FAILED", what))
    print(table(rows, ("plugin", "package", "version", "status", "registered")))
    for p in zoo.plugins:
        for e in p.errors:
            print(f"\n{p.name} ({p.package}): {e}")
        for reason in p.tracebacks:  # the full reason: where in the plugin's code it failed
            print("  " + reason.replace("\n", "\n  "))
    return failed


def cmd_plugin_new(args) -> int:
    from mmzoo.zoo.scaffold import new_plugin

    folder = new_plugin(args.name, args.dir)
    module = f"mmzoo_{args.name}"
    print(f"wrote {folder}\n  try it:   MMZOO_PLUGIN_PATH={folder / module} mmzoo plugins\n"
          f"  install:  pip install -e {folder}\n  test:     cd {folder} && pytest -q")
    return 0


def cmd_list(args) -> int:
    file_problems: list = []
    rows = collect(args.kind, args.pattern, args.registry, file_problems)
    for problem in file_problems:
        err(f"mmzoo: warning: {problem} (its entries are not listed; see `mmzoo validate`)")
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        err("nothing matches" + (f" {args.pattern!r}" if args.pattern else ""))
        return 1
    current = None
    for row in rows:
        if row["kind"] != current:
            current = row["kind"]
            print(f"\n{current}s:" if current != rows[0]["kind"] else f"{current}s:")
        status = "" if row["ok"] else f"  [invalid: {len(row['problems'])} problem(s); see `mmzoo validate`]"
        print(f"  {row['name']:<24} {row['detail']:<34} {row['description']}{status}")
    return 0


def cmd_show(args) -> int:
    from mmzoo.app.zoo import show

    info = show(args.name, args.registry)
    if args.json:
        emit_json(info)
        return 0
    if info["kind"] not in ("model", "ensemble"):
        print(render_part(info))
        return 0
    import yaml

    print(yaml.safe_dump(info, sort_keys=False, width=110, default_flow_style=None).rstrip())
    return 0


def render_part(info: dict) -> str:
    """A part's card: what it is, who provides it, and its parameters as a table."""
    kind = info["kind"] + (f", {info['modality']}" if info.get("modality") else "") + (
        ", a tag per token" if info.get("task") == "tokens" else "")
    lines = [f"{info['name']}  ({kind}; plugin {info['plugin']})", f"  {info['description']}", ""]
    rows = [(p["name"], p["type"], "required" if p["required"] else repr(p["default"]),
             p["help"] + (f" (one of: {', '.join(map(str, p['choices']))})" if p["choices"] else "")
             + (f" ({p['range']})" if p.get("range") else ""))
            for p in info["params"]]
    lines.append(table(rows, ("parameter", "type", "default", "meaning")) if rows else "no parameters")
    if info.get("kind") == "fusion":
        lines += ["", "token models (a tag per word, conditioned on the image): "
                  + ("supported" if info.get("tokens") else "not supported")]
        if info.get("token_params") is not None:
            lines.append(f"  with params: {', '.join(p['name'] for p in info['token_params']) or 'none'}")
    return "\n".join(lines)


def cmd_validate(args) -> int:
    from pathlib import Path

    from mmzoo.zoo.registry import load_registry, registry_files

    if args.file and not Path(args.file).is_file():
        raise RegistryError(f"{args.file} not found")
    # FILE is checked as every command reads it: layered over the project's registry, so an ensemble of the
    # project's models is valid here too (read alone, each such member was reported as unknown).
    files = registry_files(args.file or args.registry)
    registry = load_registry(files=files)
    problems = registry.all_problems()
    if args.json:
        emit_json({"files": registry.files, "ok": not problems, "problems": [
            {"file": p.file, "line": p.line, "message": p.message} for p in problems]})
    else:
        for p in problems:
            err(str(p))
        models, ensembles = len(registry.models()), len(registry.ensembles())
        if problems:
            err(f"{len(problems)} problem(s) in {', '.join(registry.files)}")
        else:
            print(f"{', '.join(registry.files)}: ok ({models} models, {ensembles} ensembles)")
    return 1 if problems else 0
