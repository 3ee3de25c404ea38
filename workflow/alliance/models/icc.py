"""Null-model variance decomposition of the alliance: therapist / patient / session shares.

A model fit (through the engine), so it lives with the models although its output sits beside
the scores (results/scores/alliance_icc.csv).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance.engine.mixed import fit_lmm
from alliance.errors import InputError
from alliance.score.levels import FEW_THERAPISTS, STEM, require_columns, therapist_column

LEVELS = {"therapist": "therapist", "therapist:patient": "patient", "patient": "patient"}


def variance_decomposition(
    table: pd.DataFrame, *, column: str = "a", reml: bool = True
) -> pd.DataFrame:
    """Null model variance components and shares: therapist / patient / session (residual).

    Three levels `column ~ 1 + (1 | therapist) + (1 | therapist:patient)` when the table has at
    least two therapists; otherwise two levels `column ~ 1 + (1 | patient)`, with the reason in
    `note`. Rows with the score missing are left out; patients without a therapist are left out
    of the three-level fit (counted in `note`). One row per level; model-wide columns repeat.
    """
    require_columns(table, ("patient", column), "analysis table")
    data = table.loc[table[column].notna()]
    if data["patient"].nunique() < 2:
        raise InputError(
            "variance decomposition needs at least two patients with a rated session",
            column=column,
            check="too_few_patients",
        )
    notes: list[str] = []
    ther = therapist_column(data)
    n_ther = 0 if ther is None else int(ther.nunique())
    if n_ther >= 2:
        no_ther = data["therapist"].isna()
        if no_ther.any():
            notes.append(
                f"{data.loc[no_ther, 'patient'].nunique()} patient(s) without a therapist left out"
            )
            data = data.loc[~no_ther]
        if n_ther < FEW_THERAPISTS:
            notes.append(
                f"only {n_ther} therapists: the therapist variance is imprecise and three-level "
                "SEs are biased; prefer two-level models with cluster-robust SEs"
            )
        model = "three-level"
        formula = f"{column} ~ 1 + (1 | therapist) + (1 | therapist:patient)"
        frame = data[["therapist", "patient", column]].astype(
            {"therapist": str, "patient": str, column: float}
        )
    else:
        notes.append(
            "no therapist IDs: two-level model (patient only)"
            if n_ther == 0
            else "one therapist only: two-level model (patient only)"
        )
        model = "two-level"
        formula = f"{column} ~ 1 + (1 | patient)"
        frame = data[["patient", column]].astype({"patient": str, column: float})
    fit = fit_lmm(formula, frame, reml=reml)
    vc = fit.variance_components
    vc = vc[vc["term2"] == ""]
    total = float(vc["variance"].sum())
    counts = {
        "therapist": int(frame["therapist"].nunique()) if "therapist" in frame else 0,
        "patient": int(frame["patient"].nunique()),
        "session": int(len(frame)),
    }
    rows = []
    for group, variance in zip(vc["group"], vc["variance"], strict=True):
        level = "session" if group == "Residual" else LEVELS[str(group)]
        rows.append(
            {
                "level": level,
                "group": str(group),
                "variance": float(variance),
                "sd": float(np.sqrt(max(variance, 0.0))),
                "share": float(variance) / total if total > 0 else np.nan,
                "n": counts[level],
            }
        )
    out = pd.DataFrame(rows)
    order = {"therapist": 0, "patient": 1, "session": 2}
    out = out.sort_values("level", key=lambda s: s.map(order)).reset_index(drop=True)
    out.insert(0, "column", column)
    out.insert(1, "model", model)
    out["grand_mean"] = float(fit.coefficients["estimate"].iloc[0])
    out["formula"] = formula
    out["reml"] = reml
    out["converged"] = fit.converged
    out["singular"] = fit.singular
    out["warnings"] = "; ".join(fit.warnings)
    out["note"] = "; ".join(notes)
    return out


def alliance_icc(analysis: pd.DataFrame) -> pd.DataFrame:
    """Therapist / patient / session shares of the primary alliance score (null 3-level model)."""
    return variance_decomposition(analysis, column=STEM)
