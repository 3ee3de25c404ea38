"""One digest of the package code a pipeline script runs, so that editing that code reruns its jobs.

Why: Snakemake reruns a job when its script, inputs or params change, but not when a module the
script imports changes, so after a fix in, say, `alliance.models.hazard` the old tables would stay
in results/ looking current. Each rule passes `script_digest(<its script>)` as a param: an edit to
any `alliance` module in the script's import closure (static imports, plus the "alliance.x.y:func"
strings of registries such as the model kinds) reruns exactly the jobs that run that code.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import hashlib
import json
import os
import re
import sys
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
# "alliance.models.cox" or "alliance.models.cox:fit_cox" written as a string (a registry entry)
_DOTTED = re.compile(r"^(alliance(?:\.[A-Za-z_]\w*)+)(?::[A-Za-z_]\w*)?$")
# What each version of a file names, by the SHA-256 of its bytes, kept between processes beside
# Python's own bytecode cache: parsing ~150 files cost ~0.3 s each time the Snakefile was read
# (twice per `make run`). Content-addressed, so an edited file is parsed afresh; only a cache.
NAMES_CACHE = PACKAGE_ROOT / "__pycache__" / f"code_digest.{sys.implementation.cache_tag}.json"
NAMES_CACHE_MAX = 5000  # entries; past that the cache starts over (old versions of edited files)


def _module_file(name: str, root: Path) -> Path | None:
    """The file of module `name` under the package at `root` (None when not one of ours)."""
    parts = name.split(".")
    if parts[0] != root.name:
        return None
    base = root.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _parents(name: str) -> list[str]:
    """`a.b.c` -> [a, a.b, a.b.c]: importing a module runs every parent package's __init__."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _named_modules(path: Path) -> frozenset[str]:
    """Dotted names a file imports or names in a registry string (candidates, not yet resolved)."""
    return _parsed(path, path.stat().st_mtime_ns)


@cache
def _parsed(path: Path, mtime_ns: int) -> frozenset[str]:
    """`_named_modules` for one version of the file (the key holds its modification time)."""
    source = path.read_bytes()
    key = hashlib.sha256(source).hexdigest()
    stored = _names_cache()
    if key not in stored:
        stored[key] = sorted(_scan(source, path))
        _unsaved.add(key)
    return frozenset(stored[key])


@cache
def _names_cache() -> dict[str, list[str]]:
    """NAMES_CACHE as read once per process ({} when absent or unreadable); saved at exit."""
    atexit.register(_save_names_cache)
    try:
        stored = json.loads(NAMES_CACHE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(stored, dict) and len(stored) <= NAMES_CACHE_MAX
    return stored if ok else {}


_unsaved: set[str] = set()


def _save_names_cache() -> None:
    """Write NAMES_CACHE atomically when this process parsed a file it lacked (best effort:
    a read-only install just parses every time)."""
    if not _unsaved:
        return
    tmp = NAMES_CACHE.with_name(f".{NAMES_CACHE.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        NAMES_CACHE.parent.mkdir(exist_ok=True)
        tmp.write_text(json.dumps(_names_cache(), sort_keys=True), encoding="utf-8")
        os.replace(tmp, NAMES_CACHE)
        _unsaved.clear()
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _scan(source: bytes, path: Path) -> set[str]:
    """Dotted names the source imports or names in a registry string."""
    tree = ast.parse(source, filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _DOTTED.match(node.value)
            if match:
                names.add(match.group(1))
    return names


def import_closure(script: Path, root: Path = PACKAGE_ROOT) -> list[Path]:
    """Package files `script` runs: its imports, theirs, and every parent package, sorted."""
    seen: set[Path] = set()
    # each dotted name resolved once: the closures name the same modules thousands of times,
    # and every resolution costs file-system lookups (Snakemake digests ~20 scripts per run)
    resolved: dict[str, Path | None] = {}
    todo = [Path(script)]
    while todo:
        for name in _named_modules(todo.pop()):
            for parent in _parents(name):
                if parent not in resolved:
                    resolved[parent] = _module_file(parent, root)
                found = resolved[parent]
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return sorted(seen)


def script_digest(script: str | Path, root: Path = PACKAGE_ROOT) -> str:
    """sha256 over the relative paths and bytes of `import_closure(script)` (16 hex digits)."""
    h = hashlib.sha256()
    for path in import_closure(Path(script), root):
        h.update(path.relative_to(root.parent).as_posix().encode() + b"\0")
        stat = path.stat()
        h.update(_file_digest(path, stat.st_mtime_ns, stat.st_size))
    return h.hexdigest()[:16]


@cache
def _file_digest(path: Path, mtime_ns: int, size: int) -> bytes:
    """sha256 of one version of a file (the key holds its modification time and size): the ~20
    scripts Snakemake digests share most of their files."""
    return hashlib.sha256(path.read_bytes()).digest()
