"""`alliance init`: inspect a foreign trial export and write a starter config for review.

Every guess follows a short, explainable rule (a column's name plus what its values look like)
and is written with a `# guessed: <why> — review` comment. What cannot be guessed is written as a
string starting with `TODO`, which `validate_config` rejects: nobody runs an unread config.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from alliance import files
from alliance.clean import readers, reshape
from alliance.errors import InputError

DEFAULT_OUT = "alliance.yaml"
INSTRUMENTS_DIR = "config/instruments"  # the schema default
MAX_LEVELS = 12  # columns with at most this many distinct values are reported as categorical
MAX_SESSION = 60
# Session tokens tried on one-row-per-patient tables, the pipeline's default first.
SESSION_TOKENS = (r"_s(\d+)$", r"[_.]sess(?:ion)?_?(\d+)$", r"_v(?:isit)?_?(\d+)$", r"_t(\d+)$")
# Codes that often mean "missing" (SPSS/SAS habits). 9 only counts inside an item group, where a
# 1-5 scale makes it impossible; in a single column 9 is too often a real value.
GROUP_CODES = (9, 99, 999, -9, -99, -999)
SINGLE_CODES = (99, 999, -9, -99, -999)
_DATE_TEXT = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T][\d:.]+)?$|^\d{1,2}[./]\d{1,2}[./]\d{2,4}$")
_TRAILING_NUMBER = re.compile(r"^(.*?\D)(\d+)$")

# Name words: a token of the column name must equal a word, or start with it when it ends in `*`.
ID = frozenset({"id", "pid", "ptid", "patid", "subject*", "subj", "patient*", "pat", "case",
                "code", "participant*", "person", "proband*", "record"})  # fmt: skip
SESSION_NAMES = (
    frozenset({"session*", "sess", "ses", "visit*", "sitzung*", "termin*", "occasion*", "besuch*",
               "seance*", "assessment*"}),
    frozenset({"wave*", "time", "timepoint*", "tp", "t"}),
    frozenset({"week*", "wk", "woche*"}),
)  # fmt: skip
THERAPIST = frozenset({"therapist*", "therapeut*", "clinician*", "counsel*", "provider*",
                       "behandler*", "ther"})  # fmt: skip
SITE = frozenset({"site*", "centre*", "center*", "clinic", "location*", "standort*", "zentrum*"})
ARM = frozenset({"arm", "group*", "grp", "condition*", "cond", "treat", "treatment", "tx",
                 "allocation", "alloc", "randomi*", "gruppe*", "bedingung*"})  # fmt: skip
MODALITY = frozenset({"modality*", "mode", "setting*", "format", "delivery", "tele*", "video*",
                      "remote", "online"})  # fmt: skip
STATUS = frozenset({"status", "completion", "completer*", "disposition", "termination"})
CONSENT = frozenset({"consent*", "random*", "enrol*", "inclusion*", "einwillig*", "baseline",
                     "screen*"})  # fmt: skip
BASELINE = frozenset({"baseline", "bl", "base", "pre", "screen*", "intake"})
RELAPSE = frozenset({"relaps*", "recur*", "rezidiv*", "rueckfall*"})
TIME = frozenset({"time", "week*", "wk", "day*", "month*", "t", "fu", "follow*", "duration",
                  "surv*"})  # fmt: skip
SUICIDE = frozenset({"suicid*", "suizid*"})
AGENCY = frozenset({"agency", "agentic", "dominance", "dom"})
DROP = frozenset({"drop*"})
DATE_NAMES = frozenset({"date", "datum", "visit*", "session*"})
RATER = frozenset({"rater"})
TRAITS = {"agreeab": "agreeableness", "extravers": "extraversion", "extrovers": "extraversion",
          "openness": "openness", "conscientious": "conscientiousness",
          "neurotic": "neuroticism"}  # fmt: skip
COVARIATES = {"age": "age", "sex": "sex", "gender": "gender", "educ": "education"}
ALLIANCE = frozenset({"wai*", "allian*", "haq*", "calpas*"})
GENERIC_SYMPTOM = frozenset({"symptom*", "score", "total", "sum", "severity"})
RATER_WORDS = {
    "patient": frozenset({"p", "pt", "pat", "patient", "client", "c", "cl", "self"}),
    "therapist": frozenset({"t", "th", "ther", "therapist", "tr", "clinician", "counsel*"}),
    "observer": frozenset({"o", "obs", "observer", "judge", "rater"}),
}


@dataclass(frozen=True)
class Scale:
    """A symptom scale the rules know: its total range and a conventional remission cut-off."""

    label: str
    words: frozenset[str]
    low: int
    high: int
    cutoff: int | None
    instrument: str | None  # shipped item key (config/instruments), for scoring items
    n_items: int
    item_high: int
    suicide_item: int
    suicide_max: int


SCALES = (
    Scale("HAM-D 17", frozenset({"hamd", "hdrs", "hrsd", "ham", "hamilton"}), 0, 52, 7,
          "hamd17", 17, 4, 3, 4),
    Scale("BDI-II", frozenset({"bdi"}), 0, 63, 13, None, 21, 3, 9, 3),
    Scale("PHQ-9", frozenset({"phq"}), 0, 27, 4, None, 9, 3, 9, 3),
    Scale("MADRS", frozenset({"madrs"}), 0, 60, None, None, 10, 6, 10, 6),
)  # fmt: skip
SYMPTOM_NAMES = GENERIC_SYMPTOM.union(*(s.words for s in SCALES))
# (items, highest value) -> instrument; patient/therapist forms of the WAI-SR differ.
ALLIANCE_FORMS = {(12, 5): "wai_sr", (12, 7): "wai_s", (36, 7): "wai", (19, 6): "haq2",
                  (24, 7): "calpas"}  # fmt: skip


# ------------------------------------------------------------------------------------- results
@dataclass
class Guess:
    """A column proposed for a role, with the rule that picked it."""

    column: str
    reason: str
    table: str = "sessions"


@dataclass
class ColumnProfile:
    """What one column's values look like."""

    name: str
    table: str
    kind: str  # integer, number, date, text, empty
    n_distinct: int
    n_missing: int
    low: float | None = None
    high: float | None = None
    codes: list[str] | None = None  # distinct codes as the pipeline will compare them
    constant_within_patient: bool | None = None
    increasing_within_patient: bool | None = None
    suspicious: list[float] = field(default_factory=list)  # likely missing codes (not in range)


