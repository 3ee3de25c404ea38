"""The score stage: cleaned items -> alliance scores, reliability, agreement, levels, ruptures.

Composes the scoring modules into the files every model reads (`results/scores/`). The primary
alliance score (config `score.rater` x `score.scale`, patient-rated total by default) is split into
therapist / patient / session levels under the stem `alliance`; the therapist-rated score of the
same scale rides along as `alliance_t`, the observer-rated one as `alliance_o` (session rows, and
`alliance_o_early`, `_mean`, `_last`, `_slope`, `_n` per patient).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance import files
from alliance.errors import ConfigError
from alliance.instruments.definition import Instrument
from alliance.instruments.items import keyed_items
from alliance.score.agreement import agreement, all_pairs_agreement
from alliance.score.levels import STEM, decompose, select_score
from alliance.score.prior import error_variance, prior_parts
from alliance.score.reliability import reliability_table
from alliance.score.ruptures import prior_rupture_flags, rupture_table
from alliance.score.scales import (
    load_raters,
    patient_alliance,
    prorating_counts,
    rater_item_columns,
    score_alliance,
)
from alliance.settings import ScoreOptions, ScoreSettings

# Short names for the decomposition columns the models use.
RENAME = {
    f"{STEM}_within_detrended": f"{STEM}_within_dt",
    f"{STEM}_within_detrended_lag1": f"{STEM}_within_dt_lag1",
    f"{STEM}_detrend_fallback": f"{STEM}_dt_fallback",
}
SESSION_CARRY = (
    *("therapist", "site", "arm", "weeks", "ideation", "suicidality", "symptom_rest"),
    # treatment resistance (alliance.clean.resistance, alliance.clean.attendance)
    *("doses_taken", "doses_prescribed", "adherence", "self_report_symptom", "self_report_pomp"),
    *("symptom_pomp", "report_discrepancy", "missed_before", "missed_prior"),
)
# ideation at other cut-offs of the suicidality item (sensitivity models)
CARRY_PATTERN = re.compile(r"^ideation_ge\d+$")
SUMMARY_NAMES = {"early": "early", "mean": "mean", "last": "last", "slope": "slope", "n_rated": "n"}


@dataclass
class ScoreResult:
    """Everything the score stage writes (all IDs already pseudonyms)."""

    scores: pd.DataFrame
    patient_scores: pd.DataFrame
    prorating: pd.DataFrame
    reliability: pd.DataFrame
    agreement: pd.DataFrame
    agreement_patients: pd.DataFrame
    analysis: pd.DataFrame
    patient_analysis: pd.DataFrame
    ruptures: pd.DataFrame
    rupture_patients: pd.DataFrame
    notes: dict[str, Any] = field(default_factory=dict)


def _rater_available(scores: pd.DataFrame, rater: str, scale: str) -> bool:
    rows = scores[(scores["rater"] == rater) & (scores["scale"] == scale)]
    return bool(rows["score"].notna().any())


def build_analysis(
    sessions: pd.DataFrame,
    patients: pd.DataFrame,
    scores: pd.DataFrame,
    patient_scores: pd.DataFrame,
    agree_patients: pd.DataFrame | None,
    *,
    rater: str,
    scale: str,
    detrend: bool,
    raters: dict[str, Instrument] | None = None,
    early_window: tuple[int, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Session-level and patient-level analysis tables for the model stage.

    `rater` x `scale` is the primary alliance score (config `score.rater` / `score.scale`);
    `detrend` adds the detrended within-patient part (`score.detrend`). Prior-only predictors
    (`alliance.score.prior`) are always added; with `raters`, each score's squared standard error
    of measurement (`alliance_error_var`); with `early_window`, the landmark columns of the
    patient table (`landmark_columns`).
    """
    if not _rater_available(scores, rater, scale):
        raise ConfigError(
            f"config key score.rater/score.scale: no {rater}-rated '{scale}' scores in the data"
        )
    keep = [c for c in SESSION_CARRY if c in sessions.columns]
    keep += [c for c in sessions.columns if CARRY_PATTERN.match(str(c))]
    table = decompose(
        sessions, scores, rater=rater, scale=scale, detrend=detrend, stem=STEM, keep=keep
    )
    table = table.rename(columns=RENAME)
    # Centre the therapist level at the grand mean of patient means, so
    # alliance = grand mean + alliance_ther + alliance_pat + alliance_within.
    grand = table.groupby("patient")[f"{STEM}_pmean"].first().mean()
    table[f"{STEM}_ther"] = table[f"{STEM}_ther"] - grand
    table = prior_parts(table, stem=STEM)
    table[f"{STEM}_error_var"] = _error_var(sessions, table, raters, rater, scale)
    other = "therapist" if rater != "therapist" else "patient"
    riders = {f"{STEM}_t": other, f"{STEM}_o": "observer"}
    riders = {
        name: who
        for name, who in riders.items()
        if who != rater and _rater_available(scores, who, scale)
    }
    for name, who in riders.items():
        t = select_score(scores, rater=who, scale=scale).rename(columns={"score": name})
        table = table.merge(t, on=["patient", "session"], how="left")
    per_patient_cols = [c for c in patients.columns if c not in table.columns or c == "patient"]
    session_level = table.merge(
        patients[per_patient_cols].drop(
            columns=["first_session", "last_session", "first_symptom"], errors="ignore"
        ),
        on="patient",
        how="left",
    )
    # Patient level: clean outcomes + alliance summaries of the primary and the other rater.
    started = patients[patients["started"] == 1].copy()
    summaries = _wide_summaries(patient_scores, rater, scale, prefix=STEM)
    for name, who in riders.items():
        summaries = summaries.merge(
            _wide_summaries(patient_scores, who, scale, prefix=name), on="patient", how="outer"
        )
    levels = table.groupby("patient", as_index=False)[[f"{STEM}_pat", f"{STEM}_ther"]].first()
    pat = started.merge(summaries, on="patient", how="left").merge(levels, on="patient", how="left")
    if early_window is not None:
        pat = pat.merge(landmark_columns(table, early_window), on="patient", how="left")
    if agree_patients is not None:
        agree = agree_patients[["patient", "mean_patient", "mean_therapist", "n_pairs"]].rename(
            columns={"mean_patient": "agree_p", "mean_therapist": "agree_t", "n_pairs": "agree_n"}
        )
        pat = pat.merge(agree, on="patient", how="left")
    session_level = session_level.sort_values(["patient", "session"]).reset_index(drop=True)
    session_level.attrs["grand_mean"] = float(grand)
    return session_level, pat.sort_values("patient").reset_index(drop=True)


