"""Layout detection: long (IDs repeat) or wide (one row per patient, session-numbered columns).

A wide table is reshaped to long here, so the guessers always see session rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from alliance.clean import reshape
from alliance.onboard.yamltext import visible

# Session tokens tried on one-row-per-patient tables, the pipeline's default first.
SESSION_TOKENS = (r"_s(\d+)$", r"[_.]sess(?:ion)?_?(\d+)$", r"_v(?:isit)?_?(\d+)$", r"_t(\d+)$")


@dataclass
class Layout:
    """The export as long session rows plus patient-level rows, and how it was laid out."""

    sessions: pd.DataFrame  # long
    patients: pd.DataFrame | None  # patients file and/or the wide table's patient-level part
    layout: str
    reason: str
    token: str | None = None


def resolve_layout(
    frame: pd.DataFrame, pat_frame: pd.DataFrame | None, id_col: str | None, source: str
) -> tuple[Layout, list[str]]:
    """Long when IDs repeat; wide (reshaped to long) when IDs are unique and columns carry a
    session token; otherwise long with a note."""
    notes: list[str] = []
    if id_col is None:
        return Layout(frame, pat_frame, "long", "no patient ID column recognised"), notes
    if frame[id_col].duplicated().any():
        return Layout(frame, pat_frame, "long", f"patient IDs in '{visible(id_col)}' repeat"), notes
    token = next(
        (t for t in SESSION_TOKENS if sum(bool(re.search(t, str(c))) for c in frame) >= 2), None
    )
    if (
        token is None
        or reshape.detect_layout(
            frame, id_column=id_col, session_column="", session_token=token, source=source
        )
        != "wide"
    ):
        notes.append(
            "the data file has one row per patient and no column matched a session token "
            f"({', '.join(SESSION_TOKENS)}): if it is wide, set data.session_token"
        )
        return Layout(frame, pat_frame, "long", "one row per patient, no session columns"), notes
    sessions, patient_part = reshape.wide_to_long(
        frame, id_column=id_col, session_token=token, source=source
    )
    if pat_frame is not None and id_col in pat_frame.columns:
        dup = [c for c in pat_frame.columns if c in patient_part.columns and c != id_col]
        patient_part = patient_part.merge(pat_frame.drop(columns=dup), on=id_col, how="outer")
    reason = f"one row per patient and columns carrying the session token {token}"
    return Layout(sessions, patient_part, "wide", reason, token), notes
