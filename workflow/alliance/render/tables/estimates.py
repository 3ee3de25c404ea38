"""Result tables: reliability per scale, agreement per rater pair, one APA fixed-effects table per
model (with its fit notes) and the summary of alliance effects across models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import InputError
from alliance.render import apa
from alliance.render.tables.formats import Table, label_of

COEF_COLUMNS = ("term", "estimate", "std_error", "statistic", "df", "p_value", "ci_low", "ci_high")
RELIABILITY_COLUMNS = (
    *("instrument", "rater", "scale", "session", "n", "n_items", "alpha", "alpha_ci_low"),
    *("alpha_ci_high", "omega", "min_item_rest", "mean_item_rest"),
)


# --------------------------------------------------------------------------------- reliability
def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise InputError(f"{what} lacks column(s) {', '.join(absent)}", column=absent[0])


def _text(value: Any) -> str:
    return "" if apa.is_missing(value) else str(value)


def reliability_table(
    rel: pd.DataFrame,
    *,
    sessions: bool = False,
    labels: Mapping[str, str] | None = None,
    digits: int = 2,
    title: str = "Internal consistency of the alliance scales",
) -> Table:
    """Alpha [95% CI], omega and item-rest r per instrument x rater x scale (pooled rows).

    `sessions=True` adds the per-session rows and a Session column. Rows keep the input order.
    Row notes from the reliability stage (e.g. "2 items: omega not identified") become notes, and
    an instrument whose `key_status` is not verified gets a note saying so.
    """
    _require(rel, RELIABILITY_COLUMNS, "reliability table")
    labels = dict(labels or {})
    pooled = rel["session"].astype("str") == "pooled"
    rows = rel if sessions else rel[pooled.to_numpy()]
    header = ["Instrument", "Rater", "Scale"] + (["Session"] if sessions else [])
    header += ["k", "n", "α", "95% CI", "ω", "Item–rest r, min", "Item–rest r, M"]
    body, notes = [], []
    for rec in rows.to_dict("records"):
        ident = [label_of(labels, str(rec[c])) for c in ("instrument", "rater", "scale")]
        session = str(rec["session"])
        cells = ident + ([session] if sessions else [])
        cells += [
            apa.fmt_int(rec["n_items"]),
            apa.fmt_int(rec["n"]),
            apa.fmt_r(rec["alpha"], digits, check=False),
            apa.fmt_ci(rec["alpha_ci_low"], rec["alpha_ci_high"], digits, leading_zero=False),
            apa.fmt_r(rec["omega"], digits, check=False),
            apa.fmt_r(rec["min_item_rest"], digits),
            apa.fmt_r(rec["mean_item_rest"], digits),
        ]
        body.append(cells)
        note = _text(rec.get("note"))
        if note:
            where = " ".join(ident) + ("" if session == "pooled" else f", session {session}")
            notes.append(f"{where}: {note}.")
    lead = (
        "k = number of items; α = Cronbach's alpha with Feldt's 95% CI; ω = McDonald's omega "
        "total (one-factor model); item–rest r = correlation of an item with the sum of the other "
        "items."
    )
    pooling = sorted({_text(v) for v in rel.loc[pooled.to_numpy()].get("pooling", [])} - {""})
    if pooled.any():
        lead += (
            " Pooled rows: " + ("; ".join(pooling) if pooling else "all sessions together") + "."
        )
    if "key_status" in rel.columns:
        shown = rows.drop_duplicates(["instrument", "rater"])
        for rec in shown[shown["key_status"].astype("str") != "verified"].to_dict("records"):
            who = " ".join(label_of(labels, str(rec[c])) for c in ("instrument", "rater"))
            notes.append(
                f"{who}: the scoring key is unverified (not confirmed against a published "
                "source; scored because the config opts in via alliance.allow_unverified_keys), "
                "so its subscale scores rest on an assumed item key."
            )
    frame = pd.DataFrame(body, columns=header, dtype="str")
    return Table(title, frame, [lead, *notes])


# ----------------------------------------------------------------------------------- agreement
AGREEMENT_COLUMNS = (
    *("rater_a", "rater_b", "session", "n_pairs", "n_patients", "sessions", "mean_a", "mean_b"),
    *("mean_diff", "sd_diff", "icc_a1", "icc_c1", "r"),
)


def agreement_table(
    agree: pd.DataFrame, *, digits: int = 2, title: str = "Agreement between alliance raters"
) -> Table:
    """One row per rater pair (pooled over its sessions): the sessions, pairs and patients it
    rests on, both raters' means, the mean difference (SD), ICC(A,1), ICC(C,1) and r."""
    _require(agree, AGREEMENT_COLUMNS, "agreement table")
    pooled = agree[agree["session"].astype("str") == "pooled"]
    header = ["Raters", "Sessions", "Pairs", "Patients", "M, first", "M, second",
              "Difference, M (SD)", "ICC(A,1)", "ICC(C,1)", "r"]  # fmt: skip
    body = []
    for rec in pooled.to_dict("records"):
        raters = f"{str(rec['rater_a']).capitalize()}\N{EN DASH}{rec['rater_b']}"
        where = ", ".join(p for p in _text(rec["sessions"]).split(";") if p)
        body.append([
            raters, where or apa.MISSING, apa.fmt_int(rec["n_pairs"]),
            apa.fmt_int(rec["n_patients"]), apa.fmt_num(rec["mean_a"], digits),
            apa.fmt_num(rec["mean_b"], digits),
            apa.fmt_mean_sd(rec["mean_diff"], rec["sd_diff"], digits),
            apa.fmt_r(rec["icc_a1"], digits, check=False),
            apa.fmt_r(rec["icc_c1"], digits, check=False), apa.fmt_r(rec["r"], digits),
        ])  # fmt: skip
    lead = (
        "Each pair of raters is compared on the sessions both rated (Sessions: the session "
        "numbers with at least one pair; Pairs: patient x session pairs; Patients: patients with "
        "at least one pair). Difference = first minus second rater, in scale points. ICC(A,1) = "
        "absolute agreement, ICC(C,1) = consistency (McGraw & Wong 1996), both for single ratings "
        "with the pairs as targets; the pairs of one patient are not independent, so read them "
        "as descriptive. Per-session values are in scores/agreement.csv."
    )
    return Table(title, pd.DataFrame(body, columns=header, dtype="str"), [lead])