def _error_var(
    sessions: pd.DataFrame,
    table: pd.DataFrame,
    raters: dict[str, Instrument] | None,
    rater: str,
    scale: str,
) -> np.ndarray:
    """Per row of `table`: squared SEM of the primary score (NaN without `raters`)."""
    if raters is None or rater not in raters:
        return np.full(len(table), np.nan)
    inst = raters[rater]
    members = dict(inst.scales()).get(scale)
    columns = rater_item_columns(sessions, rater)
    if members is None or not columns:
        return np.full(len(table), np.nan)
    keyed = keyed_items(sessions, columns, inst)
    present = [m for m in members if m in keyed.columns]
    answered = keyed[present].notna().sum(axis=1).to_numpy()
    per_row, _ = error_variance(keyed, list(members), answered, inst.scoring)
    values = pd.DataFrame(
        {"patient": sessions["patient"].to_numpy(), "session": sessions["session"].to_numpy(),
         "v": per_row}
    )  # fmt: skip
    merged = table[["patient", "session"]].merge(values, on=["patient", "session"], how="left")
    return np.where(table[STEM].notna(), merged["v"].to_numpy(dtype=float), np.nan)


def landmark_columns(table: pd.DataFrame, early_window: tuple[int, int]) -> pd.DataFrame:
    """Per patient: still attending after the early window, and symptom change around it.

    - `attended_after_early` 1 when the patient attended a session with index > w (the landmark
      population: dropout after the window is then an outcome the early alliance precedes);
    - `symptom_early` symptom at session w; `symptom_early_change` = that − the pre-treatment
      baseline (early change, the reverse-causation control of Tang & DeRubeis 1999);
    - `symptom_change_after_early` final symptom − symptom at w: change measured after the early
      alliance (the mediation outcome).
    """
    w = int(early_window[1])
    g = table.groupby("patient", sort=True)
    out = pd.DataFrame({"patient": g.size().index})
    last = g["session_index"].max().to_numpy()
    out["attended_after_early"] = (last > w).astype("int64")
    at_w = table.loc[table["session_index"] == w, ["patient", "symptom", "baseline_symptom"]]
    out = out.merge(at_w.rename(columns={"symptom": "symptom_early"}), on="patient", how="left")
    out["symptom_early_change"] = out["symptom_early"] - out["baseline_symptom"]
    final = table.dropna(subset=["symptom"]).groupby("patient")["symptom"].last()
    out["symptom_change_after_early"] = out["patient"].map(final) - out["symptom_early"]
    out.loc[out["attended_after_early"] == 0, "symptom_change_after_early"] = np.nan
    return out.drop(columns="baseline_symptom")


def _wide_summaries(patient_scores: pd.DataFrame, rater: str, scale: str, prefix: str):
    rows = patient_scores[(patient_scores["rater"] == rater) & (patient_scores["scale"] == scale)]
    out = rows[["patient", *SUMMARY_NAMES]].rename(
        columns={k: f"{prefix}_{v}" for k, v in SUMMARY_NAMES.items()}
    )
    return out.reset_index(drop=True)