@dataclass
class ItemGroup:
    """Columns sharing a stem and a trailing item number (`wai_p_01..12`, `WAI_P_i07`, `item7`)."""

    stem: str
    pattern: str  # regex for config: group 1 = item number
    columns: dict[int, str]
    low: float | None  # range of the values, suspicious codes excluded
    high: float | None
    suspicious: list[float] = field(default_factory=list)
    use: str | None = None  # "patient" / "therapist" / "observer" / "rater?" / "symptoms"
    instrument: str | None = None
    reason: str = ""

    @property
    def label(self) -> str:
        first, last = min(self.columns), max(self.columns)
        return f"{self.columns[first]}..{self.columns[last]}"


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


# ------------------------------------------------------------------------------------- helpers
def tokens(name: str) -> list[str]:
    """Lower-case words of a name: `PatientID` -> patient, id; `WAI_P_i07` -> wai, p, i, 07."""
    out: list[str] = []
    for part in re.split(r"[\W_]+", str(name)):
        out += re.findall(r"\d+|[A-Z]+(?![a-z])|[A-Z]?[^\W\d_A-Z]+", part)
    return [t.lower() for t in out if t]


def _match(toks: list[str], words: frozenset[str]) -> bool:
    """A token equals a word, or starts with a word written with a trailing `*`."""
    return any(t == w or (w.endswith("*") and t.startswith(w[:-1])) for t in toks for w in words)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _span(p: ColumnProfile) -> str:
    return f"{_fmt(p.low)}–{_fmt(p.high)}"


def _binary(p: ColumnProfile) -> bool:
    """Whole numbers 0/1 only (a flag), whatever the dtype."""
    return p.kind == "integer" and p.low in (0.0, 1.0) and p.high in (0.0, 1.0)


def _codes(values: pd.Series) -> list[str]:
    """Distinct codes as the clean stage compares them (string, stripped), in natural order."""
    text = values.dropna().astype("string").str.strip()
    uniq = set(text[text != ""].tolist())

    def key(c: str) -> tuple[int, float, str]:
        try:
            return (0, float(c), c)
        except ValueError:
            return (1, 0.0, c)

    return sorted(uniq, key=key)


def _kind(values: pd.Series) -> str:
    present = values.dropna()
    if present.empty:
        return "empty"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    if pd.api.types.is_bool_dtype(values):
        return "integer"
    if pd.api.types.is_numeric_dtype(values):
        return "integer" if bool((present % 1 == 0).all()) else "number"
    if present.map(lambda v: isinstance(v, dt.date | pd.Timestamp)).all():
        return "date"  # SPSS/Stata dates arrive as Python date objects
    text = present.astype("string").str.strip()
    looks = text.str.match(_DATE_TEXT).mean() >= 0.9
    parses = looks and pd.to_datetime(text, errors="coerce", format="mixed").notna().mean() >= 0.9
    return "date" if parses else "text"


def _profile(frame: pd.DataFrame, table: str, id_col: str | None) -> dict[str, ColumnProfile]:
    out: dict[str, ColumnProfile] = {}
    repeated = id_col is not None and bool(frame[id_col].duplicated().any())
    for col in frame.columns:
        values = frame[col]
        kind = _kind(values)
        suspicious: list[float] = []
        if kind in ("integer", "number"):
            # Ranges, levels and flags describe the values without likely missing codes.
            _, suspicious = _split_codes(values.dropna().astype(float), SINGLE_CODES, group=False)
            values = values.mask(values.isin(suspicious))
            if suspicious:
                frame = frame.copy()
                frame[col] = values
        prof = ColumnProfile(str(col), table, kind, int(values.nunique()), int(values.isna().sum()))
        prof.suspicious = suspicious
        if kind in ("integer", "number") and values.notna().any():
            num = values.astype(float)
            prof.low, prof.high = float(num.min()), float(num.max())
        if prof.n_distinct <= MAX_LEVELS and kind in ("integer", "text"):
            prof.codes = _codes(values)
        if id_col is not None and col != id_col:
            prof.constant_within_patient = True
            if repeated:
                grouped = frame.groupby(id_col, sort=False)[col]
                prof.constant_within_patient = bool((grouped.nunique() <= 1).all())
                if kind == "integer":
                    diffs = grouped.diff().dropna()
                    prof.increasing_within_patient = bool(len(diffs)) and bool((diffs > 0).all())
        out[str(col)] = prof
    return out


# ---------------------------------------------------------------------------------- item groups
def _item_groups(frame: pd.DataFrame, profiles: dict[str, ColumnProfile]) -> list[ItemGroup]:
    stems: dict[str, dict[int, str]] = {}
    for col in frame.columns:
        m = _TRAILING_NUMBER.match(str(col))
        if m and profiles[str(col)].kind in ("integer", "number", "empty"):
            stems.setdefault(m.group(1), {})[int(m.group(2))] = str(col)
    groups = []
    for stem, cols in stems.items():
        if len(cols) < 3:
            continue
        values = pd.concat([frame[c] for c in cols.values()]).dropna().astype(float)
        rest, suspicious = _split_codes(values, GROUP_CODES, group=True)
        groups.append(
            ItemGroup(
                stem=stem,
                pattern=f"^{re.escape(stem)}(\\d+)$",
                columns=dict(sorted(cols.items())),
                low=float(rest.min()) if len(rest) else None,
                high=float(rest.max()) if len(rest) else None,
                suspicious=suspicious,
            )
        )
    return groups


