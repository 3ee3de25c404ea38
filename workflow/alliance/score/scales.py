"""Alliance scale scores per session, prorating counts, and patient-level summaries.

Scoring itself (reverse keying, the prorating rule, mean or sum) lives in
`alliance.instruments.items` so the clean stage's symptom totals and the alliance scores follow
one rule. Everything here is vectorised over session rows: a 600k-row trial scores in seconds.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from alliance.errors import ConfigError
from alliance.instruments.definition import Instrument
from alliance.instruments.items import keyed_items, score_items
from alliance.settings import AllianceSettings

SCORE_COLUMNS = ["patient", "session", "rater", "instrument", "scale", "score", "n_items"]


def load_raters(alliance: AllianceSettings) -> dict[str, Instrument]:
    """Instrument of every configured rater (`alliance.raters.<rater>.instrument`).

    An instrument without `key_status: verified` is refused at workflow start unless listed in
    `alliance.allow_unverified_keys` (alliance.instruments.status); when it gets this far it is
    scored, and a warning (captured in the run log) says so, so the report never silently rests on
    an unconfirmed key.
    """
    out: dict[str, Instrument] = {}
    for rater, spec in alliance.rater_specs().items():
        inst = alliance.instrument(spec["instrument"])
        if not inst.scales():
            raise ConfigError(
                f"config key alliance.raters.{rater}.instrument: instrument '{inst.name}' has no "
                "subscales and total: false, so there is nothing to score"
            )
        if inst.unverified:
            optin = inst.name in alliance.allow_unverified_keys
            warnings.warn(
                f"{rater} instrument '{inst.name}' has an UNVERIFIED scoring key (key_status: "
                f"{inst.key_status}"
                + ("; scored because alliance.allow_unverified_keys lists it" if optin else "")
                + f"): {' '.join(inst.verified.split())}",
                UserWarning,
                stacklevel=2,
            )
        out[rater] = inst
    return out


def rater_item_columns(sessions: pd.DataFrame, rater: str) -> dict[int, str]:
    """Item number -> column for the clean table's `item_{rater}_{nn}` columns."""
    rx = re.compile(rf"^item_{re.escape(rater)}_(\d+)$")
    found = {int(m.group(1)): c for c in sessions.columns if (m := rx.match(str(c)))}
    return dict(sorted(found.items()))


def _row_order(sessions: pd.DataFrame) -> np.ndarray:
    """Positions sorting the session rows by patient then session (stable, so deterministic)."""
    codes, _ = pd.factorize(sessions["patient"], sort=True)
    session = pd.to_numeric(sessions["session"], errors="coerce").to_numpy(dtype=float)
    return np.lexsort((session, codes))


def score_alliance(sessions: pd.DataFrame, raters: dict[str, Instrument]) -> pd.DataFrame:
    """Long table of scale scores: one row per session x rater x scale the rater answered.

    Columns `patient, session, rater, instrument, scale, score, n_items` (items answered).
    Scales are each subscale plus `total` when the instrument has one. A session where the rater
    answered none of a scale's items has no row for it; one where too few were answered has a row
    with a missing score (prorating rule), which `prorating_counts` reports. Rows are sorted by
    patient, session, rater (in the order given) and scale (in the instrument's order).
    """
    wanted = ["patient", "session"]
    for rater in raters:
        wanted += list(rater_item_columns(sessions, rater).values())
    frame = sessions[wanted].iloc[_row_order(sessions)]
    labels: list[tuple[str, str, str]] = []
    scores: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for rater, inst in raters.items():
        columns = rater_item_columns(frame, rater)
        if not columns:
            continue
        keyed = keyed_items(frame, columns, inst)
        for scale, members in inst.scales():
            score, answered = score_items(keyed, members, inst)
            labels.append((rater, inst.name, scale))
            scores.append(score.to_numpy())
            counts.append(answered.to_numpy())
    if not labels:
        return pd.DataFrame(
            {
                "patient": pd.Series(dtype=sessions["patient"].dtype),
                "session": pd.Series(dtype=sessions["session"].dtype),
                "rater": pd.Series(dtype="str"),
                "instrument": pd.Series(dtype="str"),
                "scale": pd.Series(dtype="str"),
                "score": pd.Series(dtype=float),
                "n_items": pd.Series(dtype="int64"),
            }
        )
    # (rows x scales) matrices raveled row-major give the patient, session, rater, scale order
    # without sorting millions of strings.
    n_scales = len(labels)
    score_m = np.column_stack(scores).ravel()
    count_m = np.column_stack(counts).ravel()
    keep = count_m > 0
    row = np.repeat(np.arange(len(frame)), n_scales)[keep]
    col = np.tile(np.arange(n_scales), len(frame))[keep]

    # Arrow-backed takes: building millions of strings from Python objects would dominate the run.
    def label(part: int) -> pd.api.extensions.ExtensionArray:
        return pd.array([lab[part] for lab in labels], dtype="str").take(col)

    return pd.DataFrame(
        {
            "patient": frame["patient"].array.take(row),
            "session": frame["session"].to_numpy()[row],
            "rater": label(0),
            "instrument": label(1),
            "scale": label(2),
            "score": score_m[keep],
            "n_items": count_m[keep].astype("int64"),
        }
    )


