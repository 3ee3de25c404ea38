"""Run the Snakemake workflow in a scratch directory with a config whose paths are absolute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def absolute_config(config_file: Path, workdir: Path, **edits) -> Path:
    """Copy a repo config into `workdir` with its data and instrument paths made absolute."""
    cfg = yaml.safe_load(config_file.read_text())
    for key in ("sessions", "patients"):
        if cfg["data"].get(key):
            cfg["data"][key] = str(ROOT / cfg["data"][key])
    cfg.setdefault("alliance", {})["instruments_dir"] = str(ROOT / "config" / "instruments")
    for dotted, value in edits.items():
        node = cfg
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    out = workdir / "config.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def run_snakemake(workdir: Path, config: Path, *targets: str, extra: tuple[str, ...] = ()):
    """Run snakemake on the repo's Snakefile in `workdir`; return the CompletedProcess."""
    cmd = [
        str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--config", f"configpath={config}", "--cores", "2", "--quiet", "rules",
        "--show-failed-logs", *extra, *targets,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