# --------------------------------------------------------------------------------- model table
def _bare(term: Any) -> str:
    """ "(Intercept)" -> "Intercept", so a correlation reads r(Intercept, time)."""
    text = str(term)
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def _fmt_component(rec: Mapping[str, Any]) -> str:
    return f"{rec['term1']} {apa.fmt_num(rec.get('sd'))}"


def _variance_note(components: Sequence[Mapping[str, Any]]) -> str | None:
    groups: dict[str, list[str]] = {}
    for rec in components:
        group = str(rec.get("group"))
        t2 = _text(rec.get("term2"))
        if t2:
            text = f"r({_bare(rec['term1'])}, {_bare(t2)}) = {apa.fmt_r(rec.get('corr'))}"
        elif group == "Residual":
            text = apa.fmt_num(rec.get("sd"))
        else:
            text = _fmt_component(rec)
        groups.setdefault(group, []).append(text)
    if not groups:
        return None
    parts = [f"{g.lower() if g == 'Residual' else g} {', '.join(t)}" for g, t in groups.items()]
    return "Random effects (SD): " + "; ".join(parts) + "."


def _icc_note(icc: Any) -> str | None:
    if isinstance(icc, Mapping) and icc:
        return "ICC: " + ", ".join(f"{g} {apa.fmt_r(v)}" for g, v in icc.items()) + "."
    if icc is not None and not isinstance(icc, Mapping) and not apa.is_missing(icc):
        return f"ICC = {apa.fmt_r(icc)}."
    return None


def _derived_note(fit: Mapping[str, Any]) -> str | None:
    """What the derived rows (fit.json `derived_terms`) are: not coefficients of the R call."""
    terms = list(fit.get("derived_terms") or [])
    if not terms:
        return None
    how = []
    rc = fit.get("reliability_correction")
    if isinstance(rc, Mapping) and rc.get("moderator") and rc.get("matrix") is not None:
        m = "; ".join(", ".join(apa.fmt_num(v, 3) for v in row) for row in rc["matrix"])
        how.append(
            f"_rc rows are regression-calibrated for item error in {rc.get('term')}, its slope "
            f"and interaction with {rc['moderator']} together (the naive pair times "
            f"M = [{m}], M = (W'PW − E)⁻¹ W'PW)"
        )
    elif isinstance(rc, Mapping) and rc.get("lambda") is not None:
        how.append(
            f"_rc rows are regression-calibrated for item error in {rc.get('term')} "
            f"(coefficient / lambda, lambda = {apa.fmt_num(rc['lambda'], 3)})"
        )
    bc = fit.get("bias_correction")
    if isinstance(bc, Mapping) and bc.get("n_boot"):
        how.append(
            "_bc rows are small-sample bias-corrected by a bootstrap from the fitted model "
            f"(2 b − mean b*, {apa.fmt_int(bc['n_boot'])} replicates; SE of the uncorrected row)"
        )
    what = "; ".join(how) if how else "derived from other rows"
    return f"Derived rows ({', '.join(terms)}), not part of the R call: {what}."


