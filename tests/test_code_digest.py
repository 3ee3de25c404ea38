"""Package code is an input: each rule's `code` param follows the modules its script runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from alliance.code_digest import PACKAGE_ROOT, import_closure, script_digest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"


def _rel(paths: list[Path], root: Path = PACKAGE_ROOT) -> set[str]:
    return {p.relative_to(root).as_posix() for p in paths}


def test_the_clean_script_runs_the_clean_layer_and_not_the_render_layer():
    files = _rel(import_closure(SCRIPTS / "clean.py"))
    assert "clean/__init__.py" in files and "__init__.py" in files
    assert any(f.startswith("clean/") and f != "clean/__init__.py" for f in files)
    assert not any(f.startswith(("render/", "models/", "engine/")) for f in files)


def test_registry_strings_count_as_imports():
    """Model kinds are imported by name ("alliance.models.cox:fit_cox"); they must be included."""
    files = _rel(import_closure(SCRIPTS / "model.py"))
    assert {"models/cox.py", "models/riclpm.py", "models/hazard.py"} <= files
    assert any(f.startswith("engine/") for f in files)


@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    """A private copy of the package and the scripts, so files can be edited safely."""
    root = tmp_path / "alliance"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SCRIPTS, tmp_path / "scripts")
    return root


def test_an_edit_changes_exactly_the_digests_of_scripts_that_run_it(package_copy: Path):
    scripts = package_copy.parent / "scripts"
    before = {s: script_digest(scripts / f"{s}.py", package_copy) for s in ("clean", "figures")}
    style = package_copy / "render" / "style.py"
    style.write_text(style.read_text() + "\n# an edit\n")
    after = {s: script_digest(scripts / f"{s}.py", package_copy) for s in ("clean", "figures")}
    assert after["clean"] == before["clean"]
    assert after["figures"] != before["figures"]


def test_the_digest_does_not_depend_on_where_the_package_lives(package_copy: Path):
    scripts = package_copy.parent / "scripts"
    for name in ("clean", "model", "tables"):
        assert script_digest(scripts / f"{name}.py", package_copy) == script_digest(
            SCRIPTS / f"{name}.py"
        )


def test_every_rule_with_a_script_passes_its_code_digest():
    """A rule without the param would keep stale outputs after a fix to the code it runs."""
    rules = 0
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"\n(?=rule |checkpoint )", text):
            script = re.search(r'script:\n\s+"\.\./scripts/(\w+)\.py"', block)
            if script:
                rules += 1
                assert f'code=code("{script.group(1)}")' in block, (smk.name, block[:60])
    assert rules >= 20


def test_the_names_cache_gives_what_parsing_gives():
    """Names read back from the cache (by content hash) equal a fresh parse of every module."""
    from alliance.code_digest import _named_modules, _scan

    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        assert _named_modules(path) == frozenset(_scan(path.read_bytes(), path)), path
