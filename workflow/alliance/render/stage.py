"""The render stage's table set and the report's overview page, from results/ files only.

Tables go to `results/tables/<name>.{csv,md,tex,html}`; the overview page
(`results/report/overview.html`) states the data used (n's from the clean stage), every analysis
with its status and caveats (or why it was skipped), each model's note, each figure's caption
with its model's note and caveats, and why missing figures are missing — the report quotes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from alliance.clean.disclosure import below, overview_counts
from alliance.files import atomic_path, read_csv
from alliance.render.escape import html_escape
from alliance.render.notes import is_sensitivity, model_caveats, model_details, model_note
from alliance.render.tables import (
    agreement_table,
    model_table,
    reliability_table,
    summary_table,
    table1,
    write_table,
)
from alliance.render.tables.table1 import baseline_variables
from alliance.settings import RenderSettings


def _labels(sym: str) -> dict[str, str]:
    """Table 1 row labels; `sym` is the symptom scale's label."""
    return {
        "age": "Age (years)",
        "baseline_symptom": f"Baseline {sym}",
        "sex": "Sex",
        "modality": "Modality",
        "site": "Site",
        "agreeableness": "Agreeableness",
        "extraversion": "Extraversion",
        "openness": "Openness",
    }


def model_folders(models_dir: Path) -> list[Path]:
    """Model output folders (those holding a fit.json), sorted by id."""
    return sorted(p.parent for p in models_dir.glob("*/fit.json"))


def build_tables(results: Path, settings: RenderSettings, out: Path) -> dict[str, list[Path]]:
    """Table 1, reliability, one APA table per fitted model, and the summary of alliance effects."""
    labels = _labels(settings.symptoms.label)
    written: dict[str, list[Path]] = {}
    patients = pd.read_parquet(results / "clean" / "patients.parquet")
    randomised = patients[patients["arm"].notna()] if "arm" in patients else patients
    traits = list(settings.columns.personality)
    cont, cat = baseline_variables(randomised, settings.columns.covariates, traits)
    labels = {t: t.replace("_", " ").capitalize() for t in traits} | labels
    min_cell = settings.privacy.min_cell
    by = "arm" if "arm" in randomised else None
    if by:
        t1 = table1(randomised, by=by, continuous=cont, categorical=cat, min_cell=min_cell,
                    labels=labels)  # fmt: skip
        written["table1_baseline"] = write_table(t1, out / "table1_baseline")
    rel = read_csv(results / "scores" / "reliability.csv", dtype={"session": str})
    written["reliability"] = write_table(reliability_table(rel), out / "reliability")
    agree = read_csv(results / "scores" / "agreement.csv", dtype={"session": str})
    if len(agree):
        written["agreement"] = write_table(agreement_table(agree), out / "agreement")
    for folder in model_folders(results / "models"):
        fit = json.loads((folder / "fit.json").read_text())
        if fit.get("status") != "fitted":
            continue
        coefs = read_csv(folder / "coefficients.csv")
        table = model_table(coefs, fit)
        written[f"model_{folder.name}"] = write_table(table, out / f"model_{folder.name}")
    summary = read_csv(results / "models" / "summary.csv")
    written["alliance_effects"] = write_table(summary_table(summary), out / "alliance_effects")
    return written


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{html_escape(c)}</{tag}>" for c in cells) + "</tr>"


def overview_html(results: Path, settings: RenderSettings, figures: dict[str, Any]) -> str:
    """A plain page: data used, every analysis with status/reason and caveats, model notes,
    figure captions (with their model's note and caveats) and missing figures' reasons. Every
    config- or data-derived string is escaped (`html_escape`)."""
    # here, not at the top: the figure registry imports matplotlib, which the tables job skips
    from alliance.render.captions import figure_caption
    from alliance.render.figures import FIGURES

    avail = json.loads((results / "clean" / "availability.json").read_text())
    flow = read_csv(results / "clean" / "flow.csv")
    summ = avail.get("summary", {})
    small = settings.privacy.suppress_small_cells  # flow.csv is suppressed already
    if small:  # counts as text ("< 5", "s"): escaped like every other value on the page
        summ = overview_counts(summ, flow, settings.privacy.min_cell)
        summ = {k: html_escape(v) if isinstance(v, str) else v for k, v in summ.items()}
    parts = [
        f"<h2>{html_escape(settings.trial_name)}</h2>",
        "<p>Data used (clean stage): "
        f"{summ.get('patients', '?')} people assessed, {summ.get('patients_with_sessions', '?')} "
        f"started treatment with {summ.get('therapists', '?')} therapists; "
        f"{summ.get('session_rows', '?')} session rows; arms: "
        f"{html_escape(', '.join(map(str, summ.get('arms', []))) or '-')}; "
        f"{summ.get('problems', 0)} data problem(s) recorded in validation.csv. "
        f"Symptom scale: {html_escape(settings.symptoms.label)}; alliance score in models: "
        f"{html_escape(settings.score.rater)}-rated {html_escape(settings.score.scale)}.</p>",
        "<h3>Participant flow</h3><table>",
        _row(["step", "arm", "n"], "th"),
        *[_row([r.step, r.arm, r.n]) for r in flow.itertuples()],
        "</table>",
        "<h3>Analyses</h3><table>",
        _row(["model", "kind", "status", "n", "reason and caveats"], "th"),
    ]
    notes: list[str] = []
    for folder in model_folders(results / "models"):
        fit = json.loads((folder / "fit.json").read_text())
        kind = str(fit.get("kind", ""))
        kind += ", sensitivity analysis" if is_sensitivity(fit) else ""
        remarks = "; ".join([str(fit.get("reason") or ""), *model_caveats(fit)][
                            0 if fit.get("reason") else 1:])  # fmt: skip
        parts.append(
            _row([folder.name, kind, fit.get("status", ""),
                  below(fit.get("n_obs", ""), settings.privacy.min_cell) if small
                  else fit.get("n_obs", ""), remarks])
        )  # fmt: skip
        about = " ".join(filter(None, [model_note(fit), *model_details(fit)]))
        if about:
            notes.append(f"<li>{html_escape(folder.name)}: {html_escape(about)}</li>")
    parts.append("</table>")
    if notes:
        parts += ["<h3>Model notes</h3><ul>", *notes, "</ul>"]
    drawn = [k for k in FIGURES if k in figures and not isinstance(figures[k], str)]
    if drawn:
        parts.append("<h3>Figures</h3><ul>")
        for name in drawn:
            files = html_escape(", ".join(map(str, figures[name])))
            caption = html_escape(figure_caption(name, results))
            parts.append(f"<li>{html_escape(name)} ({files}): {caption}</li>")
        parts.append("</ul>")
    missing = {k: v for k, v in figures.items() if isinstance(v, str)}
    unavailable = {
        k: v["reason"]
        for k, v in avail.items()
        if isinstance(v, dict) and v.get("available") is False
    }
    if missing or unavailable:
        parts.append("<h3>Missing figures and measures</h3><ul>")
        parts += [f"<li>figure {html_escape(k)}: {html_escape(v)}</li>" for k, v in missing.items()]
        parts += [
            f"<li>measure {html_escape(k)}: {html_escape(v)}</li>" for k, v in unavailable.items()
        ]
        parts.append("</ul>")
    style = (
        "<style>body{font-family:sans-serif;max-width:60em}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ccc;padding:2px 8px;text-align:left}</style>"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{style}</head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def write_overview(text: str, path: Path) -> Path:
    """Write the overview page atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
