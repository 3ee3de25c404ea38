"""Holm and Benjamini-Hochberg adjustment within the config's families (results/models/summary.csv
and the alliance_effects table): against R's p.adjust (tests/reference/contest_reference.csv,
written by make_contest_reference.R), statsmodels and hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from alliance.config import load_schema, validate_config
from alliance.errors import ConfigError
from alliance.models.base import ModelResult, ModelSpec, Skipped
from alliance.models.multiplicity import NOT_FITTED, p_adjust, split_entry
from alliance.models.run import SUMMARY_COLUMNS, summarise
from alliance.render.tables import summary_table
from alliance.settings import MultiplicitySettings, Settings, SummarySettings

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = {"data": {"sessions": "x.csv"}, "columns": {"patient": "id"}, "symptoms": {"column": "s"}}


def test_p_adjust_equals_r_p_adjust():
    t = pd.read_csv(ROOT / "tests" / "reference" / "contest_reference.csv")
    t = t[t["section"] == "p_adjust"]
    ref = t.pivot(index="term", columns="stat", values="value").sort_index()
    assert len(ref) == 10
    np.testing.assert_allclose(p_adjust(ref["p"], "holm"), ref["holm"], rtol=1e-14)
    np.testing.assert_allclose(p_adjust(ref["p"], "bh"), ref["BH"], rtol=1e-14)


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_p_adjust_equals_statsmodels(ours, theirs):
    p = np.random.default_rng(3).uniform(0, 0.2, 25) ** 2
    np.testing.assert_allclose(p_adjust(p, ours), multipletests(p, method=theirs)[1], rtol=1e-12)


def test_p_adjust_by_hand_leaves_missing_out():
    p = [0.01, np.nan, 0.04, 0.03]  # m = 3
    assert p_adjust(p, "holm")[[0, 2, 3]] == pytest.approx([0.03, 0.06, 0.06])  # 3p, max(2p, .)
    assert p_adjust(p, "bh")[[0, 2, 3]] == pytest.approx([0.03, 0.04, 0.04])  # min over 3p/k
    assert np.isnan(p_adjust(p, "holm")[1]) and np.isnan(p_adjust([], "bh")).all()
    assert p_adjust([0.6, 0.9], "holm").tolist() == [1.0, 1.0]  # capped at 1
    with pytest.raises(ValueError, match="unknown adjustment"):
        p_adjust([0.1], "bonferroni")


def test_split_entry_at_the_first_dot():
    assert split_entry("mediation_personality.indirect.openness") == (
        "mediation_personality",
        "indirect.openness",
    )
    assert split_entry("nodot") is None and split_entry(".x") is None


def test_schema_defaults_and_the_summary_view():
    node = load_schema()["properties"]["multiplicity"]["properties"]
    assert node["primary"]["default"] == [
        "symptoms_riclpm.alliance_to_symptom",
        "symptoms_riclpm.symptom_to_alliance",
        "dropout_hazard.alliance",
        "relapse_cox.alliance_mean",
    ]
    assert node["secondary"]["default"] == "auto"
    assert node["methods"]["default"] == ["holm", "bh"]
    settings = Settings.from_config(MINIMAL)
    view = settings.model_summary()
    assert isinstance(view, SummarySettings) and view.multiplicity == settings.multiplicity
    assert SummarySettings.from_json(view.to_json()) == view
    # the model jobs' view does not carry it: editing the families reruns only the summary
    assert "multiplicity" not in settings.model_stage().to_json()
    listed = validate_config({**MINIMAL, "multiplicity": {"secondary": ["a.b"], "methods": ["bh"]}})
    assert listed["multiplicity"]["secondary"] == ["a.b"]
    with pytest.raises(ConfigError):
        validate_config({**MINIMAL, "multiplicity": {"methods": ["sidak"]}})


def _fitted(model: str, terms: dict[str, float], key: tuple[str, ...]) -> ModelResult:
    coefs = pd.DataFrame(
        {"model": model, "term": list(terms), "estimate": 1.0, "std_error": 0.5,
         "statistic": 2.0, "df": np.inf, "p_value": list(terms.values()), "ci_low": 0.0,
         "ci_high": 2.0}
    )  # fmt: skip
    fit = {"label": model.title(), "kind": "lmm", "status": "fitted", "reason": "",
           "key_terms": list(key), "n_obs": 100, "converged": True, "singular": False}  # fmt: skip
    return ModelResult(coefficients=coefs, fit=fit, frame=pd.DataFrame())


FAMILIES = MultiplicitySettings(
    primary=("growth.a", "growth.c", "hazard.alliance", "absent.x", "growth.nosuch", "nodot"),
    secondary="auto",
    methods=("holm", "bh"),
)


def results() -> dict:
    return {
        "growth": _fitted("growth", {"a": 0.01, "b": 0.04, "c": 0.02, "d": 0.5}, ("a", "b")),
        "lagged": _fitted("lagged", {"e": 0.03, "f": 0.001}, ("e", "f")),
        "hazard": Skipped("needs dropout: none recorded"),
    }


def test_families_are_adjusted_over_what_was_fitted():
    specs = {"hazard": ModelSpec(id="hazard", kind="hazard", outcome="dropout", label="Hazard")}
    table = summarise(results(), specs, FAMILIES)
    assert list(table.columns) == SUMMARY_COLUMNS
    rows = table.set_index(table["model"] + "." + table["term"].fillna(""))
    # primary: growth.a (.01) and growth.c (.02, not a key term but named) were fitted -> m = 2
    assert rows.loc[["growth.a", "growth.c"], "family"].tolist() == ["primary", "primary"]
    assert rows.loc[["growth.a", "growth.c"], "p_holm"].tolist() == pytest.approx([0.02, 0.02])
    assert rows.loc[["growth.a", "growth.c"], "p_bh"].tolist() == pytest.approx([0.02, 0.02])
    # secondary (auto): every other fitted key term: growth.b .04, lagged.e .03, lagged.f .001
    sec = rows.loc[["growth.b", "lagged.e", "lagged.f"]]
    assert (sec["family"] == "secondary").all()
    assert sec["p_holm"].tolist() == pytest.approx([0.06, 0.06, 0.003])
    assert sec["p_bh"].tolist() == pytest.approx([0.04, 0.04, 0.003])
    assert "growth.d" not in rows.index  # neither key term nor named: not in the summary
    # named entries not fitted: listed with the reason, no adjusted p
    missing = table[table["status"] == NOT_FITTED].set_index("model")
    assert missing["reason"].to_dict() == {
        "growth": "not a coefficient of the fitted model",
        "hazard": "model skipped: needs dropout: none recorded",
        "absent": "model not in this run (not a default model, or disabled)",
        "nodot": "not a model.term entry",
    }
    assert (missing["family"] == "primary").all() and missing["p_holm"].isna().all()
    assert missing.loc["hazard", "label"] == "Hazard"
    # an added row follows its model's rows
    order = list(table["model"] + "." + table["term"].fillna(""))
    assert order.index("growth.nosuch") == order.index("growth.c") + 1
    assert order.index("hazard.alliance") == order.index("hazard.") + 1
    assert table["n_obs"].dtype == "Int64" and table["converged"].dtype == "boolean"


def test_an_explicit_secondary_family_and_one_method():
    settings = MultiplicitySettings(primary=("growth.a",), secondary=("lagged.f", "growth.a"),
                                    methods=("bh",))  # fmt: skip
    table = summarise(results(), None, settings)
    fam = table.set_index(table["model"] + "." + table["term"].fillna(""))["family"]
    assert fam["growth.a"] == "primary" and fam["lagged.f"] == "secondary"
    assert fam["growth.b"] == "" and fam["lagged.e"] == ""  # in no family: not adjusted
    assert table["p_holm"].isna().all() and table["p_bh"].notna().sum() == 2


def test_without_settings_no_family():
    table = summarise(results())
    assert list(table.columns) == SUMMARY_COLUMNS
    assert (table["family"] == "").all() and table[["p_holm", "p_bh"]].isna().all().all()


def test_key_effects_table_shows_adjusted_p_and_names_the_families():
    table = summary_table(summarise(results(), None, FAMILIES), labels={"growth": "Growth"})
    body = table.body
    assert list(body.columns) == ["Model", "Term", "b", "SE", "95% CI", "p", "p Holm", "p BH",
                                  "Family", "Note"]  # fmt: skip
    first = body.iloc[0].tolist()
    assert first == ["Growth", "a", "1.00", "0.50", "[0.00, 2.00]", ".010", ".020", ".020",
                     "primary", ""]  # fmt: skip
    hazard = body[(body["Model"] == "hazard") & (body["Term"] == "alliance")].iloc[0]
    assert hazard["Note"] == "Not fitted: model skipped: needs dropout: none recorded"
    assert hazard["Family"] == "primary" and hazard["p Holm"] == "—"
    note = next(n for n in table.notes if n.startswith("Multiplicity"))
    assert "Primary family, 2 p values: Growth a; Growth c; not fitted: Growth nosuch; " in note
    assert "hazard alliance; absent x; nodot. Secondary family, 3 p values." in note
    assert "Holm's step-down method" in note and "Benjamini–Hochberg" in note
    assert any("1 model(s) skipped" in n for n in table.notes)


def test_auto_family_leaves_out_sensitivity_models_and_repeated_tests():
    """A sensitivity model repeats a model; an `_rc` row repeats its naive row's z and p."""
    sens = _fitted("sens", {"e": 0.03}, ("e",))
    sens.fit["sensitivity"] = True
    hazard = _fitted("hazard", {"alliance": 0.01, "alliance_rc": 0.01}, ("alliance", "alliance_rc"))
    hazard.fit["derived_terms"] = ["alliance_rc"]
    growth = _fitted("growth", {"b": 0.04}, ("b",))
    settings = MultiplicitySettings(primary=(), secondary="auto", methods=("holm",))
    table = summarise({"growth": growth, "hazard": hazard, "sens": sens}, {}, settings)
    family = dict(zip(table["model"] + "." + table["term"], table["family"], strict=True))
    assert family == {"growth.b": "secondary", "hazard.alliance": "secondary",
                      "hazard.alliance_rc": "", "sens.e": ""}  # fmt: skip
    holm = dict(zip(table["model"] + "." + table["term"], table["p_holm"], strict=True))
    assert holm["growth.b"] == pytest.approx(0.04)
    assert holm["hazard.alliance"] == pytest.approx(0.02)
