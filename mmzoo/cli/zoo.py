"""Provides the zoo commands: plugins, list, show, validate."""

from __future__ import annotations

import fnmatch

from mmzoo.cli.output import emit_json, err, table
from mmzoo.errors import RegistryError

LIST_KINDS = {"encoders": "encoder", "fusions": "fusion", "combiners": "combiner", "datasets": "dataset",
              "models": "model", "ensembles": "ensemble"}


def add_parsers(sub) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, what they registered, and any errors")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_plugins)

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
    p.add_argument("file", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_validate)


def cmd_plugins(args) -> int:
    from mmzoo.plugins import get_zoo

    zoo = get_zoo()
    if args.json:
        emit_json([p.to_dict() for p in zoo.plugins])
        return 0
    rows = []
    for p in zoo.plugins:
        what = "; ".join(f"{k}s: {', '.join(v)}" for k, v in p.registered.items()) or "-"
        rows.append((p.name, p.package, p.version, "ok" if p.ok else "FAILED", what))
    print(table(rows, ("plugin", "package", "version", "status", "registered")))
    for p in zoo.plugins:
        for e in p.errors:
            print(f"\n{p.name} ({p.package}): {e}")
    return 0


def _matches(name: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatch(name, pattern if any(c in pattern for c in "*?[") else f"*{pattern}*")


def collect(kind: str | None, pattern: str | None, registry_file: str | None):
    """Rows of (kind, name, detail, description, ok) for `mmzoo list` and the API."""
    from mmzoo.plugins import get_zoo
    from mmzoo.registry import load_registry

    zoo = get_zoo()
    rows = []
    registry = None
    for label, part_kind in LIST_KINDS.items():
        if kind and kind != label:
            continue
        if part_kind in ("model", "ensemble"):
            registry = registry or load_registry(registry_file, zoo)
            for entry in registry.models() if part_kind == "model" else registry.ensembles():
                if _matches(entry.name, pattern):
                    rows.append({"kind": part_kind, "name": entry.name, "detail": _entry_detail(entry),
                                 "description": entry.raw.get("description", ""),
                                 "ok": entry.ok, "problems": [str(p) for p in entry.problems]})
        else:
            for name in zoo.names(part_kind):
                part = zoo.get(part_kind, name)
                if _matches(name, pattern):
                    detail = part.modality or ("tokens" if part.task == "tokens" else "")  # NER datasets say so
                    rows.append({"kind": part_kind, "name": name, "detail": detail,
                                 "description": part.description, "plugin": part.plugin, "ok": True})
    return rows


def _entry_detail(entry) -> str:
    raw = entry.raw
    if entry.kind == "ensemble":
        recipe = next((r for r in ("members", "seeds", "bagging", "boosting") if r in raw), "?")
        comb = raw.get("combiner", "mean")
        comb = comb.get("name") if isinstance(comb, dict) else comb
        return f"{recipe} -> {comb}"
    name = lambda v, key: (v.get(key) if isinstance(v, dict) else v) if v else None  # noqa: E731
    parts = [name(raw.get("text"), "encoder"), name(raw.get("image"), "encoder")]
    fusion = name(raw.get("fusion"), "name")
    tokens = isinstance(raw.get("task"), dict) and raw["task"].get("type") == "tokens"
    return " + ".join(p for p in parts if p) + (f" ({fusion})" if fusion else "") + (" (tokens)" if tokens else "")


def cmd_list(args) -> int:
    rows = collect(args.kind, args.pattern, args.registry)
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
    from mmzoo.plugins import get_zoo
    from mmzoo.registry import load_registry

    zoo = get_zoo()
    registry = load_registry(args.registry, zoo)
    entry = next((registry.entries[(k, args.name)] for k in ("model", "ensemble")
                  if (k, args.name) in registry.entries), None)
    if entry is not None:
        info = show_entry(entry)
    else:
        parts = [zoo.get(kind, args.name) for kind in ("encoder", "fusion", "combiner", "dataset")]
        parts = [p for p in parts if p]
        if not parts:
            registry.get(args.name)  # raises with suggestions
        info = parts[0].to_dict()
    if args.json:
        emit_json(info)
        return 0
    if entry is None:
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
             p["help"] + (f" (one of: {', '.join(map(str, p['choices']))})" if p["choices"] else ""))
            for p in info["params"]]
    lines.append(table(rows, ("parameter", "type", "default", "meaning")) if rows else "no parameters")
    return "\n".join(lines)


def show_entry(entry) -> dict:
    """A model's resolved spec, parameter count and offline weight availability (builds it)."""
    info = {"name": entry.name, "kind": entry.kind, "file": f"{entry.file}:{entry.line}"}
    if not entry.ok:
        info["problems"] = [str(p) for p in entry.problems]
        return info
    info["spec"] = entry.spec
    if entry.kind == "model":
        from mmzoo.errors import MmzooError
        from mmzoo.factory import create_model

        try:
            model = create_model(entry.spec)
        except MmzooError as exc:
            info["weights_available_offline"] = False
            info["weights_error"] = str(exc)
        else:
            info["weights_available_offline"] = True
            info["parameters"] = sum(p.numel() for p in model.parameters())
            info["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return info


def cmd_validate(args) -> int:
    from pathlib import Path

    from mmzoo.registry import load_registry, registry_files

    files = [Path(args.file)] if args.file else registry_files(args.registry)
    if args.file and not Path(args.file).is_file():
        raise RegistryError(f"{args.file} not found")
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
