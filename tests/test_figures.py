"""Publication figures: every figure draws from small synthetic results, skips cleanly, is
byte-reproducible, never shows a pseudonym and keeps fonts at 7 pt or more at print size."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from alliance.engine.survival import kaplan_meier, logrank
from alliance.render import style
from alliance.render.captions import figure_caption
from alliance.render.figures import FIGURES, draw_all, draw_figure, load_inputs
from alliance.render.figures.common import (
    NothingToDraw,
    arm_classes,
    arm_order,
    tertiles,
    wilson_ci,
)
from alliance.render.figures.dropout import observed_bins, population_curve
from alliance.render.figures.forest import conditional_note, forest_rows, term_text
from alliance.render.figures.labels import path_unit
from alliance.render.figures.predict import held_values
from alliance.render.figures.ruptures import choose_examples
from alliance.render.figures.survival import at_risk_table
from alliance.render.figures.therapists import outcome_icc
from alliance.render.figures.trajectories import draw_symptom_trajectories, observed_thirds
from alliance.score.agreement import all_pairs_agreement
from alliance.score.ruptures import rupture_table
from alliance.settings import RenderSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
ARMS = {"CBT": "psychotherapy", "IPT": "psychotherapy", "IMI": "drug", "PLA": "placebo"}
N_PAT, N_THER, N_SESS = 48, 8, 8
# Pseudonyms that must never reach a figure (checked in every SVG).
PATIENTS = [f"P-secret{i:03d}" for i in range(N_PAT)]
THERAPISTS = [f"T-hidden{j:02d}" for j in range(N_THER)]


@functools.cache
def config() -> RenderSettings:
    """The render settings of the synthetic trial (schema defaults for the rest)."""
    return Settings.from_config({
        "seed": 11,
        "data": {"sessions": "sessions.csv"},
        "columns": {"patient": "patient"},
        "symptoms": {"column": "symptom", "label": "HAM-D 17", "min": 0, "max": 52},
        "codings": {"arm": dict(ARMS), "arm_reference": "PLA"},
        "alliance": {
            "instruments_dir": str(ROOT / "config" / "instruments"),
            "raters": {
                "patient": {"instrument": "wai_sr"},
                "therapist": {"instrument": "wai_sr_t"},
            },
        },
        "score": {"rater": "patient", "scale": "total", "early_window": [1, 3],
                  "ruptures": {"m": 3}},
        "privacy": {"min_cell": 5},
        "treatment_resistance": {"staging_scale": "thase_rush", "staging_range": [0, 5]},
    }).render()  # fmt: skip


# ---- synthetic results -----------------------------------------------------------------------


def _patients(rng: np.random.Generator) -> pd.DataFrame:
    arms = list(ARMS)
    return pd.DataFrame({
        "patient": PATIENTS,
        "therapist": [THERAPISTS[i % N_THER] for i in range(N_PAT)],
        "arm": [arms[i % len(arms)] for i in range(N_PAT)],
        "effect": rng.normal(0, 0.35, N_PAT),
    })  # fmt: skip


def _alliance(pat: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for i, p in pat.iterrows():
        y = 3.7 + p["effect"] + 0.03 * np.arange(N_SESS) + rng.normal(0, 0.12, N_SESS)
        if i == 0:  # one rupture, repaired
            y[3] -= 1.6
        elif i == 1:  # one rupture, not repaired
            y[3:] -= 1.6
        elif i == 2:  # two ruptures, both repaired
            y[2] -= 1.6
            y[6] -= 1.6
        y = np.clip(y, 1, 5)
        for s in range(N_SESS):
            rows.append({"patient": p["patient"], "session": s + 1, "rater": "patient",
                         "instrument": "wai_sr", "scale": "total", "score": y[s]})  # fmt: skip
            if s % 2 == 0:
                t_score = float(np.clip(y[s] + rng.normal(0.1, 0.2), 1, 5))
                rows.append({"patient": p["patient"], "session": s + 1, "rater": "therapist",
                             "instrument": "wai_sr_t", "scale": "total",
                             "score": t_score})  # fmt: skip
    return pd.DataFrame(rows)


def _with_observer(alliance: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """`alliance` plus observer ratings of sessions 1, 3 and 8 (coded recordings)."""
    coded = alliance[(alliance["rater"] == "patient") & alliance["session"].isin([1, 3, 8])]
    score = np.clip(coded["score"] - 0.2 + rng.normal(0, 0.3, len(coded)), 1, 5)
    return pd.concat([alliance, coded.assign(rater="observer", instrument="demo_observer",
                                             score=score)], ignore_index=True)  # fmt: skip


def _analysis(pat: pd.DataFrame, alliance: pd.DataFrame, rng: np.random.Generator):
    own = alliance[alliance["rater"] == "patient"]
    pmean = own.groupby("patient")["score"].mean()
    ther_of = pat.set_index("patient")["therapist"]
    grand = pmean.mean()
    tmean = pmean.groupby(ther_of.reindex(pmean.index)).mean()
    rows = []
    for _, r in own.iterrows():
        t = ther_of[r["patient"]]
        a_pat = pmean[r["patient"]] - tmean[t]
        weeks = float(r["session"] - 1)
        rows.append({
            "patient": r["patient"], "therapist": t,
            "arm": pat.set_index("patient").loc[r["patient"], "arm"],
            "session": r["session"], "weeks": weeks,
            "symptom": 20 - 0.6 * weeks - 3 * a_pat + rng.normal(0, 1.5),
            "alliance": r["score"], "alliance_pat": a_pat, "alliance_ther": tmean[t] - grand,
            "alliance_within": r["score"] - pmean[r["patient"]],
        })  # fmt: skip
    analysis = pd.DataFrame(rows)
    early = own[own["session"] <= 3].groupby("patient")["score"].mean()
    ther = alliance[alliance["rater"] == "therapist"].groupby("patient")["score"].mean()
    logit = 1.5 - 0.6 * (early - 3.7) * 3 - 1.5
    drop = (rng.random(N_PAT) < 1 / (1 + np.exp(-logit.reindex(PATIENTS).to_numpy()))).astype(int)
    patient_analysis = pd.DataFrame({
        "patient": PATIENTS, "therapist": ther_of.reindex(PATIENTS).to_numpy(),
        "arm": pat["arm"].to_numpy(), "alliance_early": early.reindex(PATIENTS).to_numpy(),
        "alliance_mean": pmean.reindex(PATIENTS).to_numpy(), "dropout": drop,
        "agree_p": pmean.reindex(PATIENTS).to_numpy(), "agree_t": ther.reindex(PATIENTS).to_numpy(),
        "relapse_time": rng.uniform(1, 52, N_PAT).round(1),
        "relapse_event": (rng.random(N_PAT) < 0.4).astype(int),
    })  # fmt: skip
    return analysis, patient_analysis


def _fit(model: str, **extra: Any) -> dict[str, Any]:
    factors = {"arm": {"columns": {"CBT": "armCBT", "IMI": "armIMI", "IPT": "armIPT"},
                       "levels": ["PLA", "CBT", "IMI", "IPT"], "reference": "PLA"}}  # fmt: skip
    return {"id": model, "label": model.replace("_", " ").capitalize(), "status": "fitted",
            "reason": "", "frame": {"factors": factors}, **extra}  # fmt: skip


def _coefs(model: str, est: dict[str, float], se: float = 0.2) -> pd.DataFrame:
    return pd.DataFrame([
        {"model": model, "term": t, "estimate": b, "std_error": se, "statistic": b / se,
         "df": math.inf, "p_value": 0.04, "ci_low": b - 1.96 * se, "ci_high": b + 1.96 * se}
        for t, b in est.items()
    ])  # fmt: skip


def _vcov(terms: list[str], se: float = 0.2) -> pd.DataFrame:
    v = pd.DataFrame(np.eye(len(terms)) * se**2, index=terms, columns=terms)
    return v.reset_index(names="term")


def _with_dummies(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{f"arm{a}": (frame["arm"] == a).astype(float)
                           for a in ("CBT", "IMI", "IPT")})  # fmt: skip


RICLPM_NOTE = "Equal lags <b>assumed</b> & $x$ fixed."
RICLPM_WARNING = "a latent variance estimate is negative"


def _hazard_results(analysis: pd.DataFrame, rng: np.random.Generator) -> dict[str, Any]:
    """dropout_hazard outputs: person-period frame, coefficients, covariance, predictions."""
    frame = analysis[["patient", "arm", "session", "alliance"]].rename(
        columns={"session": "period"}
    )
    frame = _with_dummies(frame.assign(period_sq=frame["period"] ** 2))
    eta = -3.0 - 0.9 * (frame["alliance"] - 3.7)
    frame = frame.assign(event=(rng.random(len(frame)) < 1 / (1 + np.exp(-eta))).astype(int))
    terms = {"(Intercept)": 0.3, "period": 0.02, "period_sq": -0.001, "alliance": -0.9,
             "armCBT": 0.1, "armIMI": 0.2, "armIPT": -0.1}  # fmt: skip
    preds = []
    for label, k in (("-1 SD", -1), ("mean", 0), ("+1 SD", 1)):
        for t in range(1, N_SESS + 1):
            link = -3.0 - 0.9 * 0.4 * k + 0.02 * t
            row = {"x_variable": "period", "x": float(t), "by_variable": "alliance",
                   "by_level": label, "by_value": 3.7 + 0.4 * k, "fit": link, "se_fit": 0.2,
                   "ci_low": link - 0.4, "ci_high": link + 0.4}  # fmt: skip
            for c in ("fit", "ci_low", "ci_high"):
                row[f"{c}_response"] = 1 / (1 + math.exp(-row[c]))
            preds.append(row)
    return {
        "fit.json": _fit("dropout_hazard", kind="hazard", warnings=["Model is singular."]),
        "predictions.csv": pd.DataFrame(preds),
        "coefficients.csv": _coefs("dropout_hazard", terms, se=0.05),
        "frame.parquet": frame.drop(columns=["patient"]),
        "vcov.csv": _vcov(list(terms), 0.05),
    }


def _trd_vcov(terms: list[str], se: float, pairs: dict[tuple[str, str], float]) -> pd.DataFrame:
    """A covariance with the given correlations: the simple slopes then need its off-diagonal."""
    v = pd.DataFrame(np.eye(len(terms)) * se**2, index=terms, columns=terms)
    for (a, b), r in pairs.items():
        v.loc[a, b] = v.loc[b, a] = r * se**2
    return v.reset_index(names="term")


def resistance_results(analysis: pd.DataFrame, rng: np.random.Generator) -> dict[str, Any]:
    """The treatment-resistance models' outputs: alliance x TRD on symptoms (with the model's
    simple slopes) and on the dropout hazard (without: the figure derives them), missed slots
    and doses taken by the last session's alliance."""
    sym = {"(Intercept)": 20.0, "weeks": -0.6, "alliance_pat_prior": -1.5,
           "alliance_within_prior": -0.8, "trd": 0.5, "alliance_pat_prior:trd": 0.6,
           "alliance_within_prior:trd": -0.2, "weeks:trd": 0.1}  # fmt: skip
    sym_vcov = _trd_vcov(list(sym), 0.3, {("alliance_pat_prior", "alliance_pat_prior:trd"): -0.7,
                                          ("alliance_within_prior",
                                           "alliance_within_prior:trd"): -0.6})  # fmt: skip
    v = sym_vcov.set_index("term")
    slopes = []
    for term in ("alliance_pat_prior", "alliance_within_prior"):
        for value in (0.0, 1.0):
            inter = f"{term}:trd"
            est = sym[term] + value * sym[inter]
            se = math.sqrt(v.loc[term, term] + value**2 * v.loc[inter, inter]
                           + 2 * value * v.loc[term, inter])  # fmt: skip
            slopes.append({"term": term, "by": "trd", "level": f"trd = {value:g}",
                           "type": "value", "value": value, "estimate": est, "std_error": se,
                           "statistic": est / se, "df": 300.0, "p_value": 0.01,
                           "ci_low": est - 1.97 * se, "ci_high": est + 1.97 * se,
                           "test": "t"})  # fmt: skip
    haz = {"(Intercept)": 0.2, "period": 0.01, "period_sq": 0.0, "alliance": -1.0, "trd": -0.6,
           "alliance:trd": 0.15, "armCBT": -0.4, "armIMI": 0.0, "armIPT": -0.4}  # fmt: skip
    frame = _with_dummies(analysis.assign(period=analysis["session"].astype(float)))
    eta = -1.9 - 1.2 * (frame["alliance"] - 3.7)
    missed = frame.assign(event=(rng.random(len(frame)) < 1 / (1 + np.exp(-eta))).astype(int))
    stage = {"(Intercept)": 0.2, "period": 0.01, "period_sq": 0.0, "alliance": -0.6,
             "alliance_rc": -0.7, "stage": -0.5, "alliance:stage": 0.25, "alliance_rc:stage": 0.28,
             "armCBT": -0.4, "armIMI": 0.0, "armIPT": -0.4}  # fmt: skip
    fitted_stage = [t for t in stage if "_rc" not in t]
    miss = {"(Intercept)": 2.5, "period": 0.01, "alliance": -1.2, "alliance_rc": -1.35,
            "armCBT": -0.1, "armIMI": 0.0, "armIPT": -0.1}  # fmt: skip
    pills = frame[frame["arm"].isin(["IMI", "PLA"])].sort_values(["patient", "session"])
    lag = pills.groupby("patient")["alliance"].shift(1)
    doses = rng.integers(4, 15, len(pills)).astype(float)
    p_take = 1 / (1 + np.exp(-(-2.0 + 0.9 * lag.fillna(3.7))))
    taken = rng.binomial(doses.astype(int), p_take) / doses
    adherence = pills.assign(alliance_lag1=lag, doses_prescribed=doses, adherence=taken)
    adherence = adherence.dropna(subset=["alliance_lag1"])
    adh = {"(Intercept)": -2.0, "alliance_lag1": 0.9, "alliance_lag1_rc": 1.0, "weeks": 0.0,
           "armIMI": 0.1}  # fmt: skip
    m = "models/"
    return {
        m + "symptoms_by_trd/fit.json": _fit("symptoms_by_trd", kind="lmm",
                                             note="TRD = at least 2 failed trials."),
        m + "symptoms_by_trd/coefficients.csv": _coefs("symptoms_by_trd", sym, se=0.3),
        m + "symptoms_by_trd/vcov.csv": sym_vcov,
        m + "symptoms_by_trd/simple_slopes.csv": pd.DataFrame(slopes),
        m + "dropout_hazard_by_trd/fit.json": _fit("dropout_hazard_by_trd", kind="hazard"),
        m + "dropout_hazard_by_trd/coefficients.csv": _coefs("dropout_hazard_by_trd", haz, 0.2),
        m + "dropout_hazard_by_trd/vcov.csv": _trd_vcov(list(haz), 0.2,
                                                        {("alliance", "alliance:trd"): -0.7}),
        m + "dropout_hazard_by_stage/fit.json": _fit(
            "dropout_hazard_by_stage", kind="hazard", derived_terms=["alliance_rc",
            "alliance_rc:stage"], reliability_correction={"term": "alliance", "moderator":
            "stage", "x_sd": 0.5, "matrix": [[1.12, 0.0], [0.0, 1.11]]},
        ),  # fmt: skip
        m + "dropout_hazard_by_stage/coefficients.csv": _coefs("dropout_hazard_by_stage", stage),
        m + "dropout_hazard_by_stage/vcov.csv": _trd_vcov(fitted_stage, 0.2,
                                                          {("alliance", "alliance:stage"): -0.6}),
        m + "missed_sessions/fit.json": _fit("missed_sessions", kind="hazard",
                                             derived_terms=["alliance_rc"],
                                             variance_components=_intercepts(0.6, 0.1)),
        m + "missed_sessions/coefficients.csv": _coefs("missed_sessions", miss, se=0.1),
        m + "missed_sessions/frame.parquet": missed[[*(c for c in miss if c in missed.columns),
                                                     "event", "arm", "patient"]],
        m + "missed_sessions/vcov.csv": _vcov([t for t in miss if t != "alliance_rc"], 0.1),
        m + "adherence_alliance/fit.json": _fit("adherence_alliance", kind="glmm",
                                                derived_terms=["alliance_lag1_rc"],
                                                variance_components=_intercepts(0.9, 0.05)),
        m + "adherence_alliance/coefficients.csv": _coefs("adherence_alliance", adh, se=0.1),
        m + "adherence_alliance/frame.parquet": adherence[[
            "adherence", "alliance_lag1", "weeks", "arm", "armIMI", "doses_prescribed",
            "patient"]],
        m + "adherence_alliance/vcov.csv": _vcov([t for t in adh if t != "alliance_lag1_rc"]),
    }  # fmt: skip


