"""Split an alliance score into therapist, patient and session parts, and their variances.

Sessions (t) sit in patients (i) in therapists (j). Following Baldwin, Wampold & Imel (2007) and
Curran & Bauer (2011), a session score A_tij is split into

    A_tij = Ā_j + (Ā_ij − Ā_j) + (A_tij − Ā_ij)
          = ther + pat + within

where Ā_ij is the patient's mean over their rated sessions and Ā_j is the therapist mean, defined
here as the **mean of the therapist's patients' means** (each patient weighs the same, however
many sessions they rated), not the mean of all the therapist's session scores. The three parts
add back to the raw score (up to floating-point rounding, ~1e-15).

Without therapist IDs the therapist part is missing and the patient part is centred at the grand
mean (mean of patient means) instead: A_tij = grand + pat + within.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import InputError

# The stem of the score stage's alliance columns (alliance, alliance_ther, alliance_pat, ...).
STEM = "alliance"

SCORE_COLUMNS = ("patient", "session", "rater", "instrument", "scale", "score")
CARRIED = ("patient", "therapist", "site", "arm", "arm_class", "session", "session_index", "weeks")
# A within-patient trend needs at least this many rated sessions (a line through 2 points fits
# exactly and would leave residuals of zero).
MIN_DETREND = 3
FEW_THERAPISTS = 10


def score_stem(instrument: str, rater: str, scale: str) -> str:
    """Column stem for one score when a table holds several: `wai_sr_p_total` (rater initial)."""
    return f"{instrument}_{rater[:1]}_{scale}"


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{what} lacks required column(s) {', '.join(missing)}; has {', '.join(frame.columns)}",
            column=missing[0],
            check="missing_column",
        )


def select_score(
    scores: pd.DataFrame, *, rater: str, scale: str = "total", instrument: str | None = None
) -> pd.DataFrame:
    """`patient, session, score` of one rater x scale (x instrument), rated sessions only.

    A missing score (too few items answered) is not a rating and is dropped. When the rater has
    the scale on several instruments, `instrument` must say which one.
    """
    require_columns(scores, SCORE_COLUMNS, "score table")
    rows = scores[(scores["rater"] == rater) & (scores["scale"] == scale)]
    if instrument is not None:
        rows = rows[rows["instrument"] == instrument]
    if rows.empty:
        have = scores[["rater", "instrument", "scale"]].drop_duplicates().astype(str)
        listed = ", ".join("/".join(r) for r in have.itertuples(index=False))
        raise InputError(
            f"no {rater}-rated '{scale}' scores"
            + (f" on instrument {instrument}" if instrument else "")
            + f"; available rater/instrument/scale: {listed}",
            column="scale",
            value=scale,
            check="score_missing",
        )
    instruments = rows["instrument"].dropna().unique()
    if len(instruments) > 1:
        raise InputError(
            f"{rater}-rated '{scale}' exists on several instruments "
            f"({', '.join(map(str, instruments))}): choose one with instrument=",
            column="instrument",
            check="score_ambiguous",
        )
    out = rows.loc[rows["score"].notna(), ["patient", "session", "score"]]
    dup = out.duplicated(["patient", "session"])
    if dup.any():
        first = out.loc[dup].iloc[0]
        raise InputError(
            f"{rater}-rated '{scale}' appears twice for one patient x session",
            column="session",
            value=f"{first['patient']} session {first['session']}",
            check="duplicate_session",
        )
    out = out.astype({"score": float})
    return out.reset_index(drop=True)


def therapist_column(sessions: pd.DataFrame) -> pd.Series | None:
    """The therapist column when the trial has therapist IDs, else None."""
    if "therapist" not in sessions.columns or sessions["therapist"].isna().all():
        return None
    return sessions["therapist"]


def therapist_codes(table: pd.DataFrame, codes: np.ndarray, n_pat: int) -> np.ndarray:
    """Per patient code 0..n_pat-1: the code of their therapist (-1 when unknown).

    A patient with two therapists in `table` is an InputError naming the patient.
    """
    by_patient = table["therapist"].groupby(codes)
    conflict = by_patient.nunique() > 1
    if conflict.any():
        code = int(conflict.index[np.argmax(conflict.to_numpy())])
        raise InputError(
            "patient has more than one therapist in the session table",
            column="therapist",
            value=str(table["patient"].iloc[int(np.argmax(codes == code))]),
            check="therapist_conflict",
        )
    # first non-missing therapist of each patient, in patient-code order
    return np.asarray(pd.factorize(by_patient.first().reindex(range(n_pat)))[0])


def _lag(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Value of the previous row where `ok` (same patient, no gap), else NaN."""
    prev = np.full(values.shape, np.nan)
    prev[1:] = values[:-1]
    return np.where(ok, prev, np.nan)


