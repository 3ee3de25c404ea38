"""Roles read from what a column holds where its name says too little.

Relapse time and event (`RELWEEKS`, `rel_wk`, `time_to_relapse`, and the 0/1 column next to
one), a status column whose codes read as completed / dropout whatever its name, age and sex
from their ranges and codes, the symptom scale's suicide item as a single item column
(`hamd_item3`), and the patient ID as the first column with one value per row.
"""

from __future__ import annotations

import re

import pandas as pd

from alliance.onboard.codings import guess_coding
from alliance.onboard.guess import Guess, Tables
from alliance.onboard.profile import ColumnProfile, is_flag, value_span
from alliance.onboard.vocabulary import (
    ARM,
    DROP,
    RELAPSE,
    STATUS,
    TIME,
    Scale,
    matches,
    tokens,
)
from alliance.onboard.yamltext import visible

# Parts glued to `rel` in compact names (RELWEEKS, relwk, RELEVENT) and words beside it.
REL_TIME = frozenset({"week", "weeks", "wk", "wks", "time", "t", "day", "days", "month",
                      "months", "mo", "fu", "surv", "dur"})  # fmt: skip
REL_EVENT = frozenset({"ev", "evt", "event", "flag", "yn", "ind", "status", "yes"})
CENSOR = frozenset({"censor*", "cens"})
ITEM_WORDS = frozenset({"item", "i", "q", "it", "itm"})
SEX_NAMES = frozenset({"sex", "gender", "geschlecht", "sexe"})
EDUCATION = frozenset({"educ*", "bildung*", "schul*"})
AGE_NAMES = frozenset({"age", "alter", "ageyrs", "ageyears", "age_yrs"})
MALE = frozenset({"m", "male", "man", "men", "mann", "maennlich", "männlich", "masculin", "h"})
FEMALE = frozenset({"f", "female", "woman", "women", "w", "frau", "weiblich", "feminin"})
OTHER_SEX = frozenset({"d", "x", "divers", "diverse", "other", "nonbinary", "non-binary"})
MAX_RELAPSE_WEEKS = 600


def relapse_words(name: str) -> tuple[bool, bool, bool]:
    """Whether a name reads as relapse, and as a time or an event: `RELWEEKS` (relapse, time),
    `rel_ev` (relapse, event), `time_to_relapse` (relapse, time)."""
    toks = tokens(name)
    rel = matches(toks, RELAPSE) or "rel" in toks
    time = matches(toks, TIME) or "wks" in toks
    event = any(t in REL_EVENT for t in toks)
    for t in toks:
        m = re.fullmatch(r"(?:rel|relapse|rlps)(\w+)", t)
        if m and m.group(1) in REL_TIME:
            rel, time = True, True
        elif m and m.group(1) in REL_EVENT:
            rel, event = True, True
    return rel, time, event


def _order(t: Tables, p: ColumnProfile) -> list[str]:
    """Column order of the table `p` comes from (patients file, wide patient part or session
    table)."""
    frame = t.frames.get(p.table)
    return [str(c) for c in frame.columns] if frame is not None else []


def _values(t: Tables, p: ColumnProfile) -> pd.Series | None:
    """The column's values in the table its profile comes from."""
    frame = t.frames.get(p.table)
    return frame[p.name] if frame is not None and p.name in frame else None


