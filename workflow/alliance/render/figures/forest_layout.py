"""What the forest figure shows and where: rows per scale (panel), model blocks, and pages.

Rules (the caption states them):
- Rows: the key terms of every fitted model with a finite estimate (summary.csv), except models
  marked as sensitivity analyses (`options.sensitivity: true`, in fit.json as `sensitivity`):
  they repeat a headline model at another cut-off or specification and are listed, not drawn.
- Panels: one per scale, in SCALES order: outcome-unit coefficients first (linear models; the
  RI-CLPM's within-patient paths, one panel per path since each has its own unit; the response
  surface, whose curvatures are per squared point; indirect effects; pooled correlations), then
  odds ratios and hazard ratios.
- Pages: everything on one page when the rows fit at MIN_ROW_IN; otherwise pages are filled in
  panel order at ROW_IN with whole panels, a new page starting at the first panel that does not
  fit (a panel longer than a page is split between models). Nothing is dropped: a model too
  large for a page alone makes the figure skip with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alliance.render import style
from alliance.render.figures.common import NothingToDraw, require_columns
from alliance.render.figures.labels import ARROW, term_text
from alliance.render.notes import is_sensitivity

SCALE_OF_KIND = {
    "lmm": "linear", "rsa": "surface", "mediation": "indirect", "gee": "odds", "glmm": "odds",
    "hazard": "odds", "cox": "hazard", "pool": "correlation", "riclpm": "linear",
}  # fmt: skip
# RI-CLPM within-patient paths: each its own panel (its own unit)
WITHIN_SCALE = {
    "alliance_to_symptom": "cross_as",
    "symptom_to_alliance": "cross_sa",
    "alliance_ar": "autoregression",
    "symptom_ar": "autoregression",
}
SCALES = ("linear", "cross_as", "cross_sa", "autoregression", "surface", "indirect", "correlation",
          "odds", "hazard")  # fmt: skip
WITHIN_SCALES = ("cross_as", "cross_sa", "autoregression")
ROW_IN = 0.155  # inches per row: 7 pt text with a little air
MIN_ROW_IN = 0.118  # 7 pt text (0.097 in) with the least air that still reads
AXIS_IN, GAP_IN, TOP_IN = 0.40, 0.10, 0.20  # per panel: x axis and gap; per page: column head

Line = tuple[str, "pd.Series | None"]  # label, row (None: a model's title)
Block = tuple[str, str, list[Line]]  # scale, model, its lines (title first)
Panel = tuple[str, list[Line]]


def _scale_of(row: pd.Series) -> str:
    kind = str(row.get("kind", ""))
    if kind == "riclpm":
        return WITHIN_SCALE.get(str(row.get("term", "")), "linear")
    for col in ("scale", "family"):
        value = str(row.get(col, "") or "")
        if value == "gaussian":
            return "linear"
        if value in SCALES:
            return value
    return SCALE_OF_KIND.get(kind, "linear")


def sensitivity_models(
    summary: pd.DataFrame, fits: Mapping[str, Mapping[str, Any]] | None
) -> list[str]:
    """Models marked as sensitivity analyses (fit.json `sensitivity`, or a summary column)."""
    models = list(dict.fromkeys(summary["model"].astype(str))) if "model" in summary else []
    flagged = {m for m in models if is_sensitivity((fits or {}).get(m))}
    if "sensitivity" in summary.columns:
        col = summary["sensitivity"].astype(str).str.lower() == "true"
        flagged |= set(summary.loc[col, "model"].astype(str))
    return [m for m in models if m in flagged]


def forest_rows(
    summary: pd.DataFrame, fits: Mapping[str, Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """Fitted rows with a finite estimate and CI, tagged with their scale (panel); models marked
    as sensitivity analyses are left out (`sensitivity_models`)."""
    require_columns(summary, ["model", "kind", "term", "estimate", "ci_low", "ci_high"],
                    "summary.csv")  # fmt: skip
    s = summary.copy()
    if "status" in s.columns:
        s = s[s["status"].astype(str) == "fitted"]
    s = s[np.isfinite(pd.to_numeric(s["estimate"], errors="coerce"))]
    s = s[s["term"].astype(str) != "(Intercept)"]
    rsa_other = (s["kind"].astype(str) == "rsa") & ~s["term"].astype(str).isin(
        ["a1", "a2", "a3", "a4"]
    )
    s = s[~rsa_other & ~s["model"].astype(str).isin(sensitivity_models(summary, fits))]
    s = s.assign(scale=[_scale_of(r) for _, r in s.iterrows()])
    return s.reset_index(drop=True)


def _interactions(formula: str, term: str) -> list[str]:
    """Columns that `term` interacts with in `formula` (fixed part, two-way terms)."""
    fixed = formula.split("~", 1)[-1]
    out = []
    for piece in fixed.split("+"):
        parts = [p.strip() for p in piece.split(":")]
        if len(parts) == 2 and term in parts and "|" not in piece:
            out.append(parts[1] if parts[0] == term else parts[0])
    return out


def conditional_note(term: str, fit: Mapping[str, Any] | None) -> str:
    """ " (in PLA-CM)" / " (at telehealth = 0)" when `term` is a main effect that the model
    also interacts with a moderator: its estimate is then the slope at the moderator's zero."""
    if not fit or ":" in term:
        return ""
    moderators = _interactions(str(fit.get("formula") or ""), term)
    if not moderators:
        return ""
    factors = ((fit.get("frame") or {}).get("factors")) or {}
    notes = []
    for col in moderators:
        owner = next((f for f, info in factors.items()
                      if col in (info.get("columns") or {}).values()), None)  # fmt: skip
        note = f"in {factors[owner].get('reference')}" if owner else f"at {col} = 0"
        if note not in notes:
            notes.append(note)
    return f" ({'; '.join(notes)})"


