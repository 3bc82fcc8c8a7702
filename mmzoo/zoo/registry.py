"""Provides registry.yaml: loading with line numbers, validation, and resolved specs.

Validation reads only part metadata, so a bad registry is reported before torch
is imported. Every problem names the file, line and key, and says what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmzoo import names
from mmzoo.errors import RegistryError
from mmzoo.zoo import safeyaml, schema
from mmzoo.zoo import token_schema as token_spec
from mmzoo.zoo.parts import Param
from mmzoo.zoo.plugins import Zoo, get_zoo

# The catalog ships inside the package (mmzoo/registry.yaml, a link to the repository's registry.yaml), so a
# wheel install lists the same models; a file in the current folder is never read unless named.
# Resolved, so that in a repository checkout problems name the registry.yaml a user edits.
PROJECT_REGISTRY = (Path(__file__).resolve().parents[1] / "registry.yaml").resolve()


@dataclass
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class Entry:
    """One model or ensemble as written, with where it came from."""

    kind: str  # "model" | "ensemble"
    name: str
    raw: dict
    file: str
    line: int
    problems: list[Problem] = field(default_factory=list)
    spec: dict | None = None  # resolved: every default filled in; None when invalid

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Registry:
    entries: dict[tuple[str, str], Entry]  # (kind, name) -> entry
    files: list[str]
    problems: list[Problem]  # file-level problems (malformed YAML, unknown top-level keys, bad presets)
    presets: dict[str, tuple[dict, str, int]] = field(default_factory=dict)  # `mmzoo fit` presets: raw, file, line

    def models(self) -> list[Entry]:
        return [e for (k, _), e in sorted(self.entries.items()) if k == "model"]

    def ensembles(self) -> list[Entry]:
        return [e for (k, _), e in sorted(self.entries.items()) if k == "ensemble"]

    def all_problems(self) -> list[Problem]:
        return self.problems + [p for e in self.entries.values() for p in e.problems]

    def get(self, name: str) -> Entry:
        for kind in ("model", "ensemble"):
            if (kind, name) in self.entries:
                return self.entries[(kind, name)]
        known = sorted({n for _, n in self.entries})
        unread = "".join(f"; {p}" for p in self.problems[:3])  # a file that could not be read may hold it
        raise RegistryError(f"no model or ensemble named {name!r} in {', '.join(self.files)}{unread}",
                            hint=_suggest(name, known))


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    listing = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return (f"did you mean {close[0]!r}? " if close else "") + f"(known: {listing or 'none'})"


class _Checker:
    """Validates one file's entries against the installed parts' declared parameters."""

    def __init__(self, file: str, lines: dict[tuple, int], zoo: Zoo):
        self.file, self.lines, self.zoo = file, lines, zoo

    def line(self, path: tuple) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def problem(self, entry: Entry, path: tuple, message: str) -> None:
        entry.problems.append(Problem(self.file, self.line(path), message))

    def params(self, entry: Entry, path: tuple, values: dict, params: tuple[Param, ...], where: str,
               extra_keys: tuple = ()) -> dict:
        """Check values against declared params; return them with defaults filled in."""
        declared = {p.name: p for p in params}
        for key in values:
            if key not in declared and key not in extra_keys:
                allowed = ", ".join(list(extra_keys) + list(declared)) or "none"
                close = difflib.get_close_matches(str(key), list(declared) + list(extra_keys), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.problem(entry, path + (key,), f"{where}: unknown key {key!r}; {hint}(allowed: {allowed})")
        resolved = {}
        for p in params:
            if p.name in values:
                complaint = p.check(values[p.name])
                if complaint:
                    self.problem(entry, path + (p.name,), f"{where}: {p.name!r} {complaint}")
                resolved[p.name] = values[p.name]
            elif p.required:
                self.problem(entry, path, f"{where}: missing required field {p.name!r} ({p.type}: {p.help})")
            else:
                resolved[p.name] = copy.deepcopy(p.default)
        return resolved

    def part(self, entry: Entry, path: tuple, value: Any, kind: str, name_key: str, extra: tuple,
             modality: str | None = None, tokens: bool = False) -> dict | None:
        """Resolve `name` or `{name_key: name, ...params}` into `{name_key: name, ...all params}`.

        ``tokens``: a fusion of a token model, resolved against its token form (refused when it has none).
        """
        if isinstance(value, str):
            value = {name_key: value}
        if not isinstance(value, dict) or name_key not in value:
            self.problem(entry, path, f"{path[-1]}: expected a {kind} name or a mapping with {name_key!r}")
            return None
        name = value[name_key]
        part = self.zoo.get(kind, name) if isinstance(name, str) else None
        if part is None or (modality and part.modality != modality):
            known = [n for n, p in self.zoo.parts[kind].items() if not modality or p.modality == modality]
            label = f"{modality} {kind}" if modality else kind
            self.problem(entry, path + (name_key,) if name_key in value else path,
                         f"{label} {name!r} is not registered; {_suggest(str(name), sorted(known))}")
            return None
        if tokens:
            if not part.supports_tokens:
                self.problem(entry, path + (name_key,), token_spec.unsupported_fusion(entry.name, name, self.zoo))
                return None
            part = part.token_form()
        rest = {k: v for k, v in value.items() if k not in extra}
        where = f"{kind} {name!r}" + (" in a token model" if tokens else "")
        resolved = self.params(entry, path, rest, part.params, where, ())
        for key in extra:
            if key != name_key and key in value:
                resolved[key] = value[key]
        return {name_key: name, **resolved}

    def model(self, entry: Entry) -> None:
        raw, path = entry.raw, ("models", entry.name)
        for key in raw:
            if key not in schema.MODEL_KEYS:
                self.problem(entry, path + (key,), f"model {entry.name!r}: unknown key {key!r} "
                             f"(allowed: {', '.join(schema.MODEL_KEYS)})")
        spec: dict[str, Any] = {"name": entry.name, "kind": "model", "description": raw.get("description", "")}
        for modality in ("text", "image"):
            if raw.get(modality) is not None:
                enc = self.part(entry, path + (modality,), raw[modality], "encoder", "encoder",
                                schema.ENCODER_KEYS, modality)
                if enc is not None:
                    enc["freeze"] = raw[modality].get("freeze", False) if isinstance(raw[modality], dict) else False
                    if not isinstance(enc["freeze"], bool):
                        self.problem(entry, path + (modality, "freeze"), "'freeze' expected bool")
                    if "train_last" in enc:
                        complaint = schema.TRAIN_LAST.check(enc["train_last"])
                        if complaint:
                            self.problem(entry, path + (modality, "train_last"), f"train_last: {complaint}")
                        elif enc["train_last"] and enc["freeze"] is not True:
                            self.problem(entry, path + (modality, "train_last"), "train_last needs freeze: true "
                                         "(with freeze: false the whole encoder trains already)")
                spec[modality] = enc
        has_both = "text" in raw and "image" in raw
        tokens = token_spec.is_token_entry(raw)
        if not raw.get("text") and not raw.get("image"):
            self.problem(entry, path, f"model {entry.name!r}: needs a 'text' encoder, an 'image' encoder, or both")
        if has_both and "fusion" not in raw:
            fusions = token_spec.token_fusions(self.zoo) if tokens else self.zoo.names("fusion")
            self.problem(entry, path, f"model {entry.name!r}: has both encoders, so it needs a 'fusion' "
                         f"({'fusions that support token models' if tokens else 'installed'}: {', '.join(fusions)})")
        if "fusion" in raw:
            if not has_both:
                self.problem(entry, path + ("fusion",), f"model {entry.name!r}: 'fusion' needs both a text and an image encoder")
            spec["fusion"] = self.part(entry, path + ("fusion",), raw["fusion"], "fusion", "name", schema.FUSION_KEYS,
                                       tokens=tokens)
        for section, params in (("head", token_spec.HEAD_PARAMS if tokens else schema.HEAD_PARAMS),
                                ("task", schema.TASK_PARAMS),
                                ("train", token_spec.TRAIN_PARAMS if tokens else schema.TRAIN_PARAMS)):
            value = raw.get(section) or {}
            if not isinstance(value, dict):
                self.problem(entry, path + (section,), f"{section}: expected a mapping, got {type(value).__name__}")
                value = {}
            spec[section] = self.params(entry, path + (section,), value, params, section)
        threads = spec["train"].get("threads")
        if isinstance(threads, int) and not isinstance(threads, bool) and threads < 1:
            self.problem(entry, path + ("train", "threads"), f"train: 'threads' must be at least 1, got {threads}")
        dataset = spec["task"].get("dataset")
        if isinstance(dataset, str) and self.zoo.get("dataset", dataset) is None:
            spec["task"]["dataset"] = self.dataset_folder(entry, path + ("task", "dataset"), dataset)
        if tokens:
            token_spec.check(self, entry, path, raw, spec)
        else:
            token_spec.check_classification(self, entry, path, spec)
        entry.spec = spec if entry.ok else None
    def dataset_folder(self, entry: Entry, path: tuple, dataset: str) -> str:
        """A dataset folder, resolved against the folder of the registry file that names it; must exist."""
        try:
            folder = (Path(self.file).resolve().parent / Path(dataset).expanduser()).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop (RuntimeError), a NUL byte (ValueError)
            self.problem(entry, path, f"dataset path {dataset!r} cannot be resolved: {exc}")
            return dataset
        if folder.is_dir():
            return str(folder)
        if not _looks_like_path(dataset):
            self.problem(entry, path, f"dataset {dataset!r} is not registered and is not a folder; "
                         f"{_suggest(dataset, self.zoo.names('dataset'))}")
        else:
            self.problem(entry, path, f"dataset folder {dataset!r} not found (looked in {folder}; relative paths "
                         f"resolve against the folder of {Path(self.file).name}, not the working directory)")
        return str(folder)

    def ensemble(self, entry: Entry, models: set[str], token_models: frozenset = frozenset()) -> None:
        raw, path = entry.raw, ("ensembles", entry.name)
        for key in raw:
            if key not in schema.ENSEMBLE_KEYS:
                self.problem(entry, path + (key,), f"ensemble {entry.name!r}: unknown key {key!r} "
                             f"(allowed: {', '.join(schema.ENSEMBLE_KEYS)})")
        recipes = [r for r in schema.RECIPES if r in raw]
        spec: dict[str, Any] = {"name": entry.name, "kind": "ensemble", "description": raw.get("description", "")}
        if len(recipes) != 1:
            self.problem(entry, path, f"ensemble {entry.name!r}: needs exactly one of {', '.join(schema.RECIPES)}"
                         + (f" (found {', '.join(recipes)})" if recipes else ""))
        else:
            recipe = recipes[0]
            value = raw[recipe]
            if recipe == "members":
                if not isinstance(value, list) or not value:
                    self.problem(entry, path + ("members",), "members: expected a non-empty list of model names")
                else:
                    for i, member in enumerate(value):
                        if not isinstance(member, str):
                            self.problem(entry, path + ("members", i), f"member {i + 1} must be a model name, got a "
                                         f"{type(member).__name__} ({member!r})")
                        elif member not in models:
                            self.problem(entry, path + ("members", i), f"member {member!r} is not a model in the "
                                         f"registry; {_suggest(str(member), sorted(models))}")
                        elif member in value[:i]:  # the build refuses it too, but only after training the rest
                            self.problem(entry, path + ("members", i), f"member {member!r} is listed twice; name "
                                         f"each model once (for several copies of one model use seeds: {{model: {member}, n: N}})")
                spec["recipe"] = {"members": list(value) if isinstance(value, list) else []}
            else:
                if not isinstance(value, dict):
                    self.problem(entry, path + (recipe,), f"{recipe}: expected a mapping such as "
                                 f"{{model: MODEL, n: 5}}, got {type(value).__name__}")
                resolved = self.params(entry, path + (recipe,), value if isinstance(value, dict) else {},
                                       schema.RECIPE_PARAMS, recipe)
                if isinstance(resolved.get("model"), str) and resolved["model"] not in models:
                    self.problem(entry, path + (recipe, "model"), f"{recipe}.model {resolved['model']!r} is not a "
                                 f"model in the registry; {_suggest(str(resolved['model']), sorted(models))}")
                spec["recipe"] = {recipe: resolved}
        spec["combiner"] = self.part(entry, path + ("combiner",), raw.get("combiner", "mean"), "combiner", "name",
                                     schema.COMBINER_KEYS)
        if "resources" in raw:
            value = raw["resources"] if isinstance(raw["resources"], dict) else {}
            if not isinstance(raw["resources"], dict):
                self.problem(entry, path + ("resources",), "resources: expected a mapping such as {cpus: 1, gpus: 0}")
            spec["resources"] = self.params(entry, path + ("resources",), value, schema.RESOURCE_PARAMS, "resources")
        if spec.get("combiner") is not None:
            token_spec.check_ensemble(self, entry, path, spec, token_models)
        entry.spec = spec if entry.ok else None


def _looks_like_path(value: str) -> bool:
    try:
        return "/" in value or "\\" in value or value.startswith((".", "~")) or Path(value).is_dir()
    except (ValueError, OSError):  # a NUL byte or an over-long name is no folder
        return False


def _read(path: Path, zoo: Zoo, registry: Registry, origin: str, checkers: dict) -> None:
    name = str(path)
    doc = safeyaml.read(path)
    if isinstance(doc, safeyaml.Refusal):
        registry.problems.append(Problem(name, doc.line, f"{origin}: {doc.message}"))
        return
    data, lines = doc.data, doc.lines
    registry.problems.extend(Problem(name, d.line, d.message) for d in doc.duplicates)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        registry.problems.append(Problem(name, 1, "expected a mapping with 'models:' and 'ensembles:'"))
        return
    checker = _Checker(name, lines, zoo)
    for key in data:
        if key not in ("models", "ensembles", "presets"):
            registry.problems.append(Problem(name, lines.get((key,), 1),
                                             f"unknown top-level key {key!r} (allowed: models, ensembles, presets)"))
    _read_presets(data.get("presets"), name, lines, zoo, registry)
    for section, kind in (("models", "model"), ("ensembles", "ensemble")):
        block = data.get(section) or {}
        if not isinstance(block, dict):
            registry.problems.append(Problem(name, lines.get((section,), 1), f"{section}: expected a mapping of names"))
            continue
        for entry_name, raw in block.items():
            entry = Entry(kind, str(entry_name), raw if isinstance(raw, dict) else {}, name,
                          lines.get((section, entry_name), 1))
            if not isinstance(raw, dict):
                checker.problem(entry, (section, entry_name), f"{kind} {entry_name!r}: expected a mapping")
            bad_name = names.problem(entry_name)
            if bad_name:
                checker.problem(entry, (section, entry_name), f"{kind} name {bad_name}")
            other = ("ensemble" if kind == "model" else "model", str(entry_name))
            if other in registry.entries and registry.entries[other].file == name:
                first = registry.entries[other]
                checker.problem(entry, (section, entry_name), f"{kind} {entry_name!r}: the name is also used by the "
                                f"{other[0]} on line {first.line}; give each a different name")
            # A later file's entry replaces an earlier one of the same name: user layers win.
            registry.entries[(kind, str(entry_name))] = entry
            checkers[(kind, str(entry_name))] = checker


def _read_presets(block, name: str, lines: dict, zoo: Zoo, registry: Registry) -> None:
    """`presets:` of one file (search spaces for `mmzoo fit`, see mmzoo.zoo.presets); later files win."""
    from mmzoo.zoo.presets import check_preset

    if block is None:
        return
    if not isinstance(block, dict):
        registry.problems.append(Problem(name, lines.get(("presets",), 1), "presets: expected a mapping of names"))
        return
    for preset, raw in block.items():
        registry.presets[str(preset)] = (raw, name, lines.get(("presets", preset), 1))
        for path, message in check_preset(str(preset), raw, zoo):
            full = ("presets", preset, *path)
            while full not in lines and len(full) > 1:
                full = full[:-1]
            registry.problems.append(Problem(name, lines.get(full, 1), message))


def registry_files(user_file: str | Path | None = None) -> list[Path]:
    """The project's registry.yaml, then the user's (``--registry`` or ``MMZOO_REGISTRY``) on top."""
    files = [PROJECT_REGISTRY] if PROJECT_REGISTRY.exists() else []
    user = user_file or os.environ.get("MMZOO_REGISTRY")
    if user:
        user_path = Path(user)
        if not user_path.is_file():
            raise RegistryError(f"registry file {user} not found", hint="check --registry or MMZOO_REGISTRY")
        if not files or user_path.resolve() != files[0].resolve():
            files.append(user_path)
    return files


def load_registry(user_file: str | Path | None = None, zoo: Zoo | None = None,
                  files: list[Path] | None = None) -> Registry:
    """Load and validate every registry layer; problems are collected, never raised here."""
    zoo = zoo or get_zoo()
    files = files if files is not None else registry_files(user_file)
    registry = Registry(entries={}, files=[str(f) for f in files], problems=[])
    checkers: dict[tuple[str, str], _Checker] = {}
    for path in files:
        _read(Path(path), zoo, registry, "registry", checkers)
    models = {name for kind, name in registry.entries if kind == "model"}
    token_models = frozenset(name for (kind, name), e in registry.entries.items()
                             if kind == "model" and token_spec.is_token_entry(e.raw))
    for key, entry in registry.entries.items():
        checker = checkers[key]
        if entry.kind == "model":
            checker.model(entry)
        else:
            checker.ensemble(entry, models, token_models)
    return registry
