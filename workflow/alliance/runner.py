"""Shared set-up for the thin Snakemake scripts: logging into the rule's log file, stage timing."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any


def timing_dir(smk: Any) -> Path:
    """Where the run's jobs record their start and end: `timing/` in the folder of the rule's
    log (each results folder has its own logs, alliance.config.logs_folder)."""
    return Path(smk.log[0]).parent / "timing"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def script_logger(smk: Any, name: str) -> logging.Logger:
    """Send logging and uncaught errors (with their place in the data) to the rule's log.

    Also records the job's start and end time in <logs>/timing/<name>.json for provenance.json
    (timings live outside results/ tables so reruns stay byte-identical).
    """
    handler = logging.FileHandler(smk.log[0], mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    log = logging.getLogger(name)

    def excepthook(kind, value, tb):  # noqa: ANN001 - signature fixed by sys.excepthook
        log.error("%s: %s", kind.__name__, value, exc_info=(kind, value, tb))

    sys.excepthook = excepthook
    wildcards = "_".join(str(v) for v in dict(getattr(smk, "wildcards", {}) or {}).values())
    stamp = {"job": f"{name}_{wildcards}" if wildcards else name, "start": _now()}
    t0 = time.perf_counter()

    def record() -> None:
        stamp.update(end=_now(), seconds=round(time.perf_counter() - t0, 3))
        folder = timing_dir(smk)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stamp['job']}.json").write_text(json.dumps(stamp, indent=2) + "\n")

    atexit.register(record)
    # Snakemake stops jobs with SIGTERM: exit normally so context managers remove temp files.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return log