def model_blocks(
    rows: pd.DataFrame, fits: Mapping[str, Mapping[str, Any]] | None = None, early: str = ""
) -> list[Block]:
    """Per scale (SCALES order), per model (summary order): its title and its term lines."""
    out: list[Block] = []
    for scale in SCALES:
        sub = rows[rows["scale"] == scale]
        for model in dict.fromkeys(sub["model"].astype(str)):
            m = sub[sub["model"].astype(str) == model]
            title = str(m["label"].iloc[0]) if "label" in m.columns else model
            lines: list[Line] = [(title.replace("->", ARROW), None)]
            fit = (fits or {}).get(model)
            lines += [(term_text(r["term"], str(r.get("kind", "")), early)
                       + conditional_note(str(r["term"]), fit), r)
                      for _, r in m.iterrows()]  # fmt: skip
            out.append((scale, model, lines))
    return out


def page_panels(blocks: list[Block]) -> list[Panel]:
    """The panels of one page: consecutive blocks of a scale joined; a within-patient path
    panel right after one of the same model repeats no title (the path labels say which)."""
    panels: list[Panel] = []
    prev: tuple[str, str] | None = None
    for scale, model, lines in blocks:
        same_model = (prev is not None and prev[1] == model and prev[0] != scale
                      and scale in WITHIN_SCALES and prev[0] in WITHIN_SCALES)  # fmt: skip
        body = lines[1:] if same_model else lines
        if panels and panels[-1][0] == scale:
            panels[-1][1].extend(body)
        else:
            panels.append((scale, list(body)))
        prev = (scale, model)
    return panels


def page_height(panels: list[Panel], row_in: float) -> float:
    """Inches a page of `panels` needs at `row_in` per row."""
    rows = sum(len(lines) for _, lines in panels)
    return rows * row_in + (AXIS_IN + GAP_IN) * len(panels) + TOP_IN


def row_height(panels: list[Panel]) -> float:
    """Inches per row that fill at most a page, never more than ROW_IN."""
    rows = sum(len(lines) for _, lines in panels)
    fixed = page_height(panels, 0.0)
    return min(ROW_IN, (style.MAX_HEIGHT - fixed) / max(rows, 1))


def _units(blocks: list[Block]) -> list[list[Block]]:
    """What pages are made of: a whole panel (its blocks) when it fits on a page at ROW_IN,
    else its models one by one."""
    units: list[list[Block]] = []
    for block in blocks:
        if units and units[-1][0][0] == block[0]:
            units[-1].append(block)
        else:
            units.append([block])
    out: list[list[Block]] = []
    for unit in units:
        fits = page_height(page_panels(unit), ROW_IN) <= style.MAX_HEIGHT
        out += [unit] if fits else [[b] for b in unit]
    return out


def paginate(blocks: list[Block]) -> list[list[Panel]]:
    """Pages of panels: one page when it fits at MIN_ROW_IN, else pages filled at ROW_IN with
    whole panels (a panel longer than a page is split between models)."""
    if row_height(page_panels(blocks)) >= MIN_ROW_IN:
        return [page_panels(blocks)]
    pages: list[list[Block]] = []
    current: list[Block] = []
    for unit in _units(blocks):
        trial = current + unit
        if current and page_height(page_panels(trial), ROW_IN) > style.MAX_HEIGHT:
            pages.append(current)
            trial = list(unit)
        current = trial
    pages.append(current)
    for page in pages:
        if row_height(page_panels(page)) < MIN_ROW_IN:
            rows = sum(len(lines) for _, lines in page_panels(page))
            raise NothingToDraw(f"model {page[0][1]} has {rows} rows: more than fit on a page")
    return [page_panels(page) for page in pages]