def _split_codes(
    values: pd.Series, codes: tuple[int, ...], group: bool
) -> tuple[pd.Series, list[float]]:
    """Values without likely missing codes, and the codes found.

    A code is suspicious when it lies outside the range of the other values: negative among
    non-negative values, above a small item range by more than one step (group), or at least 1.5
    times a single column's maximum.
    """
    present = [float(c) for c in codes if (values == c).any()]
    rest = values[~values.isin(present)]
    if rest.empty or not present:
        return values, []
    lo, hi = float(rest.min()), float(rest.max())
    found = [
        c
        for c in present
        if (c < 0 <= lo)
        or (group and c > hi + 1 and hi <= 10)
        or (not group and c > 0 and hi > 0 and c >= 1.5 * hi)
    ]
    return values[~values.isin(found)], sorted(found)


def _classify_group(group: ItemGroup) -> None:
    """Alliance rater and instrument, or symptom items, from the stem's words and the values."""
    toks = tokens(group.stem)
    n, lo, hi = len(group.columns), group.low, group.high
    observed = f"{n} items, values {_fmt(lo)}–{_fmt(hi)}"
    if _match(toks, ALLIANCE):
        if n < 10 or lo is None or hi is None or lo < 1 or hi > 7:
            group.reason = f"alliance name but {observed} (need >= 10 items within 1–7)"
            return
        raters = [r for r, words in RATER_WORDS.items() if _match(toks, words)]
        group.use = raters[0] if len(raters) == 1 else "rater?"
        scale_max = 5 if hi <= 5 else (6 if hi <= 6 and n == 19 else 7)
        inst = ALLIANCE_FORMS.get((n, scale_max))
        if inst == "wai_sr":  # patient and therapist forms have their own keys
            inst = {"patient": "wai_sr", "therapist": "wai_sr_t"}.get(group.use)
        group.instrument = inst
        who = (
            f"rater word '{next(t for t in toks if _match([t], RATER_WORDS[group.use]))}'"
            if group.use in RATER_WORDS
            else "no single rater word (p/pt/patient/client, t/th/therapist, obs/observer)"
        )
        group.reason = f"alliance name, {observed}; {who}"
        return
    for scale in SCALES:
        if _match(toks, scale.words):
            group.use = "symptoms"
            fits = n == scale.n_items and (lo or 0) >= 0 and (hi or 0) <= scale.item_high
            group.instrument = scale.instrument if fits else None
            group.reason = f"{scale.label} name, {observed}"
            return
    group.reason = f"{observed}; name matches no known instrument"


# -------------------------------------------------------------------------------- role guessers
@dataclass(frozen=True)
class Rule:
    """Name words plus value conditions that make a column a candidate for a role."""

    role: str
    level: str  # "patient": patients file or constant within patient; "session": session table
    kinds: tuple[str, ...]
    names: tuple[frozenset[str], ...]  # each set must match a token of the name
    says: str
    avoid: frozenset[str] = frozenset()
    levels: tuple[int, int] | None = None  # allowed number of distinct values
    below_patients: bool = False  # fewer distinct values than patients
    binary: bool | None = None  # must (True) or must not (False) be a 0/1 flag
    varies: bool = False  # must vary within patient


CAT, NUM = ("text", "integer"), ("integer", "number")
RULES = (
    Rule("date", "session", ("date",), (DATE_NAMES,), "date-like name", varies=True),
    Rule("date", "session", ("date",), (), "dates", varies=True),
    Rule("week", "session", NUM, (SESSION_NAMES[2],), "week-like name", RELAPSE, varies=True),
    Rule("therapist", "patient", CAT, (THERAPIST,), "therapist-like name", below_patients=True,
         levels=(2, 10**9)),
    Rule("therapist", "patient", CAT, (RATER, ID), "rater ID name", below_patients=True,
         levels=(2, 10**9)),
    Rule("site", "patient", CAT, (SITE,), "site-like name", below_patients=True),
    Rule("arm", "patient", CAT, (ARM,), "arm-like name", STATUS, levels=(2, 6)),
    Rule("modality", "patient", CAT, (MODALITY,), "modality-like name", levels=(1, 6)),
    Rule("status", "patient", CAT, (STATUS,), "status-like name", levels=(1, 8)),
    Rule("status", "patient", ("integer",), (DROP,), "0/1 dropout flag",
         SESSION_NAMES[0] | SESSION_NAMES[2], binary=True),
    Rule("dropout_session", "patient", NUM, (DROP, SESSION_NAMES[0]), "dropout + session name"),
    Rule("consent_date", "patient", ("date",), (CONSENT,), "consent/randomisation date name"),
    Rule("baseline_symptom", "patient", NUM, (BASELINE, SYMPTOM_NAMES), "baseline + scale name"),
    Rule("suicidality", "session", NUM, (SUICIDE,), "suicide item name"),
    Rule("relapse_event", "patient", ("integer",), (RELAPSE,), "relapse name", binary=True),
    Rule("relapse_time", "patient", NUM, (RELAPSE, TIME), "relapse + time name (weeks expected)"),
    Rule("relapse_time", "patient", NUM, (RELAPSE,), "relapse name, not a 0/1 flag (weeks "
         "expected)", binary=False),
    Rule("agency", "patient", NUM, (AGENCY,), "agency/dominance name"),
)  # fmt: skip


