"""Shared set-up for the thin Snakemake scripts: logging into the rule's log file."""

from __future__ import annotations

import logging
import sys
from typing import Any


def script_logger(smk: Any, name: str) -> logging.Logger:
    """Send logging and uncaught errors (with their place in the data) to the rule's log."""
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
    return log
