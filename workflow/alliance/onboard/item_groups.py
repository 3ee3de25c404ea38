"""Item groups: columns sharing a stem and an item number, read as alliance or symptom items."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from alliance.onboard.numbering import number_families
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


@dataclass
class ItemGroup:
    """Columns differing in one item number (`wai_p_01..12`, `WAI_P_i07`, `HAMD03`, `WAI07_P`)."""

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
    """Groups of at least 3 numeric columns differing in one number that no session word marks
    (`HAMD_S01..S04` are one total at four sessions); suspicious codes kept apart."""
    numeric = [str(c) for c in frame.columns
               if profiles[str(c)].kind in ("integer", "number", "empty")]  # fmt: skip
    groups = []
    for fam in number_families(numeric):
        cols = fam.columns
        values = pd.concat([frame[c] for c in cols.values()]).dropna().astype(float)
        rest, suspicious = split_codes(values, GROUP_CODES, group=True)
        groups.append(
            ItemGroup(
                stem=fam.stem,
                pattern=fam.pattern,
                columns=cols,
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
            if (hi or 0) > scale.item_high:
                group.reason = (
                    f"{scale.label} name but {observed}: above the item range 0–"
                    f"{scale.item_high}, so totals (e.g. one per session), not items"
                )
                return
            group.use = "symptoms"
            fits = n == scale.n_items and (lo or 0) >= 0
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