@dataclass
class _Tables:
    sessions: dict[str, ColumnProfile]
    patients: dict[str, ColumnProfile]
    id_col: str | None
    n_patients: int
    taken: set[str] = field(default_factory=set)  # item columns and assigned columns

    def pool(self, level: str) -> list[ColumnProfile]:
        """Session columns, or patient-level ones: patients file first, then session columns
        constant within each patient (the clean stage collapses those)."""
        rows = [] if level == "session" else list(self.patients.values())
        have = {p.name for p in rows}
        rows += [
            p
            for p in self.sessions.values()
            if p.name not in have and (level == "session" or p.constant_within_patient)
        ]
        return [p for p in rows if p.name != self.id_col and p.name not in self.taken]


def _describe(p: ColumnProfile, n_patients: int) -> str:
    if p.kind == "date":
        what = "parses as dates"
    elif p.codes is not None and (p.kind == "text" or p.n_distinct <= 6):
        codes = p.codes or []
        what = f"{p.n_distinct} levels ({', '.join(codes[:6])}{', …' if len(codes) > 6 else ''})"
    elif p.kind == "text":
        what = f"{p.n_distinct} distinct values for {n_patients} patients"
    else:
        what = f"values {_span(p)}"
    where = "patient table" if p.table == "patients" else "session table"
    if p.table == "sessions" and p.constant_within_patient:
        where += ", constant within patient"
    return f"{what} ({where})"


def _apply_rules(t: _Tables) -> dict[str, list[Guess]]:
    """Candidates per role in rule order (earlier rules rank first)."""
    out: dict[str, list[Guess]] = {r.role: [] for r in RULES}
    for rule in RULES:
        for p in t.pool(rule.level):
            toks = tokens(p.name)
            if (
                p.kind not in rule.kinds
                or not all(_match(toks, words) for words in rule.names)
                or _match(toks, rule.avoid)
                or (rule.levels and not rule.levels[0] <= p.n_distinct <= rule.levels[1])
                or (rule.below_patients and p.n_distinct >= t.n_patients)
                or (rule.binary is not None and _binary(p) != rule.binary)
                or (rule.varies and p.constant_within_patient)
                or any(g.column == p.name for g in out[rule.role])
            ):
                continue
            reason = f"{rule.says}; {_describe(p, t.n_patients)}"
            out[rule.role].append(Guess(p.name, reason, p.table))
    return out


def _guess_id(profiles: dict[str, ColumnProfile], other: dict[str, ColumnProfile]) -> list[Guess]:
    """ID: text or whole-number column with many distinct values and an ID-like name (or the
    column the patients file shares), most distinct values first."""
    found: list[tuple[tuple, Guess]] = []
    other_roles = THERAPIST | SITE | ARM | STATUS | RATER
    for p in profiles.values():
        toks = tokens(p.name)
        if p.kind not in ("text", "integer") or p.n_distinct < 2 or _match(toks, other_roles):
            continue
        named, shared = _match(toks, ID), p.name in other
        if not named and not shared:
            continue
        why = [f"{p.kind}, {p.n_distinct} distinct values"]
        why += ["ID-like name"] if named else []
        why += ["also in the patients file"] if shared else []
        found.append(((not named, not shared, -p.n_distinct), Guess(p.name, "; ".join(why))))
    return [g for _, g in sorted(found, key=lambda x: x[0])]


def _guess_session(t: _Tables) -> list[Guess]:
    """Session: whole numbers 0-60 varying within patient; a session-like name ranks first, an
    unrecognised name qualifies only when values increase within every patient from 0 or 1."""
    found: list[tuple[tuple, Guess]] = []
    for p in t.pool("session"):
        if p.kind != "integer" or p.low is None or p.low < 0 or (p.high or 0) > MAX_SESSION:
            continue
        if p.constant_within_patient:
            continue
        toks = tokens(p.name)
        rank = next((i for i, words in enumerate(SESSION_NAMES) if _match(toks, words)), None)
        span = f"integers {_span(p)} varying within patient"
        if rank is not None:
            found.append(((rank, p.name), Guess(p.name, f"{span}; session-like name")))
        elif p.increasing_within_patient and p.low <= 1:
            why = f"{span}, increasing within every patient (name not recognised)"
            found.append(((len(SESSION_NAMES), p.name), Guess(p.name, why)))
    return [g for _, g in sorted(found, key=lambda x: x[0])]


def _guess_symptom(t: _Tables, groups: list[ItemGroup]) -> tuple[list[Guess], Scale | None]:
    """Symptom total: a session column named after a known scale (within its range ranks first),
    else one named symptom/score/total; the scale also comes from a symptom item group."""
    found: list[tuple[tuple, Guess, Scale | None]] = []
    for p in t.pool("session"):
        toks = tokens(p.name)
        if p.kind not in NUM or p.constant_within_patient:
            continue
        if _match(toks, BASELINE | ALLIANCE | SUICIDE):
            continue
        scale = next((s for s in SCALES if _match(toks, s.words)), None)
        if scale is not None:
            inside = (p.low or 0) >= scale.low and (p.high or 0) <= scale.high
            where = "within" if inside else "OUTSIDE"
            why = f"{scale.label} name, values {_span(p)} {where} {scale.low}–{scale.high}"
            found.append(((0, not inside, p.name), Guess(p.name, why), scale))
        elif _match(toks, GENERIC_SYMPTOM):
            found.append(((1, True, p.name), Guess(p.name, f"score name, values {_span(p)}"), None))
    found.sort(key=lambda x: x[0])
    if found:
        return [g for _, g, _ in found], found[0][2]
    for g in groups:
        if g.use == "symptoms":
            return [], next(s for s in SCALES if _match(tokens(g.stem), s.words))
    return [], None


