"""`inspect_export`: read an export, detect its layout and guess every column's role.

The `Inspection` it returns is all that the summary and the starter config are made from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alliance.clean import readers
from alliance.clean.readers.stat import apply_labels
from alliance.config import load_schema
from alliance.onboard.content import (
    date_format,
    date_problem,
    guess_covariates,
    guess_id_by_content,
    guess_relapse,
    guess_status_by_codes,
    guess_suicide_item,
)
from alliance.onboard.guess import (
    Guess,
    Tables,
    apply_rules,
    guess_id,
    guess_session,
    guess_symptom,
    guess_traits,
)
from alliance.onboard.item_groups import ItemGroup, classify_groups, find_item_groups
from alliance.onboard.layout import Layout, resolve_layout
from alliance.onboard.profile import ColumnProfile, profile_columns
from alliance.onboard.resistance import guess_self_report
from alliance.onboard.vocabulary import Scale
from alliance.onboard.yamltext import is_templating_key, visible

SUICIDE_ITEM_MAX = 6  # no symptom scale's single item goes higher (MADRS items: 0-6)


@dataclass
class Inspection:
    """Everything `alliance init` learned from an export; `starter_config` turns it into YAML."""

    data_file: str
    patients_file: str | None
    layout: str  # long | wide
    layout_reason: str
    session_token: str | None
    n_rows: int
    n_patients: int
    n_patient_rows: int | None
    profiles: dict[str, ColumnProfile]  # keyed "table:column"
    candidates: dict[str, list[Guess]]
    chosen: dict[str, Guess]
    personality: dict[str, Guess]
    covariates: list[Guess]
    item_groups: list[ItemGroup]
    symptom_scale: Scale | None
    categorical: dict[str, list[str]]
    numeric_ranges: dict[str, tuple[float, float]]
    user_missing: dict[str, list]
    value_labels: list[str]
    suspicious: dict[str, list[float]]
    missing_code_clashes: dict[float, list[str]]
    notes: list[str] = field(default_factory=list)
    unmapped: dict[str, str] = field(default_factory=dict)  # role -> why its candidate was left
    date_format: str | None = None  # data.date_format for day/month dates (a TODO when unknown)
    date_format_why: str = ""

    @property
    def suggested_missing_codes(self) -> list[float]:
        """Suspicious codes that do not also occur as a real value elsewhere."""
        codes = {c for cs in self.suspicious.values() for c in cs}
        return sorted(c for c in codes if not self.missing_code_clashes.get(c))


def inspect_export(data_file: str | Path, patients_file: str | Path | None = None) -> Inspection:
    """Read an export (and optional patient table) and guess the role of every column."""
    data_file = str(data_file)
    patients_path = None if patients_file is None else str(patients_file)
    # Codes stay codes (items, flags); labels are applied below where the pipeline applies them.
    reads = [readers.read_table(data_file, apply_value_labels=False)] + (
        [readers.read_table(patients_path, apply_value_labels=False)] if patients_path else []
    )
    # Per-column masking notes are summarised from user_missing instead.
    notes = [
        n for r in reads for n in r.notes if "user-missing" not in n and "missing code" not in n
    ]
    frame = reads[0].frame
    pat_frame = reads[1].frame if patients_path else None
    raw_prof = profile_columns(frame, "sessions", None)
    id_cands = guess_id(
        raw_prof, profile_columns(pat_frame, "patients", None) if pat_frame is not None else {}
    ) or guess_id_by_content(raw_prof, len(frame))
    id_col = id_cands[0].column if id_cands else None
    lay, layout_notes = resolve_layout(frame, pat_frame, id_col, data_file)
    notes += layout_notes
    sessions, pat_frame = lay.sessions, lay.patients
    if pat_frame is not None and id_col is not None and id_col not in pat_frame.columns:
        notes.append(
            f"the patients file has no ID column '{visible(id_col)}' (the pipeline joins on the "
            "same name): rename its ID column"
        )
    pid = id_col if pat_frame is not None and id_col in pat_frame.columns else None
    s_prof = profile_columns(sessions, "sessions", id_col)
    p_prof = profile_columns(pat_frame, "patients", pid) if pat_frame is not None else {}
    labels = _labels_by_name(reads, lay)
    _attach_labelled(s_prof, sessions, labels, id_col)
    if pat_frame is not None:
        _attach_labelled(p_prof, pat_frame, labels, pid)
    n_patients = int(sessions[id_col].nunique()) if id_col else len(sessions)

    groups = find_item_groups(sessions, s_prof)
    classify_groups(groups)
    t = Tables(s_prof, p_prof, id_col, n_patients)
    t.frames = {"sessions": sessions} | ({"patients": pat_frame} if pat_frame is not None else {})
    t.taken = {c for g in groups for c in g.columns.values()}
    cands = _candidates(t, lay.layout, id_cands, groups, notes)
    scale = cands.pop("_scale")
    chosen: dict[str, Guess] = {}
    unmapped: dict[str, str] = {}
    for role, guesses in cands.items():  # in priority order: a column fills one role only
        why: list[str] = []
        for g in (g for g in guesses if g.column not in t.taken):
            why.append(_unusable(role, g, s_prof if g.table == "sessions" else p_prof) or "")
            if not why[-1]:
                chosen[role] = g
                t.taken.add(g.column)
                break
        if role not in chosen and any(why):
            unmapped[role] = "; ".join(w for w in why if w)
    fmt, fmt_why = _decide_date_format(chosen, s_prof, p_prof, unmapped, t)
    personality = guess_traits(t)
    covariates = guess_covariates(t)
    t.taken |= {g.column for g in covariates}
    if "suicidality" not in chosen and scale is not None:
        found = _suicide_item(t, scale, groups)
        if found:
            chosen["suicidality"] = found
            unmapped.pop("suicidality", None)
    all_profiles = {f"{p.table}:{p.name}": p for p in [*s_prof.values(), *p_prof.values()]}
    notes += _unwritable_codes(chosen, all_profiles)
    notes += list(dict.fromkeys(unmapped.values()))
    suspicious: dict[str, list[float]] = {g.pattern: g.suspicious for g in groups if g.suspicious}
    grouped_cols = {c for g in groups for c in g.columns.values()}
    for p in [*s_prof.values(), *p_prof.values()]:
        if p.suspicious and p.name not in grouped_cols:
            suspicious[p.name] = p.suspicious
    clashes = _code_clashes(suspicious, groups, sessions, pat_frame)
    user_missing = {k: v for r in reads for k, v in r.user_missing.items()}
    shown = [p.as_read(True) for p in all_profiles.values()]
    return Inspection(
        data_file=data_file,
        patients_file=patients_path,
        layout=lay.layout,
        layout_reason=lay.reason,
        session_token=lay.token,
        n_rows=len(sessions),
        n_patients=n_patients,
        n_patient_rows=len(reads[1].frame) if patients_path else None,
        profiles=all_profiles,
        candidates=cands,
        chosen=chosen,
        personality=personality,
        covariates=covariates,
        item_groups=groups,
        symptom_scale=scale,
        categorical={p.name: p.codes for p in shown if p.codes and p.kind == "text"},
        numeric_ranges={
            p.name: (p.low, p.high) for p in all_profiles.values() if p.low is not None
        },  # fmt: skip
        user_missing=user_missing,
        value_labels=sorted({k for r in reads for k in r.value_labels}),
        suspicious=suspicious,
        missing_code_clashes=clashes,
        notes=notes,
        unmapped=unmapped,
        date_format=fmt,
        date_format_why=fmt_why,
    )


def _candidates(
    t: Tables, layout: str, id_cands: list[Guess], groups: list[ItemGroup], notes: list[str]
) -> dict:
    """Candidates per role in priority order (name rules first, then content rules); the
    symptom scale rides along under `_scale`."""
    cands: dict = {"patient": id_cands}
    cands["session"] = guess_session(t) if layout == "long" and t.id_col else []
    cands.update(apply_rules(t))
    times, events, rel_notes = guess_relapse(t)
    notes += rel_notes
    for role, extra in (("relapse_time", times), ("relapse_event", events),
                        ("status", guess_status_by_codes(t))):  # fmt: skip
        have = {g.column for g in cands[role]}
        cands[role] += [g for g in extra if g.column not in have]
    cands["symptom"], cands["_scale"] = guess_symptom(t, groups)
    cands["self_report_symptom"] = guess_self_report(t, cands["symptom"])  # after the symptom
    return cands


@functools.cache
def declares_date_format() -> bool:
    """Whether the config schema has `data.date_format` (a day/month order to declare)."""
    return "date_format" in load_schema()["properties"]["data"]["properties"]


def _unusable(role: str, g: Guess, profiles: dict[str, ColumnProfile]) -> str | None:
    """Why a candidate cannot fill its role as the data stand (dates the pipeline would misread;
    a suicidality column whose values are a total, not an item)."""
    p = profiles.get(g.column)
    if p is None:
        return None
    if role in ("date", "consent_date"):
        return date_problem(p, declares_date_format())
    if role == "suicidality" and (p.high or 0) > SUICIDE_ITEM_MAX:
        return (
            f"'{visible(p.name)}' has a suicide-like name but values up to {p.high:g}: a total, "
            "not the item"
        )
    return None


def _decide_date_format(
    chosen: dict[str, Guess],
    s_prof: dict[str, ColumnProfile],
    p_prof: dict[str, ColumnProfile],
    unmapped: dict[str, str],
    t: Tables,
) -> tuple[str | None, str]:
    """`data.date_format` for the chosen date columns (when the config can declare one); a
    date column no common format reads is unmapped again."""
    if not declares_date_format():
        return None, ""
    roles = [r for r in ("date", "consent_date") if r in chosen]
    profs = {r: (s_prof if chosen[r].table == "sessions" else p_prof)[chosen[r].column]
             for r in roles}  # fmt: skip
    fmt, why, dropped = date_format(list(profs.values()))
    for role in roles:
        if profs[role].name in dropped:
            unmapped[role] = (
                f"'{visible(profs[role].name)}' writes day and month in another order than the "
                f"other dates ({fmt}): data.date_format is one for all dates"
            )
            t.taken.discard(chosen.pop(role).column)
    return fmt, why


def _suicide_item(t: Tables, scale: Scale, groups: list[ItemGroup]) -> Guess | None:
    """The scale's suicide item: from its symptom item group, else one column named for it."""
    for g in groups:
        col = g.columns.get(scale.suicide_item)
        if g.use == "symptoms" and col:
            return Guess(col, f"{scale.label} item {scale.suicide_item} is the suicide item")
    return guess_suicide_item(t, scale)


