"""Role guessers: which column is the patient ID, session, symptom total, arm, status...

Each candidate comes from a short rule (name words plus value conditions) whose reason is kept, so
the starter config can say why it guessed what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from alliance.onboard.item_groups import ItemGroup
from alliance.onboard.profile import ColumnProfile, is_flag, value_span
from alliance.onboard.vocabulary import (
    ADHERENCE,
    AGENCY,
    ALLIANCE,
    ARM,
    ATTEND,
    BASELINE,
    CONSENT,
    DATE_NAMES,
    DOSES,
    DROP,
    EPISODE,
    FAILED,
    GENERIC_SYMPTOM,
    ID,
    MODALITY,
    PRESCRIBED,
    PRIOR,
    RATER,
    RELAPSE,
    SCALES,
    SELF_REPORT,
    SESSION_NAMES,
    SITE,
    STAGING,
    STATUS,
    SUICIDE,
    SYMPTOM_NAMES,
    TAKEN,
    THERAPIST,
    TIME,
    TRAITS,
    TRIALS,
    Scale,
    matches,
    tokens,
)
from alliance.onboard.yamltext import visible

MAX_SESSION = 60
ITEM_NAMES = frozenset({"item*", "i", "q", "itm"})
# Roles the clean stage reads with SPSS/Stata value labels applied (codes become labels).
CATEGORICAL_ROLES = frozenset({"therapist", "site", "arm", "modality", "status", "attendance"})


@dataclass
class Guess:
    """A column proposed for a role, with the rule that picked it."""

    column: str
    reason: str
    table: str = "sessions"


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
    # treatment resistance (docs/data.md); the self-report scale: `guess_self_report`
    Rule("prior_failed_trials", "patient", ("integer",), (FAILED,), "failed-trials name",
         STAGING),
    Rule("prior_failed_trials", "patient", ("integer",), (PRIOR, TRIALS), "prior-treatment name",
         STAGING),
    Rule("staging_score", "patient", NUM, (STAGING,), "staging-scale name", binary=False),
    Rule("episode_months", "patient", NUM, (EPISODE,), "episode name (months expected)"),
    Rule("attendance", "session", CAT, (ATTEND,), "attendance name", levels=(2, 6)),
    Rule("doses_taken", "session", NUM, (DOSES, TAKEN), "doses-taken name", PRESCRIBED),
    Rule("doses_prescribed", "session", NUM, (DOSES, PRESCRIBED), "doses-prescribed name"),
    Rule("adherence", "session", NUM, (ADHERENCE,), "adherence name (a 0-1 proportion)"),
)  # fmt: skip


@dataclass
class Tables:
    """Profiles the role rules choose from, and the columns already taken."""

    sessions: dict[str, ColumnProfile]
    patients: dict[str, ColumnProfile]
    id_col: str | None
    n_patients: int
    taken: set[str] = field(default_factory=set)  # item columns and assigned columns
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # "sessions" / "patients"

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
        shown = ", ".join(map(visible, codes[:6])) + (", …" if len(codes) > 6 else "")
        what = f"{p.n_distinct} levels ({shown})"
    elif p.kind == "text":
        what = f"{p.n_distinct} distinct values for {n_patients} patients"
    else:
        what = f"values {value_span(p)}"
    where = "patient table" if p.table == "patients" else "session table"
    if p.table == "sessions" and p.constant_within_patient:
        where += ", constant within patient"
    return f"{what} ({where})"


def apply_rules(t: Tables) -> dict[str, list[Guess]]:
    """Candidates per role in rule order (earlier rules rank first)."""
    out: dict[str, list[Guess]] = {r.role: [] for r in RULES}
    for rule in RULES:
        for raw in t.pool(rule.level):
            p = raw.as_read(rule.role in CATEGORICAL_ROLES)
            toks = tokens(p.name)
            if (
                p.kind not in rule.kinds
                or not all(matches(toks, words) for words in rule.names)
                or matches(toks, rule.avoid)
                or (rule.levels and not rule.levels[0] <= p.n_distinct <= rule.levels[1])
                or (rule.below_patients and p.n_distinct >= t.n_patients)
                or (rule.binary is not None and is_flag(p) != rule.binary)
                or (rule.varies and p.constant_within_patient)
                or any(g.column == p.name for g in out[rule.role])
            ):
                continue
            reason = f"{rule.says}; {_describe(p, t.n_patients)}"
            out[rule.role].append(Guess(p.name, reason, p.table))
    return out


def guess_id(profiles: dict[str, ColumnProfile], other: dict[str, ColumnProfile]) -> list[Guess]:
    """ID: text or whole-number column with many distinct values and an ID-like name (or the
    column the patients file shares), most distinct values first."""
    found: list[tuple[tuple, Guess]] = []
    other_roles = THERAPIST | SITE | ARM | STATUS | RATER
    for p in profiles.values():
        toks = tokens(p.name)
        if p.kind not in ("text", "integer") or p.n_distinct < 2 or matches(toks, other_roles):
            continue
        named, shared = matches(toks, ID), p.name in other
        if not named and not shared:
            continue
        why = [f"{p.kind}, {p.n_distinct} distinct values"]
        why += ["ID-like name"] if named else []
        why += ["also in the patients file"] if shared else []
        found.append(((not named, not shared, -p.n_distinct), Guess(p.name, "; ".join(why))))
    return [g for _, g in sorted(found, key=lambda x: x[0])]


def guess_session(t: Tables) -> list[Guess]:
    """Session: whole numbers 0-60 varying within patient; a session-like name ranks first, an
    unrecognised name qualifies only when values increase within every patient from 0 or 1."""
    found: list[tuple[tuple, Guess]] = []
    for p in t.pool("session"):
        if p.kind != "integer" or p.low is None or p.low < 0 or (p.high or 0) > MAX_SESSION:
            continue
        if p.constant_within_patient:
            continue
        toks = tokens(p.name)
        rank = next((i for i, words in enumerate(SESSION_NAMES) if matches(toks, words)), None)
        span = f"integers {value_span(p)} varying within patient"
        if rank is not None:
            found.append(((rank, p.name), Guess(p.name, f"{span}; session-like name")))
        elif p.increasing_within_patient and p.low <= 1:
            why = f"{span}, increasing within every patient (name not recognised)"
            found.append(((len(SESSION_NAMES), p.name), Guess(p.name, why)))
    return [g for _, g in sorted(found, key=lambda x: x[0])]


def guess_symptom(t: Tables, groups: list[ItemGroup]) -> tuple[list[Guess], Scale | None]:
    """Symptom total: a session column named after a known scale (within its range ranks first),
    else one named symptom/score/total; the scale also comes from a symptom item group."""
    found: list[tuple[tuple, Guess, Scale | None]] = []
    for p in t.pool("session"):
        toks = tokens(p.name)
        if p.kind not in NUM or p.constant_within_patient:
            continue
        if matches(toks, BASELINE | ALLIANCE | SUICIDE):
            continue
        scale = next((s for s in SCALES if matches(toks, s.words)), None)
        # an item (`hamd_item3`, values 0-4) ranks after every total
        item = matches(toks, ITEM_NAMES) or (scale is not None and (p.high or 0) <= scale.item_high)
        if scale is not None:
            inside = (p.low or 0) >= scale.low and (p.high or 0) <= scale.high
            where = "within" if inside else "OUTSIDE"
            why = f"{scale.label} name, values {value_span(p)} {where} {scale.low}–{scale.high}"
            # a clinician rating ranks before a self-report scale (the other is its companion)
            found.append(
                (
                    (item, 0, matches(toks, SELF_REPORT), not inside, p.name),
                    Guess(p.name, why),
                    scale,
                )
            )
        elif matches(toks, GENERIC_SYMPTOM):
            why = f"score name, values {value_span(p)}"
            found.append(((item, 1, True, True, p.name), Guess(p.name, why), None))
    found.sort(key=lambda x: x[0])
    if found:
        return [g for _, g, _ in found], found[0][2]
    for g in groups:
        if g.use == "symptoms":
            return [], next(s for s in SCALES if matches(tokens(g.stem), s.words))
    return [], None


def guess_traits(t: Tables) -> dict[str, Guess]:
    """Big Five traits by name (numeric)."""
    personality: dict[str, Guess] = {}
    for p in t.pool("patient"):
        toks = tokens(p.name)
        trait = next((v for k, v in TRAITS.items() if matches(toks, frozenset({k + "*"}))), None)
        if trait and trait not in personality and p.kind in NUM:
            personality[trait] = Guess(p.name, f"trait name, values {value_span(p)}", p.table)
    t.taken |= {g.column for g in personality.values()}
    return personality