def decompose(
    sessions: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    rater: str = "patient",
    scale: str = "total",
    instrument: str | None = None,
    detrend: bool = True,
    stem: str = "a",
    time: str = "session_index",
    lag_gap: int = 1,
    keep: Sequence[str] = (),
) -> pd.DataFrame:
    """Session-level analysis table: one row per session row, the score split into three levels.

    Columns (`stem` defaults to `a`; with several scores use `score_stem(...)`, so
    `wai_sr_p_total_within` is the patient-rated WAI-SR total's within-patient part):

    - `{stem}` raw score (NaN where not rated); `{stem}_n_rated` rated sessions of the patient;
      `{stem}_pmean` patient mean over rated sessions;
    - `{stem}_ther` therapist mean of patient means (NaN without therapist IDs);
    - `{stem}_pat` patient mean − therapist mean (− grand mean without therapist IDs; NaN for a
      patient whose therapist is unknown in a trial that has therapist IDs);
    - `{stem}_within` score − patient mean;
    - `{stem}_within_detrended` (if `detrend`) residual of the patient's own OLS line of score on
      `time`; with fewer than 3 rated sessions it falls back to `{stem}_within` and
      `{stem}_detrend_fallback` is True;
    - `{stem}_lag1`, `{stem}_within_lag1`, `{stem}_within_detrended_lag1`, `symptom_lag1`: the
      value at the previous session row when its session number is at most `lag_gap` below
      (default 1: the immediately preceding session; a missing session breaks the lag — gaps are
      never bridged). NaN when that session exists but was not rated;
    - `symptom`, `baseline_symptom`, `symptom_change` (= symptom − baseline_symptom), NaN when the
      session table has no such column.

    Patient-level parts (`_pmean`, `_ther`, `_pat`) are filled on every row of the patient,
    rated or not. `attrs["decomposition"]` records the definitions used.
    """
    require_columns(sessions, ("patient", "session"), "session table")
    if lag_gap < 1:
        raise InputError("lag_gap must be a whole number >= 1", value=lag_gap, check="lag_gap")
    if detrend:
        require_columns(sessions, (time,), "session table (detrending time)")
    dup = sessions.duplicated(["patient", "session"])
    if dup.any():
        first = sessions.loc[dup].iloc[0]
        raise InputError(
            "patient x session appears more than once in the session table",
            row=int(np.flatnonzero(dup.to_numpy())[0]) + 1,
            column="session",
            value=f"{first['patient']} session {first['session']}",
            check="duplicate_session",
        )
    carried = [c for c in dict.fromkeys([*CARRIED, *keep]) if c in sessions.columns]
    missing_keep = [c for c in keep if c not in sessions.columns]
    if missing_keep:
        raise InputError(
            "keep= names column(s) not in the session table",
            column=missing_keep[0],
            check="missing_column",
        )
    extra = [c for c in ("symptom", "baseline_symptom") if c in sessions.columns]
    base = sessions[
        list(dict.fromkeys([*carried, *extra, time] if detrend else [*carried, *extra]))
    ]
    base = base.sort_values(["patient", "session"], kind="stable").reset_index(drop=True)

    rated_scores = select_score(scores, rater=rater, scale=scale, instrument=instrument)
    merged = base[["patient", "session"]].merge(
        rated_scores, on=["patient", "session"], how="left", validate="one_to_one"
    )
    _check_orphans(base, rated_scores, rater, scale)

    codes, patients = pd.factorize(base["patient"], sort=False)
    n_pat = len(patients)
    session = base["session"].to_numpy(dtype=float)
    a = merged["score"].to_numpy(dtype=float)
    rated = ~np.isnan(a)
    a0 = np.where(rated, a, 0.0)
    n_rated = np.bincount(codes, weights=rated, minlength=n_pat)
    with np.errstate(invalid="ignore", divide="ignore"):
        pmean = np.bincount(codes, weights=a0, minlength=n_pat) / n_rated
    within = a - pmean[codes]

    ther_p, centre, info = _therapist_means(base, codes, n_pat, pmean)
    pat_p = pmean - centre

    out = base[carried].copy()
    out[stem] = a
    out[f"{stem}_n_rated"] = n_rated[codes].astype("int64")
    out[f"{stem}_pmean"] = pmean[codes]
    out[f"{stem}_ther"] = ther_p[codes]
    out[f"{stem}_pat"] = pat_p[codes]
    out[f"{stem}_within"] = within

    same = np.r_[False, codes[1:] == codes[:-1]]
    step = np.r_[np.inf, np.diff(session)]
    lag_ok = same & (step <= lag_gap)
    out[f"{stem}_lag1"] = _lag(a, lag_ok)
    out[f"{stem}_within_lag1"] = _lag(within, lag_ok)
    if detrend:
        x = base[time].to_numpy(dtype=float)
        if np.isnan(x[rated]).any():
            raise InputError(
                f"detrending time column '{time}' is missing on a rated session",
                column=time,
                check="detrend_time",
            )
        detrended, fallback = _detrend(codes, n_pat, x, within, rated, n_rated)
        out[f"{stem}_within_detrended"] = detrended
        out[f"{stem}_detrend_fallback"] = fallback
        out[f"{stem}_within_detrended_lag1"] = _lag(detrended, lag_ok)

    symptom = _float_column(base, "symptom")
    baseline = _float_column(base, "baseline_symptom")
    out["symptom"] = symptom
    out["symptom_lag1"] = _lag(symptom, lag_ok)
    out["baseline_symptom"] = baseline
    out["symptom_change"] = symptom - baseline

    out.attrs["decomposition"] = info | {
        "score": {"rater": rater, "scale": scale, "instrument": instrument, "stem": stem},
        "patient_mean": "mean of the patient's rated sessions",
        "detrend": (
            f"residual of the patient's OLS line of score on {time}; fewer than {MIN_DETREND} "
            "rated sessions: within score, flagged"
            if detrend
            else "not computed"
        ),
        "lag": f"previous session row if its session number is at most {lag_gap} below, else NaN",
        "symptom_change": "symptom - baseline_symptom (per session)",
        "missing_columns": [c for c in ("symptom", "baseline_symptom") if c not in base.columns],
    }
    return out