def score_tables(
    sessions: pd.DataFrame, raters: dict[str, Instrument], options: ScoreOptions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scale scores per session and their patient-level summaries (early window from `options`)."""
    scores = score_alliance(sessions, raters)
    patient_scores = patient_alliance(
        scores,
        sessions,
        early_window=tuple(options.early_window),
        early_session=options.early_session,
    )
    return scores, patient_scores


@dataclass
class AnalysisTables:
    """What the models read (analysis tables) and the score tables they are built from."""

    scores: pd.DataFrame
    patient_scores: pd.DataFrame
    agreement: pd.DataFrame
    agreement_patients: pd.DataFrame | None
    analysis: pd.DataFrame
    patient_analysis: pd.DataFrame
    notes: dict[str, Any] = field(default_factory=dict)


def analysis_tables(
    sessions: pd.DataFrame,
    patients: pd.DataFrame,
    raters: dict[str, Instrument],
    options: ScoreOptions,
) -> AnalysisTables:
    """Scores, agreement and the analysis tables: the part of the stage every model needs.

    Reliability and ruptures are left to `run_score` (no model reads them; the recovery study
    calls this alone, once per simulated trial).
    """
    scale = options.scale
    scores, patient_scores = score_tables(sessions, raters, options)
    rated = [r for r in raters if _rater_available(scores, r, scale)]
    notes: dict[str, Any] = {}
    agree_sessions = all_pairs_agreement(scores, rated, scale=scale)
    if len(rated) < 2:
        notes["agreement"] = (
            f"skipped: needs two raters with '{scale}' scores (have: "
            + (", ".join(rated) or "none")
            + ")"
        )
    agree_patients = None
    if {"patient", "therapist"} <= set(rated):
        agree_patients = agreement(scores, scale=scale)[1]
    analysis, patient_analysis = build_analysis(
        sessions, patients, scores, patient_scores, agree_patients,
        rater=options.rater, scale=scale, detrend=options.detrend, raters=raters,
        early_window=tuple(options.early_window),
    )  # fmt: skip
    # ruptures known before each session (model predictors; k: the largest score.ruptures.ks)
    flags = prior_rupture_flags(analysis, k=max(options.ruptures.ks), m=options.ruptures.m)
    analysis = analysis.assign(**{c: flags[c] for c in flags.columns})
    return AnalysisTables(
        scores, patient_scores, agree_sessions, agree_patients, analysis, patient_analysis, notes
    )


def run_score(
    sessions: pd.DataFrame, patients: pd.DataFrame, settings: ScoreSettings
) -> ScoreResult:
    """The whole score stage in memory (the variance decomposition is a separate step)."""
    raters = load_raters(settings.alliance)
    options = settings.score
    scale = options.scale
    tables = analysis_tables(sessions, patients, raters, options)
    scores, analysis, notes = tables.scores, tables.analysis, tables.notes
    reliability = reliability_table(sessions, raters)
    rup = options.ruptures
    series = select_score(scores, rater="patient", scale=scale) if "patient" in raters else None
    if series is not None and len(series):
        episodes, rupture_patients = rupture_table(
            series, ks=rup.ks, m=rup.m, sd=rup.sd, min_sessions=rup.min_sessions
        )
    else:
        episodes, rupture_patients = pd.DataFrame(), pd.DataFrame()
        notes["ruptures"] = "skipped: no patient-rated alliance"
    notes["grand_mean"] = analysis.attrs.get("grand_mean")
    return ScoreResult(
        scores=scores,
        patient_scores=tables.patient_scores,
        prorating=prorating_counts(scores),
        reliability=reliability,
        agreement=tables.agreement,
        agreement_patients=(
            tables.agreement_patients if tables.agreement_patients is not None else pd.DataFrame()
        ),
        analysis=analysis,
        patient_analysis=tables.patient_analysis,
        ruptures=episodes,
        rupture_patients=rupture_patients,
        notes=notes,
    )


def write_score(result: ScoreResult, outdir: str | Path) -> dict[str, Path]:
    """Write the score stage's files atomically."""
    out = Path(outdir)
    outputs = {
        "alliance": (result.scores, "alliance.parquet"),
        "patient_alliance": (result.patient_scores, "patient_alliance.parquet"),
        "prorating": (result.prorating, "prorating.csv"),
        "reliability": (result.reliability, "reliability.csv"),
        "agreement": (result.agreement, "agreement.csv"),
        "agreement_patients": (result.agreement_patients, "agreement_patients.parquet"),
        "analysis": (result.analysis, "analysis.parquet"),
        "patient_analysis": (result.patient_analysis, "patient_analysis.parquet"),
        "ruptures": (result.ruptures, "ruptures.csv"),
        "rupture_patients": (result.rupture_patients, "rupture_patients.csv"),
    }
    paths = {}
    for key, (frame, name) in outputs.items():
        path = out / name
        writer = files.write_parquet if name.endswith(".parquet") else files.write_csv
        writer(frame, path)
        paths[key] = path
    paths["notes"] = files.write_json(result.notes, out / "score_notes.json")
    return paths
