"""`inspect_export`: read an export, detect its layout and guess every column's role.

The `Inspection` it returns is all that the summary and the starter config are made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alliance.clean import readers
from alliance.onboard.guess import (
    Guess,
    Tables,
    apply_rules,
    guess_id,
    guess_session,
    guess_symptom,
    guess_traits_and_covariates,
)
from alliance.onboard.item_groups import ItemGroup, classify_groups, find_item_groups
from alliance.onboard.layout import resolve_layout
from alliance.onboard.profile import ColumnProfile, profile_columns
from alliance.onboard.vocabulary import Scale
from alliance.onboard.yamltext import is_templating_key, visible


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

    @property
    def suggested_missing_codes(self) -> list[float]:
        """Suspicious codes that do not also occur as a real value elsewhere."""
        codes = {c for cs in self.suspicious.values() for c in cs}
        return sorted(c for c in codes if not self.missing_code_clashes.get(c))


def inspect_export(data_file: str | Path, patients_file: str | Path | None = None) -> Inspection:
    """Read an export (and optional patient table) and guess the role of every column."""
    data_file = str(data_file)
    patients_path = None if patients_file is None else str(patients_file)
    reads = [readers.read_table(data_file)] + (
        [readers.read_table(patients_path)] if patients_path else []
    )
    # Per-column masking notes are summarised from user_missing instead.
    notes = [
        n for r in reads for n in r.notes if "user-missing" not in n and "missing code" not in n
    ]
    frame = reads[0].frame
    pat_frame = reads[1].frame if patients_path else None
    id_cands = guess_id(
        profile_columns(frame, "sessions", None),
        profile_columns(pat_frame, "patients", None) if pat_frame is not None else {},
    )
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
    n_patients = int(sessions[id_col].nunique()) if id_col else len(sessions)

    groups = find_item_groups(sessions, s_prof)
    classify_groups(groups)
    t = Tables(s_prof, p_prof, id_col, n_patients)
    t.taken = {c for g in groups for c in g.columns.values()}
    cands: dict[str, list[Guess]] = {"patient": id_cands}
    cands["session"] = guess_session(t) if lay.layout == "long" and id_col else []
    cands.update(apply_rules(t))
    cands["symptom"], scale = guess_symptom(t, groups)
    chosen: dict[str, Guess] = {}
    for role, guesses in cands.items():  # in priority order: a column fills one role only
        free = [g for g in guesses if g.column not in t.taken]
        if free:
            chosen[role] = free[0]
            t.taken.add(free[0].column)
    personality, covariates = guess_traits_and_covariates(t)
    if "suicidality" not in chosen and scale is not None:
        for g in groups:
            col = g.columns.get(scale.suicide_item)
            if g.use == "symptoms" and col:
                why = f"{scale.label} item {scale.suicide_item} is the suicide item"
                chosen["suicidality"] = Guess(col, why)
    all_profiles = {f"{p.table}:{p.name}": p for p in [*s_prof.values(), *p_prof.values()]}
    notes += _unwritable_codes(chosen, all_profiles)
    suspicious: dict[str, list[float]] = {g.pattern: g.suspicious for g in groups if g.suspicious}
    grouped_cols = {c for g in groups for c in g.columns.values()}
    for p in [*s_prof.values(), *p_prof.values()]:
        if p.suspicious and p.name not in grouped_cols:
            suspicious[p.name] = p.suspicious
    clashes = _code_clashes(suspicious, groups, sessions, pat_frame)
    user_missing = {k: v for r in reads for k, v in r.user_missing.items()}
    labels = sorted({k for r in reads for k in r.value_labels})
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
        categorical={
            p.name: p.codes for p in all_profiles.values() if p.codes and p.kind == "text"
        },
        numeric_ranges={
            p.name: (p.low, p.high) for p in all_profiles.values() if p.low is not None
        },  # fmt: skip
        user_missing=user_missing,
        value_labels=labels,
        suspicious=suspicious,
        missing_code_clashes=clashes,
        notes=notes,
    )


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
