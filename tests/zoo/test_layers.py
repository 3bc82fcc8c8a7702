"""The import contract of docs/architecture.md ("who may import whom"), checked two ways.

Statically, every `import mmzoo.X` in every module (inside functions too, where the lazy imports live) must be
one its package may make. Dynamically, in fresh subprocesses: the library never loads the front ends, the TUI
never loads the CLI, ONNX inference never loads torch, and listing the zoo loads no torch, transformers or timm.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mmzoo"

# Package (or top-level module) -> the mmzoo packages and modules it may import. The table in
# docs/architecture.md says the same; a test below keeps the two in step.
BASE = {"errors", "atomic", "tables", "names", "textfile"}  # utilities every package may use
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "atomic": {"errors"},
    "tables": set(),
    "names": {"errors"},
    "textfile": {"errors"},
    "templates": set(),
    "zoo": BASE,
    "data": BASE | {"zoo"},
    "encoders": BASE | {"zoo", "data"},
    "fusions": BASE | {"zoo", "encoders"},
    "combiners": BASE | {"zoo", "data"},
    "builtin": BASE | {"zoo", "encoders", "fusions", "combiners", "data"},
    "runs": BASE | {"zoo", "data"},
    "train": BASE | {"zoo", "data", "encoders", "fusions", "runs"},
    "ensemble": BASE | {"zoo", "data", "combiners", "train", "runs"},
    "onnx": BASE | {"zoo", "data", "encoders", "combiners", "train", "runs"},
    "testing": BASE | {"zoo", "data", "encoders", "fusions", "combiners", "train"},
    "plugin": BASE | {"zoo", "data", "encoders", "fusions", "combiners", "train", "testing"},
    "tokens": BASE | {"zoo", "data", "encoders", "fusions", "runs", "train", "ensemble", "onnx"},
    "app": BASE | {"zoo", "data", "train", "runs", "ensemble", "onnx", "tokens"},
    "fit": BASE | {"zoo", "data", "encoders", "fusions", "combiners", "train", "runs", "ensemble", "onnx"},
    "tui": BASE | {"app", "zoo", "data", "train", "runs", "ensemble", "onnx", "tokens"},
    "cli": BASE | {"app", "fit", "tokens", "zoo", "data", "train", "runs", "ensemble", "onnx", "testing", "tui"},
    "__main__": {"cli"},
    "__init__": {"zoo", "train"},
}
LIBRARY = sorted(set(ALLOWED) - {"cli", "tui", "__main__"})


def owner(path: Path) -> str:
    """The package a module belongs to: mmzoo/train/trainer.py -> train, mmzoo/atomic.py -> atomic."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "mmzoo":
                found |= {a.name for a in node.names if a.name != "__version__"}
            elif node.module.startswith("mmzoo."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("mmzoo.")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_is_allowed_by_the_table(path):
    package = owner(path)
    assert package in ALLOWED, f"{path}: package {package!r} is missing from the import table"
    illegal = imported_packages(path) - ALLOWED[package] - {package}
    assert not illegal, f"{path} ({package}) imports {sorted(illegal)}, which docs/architecture.md does not allow"


def test_the_table_is_the_one_in_the_architecture_doc():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for package, allowed in ALLOWED.items():
        if package.startswith("__"):
            continue
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{package}` |")), None)
        assert row is not None, f"docs/architecture.md has no import-table row for {package}"
        cells = row.split("|")[2]
        documented = {c.strip(" `") for c in cells.split(",") if c.strip(" `-")}
        if "utilities" in documented:  # shorthand for BASE
            documented = (documented - {"utilities"}) | BASE
        assert documented == allowed, f"{package}: doc says {sorted(documented)}, test says {sorted(allowed)}"


def _loaded_after(imports: list[str], watch: tuple[str, ...]) -> list[str]:
    code = ("import importlib, sys\n"
            f"for name in {imports!r}:\n    importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {watch!r} or m in {watch!r} "
            f"or any(m.startswith(w + '.') for w in {watch!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return eval(out.stdout.strip().splitlines()[-1])  # a printed list of module names


def _modules_of(*packages: str) -> list[str]:
    names = []
    for path in MODULES:
        if owner(path) in packages:
            rel = path.relative_to(PACKAGE.parent).with_suffix("")
            name = ".".join(rel.parts).removesuffix(".__init__")
            names.append(name)
    return names


@pytest.mark.slow
def test_the_library_never_loads_a_front_end():
    loaded = _loaded_after(_modules_of(*LIBRARY), ("mmzoo.cli", "mmzoo.tui"))
    assert loaded == [], f"library modules loaded {loaded}"


def test_the_tui_never_loads_the_cli():
    loaded = _loaded_after(_modules_of("tui"), ("mmzoo.cli",))
    assert loaded == [], f"the TUI loaded {loaded}"


def test_onnx_inference_never_loads_torch():
    loaded = _loaded_after(["mmzoo.onnx.runtime"], ("torch",))
    assert loaded == [], f"mmzoo.onnx.runtime loaded {loaded}"


def test_listing_loads_no_heavy_library():
    code = ["mmzoo.zoo.listing"]
    loaded = _loaded_after(code, ("torch", "transformers", "timm"))
    assert loaded == []
    out = subprocess.run([sys.executable, "-c", "import sys; from mmzoo.zoo.listing import collect; collect(None, None, "
                          "None); print(sorted(m for m in ('torch', 'transformers', 'timm') if m in sys.modules))"],
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """mmzoo modules a module imports when it is imported (statements at module level, not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmzoo") and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mmzoo")}
    return {m for m in found if m in known}


def test_no_module_imports_itself_round_a_cycle():
    """No cycle among mmzoo's modules at import time (lazy imports inside functions are not edges)."""
    modules = {_module_name(p): p for p in MODULES}
    graph = {name: _top_level_imports(path, set(modules)) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [name, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