@functools.cache
def _intercepts(patient: float, therapist: float) -> list[dict[str, Any]]:
    """fit.json variance_components of a binomial GLMM with patient and therapist intercepts."""
    return [
        {"group": g, "term1": "(Intercept)", "term2": "", "variance": v}
        for g, v in (("patient", patient), ("therapist", therapist))
    ]


def synthetic_results() -> dict[str, Any]:
    """Relative path under results/ -> DataFrame or dict, shaped like the real stage outputs."""
    rng = np.random.default_rng(7)
    pat = _patients(rng)
    alliance = _alliance(pat, rng)
    analysis, pa = _analysis(pat, alliance, rng)
    eps, rps = rupture_table(
        alliance[alliance["rater"] == "patient"][["patient", "session", "score"]], ks=(1.0, 2.0)
    )
    flow = pd.DataFrame(
        [("assessed", "all", 52), ("randomised", "all", N_PAT), ("started", "all", N_PAT)]
        + [(s, a, n) for a in ARMS for s, n in (("randomised", 12), ("started", 12),
           ("completed", 9), ("dropped out", 3), ("responders", 6), ("followed for relapse", 5))]
        + [("not started", "CBT", 0), ("session rows analysed", "all", 384)],
        columns=["step", "arm", "n"],
    ).assign(note="")  # fmt: skip
    growth_terms = {"(Intercept)": 20.0, "weeks": -0.6, "alliance_ther": -2.0,
                    "alliance_pat": -3.0, "alliance_within": -0.5, "weeks:alliance_pat": -0.05,
                    "armCBT": -1.0, "armIMI": -0.8, "armIPT": -1.1}  # fmt: skip
    sd = float(pa.groupby("patient")["alliance_mean"].first().std())
    preds = []
    for label, k in (("-1 SD", -1), ("mean", 0), ("+1 SD", 1)):
        for w in range(N_SESS):
            fit_ = 20 - 0.6 * w - 3 * k * sd
            preds.append({"x_variable": "weeks", "x": float(w), "by_variable": "alliance_pat",
                          "by_level": label, "by_value": k * sd, "fit": fit_, "se_fit": 0.4,
                          "ci_low": fit_ - 0.8, "ci_high": fit_ + 0.8})  # fmt: skip
    growth_fit = _fit(
        "symptoms_growth", kind="lmm", icc=None, formula="symptom ~ weeks + alliance_pat + "
        "weeks:alliance_pat + armCBT + armIMI + armIPT + (1 + weeks | patient) + (1 | therapist)",
        variance_components=[
            {"group": "patient", "term1": "(Intercept)", "term2": "", "variance": 9.0},
            {"group": "patient", "term1": "weeks", "term2": "", "variance": 0.06},
            {"group": "patient", "term1": "(Intercept)", "term2": "weeks", "variance": -0.2},
            {"group": "therapist", "term1": "(Intercept)", "term2": "", "variance": 1.5},
            {"group": "Residual", "term1": "", "term2": "", "variance": 6.0},
        ],
        predictions={"held_at": {"armCBT": 0.0, "armIMI": 0.0, "armIPT": 0.0}},
    )  # fmt: skip
    re = pd.DataFrame({"group": "therapist", "level": THERAPISTS, "term": "(Intercept)",
                       "estimate": rng.normal(0, 1.2, N_THER), "cond_sd": 0.7})  # fmt: skip
    drop_terms = {"(Intercept)": 1.4, "alliance_early": -0.7, "armCBT": -0.5, "armIMI": -0.1,
                  "armIPT": -0.4}  # fmt: skip
    # the longest follow-up is censored, so no group's curve reaches 0 (Greenwood SE undefined)
    pa.loc[pa["relapse_time"] > 45, "relapse_event"] = 0
    relapse = pa.assign(third=tertiles(pa["alliance_mean"]).astype(str).str.lower())
    km = kaplan_meier(relapse, "relapse_time", "relapse_event", "third")
    lr = logrank(relapse, "relapse_time", "relapse_event", "third")
    axis = np.linspace(2.0, 5.0, 11)
    gp, gt = (a.ravel() for a in np.meshgrid(axis, axis, indexing="ij"))
    grid = pd.DataFrame({"agree_p": gp, "agree_t": gt, "P": gp - 3, "T": gt - 3,
                         "predicted": -5 - 3 * (gp - 3) - 2 * (gt - 3) + (gp - gt) ** 2,
                         "in_range": 1})  # fmt: skip
    slopes = pd.DataFrame([
        {"term": t, "by": "arm", "level": lev, "type": typ, "value": np.nan, "estimate": b,
         "std_error": 0.7, "statistic": b / 0.7, "df": math.inf, "p_value": 0.03,
         "ci_low": b - 1.4, "ci_high": b + 1.4}
        for t in ("alliance_pat", "alliance_within")
        for lev, typ, b in (("PLA", "level", -3.7), ("CBT", "level", -0.5), ("IMI", "level", -0.5),
                            ("IPT", "level", -2.5), ("drug", "class", -0.5),
                            ("placebo", "class", -3.7), ("psychotherapy", "class", -1.5))
    ])  # fmt: skip
    contrasts = pd.DataFrame([
        {"term": "alliance_pat", "contrast": "drug_vs_placebo", "plus": "drug",
         "minus": "placebo", "estimate": 3.2, "std_error": 1.1, "statistic": 2.9, "df": math.inf,
         "p_value": 0.003, "ci_low": 1.1, "ci_high": 5.4},
    ])  # fmt: skip
    fitted = [
        ("symptoms_growth", "lmm", "alliance_pat", -1.7, -2.5, -0.9, 1e-4),
        ("symptoms_growth", "lmm", "weeks:alliance_pat", -0.04, -0.11, 0.04, 0.3),
        ("dropout_early_alliance", "glmm", "alliance_early", -0.7, -1.17, -0.24, 0.003),
        ("relapse_cox", "cox", "alliance_mean", -1.0, -1.9, -0.15, 0.02),
        ("mediation_personality", "mediation", "indirect.agreeableness", -0.033, -0.055, -0.018,
         0.002),
        ("pooled_sites", "pool", "pooled_r_REML", 0.33, 0.25, 0.41, 1e-6),
        ("symptoms_riclpm", "riclpm", "alliance_to_symptom", -0.52, -0.9, -0.14, 0.008),
        ("symptoms_riclpm", "riclpm", "symptom_to_alliance", -0.012, -0.02, -0.004, 0.002),
        ("dropout_hazard", "hazard", "alliance", -0.9, -1.0, -0.8, 1e-6),
        ("suicidality_any", "glmm", "alliance_pat_prior", -0.5, -0.9, -0.1, 0.02),
    ]  # fmt: skip
    summary = pd.DataFrame(
        [{"model": m_, "label": m_.capitalize(), "kind": k, "term": t, "estimate": b,
          "std_error": (hi - lo) / 3.92, "ci_low": lo, "ci_high": hi, "p_value": p,
          "status": "fitted", "reason": ""} for m_, k, t, b, lo, hi, p in fitted]
        + [{"model": "suicidality", "label": "Suicidality", "kind": "glmm", "status": "skipped",
            "reason": "needs suicidality: not configured"}]
    )  # fmt: skip
    units = pd.DataFrame({"unit": ["S1", "S2", "S3"], "n": [150, 149, 167], "r": [0.29, 0.37, 0.32],
                          "se": [0.082, 0.083, 0.078]})  # fmt: skip
    benchmark = pd.DataFrame({"label": ["benchmark"], "r": [0.278], "ci_low": [0.256],
                              "ci_high": [0.299], "source": ["Fluckiger et al. 2018"]})  # fmt: skip
    icc = pd.DataFrame({"column": "alliance", "level": ["therapist", "patient", "session"],
                        "share": [0.09, 0.44, 0.47]})  # fmt: skip
    hazard = _hazard_results(analysis, rng)
    riclpm = {"alliance_to_symptom": -0.52, "symptom_to_alliance": -0.012, "alliance_ar": 0.38,
              "symptom_ar": 0.06}  # fmt: skip
    riclpm_coefs = _coefs("symptoms_riclpm", riclpm, se=0.19).assign(
        std_error=[0.19, 0.004, 0.05, 0.05]
    )
    riclpm_coefs = riclpm_coefs.assign(
        ci_low=riclpm_coefs["estimate"] - 1.96 * riclpm_coefs["std_error"],
        ci_high=riclpm_coefs["estimate"] + 1.96 * riclpm_coefs["std_error"],
    )
    m = "models/"
    return {
        **{m + f"dropout_hazard/{k}": v for k, v in hazard.items()},
        **resistance_results(analysis, rng),
        m + "symptoms_riclpm/fit.json": _fit("symptoms_riclpm", kind="riclpm",
                                             note=RICLPM_NOTE, warnings=[RICLPM_WARNING]),
        m + "symptoms_riclpm/coefficients.csv": riclpm_coefs,
        "clean/flow.csv": flow,
        "clean/patients.parquet": pat[["patient", "therapist", "arm"]],
        "scores/alliance.parquet": alliance,
        "scores/analysis.parquet": analysis,
        "scores/patient_analysis.parquet": pa,
        "scores/alliance_icc.csv": icc,
        "scores/ruptures.csv": eps,
        "scores/rupture_patients.csv": rps,
        "scores/agreement.csv": all_pairs_agreement(
            _with_observer(alliance, rng), ["patient", "therapist", "observer"]
        ),
        "models/summary.csv": summary,
        m + "symptoms_growth/fit.json": growth_fit,
        m + "symptoms_growth/predictions.csv": pd.DataFrame(preds),
        m + "symptoms_growth/random_effects.csv": re,
        m + "symptoms_growth/coefficients.csv": _coefs("symptoms_growth", growth_terms),
        m + "symptoms_growth/frame.parquet": _with_dummies(analysis),
        m + "symptoms_growth/vcov.csv": _vcov(list(growth_terms), 0.1),
        m + "dropout_early_alliance/fit.json": _fit("dropout_early_alliance", kind="glmm"),
        m + "dropout_early_alliance/coefficients.csv": _coefs("dropout_early_alliance", drop_terms),
        m + "dropout_early_alliance/frame.parquet": _with_dummies(pa),
        m + "dropout_early_alliance/vcov.csv": _vcov(list(drop_terms)),
        m + "relapse_cox/fit.json": _fit("relapse_cox", kind="cox",
                                         tertiles={"variable": "alliance_mean"}),
        m + "relapse_cox/km.csv": km,
        m + "relapse_cox/logrank.csv": pd.DataFrame([{**lr, "groups": "low / middle / high"}]),
        m + "agreement_rsa/fit.json": _fit("agreement_rsa", kind="rsa", P="agree_p", T="agree_t",
                                           centre=3.0, formula_r="lm(symptom_change ~ P + T)"),
        m + "agreement_rsa/grid.csv": grid,
        m + "agreement_rsa/coefficients.csv": _coefs("agreement_rsa", {"a1": -6.2, "a2": 1.2,
                                                                       "a3": -0.6, "a4": 5.2}),
        m + "symptoms_by_arm/fit.json": _fit("symptoms_by_arm", kind="lmm"),
        m + "symptoms_by_arm/simple_slopes.csv": slopes,
        m + "symptoms_by_arm/contrasts.csv": contrasts,
        m + "pooled_sites/units.csv": units,
        m + "pooled_sites/benchmark.csv": benchmark,
        m + "suicidality_any/fit.json": _fit("suicidality_any", kind="glmm", sensitivity=True),
    }  # fmt: skip


