"""Attendance of scheduled sessions: missed rows apart from attended ones, the schedule, its rates.

Why: missed appointments are the behavioural side of treatment resistance and must be counted
against a schedule, not inferred from gaps in session numbers. With `columns.attendance` the
session table holds one row per scheduled session; missed rows (cancelled, no-show) leave the
session table before any other check, so every existing derivation (session_index, weeks,
dropout, alliance, symptoms) sees attended rows only, exactly as without the role. The count form
(`columns.missed_before`, e.g. in a wide export) says on each attended row how many scheduled
sessions were missed since the previous one. Both forms give `results/clean/schedule.parquet`:
one row per scheduled session in schedule order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from alliance.clean.checks import code_series
from alliance.clean.problems import FILE, ROW, Problems
from alliance.config import code_text
from alliance.settings import ColumnSettings

MISSED = ("cancelled", "no_show")
# Session values a missed row cannot have: a missed session was not rated.
SCORED = ("symptom", "suicidality", "self_report_symptom", "doses_taken", "doses_prescribed",
          "adherence")  # fmt: skip
SCHEDULE_COLUMNS = ("patient", "slot", "session", "date", "status", "missed",
                    "last_attended_index", "after_last_attended")  # fmt: skip


def split_missed(
    s: pd.DataFrame,
    columns: ColumnSettings,
    coding: Mapping[str, str],
    problems: Problems,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(attended rows, missed rows) of the mapped session table.

    A row without an attendance code is attended. Unknown codes are `unknown_code` problems; a
    missed row with a score is a `missed_with_scores` problem; a missed row needs a whole
    session number (the scheduled session it was booked as; a later attended row may carry the
    same number when the session was rebooked)."""
    if "attendance" not in s:
        return s, pd.DataFrame(columns=[ROW, FILE, "patient", "session", "status"])
    mapping = {code_text(code): status for code, status in coding.items()}
    codes = code_series(s["attendance"])
    unknown = codes.notna() & ~codes.isin(set(mapping))
    s = problems.flag(
        s.assign(attendance=codes), unknown, "unknown_code",
        f"attendance code is not in codings.attendance (known: {', '.join(sorted(mapping))})",
        column="attendance", source_column=columns.attendance,
    )  # fmt: skip
    status = s["attendance"].map(mapping).fillna("attended")
    missed = status.isin(MISSED)
    sources = s.attrs.get("sources", {})
    scored = [c for c in s.columns if c in SCORED or str(c).startswith("item_")]
    for col in scored:
        s = problems.flag(
            s, missed & s[col].notna(), "missed_with_scores",
            "a missed session (cancelled or no-show) carries a score: code it attended, or "
            "blank the score", column=col, source_column=sources.get(col, col),
        )  # fmt: skip
        missed = missed.reindex(s.index)
    status = status.reindex(s.index)
    gone = missed & (s["session"].isna() | (s["session"] % 1 != 0) | (s["session"] < 0))
    s = problems.flag(
        s, gone, "bad_session", "session number must be a whole number >= 0 (the scheduled "
        "session a missed row was booked as)", column="session", source_column=columns.session,
    )  # fmt: skip
    keep = s.index.difference(s.index[gone.reindex(s.index, fill_value=False)])
    s, missed, status = s.loc[keep], missed.loc[keep], status.loc[keep]
    cols = [ROW, FILE, "patient", "session", *(["date"] if "date" in s else [])]
    out = s.loc[missed, cols].assign(status=status[missed])
    out["session"] = out["session"].astype("int64")
    attended = s.loc[~missed].drop(columns=["attendance"])
    attended.attrs = s.attrs
    return attended, out


def schedule_table(s: pd.DataFrame, missed: pd.DataFrame) -> pd.DataFrame:
    """One row per scheduled session (attended and missed) in schedule order, per patient.

    Order: session number, then missed rows before the attended row of the same number (a
    rebooked session), then date. `last_attended_index` is the session_index of the last
    attended session before the slot (0: none), so a slot can be aligned with the alliance known
    before it; `after_last_attended` marks slots after the patient's final attended session."""
    att = s[["patient", "session", "session_index", *(["date"] if "date" in s else [])]]
    att = att.assign(status="attended")
    rows = [att]
    if "missed_before" in s:  # count form: k missed slots just before an attended session
        k = s["missed_before"].fillna(0).clip(lower=0).astype("int64")
        rep = s.loc[s.index.repeat(k), ["patient", "session"]]
        rows.append(rep.assign(status="missed"))
    if len(missed):
        rows.append(missed.drop(columns=[ROW, FILE], errors="ignore"))
    sched = pd.concat(rows, ignore_index=True)
    if "date" not in sched:
        sched["date"] = pd.NaT
    sched["_attended"] = sched["status"].eq("attended")
    sched = sched.sort_values(
        ["patient", "session", "_attended", "date"], kind="stable", na_position="first"
    ).reset_index(drop=True)
    g = sched.groupby("patient", sort=False)
    sched["slot"] = g.cumcount() + 1
    sched["missed"] = (~sched["_attended"]).astype("int64")
    seen = sched["session_index"].fillna(0).groupby(sched["patient"]).cummax()
    sched["last_attended_index"] = (
        seen.groupby(sched["patient"]).shift(fill_value=0).astype("int64")
    )
    last = g["session_index"].transform("max").fillna(0)
    sched["after_last_attended"] = (sched["last_attended_index"] >= last).astype("int64")
    sched.loc[sched["_attended"], "after_last_attended"] = 0
    return sched[list(SCHEDULE_COLUMNS)]


def attendance_measures(
    s: pd.DataFrame, p: pd.DataFrame, schedule: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per session `missed_before` (missed since the previous attended session) and
    `missed_prior` (missed before this session in all); per patient `n_scheduled`, `n_missed`,
    `attendance_rate`, `longest_missed_run` (all up to the last attended session) and
    `missed_after_last` (missed after it: the dropout's no-shows, not counted in the rate)."""
    miss = schedule[schedule["missed"].eq(1)]
    before = miss[miss["after_last_attended"].eq(0)]
    runs = before.groupby(["patient", "last_attended_index"]).size()
    key = pd.MultiIndex.from_arrays([s["patient"], s["session_index"] - 1])
    s = s.copy()
    s["missed_before"] = runs.reindex(key).fillna(0).to_numpy(dtype="int64")
    s["missed_prior"] = s.groupby("patient")["missed_before"].cumsum().astype("int64")
    per = pd.DataFrame(
        {
            "n_missed": before.groupby("patient").size(),
            "longest_missed_run": runs.groupby(level="patient").max(),
            "missed_after_last": miss[miss["after_last_attended"].eq(1)].groupby("patient").size(),
        }
    )
    p = p.merge(per, left_on="patient", right_index=True, how="left")
    for col in per.columns:
        p[col] = p[col].fillna(0).astype("int64")
    started = p["n_sessions"] > 0
    p["n_scheduled"] = (p["n_sessions"] + p["n_missed"]).astype("int64")
    rate = p["n_sessions"] / p["n_scheduled"].where(started)
    p["attendance_rate"] = rate.astype(float)
    for col in ("n_missed", "longest_missed_run"):
        p[col] = p[col].astype("Int64").where(started, pd.NA)
    p.loc[~started, "n_scheduled"] = np.int64(0)
    return s, p
