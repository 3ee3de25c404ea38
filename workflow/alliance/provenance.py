"""provenance.json: what produced these results (versions, config, inputs, seeds, code, timing)."""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from alliance.config import config_hash
from alliance.files import sha256, shareable_path
from alliance.settings import Settings

# Config keys holding input paths: recorded as `shareable_path` gives them (never absolute).
PATH_KEYS = (("data", "sessions"), ("data", "patients"), ("alliance", "instruments_dir"))
PACKAGES = (
    "alliance-outcomes", "pandas", "numpy", "scipy", "statsmodels", "pingouin", "mixedlm",
    "matplotlib", "snakemake", "pyarrow", "pyreadstat", "openpyxl", "jsonschema", "pyyaml",
)  # fmt: skip


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git(root: Path) -> dict[str, Any]:
    def run(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    commit = run("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None, "note": "not a git checkout"}
    return {"commit": commit, "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}


def _input_digests(inputs: list[str]) -> dict[str, str]:
    """Shareable path -> SHA-256 of every input; two outside files of one name stay apart."""
    out: dict[str, str] = {}
    for path in sorted(inputs):
        name = base = str(shareable_path(path))
        k = 1
        while name in out:
            k += 1
            name = f"{base} ({k})"
        out[name] = sha256(path)
    return out


def _timings(timing_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(p.read_text()) for p in sorted(timing_dir.glob("*.json"))]
    return sorted(rows, key=lambda r: (r.get("start", ""), r.get("job", "")))


def provenance(
    settings: Settings, inputs: list[str], code_root: Path, timing_dir: Path
) -> dict[str, Any]:
    """Everything a reviewer needs to know what produced results/ (the key is never recorded;
    input paths are relative to the project, or bare file names when outside it)."""
    config = settings.to_dict()
    safe = json.loads(json.dumps(config, default=str))
    if safe.get("privacy", {}).get("key"):
        safe["privacy"]["key"] = "<set in config; not recorded>"
    for section, key in PATH_KEYS:
        if isinstance(safe.get(section), dict) and safe[section].get(key):
            safe[section][key] = shareable_path(safe[section][key])
    if safe.get("output"):
        safe["output"] = shareable_path(safe["output"])
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _versions(),
        "config": safe,
        # Hash of the config as recorded (key redacted): anyone can recompute it from this file,
        # and it cannot serve to brute-force the pseudonymisation key offline.
        "config_sha256": config_hash(safe),
        "seed": config.get("seed"),
        "inputs": _input_digests(inputs),
        "pipeline": _git(code_root),
        "stages": _timings(timing_dir),
    }