def write_results(root: Path, files: dict[str, Any]) -> Path:
    for rel, obj in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".json"):
            path.write_text(json.dumps(obj), encoding="utf-8")
        elif rel.endswith(".parquet"):
            obj.to_parquet(path, index=False)
        else:
            obj.to_csv(path, index=False)
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("results"), synthetic_results())


# ---- every figure ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_draws_saves_and_is_reproducible(name: str, results: Path, tmp_path: Path) -> None:
    settings = config()
    fig = draw_figure(FIGURES[name], results, settings)
    if isinstance(fig, list):  # the forest's pages: the first stands for all here
        fig = fig[0]
    assert isinstance(fig, Figure), fig
    width, height = fig.get_size_inches()
    assert width in (style.WIDTHS["single"], style.WIDTHS["double"])
    assert 0 < height <= style.MAX_HEIGHT
    first = style.save_figure(fig, tmp_path / "a" / name)
    again = draw_figure(FIGURES[name], results, settings)
    second = style.save_figure(
        again[0] if isinstance(again, list) else again, tmp_path / "b" / name
    )
    assert [p.suffix for p in first] == [".png", ".svg"]
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 1000
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two draws"
    svg = first[1].read_text(encoding="utf-8")
    leaked = [p for p in PATIENTS + THERAPISTS if p in svg]
    assert not leaked, f"pseudonyms on the figure: {leaked[:3]}"
    # measured after saving: the saved files are the draws the reader sees
    assert style.smallest_font_pt(fig) >= style.MIN_FONT_PT


