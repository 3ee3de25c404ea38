"""Item groups: columns sharing a stem and an item number, read as alliance or symptom items."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from alliance.onboard.profile import GROUP_CODES, ColumnProfile, fmt, split_codes
from alliance.onboard.vocabulary import (
    ALLIANCE,
    ALLIANCE_FORMS,
    RATER_WORDS,
    SCALES,
    matches,
    tokens,
)
from alliance.onboard.yamltext import visible

_TRAILING_NUMBER = re.compile(r"^(.*?\D)(\d+)$")


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
        """`first..last` item column, as reports and comments show it."""
        first, last = min(self.columns), max(self.columns)
        return f"{visible(self.columns[first])}..{visible(self.columns[last])}"


def find_item_groups(frame: pd.DataFrame, profiles: dict[str, ColumnProfile]) -> list[ItemGroup]:
    """Groups of at least 3 numeric columns sharing a stem; suspicious codes kept apart."""
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
        rest, suspicious = split_codes(values, GROUP_CODES, group=True)
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


def _classify_group(group: ItemGroup) -> None:
    """Alliance rater and instrument, or symptom items, from the stem's words and the values."""
    toks = tokens(group.stem)
    n, lo, hi = len(group.columns), group.low, group.high
    observed = f"{n} items, values {fmt(lo)}–{fmt(hi)}"
    if matches(toks, ALLIANCE):
        if n < 10 or lo is None or hi is None or lo < 1 or hi > 7:
            group.reason = f"alliance name but {observed} (need >= 10 items within 1–7)"
            return
        raters = [r for r, words in RATER_WORDS.items() if matches(toks, words)]
        group.use = raters[0] if len(raters) == 1 else "rater?"
        scale_max = 5 if hi <= 5 else (6 if hi <= 6 and n == 19 else 7)
        inst = ALLIANCE_FORMS.get((n, scale_max))
        if inst == "wai_sr":  # patient and therapist forms have their own keys
            inst = {"patient": "wai_sr", "therapist": "wai_sr_t"}.get(group.use)
        group.instrument = inst
        who = (
            f"rater word '{visible(next(t for t in toks if matches([t], RATER_WORDS[group.use])))}'"
            if group.use in RATER_WORDS
            else "no single rater word (p/pt/patient/client, t/th/therapist, obs/observer)"
        )
        group.reason = f"alliance name, {observed}; {who}"
        return
    for scale in SCALES:
        if matches(toks, scale.words):
            group.use = "symptoms"
            fits = n == scale.n_items and (lo or 0) >= 0 and (hi or 0) <= scale.item_high
            group.instrument = scale.instrument if fits else None
            group.reason = f"{scale.label} name, {observed}"
            return
    group.reason = f"{observed}; name matches no known instrument"


def classify_groups(groups: list[ItemGroup]) -> None:
    """Classify every group; a second group for the same rater (or symptoms) is left out."""
    used: set[str] = set()
    for g in groups:
        _classify_group(g)
        if g.use in RATER_WORDS or g.use == "symptoms":
            if g.use in used:
                g.reason += f"; an earlier group already fills {g.use}: left out"
                g.use, g.instrument = None, None
            used.add(g.use or "")
