"""Rupture-repair episodes in each patient's session-by-session alliance (V-shaped drops).

Rule (Stiles et al. 2004, J Couns Psychol 51:81; Strauss et al. 2006, J Consult Clin Psychol
74:337): a **rupture** is a drop from one rated session to the next of at least k SD; it is
**repaired** when a later score within m sessions of the drop returns to at least the pre-drop
score. Stiles et al. used k = 2, Strauss et al. k = 1; Gumz et al. (2012, BMC Med Res Methodol
12:10) compared the published criteria, found that they disagree in the threshold and in which
variability the SD describes (within one patient's course or across the sample), and suggested
reporting both k = 1 and k = 2. Hence both SDs are offered:

- `sd="sample_change"` (default): SD of all session-to-session changes in the sample (adjacent
  rated sessions of every patient, increases and decreases alike, ddof = 1). One yardstick for
  everybody, so a drop means the same size for all patients. ⚠ Which of the two SDs each paper
  used could not be confirmed from the primary sources: the default is a choice, not a
  replication.
- `sd="patient"`: the patient's own SD of scores across their rated sessions (ddof = 1).

Choices made here, all visible in the output:
- A change exists only between rated sessions whose numbers are adjacent (s, s + 1): a missing
  or unrated session between two ratings breaks the pair, since the drop could have happened
  over two sessions.
- Repair is searched among rated sessions with numbers in (s_drop, s_drop + m]; the first score
  >= the pre-drop score (equality counts) repairs, and `sessions_to_repair` = its session number
  − s_drop. Gaps inside the window are allowed.
- An unrepaired episode is `censored` when the patient's last rated session comes before
  s_drop + m (the series ended before the window closed): reported apart from unrepaired.
- Every qualifying drop is an episode, also one inside an earlier episode's window.
- A flat series (all scores equal) has no ruptures and says so in `note`; with `sd="patient"`
  its SD of 0 would otherwise make any drop infinitely large.
- A patient is `assessable` with at least `min_sessions` rated sessions and at least one change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from alliance.errors import InputError
from alliance.score.levels import select_score

SD_METHODS = ("sample_change", "patient")
# Relative slack on "drop >= k SD" and "score >= pre-drop": scores are item means, and a drop of
# exactly k SD or an exact return must not be lost to float rounding.
TOL = 1e-9
EPISODE_COLUMNS = [
    "patient", "session_before", "session_drop", "score_before", "score_drop", "drop_size",
    "drop_sd", "sd", "repaired", "sessions_to_repair", "session_repair", "censored",
    "n_window_rated",
]  # fmt: skip
PATIENT_COLUMNS = [
    "patient", "n_rated", "n_changes", "assessable", "sd", "flat", "n_ruptures", "n_repaired",
    "n_unrepaired", "n_censored", "any_rupture", "any_repaired", "note",
]  # fmt: skip


def series_from_scores(
    scores: pd.DataFrame,
    *,
    rater: str = "patient",
    scale: str = "total",
    instrument: str | None = None,
) -> pd.DataFrame:
    """The `patient, session, score` series table of one rater's scale from the long score table."""
    return select_score(scores, rater=rater, scale=scale, instrument=instrument)


def _validate(series_table: pd.DataFrame, k: float, m: int, sd: str, min_sessions: int) -> None:
    missing = [c for c in ("patient", "session", "score") if c not in series_table.columns]
    if missing:
        raise InputError(
            f"series table lacks column(s) {', '.join(missing)}",
            column=missing[0],
            check="missing_column",
        )
    if not (np.isfinite(k) and k > 0):
        raise InputError("k (drop size in SDs) must be > 0", value=k, check="rupture_k")
    if int(m) != m or m < 1:
        raise InputError(
            "m (repair window) must be a whole number >= 1", value=m, check="rupture_m"
        )
    if sd not in SD_METHODS:
        raise InputError(f"sd must be one of {', '.join(SD_METHODS)}", value=sd, check="rupture_sd")
    if int(min_sessions) != min_sessions or min_sessions < 2:
        raise InputError(
            "min_sessions must be a whole number >= 2", value=min_sessions, check="rupture_min"
        )


