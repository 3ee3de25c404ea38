"""Figure captions for the report: what each figure shows (its drawing function's docstring)
plus what its model says about itself.

A figure drawn from one model (`FigureSpec.model`), or with one panel per model
(`FigureSpec.models`), carries each model's note (`options.note`) and caveats (warnings, dropped
terms, fit problems; `alliance.render.notes`); the forest figure names the sensitivity models it
leaves out. The text is plain: the overview page escapes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alliance.render.figures import FIGURES, FigureSpec
from alliance.render.notes import is_sensitivity, model_caveats, model_details, model_note


def _fit(results: Path, model: str) -> dict[str, Any] | None:
    path = results / "models" / model / "fit.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _all_fits(results: Path) -> dict[str, Mapping[str, Any]]:
    out = {}
    for path in sorted((results / "models").glob("*/fit.json")):
        fit = _fit(results, path.parent.name)
        if fit is not None:
            out[path.parent.name] = fit
    return out


def figure_notes(spec: FigureSpec, results_dir: str | os.PathLike[str]) -> list[str]:
    """The sentences a figure's caption adds to its docstring, from the results on disk."""
    results = Path(results_dir)
    out: list[str] = []
    for model in dict.fromkeys([*([spec.model] if spec.model else []), *spec.models]):
        fit = _fit(results, model)
        note, caveats, details = model_note(fit), model_caveats(fit), model_details(fit)
        if note:
            out.append(f"Model note ({model}): {note}")
        if details:
            out.append(f"Model details ({model}): {' '.join(details)}")
        if caveats:
            out.append(f"Caveats ({model}): {'; '.join(caveats).rstrip('.')}.")
    if any("*" in rel and rel.endswith("fit.json") for rel in spec.optional.values()):
        fits = _all_fits(results)
        left_out = [m for m, fit in fits.items()
                    if is_sensitivity(fit) and fit.get("status") == "fitted"]  # fmt: skip
        if left_out:
            out.append("Not drawn, sensitivity analyses (see the model tables): "
                       f"{', '.join(left_out)}.")  # fmt: skip
    return out


def figure_caption(name: str, results_dir: str | os.PathLike[str]) -> str:
    """The full caption of figure `name`: docstring, then its model's note and caveats."""
    spec = FIGURES[name]
    return " ".join([spec.caption, *figure_notes(spec, results_dir)])
