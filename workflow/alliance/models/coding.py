"""Factor coding of a model frame: R-valid names, reference levels and 0/1 columns.

A factor used in the design becomes a categorical column (reference level first) plus one 0/1
column per other level, named as R's `make.names` would (`armIMI.CM`); `expand_terms` rewrites
the spec's terms over those columns, so R refits the frame with identical term names.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import ConfigError
from alliance.models.base import ModelSpec
from alliance.models.terms import Terms

ID_COLUMNS = ("patient", "therapist")
_INVALID = re.compile(r"[^A-Za-z0-9._]")


def make_name(text: str) -> str:
    """R `make.names` for ASCII: invalid characters -> '.', an invalid start gets an 'X'.

    (R keeps non-ASCII letters in UTF-8 locales; we replace them, so names do not depend on the
    locale. R reads the names we write as they are.)
    """
    name = _INVALID.sub(".", text)
    if not name or not (name[0].isalpha() or (name[0] == "." and not name[1:2].isdigit())):
        name = "X" + name
    return name


def is_factor(s: pd.Series) -> bool:
    """Coded as a factor: text, categorical or logical (R's factor and logical columns)."""
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _level_text(level: Any) -> str:
    if isinstance(level, bool | np.bool_):
        return "TRUE" if level else "FALSE"
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def preferred_arm(arms: Mapping[str, str], arm_reference: str | None) -> str | None:
    """The arm to take as reference: `codings.arm_reference`, else the first placebo arm."""
    if arm_reference is not None:
        return arm_reference
    placebo = sorted(a for a, c in arms.items() if c == "placebo")
    return placebo[0] if placebo else None


def _reference(
    spec: ModelSpec, var: str, levels: list[str], arm_reference: str | None, notes: list[str]
) -> str:
    wanted = (spec.options.get("reference") or {}).get(var)
    if wanted is not None:
        if str(wanted) not in levels:
            raise ConfigError(
                f"model '{spec.id}', key options.reference.{var}: level {wanted!r} is not in "
                f"the model rows; levels: {', '.join(levels)}"
            )
        return str(wanted)
    if var == "arm" and arm_reference is not None:
        if str(arm_reference) in levels:
            return str(arm_reference)
        notes.append(
            f"reference arm {arm_reference!r} has no model rows; reference is {levels[0]!r} instead"
        )
    if var == "arm_class" and "placebo" in levels:
        return "placebo"
    return levels[0]


def code_frame(
    spec: ModelSpec,
    terms: Terms,
    sub: pd.DataFrame,
    arm_reference: str | None,
    notes: list[str],
    taken: Collection[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Keep the used columns (+ IDs), numerics as float, factors as 0/1 columns.

    `arm_reference` is the reference level of `arm` (`preferred_arm`) unless the spec names one.
    `taken`: the column names a factor's 0/1 columns may not reuse (default: `sub`'s columns;
    the table's when `sub` holds only some of them).
    """
    used = terms.variables()
    ids = [c for c in ID_COLUMNS if c in sub.columns and c not in used]
    frame = pd.DataFrame(index=range(len(sub)))
    design_vars = set(terms.term_variables())
    group_vars = {v for g in terms.groups() for v in g.split(":")}
    factors: dict[str, dict[str, Any]] = {}
    for col in [*used, *ids]:
        s = sub[col].reset_index(drop=True)
        if col in design_vars and is_factor(s):
            frame[col], factors[col] = _factor(spec, col, s, arm_reference, notes)
        elif col in group_vars or col in ids or is_factor(s):
            if col == terms.outcome:
                raise ConfigError(
                    f"model '{spec.id}': outcome '{col}' must be numeric (0/1 for a binary "
                    f"outcome), not {s.dtype}"
                )
            frame[col] = s.astype("str")  # IDs and groups as text (missing stays missing)
        else:
            frame[col] = pd.to_numeric(s).to_numpy(dtype=float, na_value=np.nan)
    for col, info in factors.items():
        for level, name in info["columns"].items():
            if name in frame.columns or name in (sub.columns if taken is None else taken):
                raise ConfigError(
                    f"model '{spec.id}': level {level!r} of '{col}' becomes column '{name}', "
                    "which already exists; rename the level or the column"
                )
            frame[name] = (frame[col] == level).to_numpy(dtype=float)
    return frame, factors


def _factor(
    spec: ModelSpec, col: str, s: pd.Series, arm_reference: str | None, notes: list[str]
) -> tuple[pd.Categorical, dict[str, Any]]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        raw = [c for c in s.cat.categories if c in present]
    else:
        raw = sorted(s.dropna().unique(), key=_level_text)
    text = [_level_text(v) for v in raw]
    values = s.map(dict(zip(raw, text, strict=True)))
    ref = _reference(spec, col, text, arm_reference, notes)
    order = [ref, *[t for t in text if t != ref]]
    columns = {t: make_name(col + t) for t in order[1:]}
    names = list(columns.values())
    clash = {n for n in names if names.count(n) > 1}
    if clash:
        levels = [t for t, n in columns.items() if n in clash]
        raise ConfigError(
            f"model '{spec.id}': levels {levels} of '{col}' all become column "
            f"'{sorted(clash)[0]}'; recode them so their R names differ"
        )
    info = {"reference": ref, "levels": order, "columns": columns}
    return pd.Categorical(values, categories=order), info


def _columns_of(var: str, factors: Mapping[str, dict[str, Any]]) -> list[str]:
    if var in factors:
        return list(factors[var]["columns"].values())
    return [var]


def expand_terms(terms: list[tuple[str, ...]], factors: Mapping[str, dict[str, Any]]) -> list[str]:
    """Terms over the frame's columns: a factor piece becomes each of its 0/1 columns."""
    out: list[str] = []
    for term in terms:
        if term in (("1",), ("0",)):
            out.append(term[0])
            continue
        pieces = [_columns_of(v, factors) for v in term]
        out += [":".join(p) for p in itertools.product(*pieces)]
    return list(dict.fromkeys(out))


def random_string(random: list, factors: Mapping[str, dict[str, Any]]) -> str | None:
    """The random part over the frame's columns (None when no random term is left)."""
    parts = []
    for lhs, bar, group in random:
        parts.append(f"({' + '.join(expand_terms(lhs, factors))} {bar} {':'.join(group)})")
    return " + ".join(parts) or None


def factor_columns(frame: pd.DataFrame, var: str) -> dict[str, str | None]:
    """Level -> 0/1 column of a coded factor in a model frame (None for the reference level)."""
    s = frame[var]
    if not isinstance(s.dtype, pd.CategoricalDtype):
        raise KeyError(f"'{var}' is not a coded factor of this frame")
    levels = [str(c) for c in s.cat.categories]
    return {lev: (None if i == 0 else make_name(var + lev)) for i, lev in enumerate(levels)}