def _labels_by_name(reads: list, lay: Layout) -> dict[str, dict]:
    """Value labels by the name the guessers see: a wide column's labels under its long name."""
    labels: dict[str, dict] = {}
    for r in reversed(reads):
        labels.update(r.value_labels)
    if lay.fit is not None:
        for col, (stem, _) in lay.fit.split.items():
            if col in labels:
                labels.setdefault(stem, labels[col])
    return labels


def _attach_labelled(
    profiles: dict[str, ColumnProfile],
    frame: pd.DataFrame,
    labels: dict[str, dict],
    id_col: str | None,
) -> None:
    """Profile labelled columns a second time with their labels applied, as the clean stage
    reads them for a categorical role."""
    cols = [c for c in frame.columns if str(c) in labels and str(c) != id_col]
    if not cols:
        return
    keep = ([id_col] if id_col else []) + cols
    read = readers.TableRead(frame=pd.DataFrame(), source="", format="spss",
                             value_labels={c: labels[str(c)] for c in cols})  # fmt: skip
    labelled = apply_labels(frame[keep].copy(), read)
    for name, prof in profile_columns(labelled, profiles[str(cols[0])].table, id_col).items():
        if name in profiles and name != id_col:
            prof.value_labels = labels[name]
            profiles[name].labelled = prof