def test_draw_all_writes_available_figures_and_reports_skips(results: Path, tmp_path: Path):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "km_relapse.png").write_bytes(b"stale")  # an old figure of a now-skipped analysis
    partial = write_results(tmp_path / "results", {
        "clean/flow.csv": pd.read_csv(results / "clean/flow.csv"),
        "models/relapse_cox/fit.json": {"status": "skipped", "reason": "too few events (3)"},
    })  # fmt: skip
    got = draw_all(partial, config(), out)
    assert set(got) == set(FIGURES)
    assert got["flow"] == [out / "flow.png", out / "flow.svg"]
    assert got["km_relapse"] == "skipped: model relapse_cox skipped: too few events (3)"
    no_fit = "skipped: model symptoms_by_arm has no fit.json (model stage not run)"
    assert got["arm_slopes"] == no_fit
    assert got["ruptures"] == "skipped: results/scores/ruptures.csv not found"
    assert sorted(p.name for p in out.iterdir()) == ["flow.png", "flow.svg"]


@pytest.mark.parametrize(
    ("name", "model"),
    [("symptom_trajectories", "symptoms_growth"), ("therapists", "symptoms_growth"),
     ("dropout", "dropout_early_alliance"), ("km_relapse", "relapse_cox"),
     ("agreement_surface", "agreement_rsa"), ("arm_slopes", "symptoms_by_arm"),
     ("riclpm_paths", "symptoms_riclpm"), ("dropout_hazard", "dropout_hazard")],
)  # fmt: skip
def test_a_skipped_model_gives_none_and_its_reason(name: str, model: str, results: Path) -> None:
    spec = FIGURES[name]
    inputs = load_inputs(spec, results)
    assert isinstance(inputs, dict)
    inputs["fit"] = {"status": "skipped", "reason": "needs therapist: no therapist column"}
    assert spec.draw(**inputs, settings=config()) is None
    with pytest.raises(NothingToDraw, match=f"model {model} skipped: needs therapist"):
        spec.draw.__wrapped__(**inputs, settings=config())


