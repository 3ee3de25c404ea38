"""The report's timings page: seconds per model (fit, model stage, whole job) and per job.

Why: where a run's time goes should be visible in the report itself (issue #16), not only in
`make bench`. Timings change from run to run, so they live on their own page in the report's
overview category (`results/report/timings.html`, written with provenance.json, the run's last
step) and overview.html stays byte-identical between runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alliance.render.escape import html_escape

_STYLE = (
    "<style>body{font-family:sans-serif;max-width:60em}table{border-collapse:collapse}"
    "td,th{border-bottom:1px solid #ccc;padding:2px 8px;text-align:left}</style>"
)


def _seconds(value: Any) -> str:
    return f"{float(value):.2f}" if isinstance(value, int | float) else "-"


def _row(cells: Sequence[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{html_escape(c)}</{tag}>" for c in cells) + "</tr>"


def timings_html(models_dir: Path, jobs: Sequence[dict[str, Any]]) -> str:
    """The page: one row per model folder (status, fit s, frame + fit s, job s), then every job of
    this run (`jobs`: provenance.json `stages`, i.e. logs/timing/*.json, in start order).

    Job seconds are the script's own (from its start to its exit), without Python start-up and
    imports; a model job's seconds add reading its inputs and writing its outputs to the model's.
    """
    job_seconds = {str(j.get("job")): j.get("seconds") for j in jobs}
    rows = []
    for timing in sorted(Path(models_dir).glob("*/timing.json")):
        folder = timing.parent
        fit_path = folder / "fit.json"
        fit = json.loads(fit_path.read_text()) if fit_path.exists() else {}
        t = json.loads(timing.read_text())
        rows.append(
            _row([folder.name, str(fit.get("kind", "")), str(fit.get("status", "")),
                  _seconds(t.get("fit_seconds")), _seconds(t.get("total_seconds")),
                  _seconds(job_seconds.get(f"model_{folder.name}"))])
        )  # fmt: skip
    total = sum(float(j["seconds"]) for j in jobs if isinstance(j.get("seconds"), int | float))
    parts = [
        "<h2>Timings of this run</h2>",
        "<p>Seconds per model: the fit alone, the model stage (frame, fit, tests and extras) and "
        "the whole job (reading its inputs and writing its outputs too; Python start-up and "
        "imports excluded). They vary from run to run with the machine's load.</p>",
        "<table>",
        _row(["model", "kind", "status", "fit s", "model s", "job s"], "th"),
        *rows,
        "</table>",
        f"<h3>Jobs ({len(jobs)}; {total:.1f} s in all)</h3><table>",
        _row(["job", "start (UTC)", "s"], "th"),
        *[
            _row([str(j.get("job", "")), str(j.get("start", "")), _seconds(j.get("seconds"))])
            for j in jobs
        ],  # fmt: skip
        "</table>",
    ]
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{_STYLE}</head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