def _sorted_series(series_table: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Rated rows sorted by patient then session: patient codes, names, sessions, scores."""
    rated = series_table["score"].notna().to_numpy()
    t = series_table.loc[rated, ["patient", "session", "score"]]
    sess = pd.to_numeric(t["session"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(sess) | (sess % 1 != 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            "session numbers must be whole numbers",
            row=int(np.flatnonzero(rated)[first]) + 1,
            column="session",
            value=t["session"].iloc[first],
            check="bad_session",
        )
    codes, names = pd.factorize(t["patient"], sort=True)
    order = np.lexsort((sess, codes))
    codes, sess = codes[order], sess[order].astype(np.int64)
    y = t["score"].to_numpy(dtype=float)[order]
    dup = (codes[1:] == codes[:-1]) & (sess[1:] == sess[:-1])
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputError(
            "patient x session appears twice in the series",
            column="session",
            value=f"{names[codes[i]]} session {sess[i]}",
            check="duplicate_session",
        )
    return codes, np.asarray(names), sess, y


def detect_ruptures(
    series_table: pd.DataFrame,
    *,
    k: float,
    m: int = 3,
    sd: str = "sample_change",
    min_sessions: int = 3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rupture episodes and per-patient counts (see the module docstring for every rule).

    `series_table` has `patient, session, score` (missing scores are unrated sessions).
    Returns `(episodes, per_patient)`. Per-patient counts and `any_*` are missing (NA) for
    patients who are not assessable, so they are never counted as "no rupture". The SD used is
    in column `sd` and in `attrs["sd_method"]` / `attrs["sample_sd"]`.
    """
    _validate(series_table, k, m, sd, min_sessions)
    m = int(m)
    codes, names, sess, y = _sorted_series(series_table)
    n_pat, n = len(names), len(y)
    n_rated = np.bincount(codes, minlength=n_pat)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if n else np.array([], int)
    flat = np.zeros(n_pat, bool)
    last_session = np.zeros(n_pat, np.int64)
    if n:
        flat = np.maximum.reduceat(y, starts) == np.minimum.reduceat(y, starts)
        last_session = sess[np.r_[starts[1:] - 1, n - 1]]

    # change i -> i+1 between adjacent session numbers of one patient
    adjacent = (codes[1:] == codes[:-1]) & (sess[1:] - sess[:-1] == 1)
    change = y[1:] - y[:-1]
    n_changes = np.bincount(codes[1:][adjacent], minlength=n_pat)
    sample_sd = float(np.std(change[adjacent], ddof=1)) if adjacent.sum() >= 2 else np.nan
    if sd == "sample_change":
        sd_p = np.full(n_pat, sample_sd)
    else:
        sd_p = _patient_sd(codes, n_pat, n_rated, y)
    assessable = (n_rated >= min_sessions) & (n_changes >= 1)

    drop = -change
    sd_at = sd_p[codes[1:]]
    usable = assessable[codes[1:]] & ~flat[codes[1:]] & (sd_at > 0)
    is_rupture = adjacent & usable & (drop >= k * sd_at * (1 - TOL))
    i_drop = np.flatnonzero(is_rupture) + 1
    episodes = _episodes(codes, names, sess, y, i_drop, sd_at, m, last_session)
    per_patient = _per_patient(
        codes[i_drop], episodes, names, n_rated, n_changes, assessable, sd_p, flat, min_sessions
    )
    for frame in (episodes, per_patient):
        frame.attrs.update({"k": k, "m": m, "sd_method": sd, "sample_sd": sample_sd})
    return episodes, per_patient


def _patient_sd(codes: np.ndarray, n_pat: int, n_rated: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(codes, weights=y, minlength=n_pat) / n_rated
        ss = np.bincount(codes, weights=(y - mean[codes]) ** 2, minlength=n_pat)
        return np.sqrt(ss / (n_rated - 1))


def _episodes(
    codes: np.ndarray,
    names: np.ndarray,
    sess: np.ndarray,
    y: np.ndarray,
    i_drop: np.ndarray,
    sd_at: np.ndarray,
    m: int,
    last_session: np.ndarray,
) -> pd.DataFrame:
    """One row per rupture; the repair search looks at most m rows ahead (sessions are unique)."""
    n = len(y)
    before = y[i_drop - 1]
    repair_at = np.full(len(i_drop), -1)
    in_window = np.zeros(len(i_drop), np.int64)
    for r in range(1, m + 1):
        j = np.minimum(i_drop + r, n - 1)
        ok = (i_drop + r < n) & (codes[j] == codes[i_drop]) & (sess[j] - sess[i_drop] <= m)
        in_window += ok
        back = ok & (y[j] >= before - TOL * np.maximum(1.0, np.abs(before))) & (repair_at < 0)
        repair_at[back] = j[back]
    repaired = repair_at >= 0
    session_repair = np.where(repaired, sess[np.maximum(repair_at, 0)], -1)
    ep_sd = sd_at[i_drop - 1]
    drop_size = before - y[i_drop]
    censored = ~repaired & (last_session[codes[i_drop]] < sess[i_drop] + m)
    out = pd.DataFrame(
        {
            "patient": names[codes[i_drop]],
            "session_before": sess[i_drop - 1],
            "session_drop": sess[i_drop],
            "score_before": before,
            "score_drop": y[i_drop],
            "drop_size": drop_size,
            "drop_sd": drop_size / ep_sd,
            "sd": ep_sd,
            "repaired": repaired,
            "sessions_to_repair": np.where(repaired, session_repair - sess[i_drop], np.nan),
            "session_repair": pd.array(np.where(repaired, session_repair, 0), dtype="Int64"),
            "censored": censored,
            "n_window_rated": in_window,
        }
    )
    out.loc[~repaired, "session_repair"] = pd.NA
    return out[EPISODE_COLUMNS]


def _per_patient(
    ep_codes: np.ndarray,
    episodes: pd.DataFrame,
    names: np.ndarray,
    n_rated: np.ndarray,
    n_changes: np.ndarray,
    assessable: np.ndarray,
    sd_p: np.ndarray,
    flat: np.ndarray,
    min_sessions: int,
) -> pd.DataFrame:
    n_pat = len(names)
    rep = episodes["repaired"].to_numpy(bool)
    cen = episodes["censored"].to_numpy(bool)
    n_rup = np.bincount(ep_codes, minlength=n_pat)
    n_rep = np.bincount(ep_codes[rep], minlength=n_pat)
    n_cen = np.bincount(ep_codes[cen], minlength=n_pat)

    def masked(values: np.ndarray, dtype: str) -> pd.arrays.ExtensionArray:
        arr = pd.array(values, dtype=dtype)
        arr[~assessable] = pd.NA
        return arr

    note = np.full(n_pat, "", dtype=object)
    note[flat & assessable] = "flat series (all scores equal): no ruptures possible"
    note[assessable & ~flat & ~(sd_p > 0)] = "SD is 0 or undefined: no ruptures possible"
    note[n_changes == 0] = "no two rated sessions with adjacent numbers"
    note[n_rated < min_sessions] = f"fewer than {min_sessions} rated sessions"
    return pd.DataFrame(
        {
            "patient": names,
            "n_rated": n_rated,
            "n_changes": n_changes,
            "assessable": assessable,
            "sd": sd_p,
            "flat": flat,
            "n_ruptures": masked(n_rup, "Int64"),
            "n_repaired": masked(n_rep, "Int64"),
            "n_unrepaired": masked(n_rup - n_rep - n_cen, "Int64"),
            "n_censored": masked(n_cen, "Int64"),
            "any_rupture": masked(n_rup > 0, "boolean"),
            "any_repaired": masked(n_rep > 0, "boolean"),
            "note": pd.array(note, dtype="string"),
        }
    )[PATIENT_COLUMNS]


def rupture_table(
    series_table: pd.DataFrame,
    ks: Sequence[float] = (1.0, 2.0),
    m: int = 3,
    sd: str = "sample_change",
    min_sessions: int = 3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`detect_ruptures` for each k (default 1 = Strauss, 2 = Stiles), stacked with a `k` column."""
    episodes, patients = [], []
    for k in ks:
        ep, pp = detect_ruptures(series_table, k=k, m=m, sd=sd, min_sessions=min_sessions)
        episodes.append(ep.assign(k=float(k)))
        patients.append(pp.assign(k=float(k)))
    ep_all = pd.concat(episodes, ignore_index=True)
    pp_all = pd.concat(patients, ignore_index=True)
    ep_all = ep_all[["k", *EPISODE_COLUMNS]]
    pp_all = pp_all[["k", *PATIENT_COLUMNS]]
    for frame in (ep_all, pp_all):
        frame.attrs.update({"ks": [float(k) for k in ks], "m": m, "sd_method": sd})
    return ep_all, pp_all


PRIOR_FLAGS = ("rupture_unrepaired_prior", "rupture_repaired_prior")


def _expanding_sd(into: np.ndarray, change: np.ndarray, at: np.ndarray) -> np.ndarray:
    """SD (ddof 1) of the changes whose later session number is <= each value of `at`."""
    order = np.argsort(into, kind="stable")
    into, change = into[order], change[order]
    n = np.arange(1, len(change) + 1, dtype=float)
    s1, s2 = np.cumsum(change), np.cumsum(change**2)
    i = np.searchsorted(into, at, side="right") - 1
    out = np.full(len(at), np.nan)
    ok = i >= 1  # at least two changes
    j = i[ok]
    with np.errstate(invalid="ignore"):
        out[ok] = np.sqrt(np.maximum(s2[j] - s1[j] ** 2 / n[j], 0.0) / (n[j] - 1))
    return out


def prior_rupture_flags(
    table: pd.DataFrame, *, k: float, m: int, score: str = "alliance"
) -> pd.DataFrame:
    """Per row of `table` (patient, session): ruptures known before the session.

    Why: a model linking ruptures to what follows may only use what was known before the
    outcome. A drop into session s is a rupture when it is >= k SD of the session-to-session
    changes into sessions <= s (every patient's, so the yardstick is known at the end of s; the
    sample SD of `detect_ruptures` would use later sessions); it is known from s, its repair
    (the first score within m sessions back to the pre-drop score) from the repairing session.
    On the row of session t: `rupture_repaired_prior` = 1 when a rupture was repaired at a
    session < t; `rupture_unrepaired_prior` = 1 when a rupture into a session < t had not been
    repaired by t - 1. Missing before the patient's first rated session.
    """
    series = table[["patient", "session", score]].rename(columns={score: "score"})
    codes, names, sess, y = _sorted_series(series)
    out = pd.DataFrame(np.nan, index=table.index, columns=list(PRIOR_FLAGS))
    if len(y) < 3:
        return out
    adjacent = (codes[1:] == codes[:-1]) & (sess[1:] - sess[:-1] == 1)
    change = y[1:] - y[:-1]
    sd_at = np.full(len(change), np.nan)
    sd_at[adjacent] = _expanding_sd(sess[1:][adjacent], change[adjacent], sess[1:][adjacent])
    with np.errstate(invalid="ignore"):
        is_rupture = adjacent & (sd_at > 0) & (-change >= k * sd_at * (1 - TOL))
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    last_session = sess[np.r_[starts[1:] - 1, len(y) - 1]]
    ep = _episodes(codes, names, sess, y, np.flatnonzero(is_rupture) + 1, sd_at, m, last_session)
    rows = table[["patient", "session"]].reset_index(names="_row")
    pairs = rows.merge(ep[["patient", "session_drop", "session_repair"]], on="patient")
    repair = pd.to_numeric(pairs["session_repair"]).astype(float)
    known = pairs["session_drop"] < pairs["session"]
    fixed = (repair < pairs["session"]).to_numpy()
    flags = pd.DataFrame(
        {"_row": pairs["_row"], "rupture_repaired_prior": fixed,
         "rupture_unrepaired_prior": known.to_numpy() & ~fixed}
    ).groupby("_row")[["rupture_unrepaired_prior", "rupture_repaired_prior"]].any()  # fmt: skip
    first = series.dropna(subset=["score"]).groupby("patient")["session"].min()
    rated_before = table["session"].to_numpy() > table["patient"].map(first).to_numpy(dtype=float)
    for col in PRIOR_FLAGS:
        value = flags[col].reindex(table.index, fill_value=False).astype(float)
        out[col] = value.where(rated_before)
    return out