def fit_notes(fit: Mapping[str, Any], *, finite_df: bool, infinite_df: bool) -> list[str]:
    """Note lines under a model table: tests, random effects, fit, n's, engine, convergence."""
    notes = ["b = unstandardised estimate; SE = standard error; CI = 95% confidence interval."]
    if finite_df:
        method = fit.get("df_method") or "unspecified"
        notes.append(f"t tests with {method} degrees of freedom.")
    if infinite_df:
        notes.append("z = Wald z test.")
    for line in (_variance_note(fit.get("variance_components") or []), _icc_note(fit.get("icc"))):
        if line:
            notes.append(line)
    indices = [
        f"{name} = {apa.fmt_num(fit.get(key))}"
        for key, name in (("logLik", "log-likelihood"), ("AIC", "AIC"), ("BIC", "BIC"))
        if not apa.is_missing(fit.get(key))
    ]
    if indices:
        how = {True: " (REML)", False: " (ML)"}.get(fit.get("reml"), "")
        notes.append(f"Fit{how}: " + ", ".join(indices) + ".")
    counts = [
        f"{apa.fmt_int(fit[key])} {name}"
        for key, name in (
            ("n_obs", "observations"),
            ("n_patients", "patients"),
            ("n_therapists", "therapists"),
        )
        if not apa.is_missing(fit.get(key))
    ]
    if counts:
        notes.append("n = " + ", ".join(counts) + ".")
    if fit.get("engine"):
        version = f" {fit['engine_version']}" if fit.get("engine_version") else ""
        notes.append(f"Fitted with {fit['engine']}{version}.")
    if fit.get("formula_r"):
        notes.append(f"R equivalent: {fit['formula_r']}")
    derived = _derived_note(fit)
    if derived:
        notes.append(derived)
    problems = []
    if fit.get("converged") is False:
        problems.append("the model did not converge")
    if fit.get("singular") is True:
        problems.append("singular fit")
    if problems:
        notes.append("Caution: " + "; ".join(problems) + ".")
    notes += [f"Engine warning: {w}" for w in fit.get("warnings") or []]
    return notes


def model_table(
    coefficients: pd.DataFrame,
    fit: Mapping[str, Any],
    *,
    labels: Mapping[str, str] | None = None,
    digits: int = 2,
    title: str | None = None,
) -> Table:
    """APA fixed-effects table (term, b, SE, 95% CI, test with df, p) of one model.

    Variance components, ICC, fit indices, n's, df method, engine and any convergence or
    singularity problem (engine warnings verbatim) go into the notes.
    """
    _require(coefficients, COEF_COLUMNS, "coefficient table")
    labels = dict(labels or {})
    models = sorted(set(coefficients["model"].astype("str"))) if "model" in coefficients else []
    if len(models) > 1:
        raise ValueError(f"model_table takes one model's coefficients, got {models}")
    name = models[0] if models else str(fit.get("model", "model"))
    body = []
    for rec in coefficients.to_dict("records"):
        places = apa.digits_for(rec["std_error"], digits)
        body.append(
            [
                label_of(labels, str(rec["term"])),
                apa.fmt_num(rec["estimate"], places),
                apa.fmt_num(rec["std_error"], places),
                apa.fmt_ci(rec["ci_low"], rec["ci_high"], places),
                apa.fmt_stat("t", rec["statistic"], rec["df"], digits),
                apa.fmt_p(rec["p_value"]),
            ]
        )
    dfs = pd.to_numeric(coefficients["df"], errors="coerce").to_numpy(dtype=float)
    notes = fit_notes(
        fit, finite_df=bool(np.isfinite(dfs).any()), infinite_df=bool(np.isinf(dfs).any())
    )
    frame = pd.DataFrame(body, columns=["Term", "b", "SE", "95% CI", "Test", "p"], dtype="str")
    return Table(title or f"Fixed effects: {label_of(labels, name)}", frame, notes)


# ------------------------------------------------------------------------------- summary table
def _skipped(rec: Mapping[str, Any]) -> bool:
    status = _text(rec.get("status")).lower()
    if status:
        return status == "skipped"
    flag = rec.get("skipped")
    if not apa.is_missing(flag) and flag is not None:
        return str(flag).lower() in {"true", "1", "yes"}
    return apa.is_missing(rec.get("estimate")) and bool(_text(rec.get("reason")))


ADJUSTED = {  # summary column -> (table header, method as the note names it)
    "p_holm": ("p Holm", "Holm's step-down method (family-wise error rate)"),
    "p_bh": ("p BH", "the Benjamini–Hochberg method (false discovery rate)"),
}


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and pd.to_numeric(frame[column], errors="coerce").notna().any()