# ------------------------------------------------------------------------------------ inspection
@dataclass
class _Layout:
    sessions: pd.DataFrame  # long
    patients: pd.DataFrame | None  # patients file and/or the wide table's patient-level part
    layout: str
    reason: str
    token: str | None = None


def _layout(
    frame: pd.DataFrame, pat_frame: pd.DataFrame | None, id_col: str | None, source: str
) -> tuple[_Layout, list[str]]:
    """Long when IDs repeat; wide (reshaped to long) when IDs are unique and columns carry a
    session token; otherwise long with a note."""
    notes: list[str] = []
    if id_col is None:
        return _Layout(frame, pat_frame, "long", "no patient ID column recognised"), notes
    if frame[id_col].duplicated().any():
        return _Layout(frame, pat_frame, "long", f"patient IDs in '{id_col}' repeat"), notes
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
        return _Layout(frame, pat_frame, "long", "one row per patient, no session columns"), notes
    sessions, patient_part = reshape.wide_to_long(
        frame, id_column=id_col, session_token=token, source=source
    )
    if pat_frame is not None and id_col in pat_frame.columns:
        dup = [c for c in pat_frame.columns if c in patient_part.columns and c != id_col]
        patient_part = patient_part.merge(pat_frame.drop(columns=dup), on=id_col, how="outer")
    reason = f"one row per patient and columns carrying the session token {token}"
    return _Layout(sessions, patient_part, "wide", reason, token), notes


def _classify_groups(groups: list[ItemGroup]) -> None:
    """Classify every group; a second group for the same rater (or symptoms) is left out."""
    used: set[str] = set()
    for g in groups:
        _classify_group(g)
        if g.use in RATER_WORDS or g.use == "symptoms":
            if g.use in used:
                g.reason += f"; an earlier group already fills {g.use}: left out"
                g.use, g.instrument = None, None
            used.add(g.use or "")


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
    id_cands = _guess_id(
        _profile(frame, "sessions", None),
        _profile(pat_frame, "patients", None) if pat_frame is not None else {},
    )
    id_col = id_cands[0].column if id_cands else None
    lay, layout_notes = _layout(frame, pat_frame, id_col, data_file)
    notes += layout_notes
    sessions, pat_frame = lay.sessions, lay.patients
    if pat_frame is not None and id_col is not None and id_col not in pat_frame.columns:
        notes.append(
            f"the patients file has no ID column '{id_col}' (the pipeline joins on the same name): "
            "rename its ID column"
        )
    pid = id_col if pat_frame is not None and id_col in pat_frame.columns else None
    s_prof = _profile(sessions, "sessions", id_col)
    p_prof = _profile(pat_frame, "patients", pid) if pat_frame is not None else {}
    n_patients = int(sessions[id_col].nunique()) if id_col else len(sessions)

    groups = _item_groups(sessions, s_prof)
    _classify_groups(groups)
    t = _Tables(s_prof, p_prof, id_col, n_patients)
    t.taken = {c for g in groups for c in g.columns.values()}
    cands: dict[str, list[Guess]] = {"patient": id_cands}
    cands["session"] = _guess_session(t) if lay.layout == "long" and id_col else []
    cands.update(_apply_rules(t))
    cands["symptom"], scale = _guess_symptom(t, groups)
    chosen: dict[str, Guess] = {}
    for role, guesses in cands.items():  # in priority order: a column fills one role only
        free = [g for g in guesses if g.column not in t.taken]
        if free:
            chosen[role] = free[0]
            t.taken.add(free[0].column)
    personality, covariates = _traits_and_covariates(t)
    if "suicidality" not in chosen and scale is not None:
        for g in groups:
            col = g.columns.get(scale.suicide_item)
            if g.use == "symptoms" and col:
                why = f"{scale.label} item {scale.suicide_item} is the suicide item"
                chosen["suicidality"] = Guess(col, why)
    all_profiles = {f"{p.table}:{p.name}": p for p in [*s_prof.values(), *p_prof.values()]}
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


def _traits_and_covariates(t: _Tables) -> tuple[dict[str, Guess], list[Guess]]:
    """Big Five traits by name (numeric), and age/sex/gender/education as covariates."""
    personality: dict[str, Guess] = {}
    covariates: list[Guess] = []
    for p in t.pool("patient"):
        toks = tokens(p.name)
        trait = next((v for k, v in TRAITS.items() if _match(toks, frozenset({k + "*"}))), None)
        if trait and trait not in personality and p.kind in NUM:
            personality[trait] = Guess(p.name, f"trait name, values {_span(p)}", p.table)
            continue
        cov = next((v for k, v in COVARIATES.items() if _match(toks, frozenset({k + "*"}))), None)
        if cov and p.kind in (*NUM, "text") and len(toks) <= 2:
            covariates.append(Guess(p.name, f"{cov} (common baseline covariate)", p.table))
    t.taken |= {g.column for g in [*personality.values(), *covariates]}
    return personality, covariates


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