def test_empty_inputs_skip_with_a_reason(results: Path) -> None:
    flow = pd.DataFrame(columns=["step", "arm", "n"])
    assert FIGURES["flow"].draw(flow=flow, settings=config()) is None
    with pytest.raises(NothingToDraw, match="flow.csv has no rows"):
        FIGURES["flow"].draw.__wrapped__(flow=flow, settings=config())
    no_ruptures = {**load_inputs(FIGURES["ruptures"], results), "ruptures": pd.DataFrame()}
    with pytest.raises(NothingToDraw, match="no rupture detected"):
        FIGURES["ruptures"].draw.__wrapped__(**no_ruptures, settings=config())
    summary = pd.read_csv(results / "models/summary.csv")
    only_skipped = summary[summary["status"] == "skipped"]
    with pytest.raises(NothingToDraw, match="no fitted model"):
        FIGURES["forest"].draw.__wrapped__(only_skipped, None, None, None, settings=config())


def test_every_figure_documents_what_it_shows() -> None:
    for spec in FIGURES.values():
        assert len(spec.caption) > 80, spec.name
        assert spec.draw.__wrapped__ is not spec.draw  # skippable: None instead of raising


# ---- the pieces a reader relies on -------------------------------------------------------------


def test_arms_keep_config_order_through_the_rule_params() -> None:
    # the rules pass RenderSettings as JSON: panels and flow columns must still follow codings.arm
    settings = RenderSettings.from_json(config().to_json())
    got = arm_order(["PLA", "X", "IMI", "CBT", "IPT"], arm_classes(settings.codings.arm))
    assert got == ["CBT", "IPT", "IMI", "PLA", "X"]


