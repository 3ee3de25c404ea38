"""The publication figures: a registry of what each draws from, and `draw_all`.

Every figure is a function of DataFrames / dicts and the render settings (`settings`, a
`RenderSettings`) returning a matplotlib Figure (or a list of pages, when it does not fit on one),
or None when its input says the analysis was skipped. `FIGURES` names, per figure, the results
files it needs (paths relative to `results/`) and the model whose fit.json gates it; `draw_all`
loads what exists, draws, saves `<out_dir>/<name>.png/.svg` (later pages `<name>_page2`, ...)
and returns the paths or "skipped: <reason>" per figure. Each figure belongs to a report
`section` (the render rule that draws it: `figures`, or `resistance` for treatment resistance).
Captions with each model's note and caveats: `alliance.render.captions`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alliance.render import style
from alliance.render.figures.agreement import draw_agreement_surface
from alliance.render.figures.attendance import draw_attendance_adherence
from alliance.render.figures.common import NothingToDraw, Pages, plain_pages, read_input
from alliance.render.figures.dropout import draw_dropout
from alliance.render.figures.flow import draw_flow
from alliance.render.figures.forest import draw_forest
from alliance.render.figures.hazard import draw_dropout_hazard
from alliance.render.figures.rater_agreement import draw_rater_agreement
from alliance.render.figures.resistance import draw_trd_slopes
from alliance.render.figures.riclpm import draw_riclpm
from alliance.render.figures.ruptures import draw_ruptures
from alliance.render.figures.slopes import draw_arm_slopes
from alliance.render.figures.survival import draw_km_relapse
from alliance.render.figures.therapists import draw_therapists
from alliance.render.figures.trajectories import draw_alliance_sessions, draw_symptom_trajectories
from alliance.settings import RenderSettings

__all__ = [
    "FIGURES", "SECTIONS", "FigureSpec", "draw_all", "draw_figure", "load_inputs", "page_stem",
]  # fmt: skip
SECTIONS = ("figures", "resistance")


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its drawing function and the results files it reads.

    `inputs` must exist (else the figure is skipped naming the file); `optional` are passed as
    None when absent; an optional path with one `*` passes {matched part: content} of every
    match (e.g. every model's fit.json by model id). Keys are the drawing function's argument
    names, values paths relative to results/. `model` is the model id whose fit.json (an input
    named `fit`) gates the figure. `models`: the models of a figure with one panel per model,
    none of which gates it (a panel whose model was not fitted says so); the caption carries
    their notes and caveats. `section`: one of SECTIONS, the report section and render rule.
    """

    name: str
    draw: Callable[..., Pages | None]
    inputs: Mapping[str, str]
    optional: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    models: tuple[str, ...] = ()
    section: str = "figures"

    @property
    def caption(self) -> str:
        """The drawing function's docstring: what the figure shows, for the report's caption."""
        return " ".join((self.draw.__doc__ or "").split())


def _m(model: str, name: str) -> str:
    return f"models/{model}/{name}"


FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in [
        FigureSpec("flow", draw_flow, {"flow": "clean/flow.csv"}),
        FigureSpec(
            "alliance_sessions",
            draw_alliance_sessions,
            {"alliance": "scores/alliance.parquet", "patients": "clean/patients.parquet"},
        ),
        FigureSpec(
            "symptom_trajectories",
            draw_symptom_trajectories,
            {
                "fit": _m("symptoms_growth", "fit.json"),
                "predictions": _m("symptoms_growth", "predictions.csv"),
                "analysis": "scores/analysis.parquet",
            },
            {
                "coefficients": _m("symptoms_growth", "coefficients.csv"),
                "frame": _m("symptoms_growth", "frame.parquet"),
                "vcov": _m("symptoms_growth", "vcov.csv"),
            },
            model="symptoms_growth",
        ),
        FigureSpec(
            "forest",
            draw_forest,
            {"summary": "models/summary.csv"},
            {
                "units": _m("pooled_sites", "units.csv"),
                "benchmark": _m("pooled_sites", "benchmark.csv"),
                "fits": "models/*/fit.json",
            },
        ),
        FigureSpec(
            "km_relapse",
            draw_km_relapse,
            {"fit": _m("relapse_cox", "fit.json"), "km": _m("relapse_cox", "km.csv")},
            {
                "at_risk": _m("relapse_cox", "km_at_risk.csv"),
                "logrank": _m("relapse_cox", "logrank.csv"),
            },
            model="relapse_cox",
        ),
        FigureSpec(
            "dropout",
            draw_dropout,
            {
                "fit": _m("dropout_early_alliance", "fit.json"),
                "coefficients": _m("dropout_early_alliance", "coefficients.csv"),
                "patients": "scores/patient_analysis.parquet",
            },
            {
                "frame": _m("dropout_early_alliance", "frame.parquet"),
                "vcov": _m("dropout_early_alliance", "vcov.csv"),
                "predictions": _m("dropout_early_alliance", "predictions.csv"),
            },
            model="dropout_early_alliance",
        ),
        FigureSpec(
            "dropout_hazard",
            draw_dropout_hazard,
            {
                "fit": _m("dropout_hazard", "fit.json"),
                "predictions": _m("dropout_hazard", "predictions.csv"),
            },
            {
                "coefficients": _m("dropout_hazard", "coefficients.csv"),
                "frame": _m("dropout_hazard", "frame.parquet"),
                "vcov": _m("dropout_hazard", "vcov.csv"),
            },
            model="dropout_hazard",
        ),
        FigureSpec(
            "therapists",
            draw_therapists,
            {
                "fit": _m("symptoms_growth", "fit.json"),
                "random_effects": _m("symptoms_growth", "random_effects.csv"),
                "analysis": "scores/analysis.parquet",
            },
            {"alliance_icc": "scores/alliance_icc.csv"},
            model="symptoms_growth",
        ),
        FigureSpec(
            "ruptures",
            draw_ruptures,
            {
                "ruptures": "scores/ruptures.csv",
                "rupture_patients": "scores/rupture_patients.csv",
                "alliance": "scores/alliance.parquet",
            },
        ),
        FigureSpec("rater_agreement", draw_rater_agreement, {"agreement": "scores/agreement.csv"}),
        FigureSpec(
            "agreement_surface",
            draw_agreement_surface,
            {"fit": _m("agreement_rsa", "fit.json"), "grid": _m("agreement_rsa", "grid.csv")},
            {
                "coefficients": _m("agreement_rsa", "coefficients.csv"),
                "patients": "scores/patient_analysis.parquet",
            },
            model="agreement_rsa",
        ),
        FigureSpec(
            "arm_slopes",
            draw_arm_slopes,
            {
                "fit": _m("symptoms_by_arm", "fit.json"),
                "slopes": _m("symptoms_by_arm", "simple_slopes.csv"),
            },
            {"contrasts": _m("symptoms_by_arm", "contrasts.csv")},
            model="symptoms_by_arm",
        ),
        FigureSpec(
            "riclpm_paths",
            draw_riclpm,
            {
                "fit": _m("symptoms_riclpm", "fit.json"),
                "coefficients": _m("symptoms_riclpm", "coefficients.csv"),
            },
            model="symptoms_riclpm",
        ),
        FigureSpec(
            "trd_slopes",
            draw_trd_slopes,
            {},
            {
                "symptoms_fit": _m("symptoms_by_trd", "fit.json"),
                "symptoms_coefficients": _m("symptoms_by_trd", "coefficients.csv"),
                "symptoms_vcov": _m("symptoms_by_trd", "vcov.csv"),
                "symptoms_slopes": _m("symptoms_by_trd", "simple_slopes.csv"),
                "hazard_fit": _m("dropout_hazard_by_trd", "fit.json"),
                "hazard_coefficients": _m("dropout_hazard_by_trd", "coefficients.csv"),
                "hazard_vcov": _m("dropout_hazard_by_trd", "vcov.csv"),
                "stage_fit": _m("dropout_hazard_by_stage", "fit.json"),
                "stage_coefficients": _m("dropout_hazard_by_stage", "coefficients.csv"),
                "stage_vcov": _m("dropout_hazard_by_stage", "vcov.csv"),
            },
            models=("symptoms_by_trd", "dropout_hazard_by_trd", "dropout_hazard_by_stage"),
            section="resistance",
        ),
        FigureSpec(
            "attendance_adherence",
            draw_attendance_adherence,
            {},
            {
                "missed_fit": _m("missed_sessions", "fit.json"),
                "missed_coefficients": _m("missed_sessions", "coefficients.csv"),
                "missed_frame": _m("missed_sessions", "frame.parquet"),
                "missed_vcov": _m("missed_sessions", "vcov.csv"),
                "adherence_fit": _m("adherence_alliance", "fit.json"),
                "adherence_coefficients": _m("adherence_alliance", "coefficients.csv"),
                "adherence_frame": _m("adherence_alliance", "frame.parquet"),
                "adherence_vcov": _m("adherence_alliance", "vcov.csv"),
                "share_fit": _m("adherence_alliance_share", "fit.json"),
                "share_coefficients": _m("adherence_alliance_share", "coefficients.csv"),
                "share_frame": _m("adherence_alliance_share", "frame.parquet"),
                "share_vcov": _m("adherence_alliance_share", "vcov.csv"),
            },
            models=("missed_sessions", "adherence_alliance", "adherence_alliance_share"),
            section="resistance",
        ),
    ]
}