def guess_relapse(t: Tables) -> tuple[list[Guess], list[Guess], list[str]]:
    """Relapse time and event candidates from compact names and content, plus notes.

    A time is whole or decimal weeks >= 0, not a 0/1 flag; an event is a 0/1 flag named like
    relapse, or the flag right beside a relapse time that is present wherever the time is.
    A censoring indicator (1 = censored) is never proposed: the event must be 1 = relapse.
    """
    times: list[Guess] = []
    events: list[Guess] = []
    notes: list[str] = []
    pool = t.pool("patient")
    for p in pool:
        rel, time, event = relapse_words(p.name)
        if not rel or p.kind not in ("integer", "number") or p.low is None:
            continue
        if matches(tokens(p.name), CENSOR):
            notes.append(f"'{visible(p.name)}' looks like a censoring flag (1 = censored?): "
                         "columns.relapse_event needs 1 = relapse, 0 = censored")  # fmt: skip
            continue
        if is_flag(p) and not time:
            events.append(Guess(p.name, f"relapse-like name, 0/1 values ({_where(p)})", p.table))
        elif not is_flag(p) and not event and p.low >= 0 and (p.high or 0) <= MAX_RELAPSE_WEEKS:
            why = f"relapse-like name, values {value_span(p)} ({_where(p)}; weeks expected)"
            times.append(Guess(p.name, why, p.table))
    names = {g.column for g in events}
    for g in times[:1]:
        time_p = next(p for p in pool if p.name == g.column)
        order = _order(t, time_p)
        at = order.index(g.column) if g.column in order else -1
        beside = [order[i] for i in (at + 1, at - 1) if at >= 0 and 0 <= i < len(order)]
        for p in pool:
            if p.name not in beside or p.name in names or p.table != time_p.table:
                continue
            if not is_flag(p) or matches(tokens(p.name), DROP | STATUS | ARM | SEX_NAMES | CENSOR):
                continue
            ev, tm = _values(t, p), _values(t, time_p)
            if ev is not None and tm is not None and bool((ev.notna() & tm.isna()).any()):
                continue
            why = f"0/1 beside relapse time '{visible(g.column)}', present where it is"
            events.append(Guess(p.name, why, p.table))
    return times, events, notes


def _where(p: ColumnProfile) -> str:
    """Which table a profile describes, as reasons say it."""
    return "patient table" if p.table == "patients" else "session table"


def guess_status_by_codes(t: Tables) -> list[Guess]:
    """Status columns whatever their name: every code (label) reads as a status class, and at
    least one as completed or dropout (`completer` / `early termination`)."""
    found = []
    for p in t.pool("patient"):
        q = p.as_read(categorical=True)
        if q.kind != "text" or not q.codes or not 2 <= len(q.codes) <= 8:
            continue
        if matches(tokens(p.name), ARM):
            continue
        classes = [guess_coding("status", c) for c in q.codes]
        if None in classes or not {"completed", "dropout"} & set(classes):
            continue
        shown = ", ".join(visible(c) for c in q.codes)
        found.append(Guess(p.name, f"codes read as end-of-treatment status ({shown})", p.table))
    return found


def sex_like(codes: list[str]) -> bool:
    """Codes that read as sex: M/F, male/female, m/w (German), with an optional third code."""
    low = {c.strip().lower() for c in codes}
    return (
        2 <= len(low) <= 4
        and low <= MALE | FEMALE | OTHER_SEX
        and bool(low & MALE)
        and bool(low & FEMALE)
    )


def guess_covariates(t: Tables) -> list[Guess]:
    """Age (a numeric column named age, ages 10-100), sex (named sex/gender, or coded M/F,
    male/female, m/w) and education (by name) as baseline covariates, one of each."""
    out: dict[str, Guess] = {}
    for p in t.pool("patient"):
        toks = tokens(p.name)
        q = p.as_read(categorical=True)
        if "age" not in out and toks and (toks[0] in AGE_NAMES or "".join(toks) in AGE_NAMES):
            numeric = p.kind in ("integer", "number") and p.low is not None
            if numeric and p.low >= 10 and (p.high or 0) <= 100:
                why = f"age name, values {value_span(p)} (common baseline covariate)"
                out["age"] = Guess(p.name, why, p.table)
            continue
        if "education" not in out and matches(toks, EDUCATION) and len(toks) <= 2:
            out["education"] = Guess(p.name, "education name (common baseline covariate)", p.table)
            continue
        named = matches(toks, SEX_NAMES) and len(toks) <= 2
        coded = q.codes is not None and sex_like(q.codes)
        if "sex" not in out and (named or coded):
            shown = ", ".join(visible(c) for c in q.codes or [])
            why = ("sex/gender name" if named else "codes read as sex") + (
                f" ({shown})" if shown else ""
            )
            out["sex"] = Guess(p.name, f"{why} (common baseline covariate)", p.table)
    return list(out.values())