def test_wilson_interval_matches_the_closed_form() -> None:
    # Wilson (1927) for 0/10 and 5/10 at 95 %: [0, .2775] and [.2366, .7634] (also
    # statsmodels proportion_confint(method="wilson"))
    assert wilson_ci(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_ci(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))


def test_observed_dropout_bins_are_equal_count_and_cover_everyone() -> None:
    pa = pd.DataFrame({"alliance_early": np.arange(100) / 25.0, "dropout": [1] * 30 + [0] * 70})
    bins = observed_bins(pa, "alliance_early")
    assert list(bins["n"]) == [20] * 5
    assert list(bins["k"]) == [20, 10, 0, 0, 0]
    assert bins["x"].is_monotonic_increasing


def test_population_curve_holds_covariates_and_uses_the_covariance() -> None:
    fit = _fit("dropout_early_alliance")
    coefs = _coefs("m", {"(Intercept)": 1.0, "alliance_early": -1.0, "armCBT": 2.0, "age": 0.1})
    frame = pd.DataFrame({"alliance_early": [3.0, 4.0], "armCBT": [1.0, 0.0], "age": [30, 50]})
    held = held_values(list(coefs["term"]), frame, fit, {"alliance_early"})
    assert held == {"armCBT": 0.5, "age": 40.0}
    ref = held_values(list(coefs["term"]), frame, fit, {"alliance_early"}, factors="reference")
    assert ref["armCBT"] == 0.0
    x = np.array([3.0])
    eta = 1.0 - 3.0 + 2.0 * 0.5 + 0.1 * 40  # = 3
    no_band = population_curve(coefs, fit, x, frame=frame)
    assert no_band["fit"].iloc[0] == pytest.approx(1 / (1 + math.exp(-eta)))
    assert no_band["ci_low"].isna().all()
    vcov = _vcov(list(coefs["term"]), se=0.1)  # independent, SE .1: Var = .01 * sum(x^2)
    band = population_curve(coefs, fit, x, frame=frame, vcov=vcov)
    se = math.sqrt(0.01 * (1 + 9 + 0.25 + 1600))
    assert band["ci_high"].iloc[0] == pytest.approx(1 / (1 + math.exp(-(eta + 1.959964 * se))))


def test_trajectories_fall_back_to_the_reference_arm_without_a_covariance(results: Path):
    inputs = load_inputs(FIGURES["symptom_trajectories"], results)
    assert isinstance(inputs, dict)
    inputs["vcov"] = None
    fig = draw_symptom_trajectories.__wrapped__(**inputs, settings=config())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "Observed mean, PLA (thirds)" in labels
    inputs = load_inputs(FIGURES["symptom_trajectories"], results)
    fig = draw_symptom_trajectories.__wrapped__(**inputs, settings=config())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "Observed mean (thirds)" in labels


def test_rupture_examples_follow_the_rule() -> None:
    eps = pd.DataFrame({"k": 2.0, "patient": ["p1", "p2", "p3", "p3", "p4"],
                        "drop_sd": [3.0, 2.5, 2.2, 2.4, 4.0]})  # fmt: skip
    rps = pd.DataFrame({
        "k": 2.0, "patient": ["p1", "p2", "p3", "p4", "p5"], "assessable": True,
        "n_rated": [8, 8, 8, 6, 8], "n_ruptures": [1, 1, 2, 1, 0], "n_repaired": [1, 0, 2, 1, 0],
        "n_unrepaired": [0, 1, 0, 0, 0], "n_censored": 0,
    })  # fmt: skip
    k, chosen = choose_examples(eps, rps)
    # p4 has the larger drop but fewer rated sessions: p1 is the repaired example
    assert (k, chosen) == (2.0, [("repaired", "p1"), ("unrepaired", "p2"), ("two", "p3")])
    with pytest.raises(NothingToDraw):
        choose_examples(eps.iloc[:0], rps.assign(n_ruptures=0, n_repaired=0, n_unrepaired=0))