def _multiplicity_note(summary: pd.DataFrame, labels: Mapping[str, str]) -> str | None:
    """The methods, then each family: its number of p values, the primary entries by name."""
    methods = [how for col, (_, how) in ADJUSTED.items() if _has_values(summary, col)]
    if not methods or "family" not in summary.columns:
        return None
    family = summary["family"].fillna("").astype(str)
    status = summary.get("status", pd.Series("fitted", index=summary.index)).astype(str)
    obtained = pd.to_numeric(summary["p_value"], errors="coerce").notna() & (status == "fitted")
    missing = status == "not fitted"
    terms = summary["term"] if "term" in summary.columns else pd.Series("", index=summary.index)
    names = [
        f"{label_of(labels, str(m))} {_text(t)}".strip()
        for m, t in zip(summary["model"], terms, strict=True)
    ]
    text = [
        "Multiplicity: p values adjusted within each family, over the p values obtained, by "
        + " and by ".join(methods)
        + "."
    ]
    order = {"primary": 0, "secondary": 1}
    for name in sorted(dict.fromkeys(f for f in family if f), key=lambda f: order.get(f, 2)):
        rows = (family == name).to_numpy()
        line = f"{name.capitalize()} family, {int((rows & obtained).sum())} p values"
        if name == "primary":
            line += ": " + "; ".join(n for n, r in zip(names, rows & obtained, strict=True) if r)
        absent = [n for n, r in zip(names, rows & missing, strict=True) if r]
        if absent:
            line += "; not fitted: " + "; ".join(absent)
        text.append(line + ".")
    return " ".join(text)


def summary_table(
    summary: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    digits: int = 2,
    title: str = "Alliance effects across models",
) -> Table:
    """One row per model x key alliance term, plus one row per skipped model with its reason.

    Reads columns model, term, estimate, std_error, ci_low, ci_high, p_value and, when present,
    statistic, df, status ("skipped", "not fitted"), reason, converged, singular, and the
    multiplicity columns p_holm, p_bh, family (adjusted p columns and a note on the families).
    """
    _require(summary, ["model"], "model summary")
    labels = dict(labels or {})
    has_test = "statistic" in summary.columns
    adjusted = [col for col in ADJUSTED if _has_values(summary, col)]
    has_family = bool(adjusted) and "family" in summary.columns
    blanks = (5 if has_test else 4) + len(adjusted) + int(has_family)
    body, skipped = [], 0
    for rec in summary.to_dict("records"):
        model = label_of(labels, str(rec["model"]))
        family = [_text(rec.get("family"))] if has_family else []
        if _skipped(rec) or _text(rec.get("status")) == "not fitted":
            not_fitted = not _skipped(rec)
            skipped += 0 if not_fitted else 1
            reason = _text(rec.get("reason")) or "no reason recorded"
            row = [model, label_of(labels, _text(rec.get("term"))) or apa.MISSING]
            row += [apa.MISSING] * (blanks - len(family)) + family
            body.append(row + [f"{'Not fitted' if not_fitted else 'Skipped'}: {reason}"])
            continue
        flags = []
        if "converged" in rec and str(rec["converged"]).lower() in {"false", "0"}:
            flags.append("not converged")
        if "singular" in rec and str(rec["singular"]).lower() in {"true", "1"}:
            flags.append("singular fit")
        places = apa.digits_for(rec.get("std_error"), digits)
        row = [
            model,
            label_of(labels, _text(rec.get("term"))),
            apa.fmt_num(rec.get("estimate"), places),
            apa.fmt_num(rec.get("std_error"), places),
            apa.fmt_ci(rec.get("ci_low"), rec.get("ci_high"), places),
        ]
        if has_test:
            row.append(apa.fmt_stat("t", rec.get("statistic"), rec.get("df"), digits))
        row.append(apa.fmt_p(rec.get("p_value")))
        row += [apa.fmt_p(rec.get(col)) for col in adjusted] + family
        body.append(row + ["; ".join(flags)])
    header = ["Model", "Term", "b", "SE", "95% CI"] + (["Test"] if has_test else []) + ["p"]
    header += [ADJUSTED[col][0] for col in adjusted] + (["Family"] if has_family else [])
    notes = ["b = unstandardised estimate; SE = standard error; CI = 95% confidence interval."]
    if has_test:
        notes.append("t tests with the model's df method; z = Wald z test.")
    multiplicity = _multiplicity_note(summary, labels)
    if multiplicity:
        notes.append(multiplicity)
    if skipped:
        notes.append(f"{skipped} model(s) skipped; the Note column gives the reason.")
    return Table(title, pd.DataFrame(body, columns=[*header, "Note"], dtype="str"), notes)