def guess_suicide_item(t: Tables, scale: Scale) -> Guess | None:
    """The scale's suicide item as one column named for it (`hamd_item3`, `HDRS_item03`,
    `HAMD_I3`), whose values fit the item (0 to the item's maximum)."""
    for p in t.pool("session"):
        toks = tokens(p.name)
        numbers = [int(x) for x in toks if x.isdigit()]
        if not matches(toks, scale.words) or numbers != [scale.suicide_item]:
            continue
        if p.kind not in ("integer", "number") or p.low is None or p.low < 0:
            continue
        if (p.high or 0) > scale.suicide_max:
            continue
        why = f"{scale.label} item {scale.suicide_item} (the suicide item), values {value_span(p)}"
        return Guess(p.name, why, p.table)
    return None


def guess_id_by_content(profiles: dict[str, ColumnProfile], n_rows: int) -> list[Guess]:
    """The first text or whole-number column with one distinct value per row (wide exports
    number their patients `PATNR`, `VPN`, `lfdnr`)."""
    for p in profiles.values():
        if p.kind in ("text", "integer") and p.n_missing == 0 and p.n_distinct == n_rows > 1:
            why = f"{p.kind}, a distinct value on each of {n_rows} rows (name not recognised)"
            return [Guess(p.name, why)]
    return []


def date_problem(p: ColumnProfile, declared_format: bool) -> str | None:
    """Why a date column cannot be mapped as it is, or None: day and month in both orders;
    or, where the config has no `data.date_format` to declare it, day-first text the pipeline
    would read month-first."""
    if p.date_order == "mixed":
        return (
            f"'{visible(p.name)}' holds dates with the day first and others with the month "
            f"first (e.g. {visible(p.date_example)}): make them one order to map it"
        )
    if p.date_order == "day-first" and not declared_format:
        return (
            f"'{visible(p.name)}' holds day-first dates (e.g. {visible(p.date_example)}), "
            "which the pipeline reads month-first: convert it to ISO dates (YYYY-MM-DD) to "
            "map it"
        )
    return None


def _order_reason(p: ColumnProfile) -> str:
    """Why a column's dates put the day or the month first (`23/04/2021`: 23 is no month)."""
    parts = re.split(r"[./]", p.date_example or "")
    if p.date_order == "day-first" and len(parts) == 3 and int(parts[0]) > 12:
        return f"'{visible(p.name)}' writes the day first ({visible(p.date_example)}: " \
            f"{parts[0]} is no month)"  # fmt: skip
    if p.date_order == "day-first":
        return f"'{visible(p.name)}' writes dotted dates, day first by convention " \
            f"({visible(p.date_example)})"  # fmt: skip
    if p.date_order == "month-first" and len(parts) == 3:
        return f"'{visible(p.name)}' writes the month first ({visible(p.date_example)}: " \
            f"{parts[1]} is no month)"  # fmt: skip
    return f"'{visible(p.name)}' dates like {visible(p.date_example)}"


def date_format(columns: list[ColumnProfile]) -> tuple[str | None, str, list[str]]:
    """`data.date_format` for the mapped date columns: the one format all of them read with
    (a TODO naming both orders when no date tells), why, and columns no common format reads."""
    options: tuple[str, ...] | None = None
    why, example, dropped = "", "", []
    for p in columns:
        if not p.date_formats:
            continue
        common = tuple(f for f in (options or p.date_formats) if f in p.date_formats)
        if not common:
            dropped.append(p.name)
            continue
        if options is None or len(common) < len(options):
            example = visible(p.date_example)
            why = _order_reason(p)
        options = common
    if not options:
        return None, "", dropped
    if len(options) == 1:
        return options[0], why, dropped
    todo = (
        f"TODO: {options[0]} (day first) or {options[1]} (month first): {example} and every "
        "other date read either way"
    )
    return todo, "no date has a day above 12 to tell the order", dropped
