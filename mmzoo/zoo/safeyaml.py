"""Provides bounded YAML reading for files users hand to mmzoo: values, line numbers, and every refusal.

A registry file is small, so the work it may cause is capped before anything is built:
anchors and aliases are refused (the "billion laughs" file and recursive aliases cannot
grow), as are nesting deeper than ``MAX_DEPTH``, more than ``MAX_NODES`` values and files
over ``MAX_BYTES``. Duplicate keys are reported with both lines instead of silently
keeping the last value. Text must be UTF-8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmzoo import textfile

MAX_BYTES = 1 << 20  # 1 MiB: the project's registry.yaml is about 6 KiB
MAX_DEPTH = 50
MAX_NODES = 100_000


@dataclass
class Refusal:
    """Why a YAML file was not read; ``line`` is 1-based."""

    line: int
    message: str


@dataclass
class Document:
    data: Any
    lines: dict[tuple, int]  # key path -> 1-based line
    duplicates: list[Refusal]  # reported, and the document is still read (the first value is kept)


# YAML 1.1, which PyYAML implements, reads 1e-3 and 1.0e2 (no dot, or no exponent sign) as text, so
# `lr: 1e-3`, the way everyone writes it, would be refused as "expected float, got str". YAML 1.2 reads
# them as floats; so does this loader. Quoted values stay text: quotes are the user's word for it.
_FLOAT_1_2 = r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_FLOAT_1_2), list("-+0123456789."))


def scalar(text: str) -> Any:
    """One short YAML value typed on a command line (``C=1e-3``), read as registry files are read."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader: no Python objects


def decode(raw: bytes) -> str | Refusal:
    """UTF-8 text (a BOM is dropped), or a Refusal naming the line of the first bad byte."""
    text, line, why = textfile.decode(raw)
    return Refusal(line, why) if text is None else text


def _scan_events(text: str) -> Refusal | None:
    """One streaming pass over the parser's events: refuse aliases, anchors, deep nesting and huge documents."""
    loader = _Loader(text)
    depth = nodes = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            line = event.start_mark.line + 1 if event.start_mark else 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return Refusal(line, "YAML anchors and aliases (& and *) are not allowed in this file; write the "
                                     "values out in full")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return Refusal(line, f"nested more than {MAX_DEPTH} levels deep; flatten the file")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                nodes += 1
                if nodes > MAX_NODES:
                    return Refusal(line, f"more than {MAX_NODES} values; this is not a registry file")
    finally:
        loader.dispose()
    return None


def _walk(node: yaml.Node, path: tuple, lines: dict, duplicates: list[Refusal]) -> None:
    """Map every key path to its line, and report keys that appear twice in one mapping."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a complex key is refused when the document is constructed
            line = key_node.start_mark.line + 1
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                where = ".".join(map(str, path + (key_node.value,)))
                duplicates.append(Refusal(line, f"duplicate key {where!r} (first on line {seen[ident]}); YAML "
                                                "would silently keep only the last one, so remove one of them"))
                continue
            seen[ident] = line
            lines[path + (key_node.value,)] = line
            _walk(value_node, path + (key_node.value,), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines, duplicates)


def _drop_duplicates(node: yaml.Node) -> None:
    """Keep the first of each duplicated key, so what is reported and what is read agree."""
    if isinstance(node, yaml.MappingNode):
        kept, seen = [], set()
        for key_node, value_node in node.value:
            ident = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            if ident is not None and ident in seen:
                continue
            seen.add(ident)
            kept.append((key_node, value_node))
            _drop_duplicates(value_node)
        node.value = kept
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _drop_duplicates(item)


def read(path: Path) -> Document | Refusal:
    """The checked YAML document in ``path``; any refusal is returned, never raised."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return Refusal(1, f"the file is {size} bytes; files over {MAX_BYTES} bytes are refused")
        raw = path.read_bytes()
    except OSError as exc:
        return Refusal(1, f"cannot read it: {exc.strerror or exc}")
    text = decode(raw)
    if isinstance(text, Refusal):
        return text
    return parse(text)


def parse(text: str) -> Document | Refusal:
    """Like :func:`read`, for text already in memory."""
    try:
        refusal = _scan_events(text)
        if refusal is not None:
            return refusal
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return Document({}, {}, [])
            lines: dict[tuple, int] = {}
            duplicates: list[Refusal] = []
            _walk(node, (), lines, duplicates)
            if duplicates:
                _drop_duplicates(node)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        what = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark else 1
        lines = text.splitlines()
        if mark and line <= len(lines) and "\t" in lines[line - 1][:mark.column + 1]:
            # PyYAML's words for a tab ("cannot start any token") do not say that tabs are the problem
            return Refusal(line, f"malformed YAML: a tab character on this line ({what}); YAML indents with spaces "
                                 "only: replace the tabs with spaces")
        return Refusal(line, f"malformed YAML: {what}; fix the syntax on this line")
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp such as 2024-13-45
        return Refusal(1, f"a value cannot be read: {exc}")
    return Document(data, lines, duplicates)