def _unwritable_codes(chosen: dict[str, Guess], profiles: dict[str, ColumnProfile]) -> list[str]:
    """Notes for arm/modality/status codes that cannot be config keys (templating markers)."""
    notes = []
    for role in ("arm", "modality", "status"):
        g = chosen.get(role)
        prof = profiles.get(f"{g.table}:{g.column}") if g else None
        for code in (prof.codes or []) if prof else []:
            if is_templating_key(code):
                notes.append(
                    f"{role} code '{visible(code)}' cannot be a key of codings.{role} (the config "
                    "reader refuses templating markers): recode it in the export; until then its "
                    f"rows are reported as unknown {role} codes"
                )
    return notes


def _code_clashes(
    suspicious: dict[str, list[float]],
    groups: list[ItemGroup],
    sessions: pd.DataFrame,
    patients: pd.DataFrame | None,
) -> dict[float, list[str]]:
    """Columns where a suspicious code is an ordinary value (missing_codes hits every column)."""
    codes = sorted({c for cs in suspicious.values() for c in cs})
    owner = {c: g.pattern for g in groups for c in g.columns.values()}
    clashes: dict[float, list[str]] = {}
    for frame in (sessions, patients):
        if frame is None:
            continue
        for col in frame.columns:
            values = frame[col].dropna()
            flagged = suspicious.get(owner.get(col, col), [])
            for code in codes:
                if code in flagged:
                    continue
                if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                    hit = bool((values == code).any())
                else:
                    texts = {f"{code:g}", repr(float(code))}
                    hit = bool(values.astype("string").str.strip().isin(texts).any())
                if hit and col not in clashes.get(code, []):
                    clashes.setdefault(code, []).append(str(col))
    return clashes