# ---------------------------------------------------------------------------------- codings
# Words in a code (tokens or the code with separators removed); `*` marks a prefix. For status and
# modality the first class that matches wins; an arm code matching two classes is left to the user.
CODE_WORDS: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "arm": (
        ("placebo", frozenset({"pla*", "pbo*"})),
        ("drug", frozenset({"imi*", "drug*", "med*", "ssri*", "snri*", "tca", "adm", "pharm*",
                            "fluoxetin*", "sertralin*", "paroxetin*", "citalopram*",
                            "escitalopram*", "fluvoxamin*", "venlafaxin*", "duloxetin*",
                            "nortriptylin*", "amitriptylin*", "bupropion*", "mirtazapin*"})),
        ("psychotherapy", frozenset({"cbt*", "ipt*", "psychotherap*", "therapy", "dbt",
                                     "psychodynam*", "pdt", "ba"})),
    ),
    "modality": (
        ("telehealth", frozenset({"video*", "tele*", "phone*", "online", "remote", "zoom",
                                  "web*"})),
        ("in_person", frozenset({"person", "inperson", "office", "face*", "clinic",
                                 "praesenz", "präsenz"})),
    ),
    "status": (
        ("not_started", frozenset({"notstart*", "nonstart*", "never*", "notrandomi*"})),
        ("dropout", frozenset({"drop*", "withdr*", "discontinu*", "lost", "incomplet*",
                               "abbruch*", "early"})),
        ("completed", frozenset({"complet*", "finish*", "done", "regular*", "abgeschlossen"})),
    ),
}  # fmt: skip
_CHOICES = {
    "arm": "psychotherapy|drug|placebo|other",
    "modality": "in_person|telehealth",
    "status": "completed|dropout|not_started|other",
}


def guess_coding(role: str, code: str) -> str | None:
    """Class of one arm/modality/status code from words in it, or None when no rule applies."""
    toks = tokens(code)
    words = [*toks, "".join(toks)]
    hits = [cls for cls, pats in CODE_WORDS[role] if _match(words, pats)]
    if role == "arm":
        return hits[0] if len(hits) == 1 else None  # e.g. CBT+IMI: combined, ask
    return hits[0] if hits else None


def _coding_block(role: str, prof: ColumnProfile) -> dict[str, _V]:
    """Code -> class for every code seen; a 0/1 dropout or telehealth flag maps by its name."""
    out: dict[str, _V] = {}
    flags = {
        "status": (DROP, "dropout", "completed"),
        "modality": (frozenset({"tele*", "video*"}), "telehealth", "in_person"),
    }
    flag = flags.get(role)
    for code in prof.codes or []:
        cls = guess_coding(role, code)
        why = f"'{code}' looks like {cls}"
        if cls is None and flag and _binary(prof) and _match(tokens(prof.name), flag[0]):
            cls = flag[1] if float(code) == 1 else flag[2]
            why = f"0/1 flag '{prof.name}'"
        if cls is None:
            out[code] = _V(f"TODO: {_CHOICES[role]}", f"no rule recognises code '{code}'")
        else:
            out[code] = _V(cls, guessed=why)
    return out


# ------------------------------------------------------------------------------------ YAML text
@dataclass
class _V:
    """One config value with its end-of-line comment."""

    value: Any
    note: str = ""
    guessed: str = ""

    def comment(self) -> str:
        if self.guessed:
            return f"  # guessed: {self.guessed} — review"
        return f"  # {self.note}" if self.note else ""


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.strip().removesuffix("...").strip()


def _emit(node: dict[str, Any], indent: int, lines: list[str]) -> None:
    for key, val in node.items():
        pad = "  " * indent
        if isinstance(val, dict) and val:
            if indent == 0:
                lines.append("")
            lines.append(f"{pad}{_scalar(str(key))}:")
            _emit(val, indent + 1, lines)
            continue
        v = val if isinstance(val, _V) else _V(val)
        if isinstance(v.value, dict) and v.value:
            lines.append(f"{pad}{_scalar(str(key))}:{v.comment()}")
            _emit(v.value, indent + 1, lines)
        else:
            lines.append(f"{pad}{_scalar(str(key))}: {_scalar(v.value)}{v.comment()}")


def _role(ins: Inspection, role: str) -> _V:
    g = ins.chosen.get(role)
    if g is None:
        return _V(None, "no candidate found: set it if the export has one")
    return _V(g.column, guessed=g.reason)


def _symptoms(ins: Inspection) -> dict[str, Any]:
    scale = ins.symptom_scale
    out: dict[str, Any] = {}
    total = ins.chosen.get("symptom")
    groups = [g for g in ins.item_groups if g.use == "symptoms"]
    prof = ins.profiles.get(f"sessions:{total.column}") if total else None
    inside = prof is not None and scale is not None and scale.low <= (prof.low or 0)
    inside = inside and (prof.high or 0) <= scale.high
    if scale is not None:
        out["label"] = _V(scale.label, guessed=f"{scale.label} name")
    elif total is not None:
        out["label"] = _V(total.column, guessed="the total column's name")
    if total is not None:
        out["column"] = _V(total.column, guessed=total.reason)
        out["items"] = _V(None, "a total column is used")
    elif groups:
        g = groups[0]
        out["column"] = _V(None, "no total column: scored from items")
        out["items"] = _V(g.pattern, guessed=f"{g.label}: {g.reason}")
    else:
        out["column"] = _V("TODO: symptom total column (or null and set symptoms.items)",
                           "no column named like hamd/bdi/phq/madrs/symptom/score")  # fmt: skip
        out["items"] = _V(None)
    if scale is not None and (total is None or inside):
        if scale.instrument:
            why = f"{scale.label} item key" + _shipped(scale.instrument)
            out["instrument"] = _V(scale.instrument, guessed=why)
        elif total is None:
            out["instrument"] = _V(f"TODO: instrument YAML for {scale.label} items (none shipped)",
                                   "needed to score items")  # fmt: skip
        out["min"] = _V(scale.low, guessed=f"{scale.label} total range")
        out["max"] = _V(scale.high, guessed=f"{scale.label} total range")
        out["higher_is_worse"] = _V(True, guessed=f"{scale.label}: higher = more symptoms")
        cut = "no conventional cut-off known to init: set from your protocol"
        out["remission_cutoff"] = (
            _V(scale.cutoff, guessed=f"convention: remission = {scale.label} <= {scale.cutoff}")
            if scale.cutoff is not None
            else _V(None, cut)
        )
        out["suicidality_max"] = _V(scale.suicide_max, guessed=f"{scale.label} suicide item range")
    else:
        seen = f"observed {_span(prof)}" if prof else "range unknown"
        why = f"{scale.label} range exceeded, another version?" if scale else "unknown scale"
        out["min"] = _V(f"TODO: lowest possible total ({seen})", why)
        out["max"] = _V(f"TODO: highest possible total ({seen})", why)
    return out


