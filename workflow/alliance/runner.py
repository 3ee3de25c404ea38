"""Shared set-up for the thin Snakemake scripts: logging into the rule's log file, stage timing,
and a quick exit once the job's work is done (`exit_job`)."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import os
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


def exit_job() -> None:
    """End the job's process now that its outputs are written: exit handlers run (the stage
    timing of `script_logger`, logging's flush), the interpreter's teardown does not.

    Why: freeing the pandas / scipy / matplotlib state at exit took 0.2-0.35 s per job, and
    Snakemake starts the next job only once the process is gone (issue #16: ~30 jobs in a row on
    two cores). Call it last in a script, after `main` returned: an exception never reaches it,
    so a failing job still exits through the interpreter with its error status.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
