"""The model frame: the exact rows and columns a model is fitted on, coded as R would see them.

`model_frame` turns a spec plus the score stage's tables into a frame whose factor columns are
already expanded into 0/1 treatment-contrast columns with R-valid names (`armIMI.CM`), and a
*resolved* spec whose terms name those columns (`alliance_pat:armIMI.CM`). Writing the frame to
disk and running `formula_r` on it in R therefore gives the same term names and the same
numbers: R never has to guess factor levels or their order (R sorts levels by locale collation,
Python by code point; explicit columns take that difference out of play).

What happens, in order (each step recorded in the meta for fit.json):
1. `requires`: an unavailable measure (results/clean/availability.json) -> Skipped(reason).
2. Every variable of outcome / fixed / random / column-valued options must be a column of the
   table -> else ConfigError naming the model, the term and the table's columns. Exception: a
   column that is absent because its measure is unavailable (`arm` in a single-arm export) drops
   the terms using it, with the availability reason; an absent outcome -> Skipped.
3. hazard only: person-period rows (alliance.models.person_period.person_period).
4. `subset` (pandas query).
5. Terms whose variable is all-missing, or (after dropping incomplete rows) constant / a factor
   with one level, are dropped; so is a random term whose grouping factor has < 2 levels. A
   mixed model with no random term left, or an outcome that does not vary, -> Skipped.
6. Rows with a missing value in any used variable are dropped (R's na.omit); counts recorded.
7. Factors -> 0/1 columns (reference level first: `options.reference`, then
   codings.arm_reference / the first placebo arm for `arm`, `placebo` for `arm_class`, else
   the first level in sorted order). The factor's own column is kept (categorical, reference
   first) beside its 0/1 columns, as are the `patient` / `therapist` IDs (pseudonyms).

Few therapists (< options.min_groups levels of an upper grouping factor) are handled by the
kind (alliance.models.mixed), not here.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import ConfigError
from alliance.models.base import ModelSpec, Skipped
from alliance.models.person_period import person_period_terms
from alliance.models.spec import parse_random

TABLES = {"sessions": "analysis.parquet", "patients": "patient_analysis.parquet"}
ID_COLUMNS = ("patient", "therapist")
MIXED_KINDS = ("lmm", "glmm", "hazard")
# Options whose value names a column (or a list of columns) the kind reads from the frame.
OPTION_COLUMNS = ("duration", "event", "cluster", "tertile_of", "mediator", "unit", "x", "y")
OPTION_COLUMN_LISTS = ("predictors",)
# Which availability key explains a column's absence (personality traits come from the config).
AVAILABILITY_OF = {
    "therapist": "therapist",
    "alliance_ther": "therapist",
    "site": "site",
    "arm": "arm",
    "arm_class": "arm",
    "telehealth": "modality",
    "modality": "modality",
    "agency": "agency",
    "ideation": "suicidality",
    "suicidality": "suicidality",
    "dropout": "dropout",
    "relapse_time": "relapse",
    "relapse_event": "relapse",
    "relapse_followed": "relapse",
    "alliance_t": "raters.therapist",
    "alliance_t_early": "raters.therapist",
    "alliance_t_mean": "raters.therapist",
    "alliance_t_last": "raters.therapist",
    "alliance_t_slope": "raters.therapist",
    "agree_p": "raters.therapist",
    "agree_t": "raters.therapist",
    "symptom": "symptom",
    "symptom_lag1": "symptom",
    "symptom_change": "symptom",
    "final_symptom": "symptom",
}
_INVALID = re.compile(r"[^A-Za-z0-9._]")


@dataclass
class FrameMeta:
    """How the frame was built; `spec` is the resolved spec the kind fits."""

    model: str
    table: str
    spec: ModelSpec
    formula: str
    n_table: int = 0
    n_subset: int = 0
    n_obs: int = 0
    n_dropped: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    dropped_terms: list[dict[str, str]] = field(default_factory=list)
    factors: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fit.json `frame` block."""
        return {
            "table": self.table,
            "subset": self.spec.subset,
            "rows_in_table": self.n_table,
            "rows_after_subset": self.n_subset,
            "rows_dropped_missing": self.n_dropped,
            "missing_by_variable": self.missing,
            "dropped_terms": self.dropped_terms,
            "factors": self.factors,
            "groups": self.groups,
            "notes": self.notes,
            **self.extra,
        }