def _shipped(instrument: str) -> str:
    """Warning when the instrument's key is not in the default instruments_dir (relative to the
    working directory, as the pipeline reads it)."""
    if (Path(INSTRUMENTS_DIR) / f"{instrument}.yaml").is_file():
        return ""
    return f"; no {INSTRUMENTS_DIR}/{instrument}.yaml here: add its scoring key"


def _alliance(ins: Inspection) -> dict[str, Any]:
    raters: dict[str, Any] = {}
    unclear = 0
    for g in ins.item_groups:
        if g.use in (None, "symptoms"):
            continue
        if g.use == "rater?":
            unclear += 1
            key = f"TODO_rater_{unclear}"
            note = "rename this key to patient, therapist or observer"
        else:
            key, note = g.use, ""
        if g.instrument:
            why = f"{len(g.columns)} items, values {_fmt(g.low)}–{_fmt(g.high)}"
            inst = _V(g.instrument, guessed=why + _shipped(g.instrument))
        else:
            wai12 = len(g.columns) == 12 and (g.high or 0) <= 5
            options = (
                "wai_sr (patient) or wai_sr_t (therapist form)" if wai12 else "instrument name"
            )
            inst = _V(f"TODO: {options}", f"{len(g.columns)} items {_fmt(g.low)}–{_fmt(g.high)}")
        raters[key] = {
            "instrument": inst,
            "items": _V(
                g.pattern, guessed=f"{g.label}: {g.reason}" + (f"; {note}" if note else "")
            ),
        }
    if not raters:
        others = [g for g in ins.item_groups if g.use is None and len(g.columns) >= 10]
        hint = f"; maybe {others[0].pattern} ({others[0].reason})" if others else ""
        raters["TODO_rater"] = {
            "instrument": _V("TODO: instrument name (e.g. wai_sr)"),
            "items": _V("TODO: regex of the alliance item columns, group 1 = item number",
                        f"no group of >= 10 items named wai/alliance/haq/calpas{hint}"),
        }  # fmt: skip
    return raters


def _missing_codes(ins: Inspection) -> _V:
    codes = ins.suggested_missing_codes
    clash = ins.missing_code_clashes
    where = "; ".join(f"{', '.join(map(_fmt, cs))} in {k}" for k, cs in ins.suspicious.items())
    todo = [
        f"TODO: {_fmt(c)} looks like a missing code but is also a real value of "
        f"{', '.join(clash[c][:4])}; missing_codes applies to every column"
        for c in sorted(clash)
        if any(c in cs for cs in ins.suspicious.values())
    ]
    values: list[Any] = [int(c) if float(c).is_integer() else c for c in codes] + todo
    if not values:
        return _V([], "no suspicious codes found (SPSS user-missing values are honoured anyway)")
    return _V(values, guessed=f"suspicious codes: {where}; applies to every numeric column")


def starter_config(inspection: Inspection) -> str:
    """YAML text of a starter config; guesses carry `# guessed:` comments, unknowns are TODOs."""
    ins = inspection
    data: dict[str, Any] = {
        "sessions": _V(ins.data_file, "as given: a relative path is read from where you run"),
        "patients": _V(ins.patients_file, "" if ins.patients_file else "no patients file given"),
        "layout": _V(ins.layout, guessed=ins.layout_reason),
    }
    if ins.layout == "wide":
        data["session_token"] = _V(ins.session_token, guessed="matches the session columns")
    data["missing_codes"] = _missing_codes(ins)
    data["keep_columns"] = []
    cols: dict[str, Any] = {
        "patient": _role(ins, "patient") if "patient" in ins.chosen
        else _V("TODO: patient ID column", "no text/integer column with an ID-like name"),
        "session": _role(ins, "session") if ins.layout == "long"
        else _V(None, "wide layout: sessions come from the column names"),
    }  # fmt: skip
    if ins.layout == "long" and "session" not in ins.chosen:
        cols["session"] = _V("TODO: session number column", "no integer 0–60 column varying "
                             "within patient with a session-like name")  # fmt: skip
    for role in ("date", "week", "therapist", "site", "arm", "modality", "status",
                 "dropout_session", "consent_date", "baseline_symptom", "suicidality",
                 "relapse_time", "relapse_event", "agency"):  # fmt: skip
        cols[role] = _role(ins, role)
    cov = [g.column for g in ins.covariates]
    cols["covariates"] = (
        _V(cov, guessed="; ".join(g.reason for g in ins.covariates)) if cov else _V([])
    )
    cols["personality"] = _V(
        {k: _V(g.column, guessed=g.reason) for k, g in ins.personality.items()} or {}
    )
    codings: dict[str, Any] = {}
    for role in ("arm", "modality", "status"):
        g = ins.chosen.get(role)
        prof = ins.profiles[f"{g.table}:{g.column}"] if g else None
        if prof is not None and prof.codes:
            codings[role] = _V(_coding_block(role, prof))
        else:
            codings[role] = _V({})
    config: dict[str, Any] = {
        "trial_name": _V(Path(ins.data_file).stem, guessed="the data file's name"),
        "seed": _V(20261127, "seed for every random step"),
        "data": data,
        "columns": cols,
        "codings": codings,
        "symptoms": _symptoms(ins),
        "alliance": {
            "instruments_dir": _V(INSTRUMENTS_DIR, "shipped instrument keys + your own"),
            "raters": _alliance(ins),
        },
        "dropout": {
            "rule": _V("status", guessed="dropout as the status column says")
            if "status" in ins.chosen
            else _V("min_sessions", guessed="no status column"),
            "min_sessions": _V(12, "default; set to your protocol's adequate dose"),
        },
        "privacy": {
            "key_env": _V("ALLIANCE_PSEUDONYM_KEY", "export a secret key in this variable"),
        },
    }
    body: list[str] = []
    _emit(config, 0, body)
    n_todo = sum("TODO" in line.split("#")[0] for line in body)
    lines = [
        f"# Starter config written by `alliance init` from {ins.data_file}.",
        "# Review every line marked `guessed`, then: alliance validate --configfile <this file>",
        "# Every key is documented in workflow/alliance/schemas/config.schema.yaml.",
    ]
    if n_todo:
        lines.append(f"# {n_todo} line(s) hold a TODO that only you can answer: validation fails")
        lines.append("# until each is replaced.")
    lines += [f"# note: {n}" for n in ins.notes]
    lines += body
    return "\n".join(lines).rstrip() + "\n"