def prorating_counts(scores: pd.DataFrame) -> pd.DataFrame:
    """Per rater x instrument x scale: rated sessions, scores set missing by the prorating rule."""
    g = scores.groupby(["rater", "instrument", "scale"], sort=False)
    out = g.agg(
        rated_sessions=("n_items", "size"),
        set_missing=("score", lambda s: int(s.isna().sum())),
    ).reset_index()
    out["share_missing"] = out["set_missing"] / out["rated_sessions"]
    return out


def patient_alliance(
    scores: pd.DataFrame,
    sessions: pd.DataFrame,
    *,
    early_window: tuple[int, int] = (1, 3),
    early_session: int | None = None,
    index_column: str = "session_index",
) -> pd.DataFrame:
    """Patient-level alliance per patient x rater x instrument x scale.

    - `early`: mean score over sessions whose `index_column` lies in `early_window` (inclusive); or,
      when `early_session` is given, the score at the session whose recorded `session` number equals
      it (e.g. the protocol's session 3), whatever its index.
    - `mean` (all rated sessions), `last` (score at the highest index), `slope` (OLS slope of score
      on `index_column`; NaN with fewer than 2 points or no spread), `n_rated`, `n_early`.
    Sessions with a missing score (prorating rule) count nowhere.
    """
    lo, hi = early_window
    if lo > hi:
        raise ConfigError(f"early window {early_window}: first session after last session")
    if index_column not in sessions:
        raise ConfigError(f"index column '{index_column}' is not in the session table")
    index = sessions[["patient", "session", index_column]].rename(columns={index_column: "_x"})
    df = scores.merge(index, on=["patient", "session"], how="left", validate="many_to_one")
    keys = ["patient", "rater", "instrument", "scale"]
    grouped = df.groupby(keys, sort=True, observed=True)
    gid = grouped.ngroup().to_numpy()
    out = grouped.size().reset_index()[keys]
    n_groups = len(out)
    y = df["score"].to_numpy(dtype=float)
    x = pd.to_numeric(df["_x"], errors="coerce").to_numpy(dtype=float)
    rated = ~np.isnan(y)
    timed = rated & ~np.isnan(x)

    def total(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = None if weights is None else weights[mask]
        return np.bincount(gid[mask], weights=w, minlength=n_groups).astype(float)

    with np.errstate(invalid="ignore", divide="ignore"):
        n_rated = total(rated)
        mean = total(rated, y) / n_rated
        if early_session is None:
            in_early = timed & (x >= lo) & (x <= hi)
        else:
            in_early = rated & (pd.to_numeric(df["session"]).to_numpy() == early_session)
        n_early = total(in_early)
        early = total(in_early, y) / n_early
        # Centred sums: numerically stable slope per group.
        n_t = total(timed)
        x_bar = total(timed, x) / n_t
        y_bar = total(timed, y) / n_t
        xc = np.where(timed, x - x_bar[gid], 0.0)
        yc = np.where(timed, y - y_bar[gid], 0.0)
        sxx = total(timed, xc * xc)
        sxy = total(timed, xc * yc)
        slope = np.where((n_t >= 2) & (sxx > 0), sxy / sxx, np.nan)
    last = np.full(n_groups, np.nan)
    pos = np.flatnonzero(timed)
    if len(pos):
        srt = pos[np.lexsort((x[pos], gid[pos]))]
        ends = np.r_[np.flatnonzero(np.diff(gid[srt])), len(srt) - 1]
        last[gid[srt[ends]]] = y[srt[ends]]
    out["early"] = early
    out["mean"] = mean
    out["last"] = last
    out["slope"] = slope
    out["n_rated"] = n_rated.astype("int64")
    out["n_early"] = n_early.astype("int64")
    return out