def _float_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _check_orphans(base: pd.DataFrame, rated: pd.DataFrame, rater: str, scale: str) -> None:
    """Scores must belong to sessions of the session table: anything else is a stage mismatch."""
    keys = pd.MultiIndex.from_frame(base[["patient", "session"]])
    found = pd.MultiIndex.from_frame(rated[["patient", "session"]]).isin(keys)
    if not found.all():
        first = rated.loc[~found].iloc[0]
        raise InputError(
            f"{int((~found).sum())} {rater}-rated '{scale}' score(s) belong to no row of the "
            "session table (score and clean outputs out of step?)",
            column="session",
            value=f"{first['patient']} session {first['session']}",
            check="score_orphan",
        )


def _therapist_means(
    base: pd.DataFrame, codes: np.ndarray, n_pat: int, pmean: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Per patient: therapist mean (NaN if none), the centre for the patient part, and notes."""
    ther = therapist_column(base)
    if ther is None:
        grand = float(np.nanmean(pmean)) if np.isfinite(pmean).any() else np.nan
        info = {
            "therapist_mean": "not available (no therapist IDs)",
            "patient_part": "patient mean - grand mean (mean of patient means)",
            "identity": "score = grand_mean + pat + within",
            "grand_mean": grand,
        }
        return np.full(n_pat, np.nan), np.full(n_pat, grand), info
    t_codes = therapist_codes(base, codes, n_pat)
    n_ther = int(t_codes.max()) + 1
    valid = (t_codes >= 0) & np.isfinite(pmean)
    with np.errstate(invalid="ignore", divide="ignore"):
        tmean = np.bincount(t_codes[valid], weights=pmean[valid], minlength=n_ther) / np.bincount(
            t_codes[valid], minlength=n_ther
        )
    ther_p = np.where(t_codes >= 0, tmean[np.maximum(t_codes, 0)], np.nan)
    info = {
        "therapist_mean": "mean of the therapist's patients' means (Baldwin et al. 2007)",
        "patient_part": "patient mean - therapist mean",
        "identity": "score = ther + pat + within",
        "patients_without_therapist": int((t_codes < 0).sum()),
    }
    return ther_p, ther_p, info


def _detrend(
    codes: np.ndarray,
    n_pat: int,
    x: np.ndarray,
    within: np.ndarray,
    rated: np.ndarray,
    n_rated: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of each patient's OLS line of score on x, from grouped sums (no Python loop).

    y − ȳ = within, so the residual is within − slope·(x − x̄), with x̄ over rated sessions.
    """
    w = rated.astype(float)
    x0 = np.where(rated, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = np.bincount(codes, weights=x0, minlength=n_pat) / n_rated
        dx = np.where(rated, x - xbar[codes], 0.0)
        sxx = np.bincount(codes, weights=dx * dx * w, minlength=n_pat)
        sxy = np.bincount(codes, weights=dx * np.where(rated, within, 0.0), minlength=n_pat)
        slope = sxy / sxx
    usable = (n_rated >= MIN_DETREND) & (sxx > 0)
    fallback = rated & ~usable[codes]
    detrended = np.where(usable[codes], within - slope[codes] * dx, within)
    return np.where(rated, detrended, np.nan), fallback