# -------------------------------------------------------------------------------------- summary
def summary(ins: Inspection) -> str:
    """Readable report of what was found and guessed."""
    out = [f"export: {ins.data_file}" + (f" + {ins.patients_file}" if ins.patients_file else "")]
    out.append(f"layout: {ins.layout} ({ins.layout_reason})")
    rows = f"{ins.n_rows} session rows, {ins.n_patients} patients"
    if ins.n_patient_rows is not None:
        rows += f"; patients file: {ins.n_patient_rows} rows"
    out.append(rows)
    out.append("roles:")
    for role, guesses in ins.candidates.items():
        g = ins.chosen.get(role)
        text = f"{g.column:<18} {g.reason}" if g else "-"
        out.append(f"  {role:<17} {text}")
        others = [x.column for x in guesses if g is None or x.column != g.column]
        if others:
            out.append(f"  {'':<17} other candidates: {', '.join(others)}")
    for trait, g in ins.personality.items():
        out.append(f"  {'personality.' + trait:<17} {g.column:<18} {g.reason}")
    if ins.covariates:
        out.append(f"  {'covariates':<17} {', '.join(g.column for g in ins.covariates)}")
    if ins.item_groups:
        out.append("item groups:")
    for g in ins.item_groups:
        sus = f", suspicious {', '.join(map(_fmt, g.suspicious))}" if g.suspicious else ""
        use = {None: "not used", "rater?": "alliance, rater unclear (TODO)"}.get(g.use, g.use)
        out.append(f"  {g.label} ({len(g.columns)} items, {_fmt(g.low)}–{_fmt(g.high)}{sus}) "
                   f"-> {use}{' / ' + g.instrument if g.instrument else ''}")  # fmt: skip
    if ins.categorical:
        out.append("categorical columns:")
        out += [f"  {k}: {', '.join(v)}" for k, v in ins.categorical.items()]
    if ins.numeric_ranges:
        grouped = {c for g in ins.item_groups for c in g.columns.values()}
        ranges = [f"{k} {_fmt(lo)}–{_fmt(hi)}" for k, (lo, hi) in ins.numeric_ranges.items()
                  if k not in grouped]  # fmt: skip
        out.append("numeric ranges: " + "; ".join(ranges))
    by_code: dict[str, list[str]] = {}
    for col, codes in ins.user_missing.items():
        by_code.setdefault(", ".join(map(str, codes)), []).append(col)
    for codes, cols in by_code.items():
        shown = ", ".join(cols[:3]) + (f" and {len(cols) - 3} more" if len(cols) > 3 else "")
        out.append(f"user-missing {codes} declared in the file for {shown} (honoured as missing)")
    if ins.value_labels:
        out.append("value labels applied: " + ", ".join(ins.value_labels))
    for where, codes in ins.suspicious.items():
        out.append(f"suspicious codes in {where}: {', '.join(map(_fmt, codes))}")
    if ins.suspicious:
        ok = ", ".join(map(_fmt, ins.suggested_missing_codes)) or "none"
        out.append(f"suggested data.missing_codes: {ok}")
        for code, cols in ins.missing_code_clashes.items():
            out.append(f"  {_fmt(code)} is also a real value of {', '.join(cols[:6])}: not added")
    used = {g.column for g in ins.chosen.values()} | {g.column for g in ins.covariates}
    used |= {g.column for g in ins.personality.values()}
    used |= {c for g in ins.item_groups if g.use for c in g.columns.values()}
    if ins.layout == "wide":
        used.add("session")  # made by the reshape from the column names
    unmapped = sorted({p.name for p in ins.profiles.values()} - used)
    if unmapped:
        out.append("not mapped (dropped unless added to data.keep_columns): " + ", ".join(unmapped))
    out += [f"note: {n}" for n in ins.notes]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """`alliance init DATA_FILE [--patients FILE] [--out PATH] [--force]`."""
    parser = argparse.ArgumentParser(
        prog="alliance init", description="Inspect a trial export and write a starter config."
    )
    parser.add_argument("data_file", help="session-level (long) or wide table")
    parser.add_argument("--patients", help="optional patient-level table")
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"config to write (default {DEFAULT_OUT})"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"alliance init: {out} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    try:
        ins = inspect_export(args.data_file, args.patients)
    except InputError as exc:
        print(f"alliance init: {exc}", file=sys.stderr)
        return 1
    text = starter_config(ins)
    print(summary(ins))
    with files.atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    n_todo = sum("TODO" in line.split("#")[0] for line in text.splitlines())
    print(f"\nwrote {out}: review every `guessed` line", end="")
    print(f" and answer {n_todo} TODO line(s)" if n_todo else "", end="")
    print(f"; then run: alliance validate --configfile {out}")
    return 0
