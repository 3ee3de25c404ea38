"""Publication tables: hand-checked Table 1, model/reliability/agreement/summary tables, four
file formats."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.errors import InputError
from alliance.render import apa
from alliance.render.tables import (
    Table,
    agreement_table,
    complementary_suppression,
    model_table,
    reliability_table,
    summary_table,
    table1,
    tex_escape,
    to_latex,
    write_table,
)
from alliance.render.tables.table1 import baseline_variables


def small_patients() -> pd.DataFrame:
    """Two arms of 6 plus one person without an arm (a screen failure).

    Arm A ages 30, 40, 50, 60, (missing), 35; arm B 20, 22, 24, 26, 28, 90.
    Sex: A = 4 F, 2 M; B = 1 F, 5 M.
    """
    return pd.DataFrame(
        {
            "arm": ["A"] * 6 + ["B"] * 6 + [None],
            "age": [30, 40, 50, 60, None, 35, 20, 22, 24, 26, 28, 90, 50],
            "sex": ["F", "F", "F", "F", "M", "M", "F", "M", "M", "M", "M", "M", "F"],
            "site": ["x"] * 12 + ["y"],
        }
    )


def cell(t: Table, row: str, col: int) -> str:
    hits = t.body.index[t.body.iloc[:, 0] == row]
    assert len(hits) == 1, f"row {row!r} not unique in {t.body.iloc[:, 0].tolist()}"
    return t.body.iloc[hits[0], col]


# ------------------------------------------------------------------------------------- table 1
def test_table1_by_hand_without_suppression() -> None:
    t = table1(small_patients(), continuous=["age"], categorical=["sex"], skewed=[], min_cell=1)
    assert list(t.body.columns) == ["Characteristic", "A (n = 6)", "B (n = 6)", "Total (N = 12)"]
    # A: 30, 35, 40, 50, 60 -> mean 43, SD sqrt(580 / 4) = 12.04
    # B: mean 210 / 6 = 35, SD sqrt((225+169+121+81+49+3025) / 5) = sqrt(734) = 27.09
    # total: 425 / 11 = 38.64, SD sqrt(4424.545 / 10) = 21.03
    assert cell(t, "Age (years), M (SD)", 1) == "43.0 (12.0)"
    assert cell(t, "Age (years), M (SD)", 2) == "35.0 (27.1)"
    assert cell(t, "Age (years), M (SD)", 3) == "38.6 (21.0)"
    assert cell(t, "Missing, n (%)", 1) == "1 (16.7%)"
    assert cell(t, "Missing, n (%)", 2) == "0 (0.0%)"
    assert cell(t, "Missing, n (%)", 3) == "1 (8.3%)"
    assert cell(t, "F", 1) == "4 (66.7%)"
    assert cell(t, "M", 1) == "2 (33.3%)"
    assert cell(t, "F", 2) == "1 (16.7%)"
    assert cell(t, "M", 2) == "5 (83.3%)"
    assert cell(t, "F", 3) == "5 (41.7%)"
    assert cell(t, "M", 3) == "7 (58.3%)"
    assert cell(t, "Sex, n (%)", 1) == ""
    assert t.indent == [0, 1, 0, 1, 1]
    assert t.column_groups == [("", 1), ("Arm", 2), ("", 1)]
    assert any("1 person without a value for arm" in n for n in t.notes)
    assert not any("withheld" in n for n in t.notes)


def test_table1_medians_by_hand_and_auto_rule() -> None:
    t = table1(small_patients(), continuous=["age"], categorical=[], min_cell=1)
    # the 90-year-old makes the pooled ages skewed (G1 > 1), so the auto rule picks medians.
    # Quartiles (type 7): A 35, 40, 50; B 22.5, 25, 27.5; total 25, 30, 45
    assert cell(t, "Age (years), Mdn [Q1, Q3]", 1) == "40.0 [35.0, 50.0]"
    assert cell(t, "Age (years), Mdn [Q1, Q3]", 2) == "25.0 [22.5, 27.5]"
    assert cell(t, "Age (years), Mdn [Q1, Q3]", 3) == "30.0 [25.0, 45.0]"
    assert any("skewness exceeds 1" in n for n in t.notes)
    # skewness of 30, 40, 50, 60, 35, 35, 40, 45, 50, 55, 45 is 0.21: means
    ages = [30, 40, 50, 60, None, 35, 35, 40, 45, 50, 55, 45, 50]
    symmetric = small_patients().assign(age=ages)
    t2 = table1(symmetric, continuous=["age"], categorical=[], min_cell=1)
    assert "Age (years), M (SD)" in t2.body.iloc[:, 0].tolist()
    forced = table1(symmetric, continuous=["age"], categorical=[], skewed=["age"])
    assert "Age (years), Mdn [Q1, Q3]" in forced.body.iloc[:, 0].tolist()


def test_table1_small_cell_suppression_by_hand() -> None:
    t = table1(small_patients(), continuous=["age"], categorical=["sex"], skewed=[], min_cell=3)
    # primary: A/M = 2 and B/F = 1. A reader knows A/F + A/M = 6 (header n) and A/M in 1..2,
    # so A/F (4) and B/M (5) alone would not do: with the total F = 5 printed, A/F + B/F = 5
    # pins A/F to 4. The totals F and M are withheld too; then A/M is 1 or 2 to a reader.
    assert cell(t, "M", 1) == "< 3"
    assert cell(t, "F", 2) == "< 3"
    assert cell(t, "F", 1) == apa.COMPLEMENTARY
    assert cell(t, "M", 2) == apa.COMPLEMENTARY
    assert cell(t, "F", 3) == apa.COMPLEMENTARY
    assert cell(t, "M", 3) == apa.COMPLEMENTARY
    # missing age: A = 1 (primary), B = 0, total = 1 (primary): A = total, 1 or 2 to a reader
    assert [cell(t, "Missing, n (%)", j) for j in (1, 2, 3)] == ["< 3", "0 (0.0%)", "< 3"]
    # no percentage ever accompanies a withheld count
    assert not t.body.isin(["< 3 (16.7%)"]).any().any()
    assert any(n.startswith("< 3: a count between 1 and 2") for n in t.notes)
    assert any(n.startswith("s: a count withheld (any value") for n in t.notes)


def test_complementary_suppression_covers_every_line() -> None:
    counts = np.array([[2, 10, 12], [8, 20, 28], [0, 6, 6]])  # arms A, B, total
    primary, comp = complementary_suppression(counts, 5)
    assert primary.tolist() == [[True, False, False], [False, False, False], [False] * 3]
    hidden = primary | comp
    # no single cell frees the 2 (column n's are known); the cheapest rectangle does: B/0 (10),
    # A/2 (0) and B/2 (6), all printed "s", so counts can move around it with every total
    # unchanged (A/0 is 1 or 2 to a reader)
    assert hidden.tolist() == [[True, True, False], [False] * 3, [True, True, False]]
    for k in range(3):
        assert hidden[k].sum() != 1 and hidden[:, k].sum() != 1
    # without constraints nothing but the primary cell goes
    p, c = complementary_suppression(counts, 5, rows=False, columns=False)
    assert not c.any() and p[0, 0]


def test_table1_labels_levels_and_defaults() -> None:
    df = small_patients().assign(modality=["in_person", "telehealth"] * 6 + [None])
    t = table1(df, labels={"arm=A": "CBT", "sex=F": "Female"}, min_cell=1)
    assert t.body.columns[1] == "CBT (n = 6)"
    col0 = t.body.iloc[:, 0].tolist()
    # defaults present in the data: age, sex, modality, site (in that order)
    assert col0[0].startswith("Age (years)")
    assert "Female" in col0 and "In person" in col0 and "Telehealth" in col0
    assert "Site, n (%)" in col0


def test_table1_rows_come_from_the_configured_covariates() -> None:
    """Any covariate name: numeric ones as M (SD), the rest as n (%); traits and the design."""
    df = small_patients().assign(
        years_in_school=[12.0, 14, 16, 9, 11, 13, 12, 15, 18, 10, 12, 14, 16],
        employed=[True, False] * 6 + [True],
        neuroticism=np.linspace(40, 60, 13),
        baseline_symptom=20.0,
        modality=["in_person", "telehealth"] * 6 + [None],
    )
    cont, cat = baseline_variables(df, ["years_in_school", "sex", "employed", "absent"],
                                   ["neuroticism"])  # fmt: skip
    assert cont == ["baseline_symptom", "years_in_school", "neuroticism"]
    assert cat == ["sex", "employed", "modality", "site"]
    t = table1(df, continuous=cont, categorical=cat, skewed=[], min_cell=3)
    col0 = t.body.iloc[:, 0].tolist()
    assert "years_in_school, M (SD)" in col0 and "employed, n (%)" in col0
    years = df.loc[df["arm"] == "A", "years_in_school"]
    expected = apa.fmt_mean_sd(years.mean(), years.std(ddof=1), 1)
    assert cell(t, "years_in_school, M (SD)", 1) == expected
    # small-cell suppression as for every count: arm B has 1 F -> "< 3"
    assert cell(t, "F", 2) == "< 3"


def test_the_render_stage_table1_lists_the_config_covariates(trial_config, tmp_path) -> None:
    """Through the render stage: covariates named in config (not `age`/`sex`) and the traits."""
    from alliance import files
    from alliance.clean.stage import clean_trial, write_clean
    from alliance.models.run import summarise
    from alliance.render.stage import build_tables
    from alliance.score.stage import run_score, write_score
    from alliance.settings import Settings

    patients = pd.read_csv(trial_config["data"]["patients"])
    patients = patients.rename(columns={"age": "age_at_entry", "sex": "gender"})
    patients.to_csv(trial_config["data"]["patients"], index=False)
    trial_config["columns"]["covariates"] = ["gender", "age_at_entry"]
    trial_config["models"] = {"use_defaults": False}
    settings = Settings.from_config(trial_config)
    results = tmp_path / "results"
    clean = clean_trial(settings.clean())
    write_clean(clean, results / "clean")
    write_score(run_score(clean.sessions, clean.patients, settings.score_stage()),
                results / "scores")  # fmt: skip
    files.write_csv(summarise({}), results / "models" / "summary.csv")
    build_tables(results, settings.render(), results / "tables")
    table = files.read_csv(results / "tables" / "table1_baseline.csv", dtype=str)
    rows = table.iloc[:, 0].tolist()
    for row in ("age_at_entry, M (SD)", "gender, n (%)", "Agreeableness, M (SD)"):
        assert row in rows, rows
    assert not any(r.startswith(("Age (years)", "Sex")) for r in rows)
    female = table[table.iloc[:, 0].str.strip() == "F"]  # level rows are indented
    assert set(female.iloc[0, 1:]) == {"< 5"}  # four randomised people: every count is small


def test_table1_bad_input() -> None:
    df = small_patients()
    with pytest.raises(InputError, match="grouping column") as err:
        table1(df, by="group")
    assert err.value.column == "group"
    with pytest.raises(InputError, match="not found"):
        table1(df, continuous=["weight"])
    df = pd.concat([df.iloc[[12]], df.iloc[:12]], ignore_index=True)  # screen failure first
    df["age"] = df["age"].astype(object)
    df.loc[4, "age"] = "old"
    with pytest.raises(InputError, match="non-numeric") as err:
        table1(df, continuous=["age"], categorical=[])
    assert err.value.row == 5 and err.value.column == "age"  # row in the file, not in the arm


# ----------------------------------------------------------------------------------- model table
COEFS = pd.DataFrame(
    {
        "model": ["growth"] * 4,
        "term": ["(Intercept)", "time", "a_between", "armPLA-CM"],
        "estimate": [25.40512, -1.234567, -2.675, 0.004999],
        "std_error": [1.2345, 0.1, 0.55555, 0.9],
        "statistic": [20.579, -12.34567, -4.815, 0.00555],
        "df": [17.03, 240.0, 35.456, 17.03],
        "p_value": [1e-12, 0.0004, 0.0000251, 0.9996],
        "ci_low": [22.8, -1.43, -3.8, -1.89],
        "ci_high": [28.0, -1.04, -1.55, 1.9],
    }
)
FIT = {
    "kind": "lmm",
    "engine": "mixedlm",
    "engine_version": "1.3.0",
    "reml": True,
    "n_obs": 1234,
    "n_patients": 120,
    "n_therapists": 12,
    "logLik": -3456.789,
    "AIC": 6929.578,
    "BIC": 6970.1,
    "variance_components": [
        {
            "group": "patient",
            "term1": "(Intercept)",
            "term2": "",
            "sd": 4.2,
            "var": 17.64,
            "corr": None,
        },
        {"group": "patient", "term1": "time", "term2": "", "sd": 0.5, "var": 0.25, "corr": None},
        {
            "group": "patient",
            "term1": "(Intercept)",
            "term2": "time",
            "sd": None,
            "var": 0.07,
            "corr": 0.0333,
        },
        {
            "group": "therapist",
            "term1": "(Intercept)",
            "term2": "",
            "sd": 1.1,
            "var": 1.21,
            "corr": None,
        },
        {"group": "Residual", "term1": "", "term2": "", "sd": 5.0127, "var": 25.13, "corr": None},
    ],  # fmt: skip
    "icc": {"therapist": 0.0283},
    "converged": False,
    "singular": True,
    "warnings": ["Model failed to converge with max|grad| = 0.0123 (tol = 0.002)"],
    "df_method": "Satterthwaite",
    "formula_r": "lmer(sym ~ time * a_between + arm + (1 + time | patient) + (1 | therapist))",
}


def _number(text: str) -> float:
    return float(text.replace(apa.MINUS, "-").replace(",", ""))


def test_model_table_numbers_equal_the_csv_rounded(tmp_path: Path) -> None:
    path = tmp_path / "coefficients.csv"
    COEFS.to_csv(path, index=False)
    coefs = pd.read_csv(path)
    t = model_table(coefs, FIT, labels={"a_between": "Alliance (between)"})
    assert list(t.body.columns) == ["Term", "b", "SE", "95% CI", "Test", "p"]
    for i, rec in enumerate(coefs.to_dict("records")):
        row = t.body.iloc[i]
        for col, key in (("b", "estimate"), ("SE", "std_error")):
            assert math.isclose(_number(row[col]), rec[key], abs_tol=0.005 + 1e-12)
            assert _number(row[col]) == float(apa.round_half_up(rec[key], 2))
        lo, hi = row["95% CI"].strip("[]").split(", ")
        assert _number(lo) == pytest.approx(rec["ci_low"], abs=0.005)
        assert _number(hi) == pytest.approx(rec["ci_high"], abs=0.005)
    assert t.body.iloc[2].tolist() == [
        "Alliance (between)", "−2.68", "0.56", "[−3.80, −1.55]", "t(35.5) = −4.82", "< .001",
    ]  # fmt: skip
    assert t.body.iloc[1]["Test"] == "t(240) = −12.35"
    assert t.body.iloc[1]["p"] == "< .001"
    assert t.body.iloc[3]["b"] == "0.00"  # 0.004999 rounds down
    assert t.body.iloc[3]["p"] == "> .999"
    assert t.title == "Fixed effects: growth"


def test_model_table_notes() -> None:
    notes = model_table(COEFS, FIT).notes
    text = "\n".join(notes)
    assert "t tests with Satterthwaite degrees of freedom." in notes
    assert (
        "Random effects (SD): patient (Intercept) 4.20, time 0.50, r(Intercept, time) = .03; "
        "therapist (Intercept) 1.10; residual 5.01." in notes
    )
    assert "ICC: therapist .03." in notes
    assert "Fit (REML): log-likelihood = −3,456.79, AIC = 6,929.58, BIC = 6,970.10." in notes
    assert "n = 1,234 observations, 120 patients, 12 therapists." in notes
    assert "Caution: the model did not converge; singular fit." in notes
    assert f"Engine warning: {FIT['warnings'][0]}" in notes  # verbatim
    assert FIT["formula_r"] in text
    assert "z = Wald" not in text


def test_model_table_says_what_derived_rows_are() -> None:
    fit = {
        **FIT,
        "derived_terms": ["alliance_rc", "alliance_mean_bc"],
        "reliability_correction": {"term": "alliance", "lambda": 0.8935},
        "bias_correction": {"n_boot": 200},
    }
    notes = model_table(COEFS, fit).notes
    (line,) = [n for n in notes if n.startswith("Derived rows")]
    assert "(alliance_rc, alliance_mean_bc), not part of the R call" in line
    assert "in alliance (coefficient / lambda, lambda = 0.894)" in line
    assert "200 replicates" in line
    assert not any(n.startswith("Derived rows") for n in model_table(COEFS, FIT).notes)


def test_model_table_z_tests_and_clean_fit() -> None:
    coefs = COEFS.assign(df=np.inf)
    fit = {**FIT, "converged": True, "singular": False, "warnings": [], "icc": None}
    t = model_table(coefs, fit)
    assert t.body.iloc[0]["Test"] == "z = 20.58"
    assert "z = Wald z test." in t.notes
    assert not any(n.startswith(("Caution", "Engine warning", "t tests")) for n in t.notes)
    with pytest.raises(ValueError, match="one model"):
        model_table(pd.concat([COEFS, COEFS.assign(model="other")]), FIT)
    with pytest.raises(InputError, match="p_value"):
        model_table(COEFS.drop(columns="p_value"), FIT)


# ------------------------------------------------------------------------------ reliability table
def reliability_rows() -> pd.DataFrame:
    base = {"instrument": "wai_sr", "rater": "patient", "n_items": 12}
    return pd.DataFrame(
        [
            base | {"scale": "total", "session": "1", "n": 90, "alpha": 0.88, "alpha_ci_low": 0.84,
                    "alpha_ci_high": 0.91, "omega": 0.89, "min_item_rest": 0.41,
                    "mean_item_rest": 0.6, "pooling": "per session", "note": ""},
            base | {"scale": "total", "session": "pooled", "n": 1234, "alpha": 0.9049,
                    "alpha_ci_low": 0.8961, "alpha_ci_high": 0.9125, "omega": 0.915,
                    "min_item_rest": 0.45, "mean_item_rest": 0.6234, "pooling": "rows stacked",
                    "note": ""},
            base | {"scale": "bond", "session": "pooled", "n_items": 2, "n": 1234, "alpha": -1.25,
                    "alpha_ci_low": -1.5, "alpha_ci_high": -1.0, "omega": float("nan"),
                    "min_item_rest": -0.2, "mean_item_rest": -0.2, "pooling": "rows stacked",
                    "note": "2 items: omega not identified"},
        ]
    )  # fmt: skip


def test_reliability_table() -> None:
    t = reliability_table(reliability_rows())
    assert len(t.body) == 2  # pooled rows only
    assert t.body.iloc[0].tolist() == [
        "wai_sr", "patient", "total", "12", "1,234", ".90", "[.90, .91]", ".92", ".45", ".62",
    ]  # fmt: skip
    assert t.body.iloc[1][["α", "95% CI", "ω"]].tolist() == ["−1.25", "[−1.50, −1.00]", "—"]
    assert "Pooled rows: rows stacked." in t.notes[0]
    assert "wai_sr patient bond: 2 items: omega not identified." in t.notes
    per = reliability_table(reliability_rows(), sessions=True)
    assert per.body["Session"].tolist() == ["1", "pooled", "pooled"]
    with pytest.raises(InputError, match="omega"):
        reliability_table(reliability_rows().drop(columns="omega"))
    flagged = reliability_table(reliability_rows().assign(key_status="unverified"))
    assert any(
        "scoring key is unverified" in n and n.startswith("wai_sr patient") for n in flagged.notes
    )
    assert not any("unverified" in n for n in reliability_table(
        reliability_rows().assign(key_status="verified")).notes)  # fmt: skip


# ---------------------------------------------------------------------------------- summary table
def test_summary_table_with_skipped_models() -> None:
    summary = pd.DataFrame(
        {
            "model": ["growth", "dropout", "relapse"],
            "term": ["a_between", "a_early", None],
            "estimate": [-2.675, 0.5, np.nan],
            "std_error": [0.5, 0.2, np.nan],
            "statistic": [-5.35, 2.5, np.nan],
            "df": [35.4, np.inf, np.nan],
            "p_value": [0.00001, 0.0124, np.nan],
            "ci_low": [-3.7, 0.11, np.nan],
            "ci_high": [-1.65, 0.89, np.nan],
            "status": ["fitted", "fitted", "skipped"],
            "reason": ["", "", "fewer than 10 relapse events"],
            "singular": [False, True, np.nan],
        }
    )
    t = summary_table(summary, labels={"growth": "Growth model"})
    assert list(t.body.columns) == ["Model", "Term", "b", "SE", "95% CI", "Test", "p", "Note"]
    assert t.body.iloc[0].tolist() == [
        "Growth model", "a_between", "−2.68", "0.50", "[−3.70, −1.65]", "t(35.4) = −5.35",
        "< .001", "",
    ]  # fmt: skip
    assert t.body.iloc[1][["Test", "p", "Note"]].tolist() == ["z = 2.50", ".012", "singular fit"]
    assert t.body.iloc[2]["Note"] == "Skipped: fewer than 10 relapse events"
    assert t.body.iloc[2]["b"] == "—"
    assert any("1 model(s) skipped" in n for n in t.notes)
    # no status column: a row without an estimate but with a reason counts as skipped
    bare = summary.drop(columns=["status", "statistic", "df"])
    t2 = summary_table(bare)
    assert t2.body.iloc[2]["Note"].startswith("Skipped:")
    assert "Test" not in t2.body.columns


# ------------------------------------------------------------------------------------- writers
SPECIALS = "50% of a_b & c # d < .001 ≥ 2 −1.5 χ² β {x} $y ~ ^ \\ |"


def special_table() -> Table:
    body = pd.DataFrame(
        {
            "Term": ["[Intercept]", "a_between", "Level"],
            "b (%)": ["−1.50", SPECIALS, "12 (24.0%)"],
            "p": ["< .001", ".050", "—"],
        },
        dtype="str",
    )
    return Table(
        "Effects & tests: χ² at p < .05",
        body,
        notes=["First note with 5% & a_b.", "Second <b>note</b>."],
        column_groups=[("", 1), ("Estimates", 2)],
        indent=[0, 0, 1],
    )


def test_tex_escape() -> None:
    assert tex_escape("50%") == r"50\%"
    assert tex_escape("a_b & c # d") == r"a\_b \& c \# d"
    assert tex_escape("< .001") == r"\textless{} .001"
    assert tex_escape("≥ 2 −1.5") == r"$\geq$ 2 $-$1.5"
    assert tex_escape("χ² β") == r"$\chi$\textsuperscript{2} $\beta$"
    assert tex_escape("{x} $y ~ ^ \\") == (r"\{x\} \$y $\sim$ \textasciicircum{} \textbackslash{}")


def test_write_table_four_formats(tmp_path: Path) -> None:
    t = special_table()
    paths = write_table(t, tmp_path / "tab.one")
    assert [p.name for p in paths] == ["tab.one.csv", "tab.one.md", "tab.one.tex", "tab.one.html"]
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind

    back = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
    assert back.columns.tolist() == ["Term", "Estimates: b (%)", "Estimates: p"]
    pd.testing.assert_frame_equal(back, t.flat(), check_dtype=False)
    assert back.iloc[2, 0] == "  Level"

    md = paths[1].read_text(encoding="utf-8").splitlines()
    table_lines = [ln for ln in md if ln.startswith("|")]
    assert re.fullmatch(r"\| :--- \| :---: \| :---: \|", table_lines[1])
    assert all(len(re.findall(r"(?<!\\)\|", ln)) == 4 for ln in table_lines)  # escaped pipes
    assert md[0] == "**Effects & tests: χ² at p < .05**"
    assert "&emsp;Level" in table_lines[-1]
    assert "*Note.* First note with 5% & a\\_b." in md

    tex = paths[2].read_text(encoding="utf-8")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){2-3}"):
        assert rule in tex
    assert r"\label{tab:tab-one}" in tex
    assert r"{}[Intercept]" in tex  # guarded against being read as \\[length]
    assert r"50\% of a\_b \& c \# d \textless{} .001 $\geq$ 2 $-$1.5" in tex
    assert r"\quad Level" in tex
    assert r"\multicolumn{2}{c}{Estimates}" in tex
    body = tex.split(r"\midrule", 1)[1]
    assert not re.search(r"(?<!\\)[%#_]", body)  # every special escaped
    assert "χ" not in tex and "−" not in tex and "≥" not in tex

    parser = _Cells()
    parser.feed(paths[3].read_text(encoding="utf-8"))
    parser.close()
    assert parser.caption == "Effects & tests: χ² at p < .05"
    assert parser.rows[0] == ["", "Estimates"]
    assert parser.rows[1] == ["Term", "b (%)", "p"]
    assert parser.rows[3] == ["a_between", SPECIALS, ".050"]
    assert parser.rows[5] == ["Note. First note with 5% & a_b."]
    assert parser.rows[6] == ["Second <b>note</b>."]  # escaped: text, not markup
    assert parser.tags_seen >= {"table", "caption", "thead", "tbody", "tfoot"}
    assert "b" not in parser.tags_seen


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.caption = ""
        self.tags_seen: set[str] = set()
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags_seen.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
            self._in = "cell"
        elif tag == "caption":
            self._in = "caption"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "caption"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "cell":
            self.rows[-1][-1] += data
        elif self._in == "caption":
            self.caption += data


def test_write_table_is_deterministic(tmp_path: Path) -> None:
    t = table1(small_patients(), min_cell=3)
    first = write_table(t, tmp_path / "a" / "t1")
    second = write_table(table1(small_patients(), min_cell=3), tmp_path / "b" / "t1")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
        assert a.read_bytes().endswith(b"\n") and b"\r" not in a.read_bytes()


def test_table_validation() -> None:
    with pytest.raises(ValueError, match="non-string"):
        Table("t", pd.DataFrame({"a": [1.0]}))
    with pytest.raises(ValueError, match="line break"):
        Table("t", pd.DataFrame({"a": ["x\ny"]}, dtype="str"))
    with pytest.raises(ValueError, match="spans"):
        Table("t", pd.DataFrame({"a": ["x"]}, dtype="str"), column_groups=[("g", 2)])
    with pytest.raises(ValueError, match="indent"):
        Table("t", pd.DataFrame({"a": ["x"]}, dtype="str"), indent=[0, 1])


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(tmp_path: Path) -> None:
    fragments = [
        to_latex(special_table(), label="special"),
        to_latex(table1(small_patients(), min_cell=3), label="t1"),
        to_latex(model_table(COEFS, FIT), label="m"),
        to_latex(reliability_table(reliability_rows(), sessions=True), label="r"),
    ]
    doc = "\n".join(
        [r"\documentclass{article}", r"\usepackage{booktabs}", r"\begin{document}"]
        + fragments
        + [r"\end{document}", ""]
    )
    (tmp_path / "doc.tex").write_text(doc, encoding="utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Missing character" not in log


def test_agreement_table_gives_every_rater_pair_and_what_it_rests_on() -> None:
    rows = []
    for a, b, n, k, where, icc in (
        ("patient", "therapist", 3765, 468, "1;2;3;5", 0.3534),
        ("patient", "observer", 1435, 466, "1;3;5;16", 0.4949),
        ("therapist", "observer", 1131, 464, "1;3;5", -0.05),
    ):
        for session in ("1", "pooled"):
            rows.append({"rater_a": a, "rater_b": b, "session": session, "n_pairs": n,
                         "n_patients": k, "sessions": where, "mean_a": 3.78, "mean_b": 3.5,
                         "mean_diff": 0.28, "sd_diff": 0.6, "icc_a1": icc, "icc_c1": 0.52,
                         "r": 0.5346})  # fmt: skip
    t = agreement_table(pd.DataFrame(rows))
    assert t.body["Raters"].tolist() == [
        "Patient–therapist", "Patient–observer", "Therapist–observer"
    ]  # fmt: skip
    assert t.body.iloc[1].tolist() == [
        "Patient–observer", "1, 3, 5, 16", "1,435", "466", "3.78", "3.50", "0.28 (0.60)",
        ".49", ".52", ".53",
    ]  # fmt: skip
    assert t.body.iloc[2]["ICC(A,1)"] == "−.05"
    assert "sessions both rated" in t.notes[0]
    with pytest.raises(InputError, match="sessions"):
        agreement_table(pd.DataFrame(rows).drop(columns="sessions"))
