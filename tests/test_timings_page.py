"""The report's timings page: every model folder with its seconds, every job, config text escaped;
kept apart from overview.html so that page stays byte-identical between runs."""

from __future__ import annotations

import json
from pathlib import Path

from alliance.render.timings import timings_html


def _model(models: Path, name: str, fit: dict, timing: dict) -> None:
    folder = models / name
    folder.mkdir(parents=True)
    (folder / "fit.json").write_text(json.dumps(fit))
    (folder / "timing.json").write_text(json.dumps(timing))


def test_the_page_lists_each_model_and_job_with_its_seconds(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _model(models, "growth", {"kind": "lmm", "status": "fitted"},
           {"fit_seconds": 1.23456, "total_seconds": 2.5})  # fmt: skip
    _model(models, "<b>odd", {"kind": "cox", "status": "skipped"}, {"total_seconds": 0.01})
    jobs = [
        {"job": "clean", "start": "2026-11-30T21:00:00+00:00", "seconds": 0.5},
        {"job": "model_growth", "start": "2026-11-30T21:00:01+00:00", "seconds": 3.0},
    ]
    page = timings_html(models, jobs)
    assert (
        "<td>growth</td><td>lmm</td><td>fitted</td><td>1.23</td><td>2.50</td><td>3.00</td>" in page
    )
    # a skipped model has no fit seconds and no job record here: dashes, not zeros
    assert "<td>skipped</td><td>-</td><td>0.01</td><td>-</td>" in page
    assert "<b>odd" not in page and "&lt;b&gt;odd" in page
    assert "Jobs (2; 3.5 s in all)" in page
    assert page.index("clean") < page.index("model_growth", page.index("<h3>"))


def test_the_overview_page_carries_no_timing() -> None:
    """Timings vary between runs; overview.html must not (tests/test_reproducible.py)."""
    import inspect

    from alliance.render import stage

    assert "timing" not in inspect.getsource(stage.overview_html)