def test_forest_labels_say_where_a_conditional_slope_applies() -> None:
    fit = _fit("m", formula="symptom ~ alliance_pat + armCBT + alliance_pat:armCBT + "
               "alliance_within + alliance_within:telehealth + (1 | patient)")  # fmt: skip
    assert conditional_note("alliance_pat", fit) == " (in PLA)"
    assert conditional_note("alliance_within", fit) == " (at telehealth = 0)"
    assert conditional_note("alliance_pat:armCBT", fit) == ""
    assert conditional_note("alliance_pat", None) == ""
    assert term_text("weeks:alliance_pat") == "Weeks \N{MULTIPLICATION SIGN} patient-level alliance"
    assert term_text("indirect.openness") == "Indirect effect via alliance: openness"
    assert term_text("pooled_r_REML") == "Pooled r (REML)"


def test_forest_rows_keep_fitted_estimates_on_their_scale() -> None:
    files = synthetic_results()
    fits = {"suicidality_any": files["models/suicidality_any/fit.json"]}
    rows = forest_rows(files["models/summary.csv"], fits)
    assert "suicidality" not in set(rows["model"])  # skipped
    assert "suicidality_any" not in set(rows["model"])  # options.sensitivity
    assert dict(zip(rows["term"], rows["scale"], strict=False)) == {
        "alliance_pat": "linear", "weeks:alliance_pat": "linear", "alliance_early": "odds",
        "alliance_mean": "hazard", "indirect.agreeableness": "indirect",
        "pooled_r_REML": "correlation", "alliance_to_symptom": "cross_as",
        "symptom_to_alliance": "cross_sa", "alliance": "odds",
    }  # fmt: skip
    # without the flag the sensitivity model is drawn like any other
    assert "suicidality_any" in set(forest_rows(files["models/summary.csv"])["model"])


def test_new_estimands_read_as_words_and_old_names_still_work() -> None:
    assert term_text("alliance_pat_prior") == "Patient-level alliance so far"
    assert term_text("alliance_ther_prior") == "Therapist-level alliance so far"
    assert term_text("alliance_within_prior") == "Last session's alliance vs own running mean"
    assert "detrended" in term_text("alliance_within_dt_prior")
    assert term_text("alliance", "hazard") == "Alliance of the session just attended"
    assert term_text("alliance") == "Alliance, same session"
    assert (
        term_text("alliance_to_symptom")
        == "Alliance \N{RIGHTWARDS ARROW} next symptoms (within patient)"
    )
    assert (
        term_text("symptom_to_alliance")
        == "Symptoms \N{RIGHTWARDS ARROW} next alliance (within patient)"
    )
    assert term_text("weeks:alliance_pat_prior") == (
        "Weeks \N{MULTIPLICATION SIGN} patient-level alliance so far"
    )
    assert term_text("alliance_early", early="sessions 1\N{EN DASH}2") == (
        "Early alliance (sessions 1\N{EN DASH}2)"
    )
    for old in ("alliance_lag1", "alliance_within_lag1", "alliance_pat", "alliance_within"):
        assert term_text(old) != old
    assert path_unit("alliance_to_symptom", {"symptom": "HAM-D", "alliance": "WAI"}) == (
        "HAM-D points per WAI point"
    )
    assert path_unit("symptom_to_alliance", {"symptom": "HAM-D", "alliance": "WAI"}) == (
        "WAI points per HAM-D point"
    )


def _many_models(n: int) -> pd.DataFrame:
    rows = [
        {
            "model": f"m{i:02d}",
            "label": f"Model {i}",
            "kind": "lmm" if i % 2 else "glmm",
            "term": t,
            "estimate": -0.3,
            "ci_low": -0.6,
            "ci_high": 0.0,
            "p_value": 0.05,
            "status": "fitted",
        }
        for i in range(n)
        for t in ("alliance_pat_prior", "alliance_within_prior")
    ]
    return pd.DataFrame(rows)  # fmt: skip


def test_a_long_forest_continues_on_a_second_page(tmp_path: Path) -> None:
    summary = _many_models(24)  # 72 rows: no single page holds them
    pages = FIGURES["forest"].draw(summary, None, None, None, settings=config())
    assert isinstance(pages, list) and len(pages) == 2
    drawn = [t.get_text() for page in pages for ax in page.axes for t in ax.texts]
    assert all(f"Model {i}" in drawn for i in range(24))  # nothing dropped
    for page in pages:
        assert page.get_size_inches()[1] <= style.MAX_HEIGHT
        assert style.smallest_font_pt(page) >= style.MIN_FONT_PT
    # panels stay whole: the linear panel on page 1, the odds ratios on page 2
    labels = [[ax.get_xlabel() for ax in page.axes] for page in pages]
    assert all("Coefficient" in x for x in labels[0]) and all("Odds" in x for x in labels[1])
    results = write_results(tmp_path / "results", {"models/summary.csv": summary})
    out = tmp_path / "figures"
    out.mkdir()
    (out / "forest_page3.png").write_bytes(b"stale page of a longer draw")
    got = draw_all(results, config(), out, ["forest"])
    assert [p.name for p in got["forest"]] == [
        "forest.png",
        "forest.svg",
        "forest_page2.png",
        "forest_page2.svg",
    ]
    assert not (out / "forest_page3.png").exists()
    write_results(results, {"models/summary.csv": summary.assign(status="skipped")})
    assert isinstance(draw_all(results, config(), out, ["forest"])["forest"], str)
    assert not list(out.glob("forest*"))


def test_the_riclpm_diagram_shows_each_path_with_its_unit(results: Path) -> None:
    fig = draw_figure(FIGURES["riclpm_paths"], results, config())
    assert isinstance(fig, Figure)
    texts = " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
    assert "\N{MINUS SIGN}0.52 [\N{MINUS SIGN}0.89, \N{MINUS SIGN}0.15], p = .040" in texts
    assert "(HAM-D 17 points per WAI-SR point)" in texts
    assert "(WAI-SR points per HAM-D 17 point)" in texts
    assert "\N{MINUS SIGN}0.012 [" in texts  # a small path keeps its digits
    assert texts.count("Autoregression") == 2
    inputs = load_inputs(FIGURES["riclpm_paths"], results)
    assert isinstance(inputs, dict)
    only_one = inputs["coefficients"][inputs["coefficients"]["term"] != "symptom_to_alliance"]
    with pytest.raises(NothingToDraw, match="lacks symptom_to_alliance"):
        FIGURES["riclpm_paths"].draw.__wrapped__(inputs["fit"], only_one, settings=config())