def make_name(text: str) -> str:
    """R `make.names` for ASCII: invalid characters -> '.', an invalid start gets an 'X'.

    (R keeps non-ASCII letters in UTF-8 locales; we replace them, so names do not depend on the
    locale. R reads the names we write as they are.)
    """
    name = _INVALID.sub(".", text)
    if not name or not (name[0].isalpha() or (name[0] == "." and not name[1:2].isdigit())):
        name = "X" + name
    return name


def availability_state(availability: Mapping[str, Any], key: str) -> tuple[bool, str]:
    """(available, reason) of a dotted availability key such as `raters.therapist`."""
    node: Any = availability
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, f"'{key}' is not recorded in availability.json"
        node = node[part]
    if not isinstance(node, Mapping):
        return False, f"'{key}' is not recorded in availability.json"
    ok = bool(node.get("available"))
    return ok, "" if ok else str(node.get("reason") or f"{key} not available")


def availability_key(column: str, cfg: Mapping[str, Any] | None) -> str | None:
    """The availability key that explains `column` being absent, if any."""
    traits = ((cfg or {}).get("columns") or {}).get("personality") or {}
    if column in traits:
        return "personality"
    return AVAILABILITY_OF.get(column)


# ---- terms ------------------------------------------------------------------------------------


@dataclass
class _Terms:
    """Working copy of a spec's terms as variable tuples, so variables can be dropped."""

    outcome: str
    fixed: list[tuple[str, ...]]
    random: list[tuple[list[tuple[str, ...]], str, tuple[str, ...]]]  # (lhs terms, bar, group)
    options: dict[str, Any]

    def variables(self) -> list[str]:
        out = [self.outcome]
        out += [v for t in self.fixed for v in t]
        for lhs, _, group in self.random:
            out += [v for t in lhs for v in t if v not in ("0", "1")]
            out += list(group)
        out += option_columns(self.options)
        return list(dict.fromkeys(out))

    def term_variables(self) -> list[str]:
        """Variables entering the design (fixed terms and random slopes), not groups/options."""
        out = [v for t in self.fixed for v in t]
        for lhs, _, _ in self.random:
            out += [v for t in lhs for v in t if v not in ("0", "1")]
        return list(dict.fromkeys(out))

    def groups(self) -> list[str]:
        return list(dict.fromkeys(":".join(g) for _, _, g in self.random))

    def drop_variable(self, var: str) -> list[str]:
        """Remove every term using `var`; returns the terms removed (as written)."""
        gone = [":".join(t) for t in self.fixed if var in t]
        self.fixed = [t for t in self.fixed if var not in t]
        kept = []
        for lhs, bar, group in self.random:
            if var in group:
                gone.append(_random_text(lhs, bar, group))
                continue
            new = [t for t in lhs if var not in t]
            gone += [":".join(t) + f" (random slope by {':'.join(group)})" for t in lhs if var in t]
            if [t for t in new if t != ("0",)]:
                kept.append((new, bar, group))
            else:
                gone.append(_random_text(lhs, bar, group))
        self.random = kept
        for key in OPTION_COLUMNS:
            if self.options.get(key) == var:
                self.options[key] = None
                gone.append(f"options.{key} = {var}")
        for key in OPTION_COLUMN_LISTS:
            if var in (self.options.get(key) or []):
                self.options[key] = [v for v in self.options[key] if v != var]
                gone.append(f"options.{key}: {var}")
        return gone

    def drop_group(self, group: str) -> list[str]:
        gone = [_random_text(*r) for r in self.random if ":".join(r[2]) == group]
        self.random = [r for r in self.random if ":".join(r[2]) != group]
        return gone


