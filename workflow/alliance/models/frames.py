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
4. `subset` (the row-filter grammar of `alliance.expressions`; never evaluated as code).
5. Terms whose variable is all-missing, or (after dropping incomplete rows) constant / a factor
   with one level, are dropped; so is a random term whose grouping factor has < 2 levels. A
   mixed model with no random term left, or an outcome that does not vary, -> Skipped.
6. Rows with a missing value in any used variable are dropped (R's na.omit); counts recorded.
7. Factors -> 0/1 columns (reference level first: `options.reference`, then
   codings.arm_reference / the first placebo arm for `arm`, `placebo` for `arm_class`, else
   the first level in sorted order). The factor's own column is kept (categorical, reference
   first) beside its 0/1 columns, as are the `patient` / `therapist` IDs (pseudonyms).

Few therapists (< options.min_groups levels of an upper grouping factor) are handled by the
kind (alliance.models.mixed), not here. The spec's terms are parsed by alliance.models.terms and
step 7 is alliance.models.coding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alliance.errors import ConfigError
from alliance.expressions import ExpressionError, row_filter
from alliance.models.base import ModelSpec, Skipped
from alliance.models.coding import (
    ID_COLUMNS,
    code_frame,
    expand_terms,
    is_factor,
    preferred_arm,
    random_string,
)
from alliance.models.person_period import person_period_terms
from alliance.models.terms import Terms, spec_terms

# Why a covariate that is missing everywhere was dropped, when there is more to say than that.
MISSING_REASON = {
    "baseline_symptom": (
        "no pre-treatment baseline score in the data; the first session's score is an outcome "
        "row and is not used in its place (docs/estimands.md)"
    ),
}
TABLES = {"sessions": "analysis.parquet", "patients": "patient_analysis.parquet"}
MIXED_KINDS = ("lmm", "glmm", "hazard")
# Which availability key explains a column's absence. (Personality traits need none: clean marks
# `personality` available exactly when traits are configured, and then their columns exist.)
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
    "alliance_o": "raters.observer",
    "alliance_o_early": "raters.observer",
    "alliance_o_mean": "raters.observer",
    "alliance_o_last": "raters.observer",
    "alliance_o_slope": "raters.observer",
    "agree_p": "raters.therapist",
    "agree_t": "raters.therapist",
    "symptom": "symptom",
    "symptom_lag1": "symptom",
    "symptom_change": "symptom",
    "final_symptom": "symptom",
    "trd": "treatment_resistance.trd",
    "staging_score": "treatment_resistance.staging",
    "stage": "treatment_resistance.staging",
    "missed_before": "attendance",
    "missed_prior": "attendance",
    "adherence": "adherence",
    "doses_prescribed": "adherence",
    "report_discrepancy": "self_report",
    "symptom_pomp": "self_report",
}


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


def availability_state(availability: Mapping[str, Any], key: str) -> tuple[bool, str]:
    """(available, reason) of a dotted availability key such as `raters.therapist`."""
    node: Any = availability
    parent: Any = None
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, f"'{key}' is not recorded in availability.json"
        parent, node = node, node[part]
    if isinstance(node, bool) and isinstance(parent, Mapping):
        # a flag inside a measure's entry (treatment_resistance.trd): the measure's reason,
        # else the flag's own (the entry's `reasons`), else a generic one
        flag = key.rsplit(".", 1)[-1]
        own = parent.get("reasons")
        own = own.get(flag) if isinstance(own, Mapping) else None
        why = parent.get("reason") or own or f"the data have no {flag}"
        return node, "" if node else str(why)
    if not isinstance(node, Mapping):
        return False, f"'{key}' is not recorded in availability.json"
    ok = bool(node.get("available"))
    return ok, "" if ok else str(node.get("reason") or f"{key} not available")


def availability_key(column: str) -> str | None:
    """The availability key that explains `column` being absent, if any."""
    return AVAILABILITY_OF.get(column)


# ---- the frame --------------------------------------------------------------------------------


def _varies(s: pd.Series) -> bool:
    return s.nunique(dropna=True) >= 2