def test_captions_carry_the_model_note_and_caveats(results: Path) -> None:
    caption = figure_caption("riclpm_paths", results)
    assert caption.startswith(FIGURES["riclpm_paths"].caption)
    assert f"Model note (symptoms_riclpm): {RICLPM_NOTE}" in caption
    assert f"Caveats (symptoms_riclpm): {RICLPM_WARNING}." in caption
    assert "Caveats (dropout_hazard): Model is singular." in figure_caption(
        "dropout_hazard", results
    )
    assert "Not drawn, sensitivity analyses (see the model tables): suicidality_any." in (
        figure_caption("forest", results)
    )
    assert "Model note" not in figure_caption("flow", results)


def test_observed_thirds_follow_a_running_alliance_row_by_row() -> None:
    analysis = pd.DataFrame({"patient": ["a"] * 3 + ["b"] * 3,
                             "by": [np.nan, 1.0, 5.0, np.nan, 2.0, 3.0]})  # fmt: skip
    got = observed_thirds(analysis, "by")
    assert got.isna().tolist() == [True, False, False, True, False, False]
    assert got.iloc[[1, 2]].tolist() == ["Low", "High"]  # one patient, two thirds
    constant = pd.DataFrame({"patient": ["a", "a", "b", "b", "c", "c"],
                             "by": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]})  # fmt: skip
    assert observed_thirds(constant, "by").tolist() == ["Low", "Low", "Middle", "Middle", "High",
                                                        "High"]  # fmt: skip


def test_outcome_icc_uses_intercept_variances_when_the_model_has_slopes() -> None:
    fit = synthetic_results()["models/symptoms_growth/fit.json"]
    icc, where = outcome_icc(fit)
    assert icc == pytest.approx(1.5 / (9.0 + 1.5 + 6.0))
    assert where == " at week 0"
    assert outcome_icc({**fit, "icc": {"therapist": 0.07}}) == (0.07, "")


def test_numbers_at_risk_count_those_still_followed() -> None:
    km = pd.DataFrame({"group": "low", "time": [2.0, 5.0, 9.0], "n_risk": [10, 7, 3]})
    got = at_risk_table(km, ["low"], np.array([0.0, 5.0, 6.0, 10.0]))
    assert list(got["n_risk"]) == [10, 7, 3, 0]


def test_a_trial_without_arms_gets_one_column_and_one_panel(results: Path) -> None:
    flow = pd.DataFrame({"step": ["randomised", "started", "completed", "dropped out"],
                         "arm": "all", "n": [40, 38, 30, 8]})  # fmt: skip
    fig = FIGURES["flow"].draw(flow=flow, settings=config())
    assert fig is not None and fig.get_size_inches()[0] == style.WIDTHS["single"]
    texts = {t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))}
    assert "Completed n = 30\nDropped out n = 8" in texts
    alliance = pd.read_parquet(results / "scores/alliance.parquet")
    patients = pd.DataFrame({"patient": PATIENTS})  # no arm column
    fig = FIGURES["alliance_sessions"].draw(alliance=alliance, patients=patients, settings=config())
    assert fig is not None
    assert [ax.get_title() for ax in fig.axes] == [f"All patients\nn = {N_PAT}"]


def test_rater_agreement_draws_each_pair_on_its_own_sessions(results: Path) -> None:
    agree = pd.read_csv(results / "scores/agreement.csv", dtype={"session": str})
    fig = FIGURES["rater_agreement"].draw(agreement=agree, settings=config())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(":")[0] for t in legend] == [
        "Patient\N{EN DASH}therapist", "Patient\N{EN DASH}observer",
        "Therapist\N{EN DASH}observer",
    ]  # fmt: skip
    # patient-therapist on the therapist's sessions, therapist-observer on the common ones
    assert legend[0].endswith(f"{N_PAT * 4} pairs of {N_PAT} patients, sessions 1, 3, 5, 7")
    assert legend[2].endswith(f"{N_PAT * 2} pairs of {N_PAT} patients, sessions 1, 3")
    icc_axis = fig.axes[0]
    drawn = [line for line in icc_axis.get_lines() if len(line.get_xdata()) > 1]
    assert [list(line.get_xdata()) for line in drawn if line.get_linestyle() == "-"] == [
        [1, 3, 5, 7],
        [1, 3, 8],
        [1, 3],
    ]
    # a session with fewer pairs than privacy.min_cell is not drawn
    few = agree.copy()
    few.loc[(few["rater_b"] == "observer") & (few["session"] == "8"), "n_pairs"] = 4
    fig = FIGURES["rater_agreement"].draw(agreement=few, settings=config())
    xs = [list(line.get_xdata()) for line in fig.axes[0].get_lines()
          if line.get_linestyle() == "-" and len(line.get_xdata()) > 1]  # fmt: skip
    assert [1, 3] in xs and [1, 3, 8] not in xs
    only_pt = agree[agree["rater_b"] == "therapist"]
    fig = FIGURES["rater_agreement"].draw(agreement=only_pt, settings=config())
    assert len(fig.legends[0].get_texts()) == 1
    with pytest.raises(NothingToDraw, match="no rater pair with enough paired sessions"):
        FIGURES["rater_agreement"].draw.__wrapped__(agreement=agree.assign(n_pairs=4),
                                                    settings=config())  # fmt: skip
    assert FIGURES["rater_agreement"].draw(agreement=agree.iloc[:0], settings=config()) is None


def test_every_default_key_term_reads_as_words() -> None:
    """No default model's key term reaches a figure as its column name (as `Alliance_lag1_rc`
    and `Rupture_unrepaired_prior` once did)."""
    from alliance.models.spec import load_specs
    from alliance.settings import ModelsSettings

    models = ModelsSettings.from_mapping({"use_defaults": True, "disable": [], "custom": []})
    for spec in load_specs(models):
        for term in spec.key_terms:
            text = term_text(term, spec.kind)
            assert "_" not in text, (spec.id, term, text)
