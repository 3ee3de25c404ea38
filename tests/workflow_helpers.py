"""Run the Snakemake workflow in a scratch directory with a config whose paths are absolute."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def absolute_config(config_file: Path, workdir: Path, name: str = "config.yaml", **edits) -> Path:
    """Copy a repo config into `workdir` (as `name`) with its data and instrument paths made
    absolute (they are relative to the config's folder) and no `output`: results then go to
    `workdir/results`, the default, unless an edit sets `output` (relative to `workdir`)."""
    cfg = yaml.safe_load(config_file.read_text())
    folder = config_file.resolve().parent
    for key in ("sessions", "patients"):
        if cfg["data"].get(key):
            cfg["data"][key] = os.path.normpath(folder / cfg["data"][key])
    cfg.setdefault("alliance", {})["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg.pop("output", None)
    for dotted, value in edits.items():
        node = cfg
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    out = workdir / name
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