def _random_text(lhs: list[tuple[str, ...]], bar: str, group: tuple[str, ...]) -> str:
    return f"({' + '.join(':'.join(t) for t in lhs)} {bar} {':'.join(group)})"


def option_columns(options: Mapping[str, Any]) -> list[str]:
    """Columns named by column-valued options (cox duration/event/cluster, pool unit, ...)."""
    out = [options[k] for k in OPTION_COLUMNS if isinstance(options.get(k), str)]
    for key in OPTION_COLUMN_LISTS:
        out += [v for v in options.get(key) or [] if isinstance(v, str)]
    return out


def _terms(spec: ModelSpec) -> _Terms:
    fixed = [tuple(t.replace(" ", "").split(":")) for t in spec.fixed]
    random = []
    if spec.random:
        for lhs, bar, group in parse_random(spec.random, spec.id):
            random.append(([tuple(t.split(":")) for t in lhs], bar, tuple(group.split(":"))))
    return _Terms(spec.outcome, fixed, random, dict(spec.options))


# ---- the frame --------------------------------------------------------------------------------


def _is_factor(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _varies(s: pd.Series) -> bool:
    return s.nunique(dropna=True) >= 2


def model_frame(
    spec: ModelSpec,
    sessions: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    availability: Mapping[str, Any],
    cfg: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, FrameMeta]:
    """The coded frame a model is fitted on and how it was built (see module docstring)."""
    cfg = cfg or {}
    if spec.data not in TABLES:
        raise ConfigError(
            f"model '{spec.id}', key data: {spec.data!r} is not one of {', '.join(TABLES)}"
        )
    table_file = TABLES[spec.data]
    table = sessions if spec.data == "sessions" else patients
    if table is None:
        raise ConfigError(f"model '{spec.id}', key data: {table_file} was not given")
    for key in spec.requires:
        ok, reason = availability_state(availability, key)
        if not ok:
            raise Skipped(f"needs {key}: {reason}")

    terms = _terms(spec)
    dropped: list[dict[str, str]] = []
    notes: list[str] = []
    _check_columns(spec, terms, table, table_file, availability, cfg, dropped)
    extra: dict[str, Any] = {}
    if spec.kind == "hazard":
        table, terms, extra = person_period_terms(spec, terms, table)

    n_table = len(table)
    if spec.subset:
        table = _apply_subset(spec, table, table_file)
    n_subset = len(table)

    for var in terms.variables():
        if var != terms.outcome and table[var].isna().all():
            for t in terms.drop_variable(var):
                dropped.append({"term": t, "reason": f"'{var}' is missing on every row"})
    if table[terms.outcome].isna().all():
        raise Skipped(f"outcome '{terms.outcome}' is missing on every row of {table_file}")

    sub, missing = _complete_rows(spec, terms, table, dropped)
    if not _varies(sub[terms.outcome]):
        raise Skipped(f"outcome '{terms.outcome}' does not vary in the {len(sub)} model rows")
    if spec.kind in MIXED_KINDS and not terms.random:
        why = "; ".join(f"{d['term']}: {d['reason']}" for d in dropped) or "none specified"
        raise Skipped(f"no random-effect term left ({why})")

    frame, factors = _code(spec, terms, sub, cfg, notes)
    fixed = _expand(terms.fixed, factors)
    random = _random_string(terms.random, factors)
    resolved = dataclasses.replace(
        spec,
        outcome=terms.outcome,
        fixed=tuple(fixed),
        random=random,
        options=terms.options,
    )
    formula = f"{terms.outcome} ~ {' + '.join(fixed) if fixed else '1'}"
    if random:
        formula += f" + {random}"
    groups = {g: int(_group_values(frame, g).nunique()) for g in terms.groups()}
    meta = FrameMeta(
        model=spec.id,
        table=table_file,
        spec=resolved,
        formula=formula,
        n_table=n_table,
        n_subset=n_subset,
        n_obs=len(frame),
        n_dropped=n_subset - len(frame),
        missing=missing,
        dropped_terms=dropped,
        factors=factors,
        groups=groups,
        notes=notes,
        extra=extra,
    )
    return frame, meta


def _check_columns(
    spec: ModelSpec,
    terms: _Terms,
    table: pd.DataFrame,
    table_file: str,
    availability: Mapping[str, Any],
    cfg: Mapping[str, Any],
    dropped: list[dict[str, str]],
) -> None:
    """Every used variable is a column, or is absent because its measure is unavailable."""
    for var in terms.variables():
        if var in table.columns:
            continue
        key = availability_key(var, cfg)
        ok, reason = availability_state(availability, key) if key else (True, "")
        if var == terms.outcome:
            if not ok:
                raise Skipped(f"outcome '{var}' is not available: {reason}")
        elif not ok:
            for t in terms.drop_variable(var):
                dropped.append({"term": t, "reason": f"{key} not available: {reason}"})
            continue
        raise ConfigError(
            f"model '{spec.id}': term '{var}' is not a column of {table_file}; "
            f"columns: {', '.join(map(str, table.columns))}"
        )


def _apply_subset(spec: ModelSpec, table: pd.DataFrame, table_file: str) -> pd.DataFrame:
    try:
        out = table.query(spec.subset, engine="python")
    except Exception as exc:  # pandas raises many types for a bad query; all are config errors
        raise ConfigError(
            f"model '{spec.id}', key subset: {spec.subset!r} cannot be applied to {table_file}: "
            f"{exc}; columns: {', '.join(map(str, table.columns))}"
        ) from None
    if not isinstance(out, pd.DataFrame) or len(out.columns) != len(table.columns):
        raise ConfigError(f"model '{spec.id}', key subset: {spec.subset!r} is not a row filter")
    if out.empty:
        raise Skipped(f"subset {spec.subset!r} leaves no rows of {table_file}")
    return out


def group_codes(frame: pd.DataFrame, group: str) -> pd.Series:
    """Integer code per row of a grouping factor (`a` or an interaction `a:b`); NaN-free rows."""
    return frame.groupby(group.split(":"), sort=True, dropna=False).ngroup()


def _group_values(frame: pd.DataFrame, group: str) -> pd.Series:
    return group_codes(frame, group)


def _complete_rows(
    spec: ModelSpec, terms: _Terms, table: pd.DataFrame, dropped: list[dict[str, str]]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop incomplete rows, then terms without variation, until nothing changes."""
    for _ in range(100):
        used = terms.variables()
        missing = {v: int(n) for v, n in table[used].isna().sum().items() if n}
        sub = table.loc[table[used].notna().all(axis=1)]
        if sub.empty:
            raise Skipped(
                f"no rows with every variable present ({', '.join(used)}); "
                f"missing counts: {missing}"
            )
        changed = False
        for var in terms.term_variables():
            if not _varies(sub[var]):
                what = "has one level" if _is_factor(sub[var]) else "does not vary"
                for t in terms.drop_variable(var):
                    dropped.append({"term": t, "reason": f"'{var}' {what} in the model rows"})
                changed = True
        for group in terms.groups():
            if _group_values(sub, group).nunique() < 2:
                for t in terms.drop_group(group):
                    dropped.append({"term": t, "reason": f"'{group}' has fewer than 2 levels"})
                changed = True
        if not changed:
            return sub, missing
    raise RuntimeError(f"model '{spec.id}': term dropping did not settle")  # pragma: no cover


def _level_text(level: Any) -> str:
    if isinstance(level, bool | np.bool_):
        return "TRUE" if level else "FALSE"
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def _reference(
    spec: ModelSpec, var: str, levels: list[str], cfg: Mapping[str, Any], notes: list[str]
) -> str:
    wanted = (spec.options.get("reference") or {}).get(var)
    if wanted is not None:
        if str(wanted) not in levels:
            raise ConfigError(
                f"model '{spec.id}', key options.reference.{var}: level {wanted!r} is not in "
                f"the model rows; levels: {', '.join(levels)}"
            )
        return str(wanted)
    codings = cfg.get("codings") or {}
    if var == "arm":
        ref = codings.get("arm_reference")
        if ref is None:
            placebo = sorted(a for a, c in (codings.get("arm") or {}).items() if c == "placebo")
            ref = placebo[0] if placebo else None
        if ref is not None and str(ref) in levels:
            return str(ref)
        if ref is not None:
            notes.append(
                f"reference arm {ref!r} has no model rows; reference is {levels[0]!r} instead"
            )
    if var == "arm_class" and "placebo" in levels:
        return "placebo"
    return levels[0]


def _code(
    spec: ModelSpec,
    terms: _Terms,
    sub: pd.DataFrame,
    cfg: Mapping[str, Any],
    notes: list[str],
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Keep the used columns (+ IDs), numerics as float, factors as 0/1 columns."""
    used = terms.variables()
    ids = [c for c in ID_COLUMNS if c in sub.columns and c not in used]
    frame = pd.DataFrame(index=range(len(sub)))
    design_vars = set(terms.term_variables())
    group_vars = {v for g in terms.groups() for v in g.split(":")}
    factors: dict[str, dict[str, Any]] = {}
    for col in [*used, *ids]:
        s = sub[col].reset_index(drop=True)
        if col in design_vars and _is_factor(s):
            frame[col], factors[col] = _factor(spec, col, s, cfg, notes)
        elif col in group_vars or col in ids or _is_factor(s):
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
            if name in frame.columns or name in sub.columns:
                raise ConfigError(
                    f"model '{spec.id}': level {level!r} of '{col}' becomes column '{name}', "
                    "which already exists; rename the level or the column"
                )
            frame[name] = (frame[col] == level).to_numpy(dtype=float)
    return frame, factors


def _factor(
    spec: ModelSpec, col: str, s: pd.Series, cfg: Mapping[str, Any], notes: list[str]
) -> tuple[pd.Categorical, dict[str, Any]]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        raw = [c for c in s.cat.categories if c in present]
    else:
        raw = sorted(s.dropna().unique(), key=_level_text)
    text = [_level_text(v) for v in raw]
    values = s.map(dict(zip(raw, text, strict=True)))
    ref = _reference(spec, col, text, cfg, notes)
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


def _expand(terms: list[tuple[str, ...]], factors: Mapping[str, dict[str, Any]]) -> list[str]:
    """Terms over the frame's columns: a factor piece becomes each of its 0/1 columns."""
    out: list[str] = []
    for term in terms:
        if term in (("1",), ("0",)):
            out.append(term[0])
            continue
        pieces = [_columns_of(v, factors) for v in term]
        out += [":".join(p) for p in itertools.product(*pieces)]
    return list(dict.fromkeys(out))


def _random_string(random: list, factors: Mapping[str, dict[str, Any]]) -> str | None:
    parts = []
    for lhs, bar, group in random:
        parts.append(f"({' + '.join(_expand(lhs, factors))} {bar} {':'.join(group)})")
    return " + ".join(parts) or None


def factor_columns(frame: pd.DataFrame, var: str) -> dict[str, str | None]:
    """Level -> 0/1 column of a coded factor in a model frame (None for the reference level)."""
    s = frame[var]
    if not isinstance(s.dtype, pd.CategoricalDtype):
        raise KeyError(f"'{var}' is not a coded factor of this frame")
    levels = [str(c) for c in s.cat.categories]
    return {lev: (None if i == 0 else make_name(var + lev)) for i, lev in enumerate(levels)}
