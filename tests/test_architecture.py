"""The package's shape: stage subpackages, allowed import directions, no circles, small modules,
and docs/architecture.md naming only rules, scripts and modules that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workflow" / "alliance"

# Layer of each top-level part of the package, and the layers it may import.
# clean <- score <- models <- render; the engine is imported only by models and studies; the
# base layer (errors, writers, config, instruments) imports nothing above it.
LAYER_OF = {
    "errors": "base",
    "files": "base",
    "expressions": "base",
    "config": "base",
    "settings": "base",
    "runner": "base",
    "envfile": "base",
    "code_digest": "base",
    "instruments": "base",
    "engine": "engine",
    "clean": "clean",
    "score": "score",
    "models": "models",
    "render": "render",
    "simulate": "simulate",
    "onboard": "onboard",
    "studies": "studies",
    "provenance": "top",
    "cli": "top",
    "__main__": "top",
    "__init__": "base",
}
ALLOWED = {
    "base": {"base"},
    "engine": {"base", "engine"},
    "clean": {"base", "clean"},
    "score": {"base", "clean", "score"},
    "models": {"base", "clean", "score", "engine", "models"},
    "render": {"base", "clean", "score", "models", "render"},
    "simulate": {"base", "simulate"},
    "onboard": {"base", "clean", "onboard"},
    "studies": {"base", "clean", "score", "engine", "models", "simulate", "studies"},
    "top": set(LAYER_OF.values()),
}
MAX_LINES = 560  # "split files over ~500 lines along their seams"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    """Every `alliance.*` module imported anywhere in the file (function bodies included)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "alliance"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name.split(".")[0] != "alliance":
                continue
            for alias in node.names:
                sub = f"{name}.{alias.name}"
                found.add(sub if sub in MODULES else name)
    return {m for m in found if m != "alliance"}


GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return LAYER_OF[parts[1] if len(parts) > 1 else "__init__"]


def test_every_part_of_the_package_has_a_layer() -> None:
    tops = {m.split(".")[1] for m in MODULES if "." in m}
    assert tops <= set(LAYER_OF), f"add a layer for: {sorted(tops - set(LAYER_OF))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    layer = _layer(module)
    bad = sorted(m for m in GRAPH[module] if _layer(m) not in ALLOWED[layer])
    assert not bad, f"{module} ({layer}) imports {bad}: allowed layers {sorted(ALLOWED[layer])}"


def test_no_import_circles() -> None:
    # Package __init__ modules are left out of the edges: importing a submodule runs its package.
    edges = {m: {d for d in deps if d in MODULES} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from alliance.render import apa\n")
    found = _imports(bad, "alliance.clean.x")
    assert "alliance.render.apa" in found
    assert _layer("alliance.render.apa") not in ALLOWED[_layer("alliance.clean.x")]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines: split it along its seams"


# --- docs/architecture.md ----------------------------------------------------------------------

DOC = ROOT / "docs" / "architecture.md"


def test_architecture_doc_names_only_things_that_exist() -> None:
    text = DOC.read_text()
    paths = set(re.findall(r"`((?:workflow|config|results)/[^`\s]+)`", text))
    assert paths, "the doc names no files"
    missing = [
        p
        for p in sorted(paths)
        if not p.startswith("results/") and not (ROOT / p.rstrip("/")).exists()
    ]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
    modules = set(re.findall(r"`(alliance(?:\.\w+)+)`", text))
    unknown = sorted(m for m in modules if m not in MODULES and m.rpartition(".")[0] not in MODULES)
    assert not unknown, f"docs/architecture.md names modules that do not exist: {unknown}"


def test_every_rule_and_script_is_in_the_architecture_doc() -> None:
    text = DOC.read_text()
    rules = {
        name
        for smk in (ROOT / "workflow" / "rules").glob("*.smk")
        for name in re.findall(r"^rule (\w+):", smk.read_text(), flags=re.M)
    }
    scripts = {p.name for p in (ROOT / "workflow" / "scripts").glob("*.py")}
    missing_rules = sorted(r for r in rules if f"`{r}`" not in text)
    missing_scripts = sorted(s for s in scripts if s not in text)
    assert not missing_rules, f"rules missing from docs/architecture.md: {missing_rules}"
    assert not missing_scripts, f"scripts missing from docs/architecture.md: {missing_scripts}"


def test_every_stage_subpackage_is_in_the_architecture_doc() -> None:
    text = DOC.read_text()
    for part, layer in LAYER_OF.items():
        if (PACKAGE / part).is_dir():
            assert f"`alliance.{part}`" in text, f"alliance.{part} ({layer}) missing from the doc"