def model_frame(
    spec: ModelSpec,
    sessions: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    availability: Mapping[str, Any],
    *,
    arms: Mapping[str, str] | None = None,
    arm_reference: str | None = None,
) -> tuple[pd.DataFrame, FrameMeta]:
    """The coded frame a model is fitted on and how it was built (see module docstring).

    `arms` (codings.arm, arm -> class) and `arm_reference` (codings.arm_reference) choose the
    reference level of `arm`.
    """
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

    terms = spec_terms(spec)
    dropped: list[dict[str, str]] = []
    notes: list[str] = []
    _check_columns(spec, terms, table, table_file, availability, dropped)
    extra: dict[str, Any] = {}
    if spec.kind == "hazard":
        table, terms, extra = person_period_terms(spec, terms, table)

    n_table = len(table)
    if spec.subset:
        table = _apply_subset(spec, table, table_file)
    n_subset = len(table)
    if spec.kind == "riclpm":
        return _riclpm_frame(spec, table, table_file, n_table, n_subset)

    for var in terms.variables():
        if var != terms.outcome and table[var].isna().all():
            why = MISSING_REASON.get(var, f"'{var}' is missing on every row")
            for t in terms.drop_variable(var):
                dropped.append({"term": t, "reason": why})
    if table[terms.outcome].isna().all():
        raise Skipped(f"outcome '{terms.outcome}' is missing on every row of {table_file}")

    # Rows are selected from the columns the frame can keep (used variables and IDs), not from
    # the whole analysis table (79 columns at 600k rows, where that took up to ~0.5 s CPU more).
    keep = set(terms.variables()) | set(ID_COLUMNS)
    narrow = table[[c for c in table.columns if c in keep]]
    sub, missing = _complete_rows(spec, terms, narrow, dropped)
    if not _varies(sub[terms.outcome]):
        raise Skipped(f"outcome '{terms.outcome}' does not vary in the {len(sub)} model rows")
    if spec.kind in MIXED_KINDS and not terms.random:
        why = "; ".join(f"{d['term']}: {d['reason']}" for d in dropped) or "none specified"
        raise Skipped(f"no random-effect term left ({why})")

    frame, factors = code_frame(
        spec, terms, sub, preferred_arm(arms or {}, arm_reference), notes, taken=table.columns
    )
    fixed = expand_terms(terms.fixed, factors)
    random = random_string(terms.random, factors)
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
    terms: Terms,
    table: pd.DataFrame,
    table_file: str,
    availability: Mapping[str, Any],
    dropped: list[dict[str, str]],
) -> None:
    """Every used variable is a column, or is absent because its measure is unavailable."""
    for var in terms.variables():
        if var in table.columns:
            continue
        if var == terms.options.get("trials"):
            raise Skipped(
                f"options.trials '{var}' is not in the data: the outcome is a proportion without "
                "its counts (map the count columns, e.g. columns.doses_prescribed)"
            )
        key = availability_key(var)
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
    """Rows kept by the spec's `subset`, parsed by the row-filter grammar (never evaluated)."""
    try:
        out = row_filter(spec.subset, table)
    except ExpressionError as exc:
        raise ConfigError(
            f"model '{spec.id}', key subset: {spec.subset!r} cannot be applied to {table_file}: "
            f"{exc}"
        ) from None
    if out.empty:
        raise Skipped(f"subset {spec.subset!r} leaves no rows of {table_file}")
    return out


def group_codes(frame: pd.DataFrame, group: str) -> pd.Series:
    """Integer code per row of a grouping factor (`a` or an interaction `a:b`); NaN-free rows."""
    return frame.groupby(group.split(":"), sort=True, dropna=False).ngroup()


def _group_values(frame: pd.DataFrame, group: str) -> pd.Series:
    return group_codes(frame, group)


def _complete_rows(
    spec: ModelSpec, terms: Terms, table: pd.DataFrame, dropped: list[dict[str, str]]
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
                what = "has one level" if is_factor(sub[var]) else "does not vary"
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


def _riclpm_frame(
    spec: ModelSpec, table: pd.DataFrame, table_file: str, n_table: int, n_subset: int
) -> tuple[pd.DataFrame, FrameMeta]:
    """The RI-CLPM's long frame: missing scores kept (full-information ML uses every score)."""
    from alliance.models.riclpm import session_frame

    frame = session_frame(spec, table)
    meta = FrameMeta(
        model=spec.id,
        table=table_file,
        spec=spec,
        formula=f"RI-CLPM of {spec.options.get('x')} and {spec.options.get('y')} over sessions",
        n_table=n_table,
        n_subset=n_subset,
        n_obs=len(frame),
        groups={"patient": int(frame["patient"].nunique())},
    )
    return frame, meta