def load_inputs(spec: FigureSpec, results_dir: str | os.PathLike[str]) -> dict[str, Any] | str:
    """The figure's inputs read from `results_dir`, or the skip reason when one is missing.

    A missing fit.json of the gating model is reported before other missing files of that model,
    since it says the model stage did not run; a fit.json saying skipped/failed gives the model
    stage's own reason.
    """
    root = Path(results_dir)
    out: dict[str, Any] = {}
    if spec.model is not None:
        fit_path = root / spec.inputs["fit"]
        if not fit_path.exists():
            return f"model {spec.model} has no fit.json (model stage not run)"
        fit = read_input(fit_path)
        if fit.get("status", "fitted") != "fitted":
            return f"model {spec.model} {fit.get('status')}: {fit.get('reason') or 'no reason'}"
    for arg, rel in spec.inputs.items():
        path = root / rel
        if not path.exists():
            return f"results/{rel} not found"
        out[arg] = read_input(path)
    for arg, rel in spec.optional.items():
        if "*" in rel:  # a pattern: {matched path part: content} of every match
            head, tail = rel.split("*", 1)
            found = sorted(root.glob(rel))
            out[arg] = {str(p.relative_to(root))[len(head) : -len(tail) or None]: read_input(p)
                        for p in found} or None  # fmt: skip
            continue
        path = root / rel
        out[arg] = read_input(path) if path.exists() else None
    return out


def draw_figure(
    spec: FigureSpec, results_dir: str | os.PathLike[str], settings: RenderSettings
) -> Pages | str:
    """The figure (or its pages), or its skip reason (input missing or the analysis skipped);
    its text is plain (`plain_text`: a `$` in a label, code or name never starts mathtext)."""
    inputs = load_inputs(spec, results_dir)
    if isinstance(inputs, str):
        return inputs
    raw = getattr(spec.draw, "__wrapped__", spec.draw)
    try:
        fig = raw(**inputs, settings=settings)
    except NothingToDraw as exc:
        return exc.reason
    return plain_pages(fig)


def page_stem(name: str, page: int) -> str:
    """File stem of a figure's page: `forest`, then `forest_page2`, `forest_page3`, ..."""
    return name if page == 1 else f"{name}_page{page}"


def _remove_pages(out: Path, name: str, keep: int) -> None:
    """Delete files of `name` beyond its first `keep` pages (all of them when keep = 0)."""
    stale = [out / f"{name}.png", out / f"{name}.svg"] if keep == 0 else []
    stale += [p for p in out.glob(f"{name}_page*.*")
              if p.suffix in (".png", ".svg") and p.stem.removeprefix(f"{name}_page").isdigit()
              and int(p.stem.removeprefix(f"{name}_page")) > keep]  # fmt: skip
    for path in stale:
        path.unlink(missing_ok=True)


def draw_all(
    results_dir: str | os.PathLike[str],
    settings: RenderSettings,
    out_dir: str | os.PathLike[str],
    names: list[str] | None = None,
    *,
    section: str | None = None,
) -> dict[str, list[Path] | str]:
    """Draw every available figure into `out_dir` (`names`, else every figure, of `section`
    only when given): name -> [png, svg] or "skipped: <reason>".

    A figure of several pages is saved as `<name>` and `<name>_page2`, ...; the paths of every
    page are listed in order. A skipped figure leaves no file behind: an older PNG/SVG of that
    name (and its pages) is removed, so the report never shows a stale figure beside a current
    skip reason; so are pages an earlier, longer draw left.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, list[Path] | str] = {}
    if section is not None and section not in SECTIONS:
        raise ValueError(f"figure section must be one of {SECTIONS}, got {section!r}")
    chosen = [n for n in names or list(FIGURES) if section in (None, FIGURES[n].section)]
    for name in chosen:
        spec = FIGURES[name]
        fig = draw_figure(spec, results_dir, settings)
        if isinstance(fig, str):
            _remove_pages(out, name, 0)
            result[name] = f"skipped: {fig}"
            continue
        pages = fig if isinstance(fig, list) else [fig]
        result[name] = [path for i, page in enumerate(pages, start=1)
                        for path in style.save_figure(page, out / page_stem(name, i))]  # fmt: skip
        _remove_pages(out, name, len(pages))
    return result
