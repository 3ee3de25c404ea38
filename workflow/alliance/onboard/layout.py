"""Layout detection: long (IDs repeat) or wide (one row per patient, session-numbered columns).

The session token of a wide table is found from the column names (`numbering.session_tokens`):
the number that varies across otherwise identical names, in any case and at any place
(`HAMD_S01`, `WAIp_s03_i07`, `Visit3_WAI_12`, `HAMD.V02`). A wide table is reshaped to long here
with the pipeline's own reshape, so the guessers always see session rows named as the config
will name them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alliance.clean import reshape
from alliance.errors import InputError
from alliance.onboard.numbering import TokenFit, session_tokens
from alliance.onboard.yamltext import visible

TRIED = 5  # candidate tokens tried with the reshape before giving up


@dataclass
class Layout:
    """The export as long session rows plus patient-level rows, and how it was laid out."""

    sessions: pd.DataFrame  # long
    patients: pd.DataFrame | None  # patients file and/or the wide table's patient-level part
    layout: str
    reason: str
    token: str | None = None
    fit: TokenFit | None = None  # how the token splits the wide column names


def _span(sessions: list[int]) -> str:
    """`1–4` for consecutive sessions, else the list."""
    return (
        f"{sessions[0]}–{sessions[-1]}"
        if sessions == list(range(sessions[0], sessions[-1] + 1))
        else ", ".join(map(str, sessions))
    )


def _reason(fit: TokenFit) -> str:
    """Why the table reads as wide, with one column's split as the example."""
    name, (stem, session) = next((c, v) for c, v in fit.split.items() if v[0] != c)
    return (
        f"one row per patient; {fit.repeated} columns repeat over sessions "
        f"{_span(fit.sessions)}, numbered by the session token {visible(fit.token)} "
        f"(e.g. {visible(name)} = {visible(stem)} at session {session})"
    )


def _ambiguity(fits: list[TokenFit], chosen: TokenFit) -> list[str]:
    """A note when another token explains the names as well (two unmarked numbers)."""
    rivals = [f for f in fits if f is not chosen and f.score[:2] == chosen.score[:2]]
    if not rivals:
        return []
    return [
        f"column names carry two numbers and no word marks the session (s, visit, t, wave): "
        f"the session was taken from {visible(chosen.token)} (sessions "
        f"{_span(chosen.sessions)}); if that number counts items instead, set "
        f"data.session_token: {visible(rivals[0].token)}"
    ]


def _left_behind(fits: list[TokenFit], chosen: TokenFit) -> list[str]:
    """A note for columns another token reads as the same sessions but the chosen one leaves
    patient-level (two naming schemes in one export)."""
    left: list[str] = []
    for f in fits:
        if f is chosen or not set(f.sessions) <= set(chosen.sessions):
            continue
        counts: dict[str, int] = {}
        for stem, _ in f.split.values():
            counts[stem] = counts.get(stem, 0) + 1
        left += [c for c, (stem, _) in f.split.items()
                 if counts[stem] > 1 and c not in chosen.split and c not in left]  # fmt: skip
    if not left:
        return []
    shown = ", ".join(visible(c) for c in left[:4]) + (", …" if len(left) > 4 else "")
    return [
        f"{len(left)} column(s) look session-numbered but the session token "
        f"{visible(chosen.token)} does not match them, so they are read as patient-level: "
        f"{shown}; rename them or set data.session_token to match both"
    ]


def resolve_layout(
    frame: pd.DataFrame, pat_frame: pd.DataFrame | None, id_col: str | None, source: str
) -> tuple[Layout, list[str]]:
    """Long when IDs repeat; wide (reshaped to long) when IDs are unique and a number in the
    column names counts sessions; otherwise long with a note."""
    notes: list[str] = []
    if id_col is None:
        return Layout(frame, pat_frame, "long", "no patient ID column recognised"), notes
    if frame[id_col].duplicated().any():
        return Layout(frame, pat_frame, "long", f"patient IDs in '{visible(id_col)}' repeat"), notes
    fits = session_tokens([str(c) for c in frame.columns if str(c) != id_col])
    refused: list[str] = []
    for fit in fits[:TRIED]:
        try:
            sessions, patient_part = reshape.wide_to_long(
                frame, id_column=id_col, session_token=fit.token, source=source
            )
        except InputError as exc:
            refused.append(f"{visible(fit.token)}: {visible(exc.args[0] if exc.args else exc)}")
            continue
        if pat_frame is not None and id_col in pat_frame.columns:
            dup = [c for c in pat_frame.columns if c in patient_part.columns and c != id_col]
            patient_part = patient_part.merge(pat_frame.drop(columns=dup), on=id_col, how="outer")
        notes += _ambiguity(fits, fit) + _left_behind(fits, fit)
        return Layout(sessions, patient_part, "wide", _reason(fit), fit.token, fit), notes
    notes.append(
        "the data file has one row per patient and no number in its column names repeats over "
        "sessions (like hamd_s1, HAMD_S01, Visit3_WAI_12, wai_07_t3): if it is wide, set "
        "data.session_token"
        + (
            f" (tokens refused by the reshape: {'; '.join(refused)})" if refused else ""
        )  # fmt: skip
    )
    return Layout(frame, pat_frame, "long", "one row per patient, no session columns"), notes
