"""riclpm kind: sessions (long) -> wide panel -> RI-CLPM by FIML, against lavaan 0.6-14.

The lavaan numbers are case b_slope_error of tests/reference/riclpm/lavaan_estimates.csv (see
tests/test_sem.py): the panel data_b.csv turned into session rows here, alliance = x,
symptom = y, squared SEM 0.15 on every alliance score, so the kind must reshape it back to the
same panel and give lavaan's estimates under the alliance / symptom names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.errors import ConfigError, InputError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelSpec, Skipped, kind_function
from alliance.models.riclpm import choose_waves, fit, session_frame, wide_panel

REF = __import__("pathlib").Path(__file__).parent / "reference" / "riclpm"
CONTEXT = FitContext(seed=1, arms={}, higher_is_worse=True)
OPTIONS = {
    "x": "alliance", "y": "symptom", "waves": "auto", "x_error": "alliance_error_var",
    "y_slope": True, "equal_lags": True, "equal_innovations": True,
}  # fmt: skip


def spec(**options) -> ModelSpec:
    return ModelSpec(
        id="symptoms_riclpm", kind="riclpm", outcome="symptom", fixed=("alliance",),
        requires=("symptom",), key_terms=("alliance_to_symptom", "symptom_to_alliance"),
        label="Reciprocal within-patient effects of alliance and symptoms (RI-CLPM)",
        options={**OPTIONS, **options},
    )  # fmt: skip


def sessions_of(panel: pd.DataFrame, error_var: float = 0.15) -> pd.DataFrame:
    """Wide panel (patient, x_t, y_t) -> one row per attended session (either score present)."""
    waves = sum(c.startswith("x_") for c in panel.columns)
    rows = []
    for t in range(1, waves + 1):
        rows.append(
            pd.DataFrame(
                {
                    "patient": panel["patient"],
                    "session_index": t,
                    "alliance": panel[f"x_{t}"],
                    "symptom": panel[f"y_{t}"],
                }
            )  # fmt: skip
        )
    long = pd.concat(rows).sort_values(["patient", "session_index"], kind="stable")
    long = long[long[["alliance", "symptom"]].notna().any(axis=1)].reset_index(drop=True)
    long["alliance_error_var"] = np.where(long["alliance"].notna(), error_var, np.nan)
    long["therapist"] = "T" + (long["patient"].str[1:].astype(int) % 7).astype(str)
    return long


def lavaan(case: str) -> pd.DataFrame:
    ref = pd.read_csv(REF / "lavaan_estimates.csv", keep_default_na=False)
    rows = ref[(ref["case"] == case) & (ref["section"] == "par")]
    out = rows.pivot(index="term", columns="stat", values="value").astype(float)
    names = {"x": "alliance", "y": "symptom"}
    return out.rename(index=lambda t: "_".join(names.get(p, p) for p in t.split("_")))


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return pd.read_csv(REF / "data_b.csv")


@pytest.fixture(scope="module")
def result(panel):
    return fit(spec(waves=8), sessions_of(panel), CONTEXT)


def test_kind_is_registered():
    assert kind_function("riclpm") is fit


def assert_matches_lavaan(result, case: str) -> None:
    """Every parameter of `result` equals lavaan's for `case`: estimates 1e-4, SEs 1e-3 relative."""
    theirs = lavaan(case)
    ours = result.coefficients.set_index("term")
    assert sorted(ours.index) == sorted(theirs.index)
    ours = ours.loc[theirs.index]
    assert np.abs(ours["estimate"] - theirs["est"]).max() < 1e-4
    assert np.abs(ours["std_error"] / theirs["se"] - 1).max() < 1e-3


def test_estimates_match_lavaan_under_the_alliance_symptom_names(result):
    assert_matches_lavaan(result, "b_slope_error")


def test_coefficient_table_and_fit_facts(result, panel):
    coefs = result.coefficients
    assert list(coefs.columns) == COEF_COLUMNS
    assert list(coefs["term"][:4]) == [
        "alliance_to_symptom", "symptom_to_alliance", "alliance_ar", "symptom_ar",
    ]  # fmt: skip
    assert (coefs["model"] == "symptoms_riclpm").all()
    assert np.isinf(coefs["df"]).all()
    row = coefs.set_index("term").loc["alliance_to_symptom"]
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert row["statistic"] == pytest.approx(row["estimate"] / row["std_error"])
    info = result.fit
    assert info["kind"] == "riclpm"
    assert info["converged"] is True and info["max_gradient"] < 1e-3
    assert info["n_patients"] == info["n_obs"] == len(panel)
    assert info["waves"] == 8 and info["n_par"] == len(coefs)
    assert info["logLik"] == pytest.approx(-5329.5482903828233, abs=1e-4)  # lavaan, same case
    assert info["x_error"]["value"] == pytest.approx(0.15)
    rel = info["within_reliability_x"]
    assert 0 < rel["mean"] < 1 and len(rel["by_wave"]) == 8
    assert "within-person" in " ".join(info["notes"]).lower()
    assert info["formula_r"].startswith("lavaan::sem(model = 'ri_alliance =~ 1*alliance_1")
    assert "missing = 'ml', meanstructure = TRUE" in info["formula_r"]
    assert "symptom_2 ~ symptom_mean_2*1" in info["lavaan_model"].splitlines()
    assert "fit_seconds" in info
    # the frame is the wide panel formula_r refits
    assert list(result.frame.columns[:2]) == ["patient", "alliance_1"]
    assert len(result.frame) == len(panel)
    waves = result.extras["waves"]
    assert list(waves["wave"]) == list(range(1, 9))
    assert waves["still_observed"].is_monotonic_decreasing


def test_ignoring_the_error_variance_changes_the_model(panel):
    res = fit(spec(waves=8, x_error=None), sessions_of(panel), CONTEXT)
    assert res.fit["x_error"]["value"] is None and res.fit["within_reliability_x"] is None
    theirs = lavaan("b_slope")
    ours = res.coefficients.set_index("term").loc[theirs.index]
    assert np.abs(ours["estimate"] - theirs["est"]).max() < 1e-4


def test_error_variance_as_a_number_or_from_an_empty_column(panel, result):
    sessions = sessions_of(panel)
    by_number = fit(spec(waves=8, x_error=0.15), sessions, CONTEXT)
    assert by_number.fit["x_error"]["source"] == "options.x_error"
    assert by_number.fit["logLik"] == pytest.approx(result.fit["logLik"], abs=1e-8)
    empty = fit(spec(waves=8), sessions.assign(alliance_error_var=np.nan), CONTEXT)
    assert empty.fit["x_error"]["value"] is None
    assert any("no correction" in w for w in empty.fit["warnings"])
    with pytest.raises(ConfigError, match="x_error"):
        fit(spec(waves=8, x_error=-1.0), sessions, CONTEXT)


def test_auto_waves_keep_half_of_the_patients():
    # 10 patients: last sessions 1..10; W = 5 keeps 6/10, W = 6 keeps 5/10, W = 7 keeps 4/10
    frame = pd.DataFrame(
        [{"patient": f"P{i}", "session_index": t, "alliance": 1.0, "symptom": 2.0}
         for i in range(1, 11) for t in range(1, i + 1)]
    )  # fmt: skip
    w, rule = choose_waves(frame, "alliance", "symptom", "auto", "m")
    assert w == 6 and "50.0% at W = 6" in rule
    assert choose_waves(frame, "alliance", "symptom", 4, "m")[0] == 4
    with pytest.raises(ConfigError, match="options.waves"):
        choose_waves(frame, "alliance", "symptom", "all", "m")


def test_auto_waves_stop_at_16():
    frame = pd.DataFrame(
        [{"patient": f"P{i}", "session_index": t, "alliance": 1.0, "symptom": 2.0}
         for i in range(3) for t in range(1, 25)]
    )  # fmt: skip
    assert choose_waves(frame, "alliance", "symptom", "auto", "m")[0] == 16


def test_wide_panel_drops_and_counts():
    frame = pd.DataFrame(
        {"patient": ["A", "A", "A", "B", "B", "C"], "session_index": [1, 2, 5, 1, 2, 4],
         "alliance": [3.0, np.nan, 4.0, np.nan, np.nan, 2.0],
         "symptom": [10.0, 9.0, 8.0, np.nan, np.nan, 5.0]}
    )  # fmt: skip
    wide, counts = wide_panel(frame, "alliance", "symptom", 3)
    assert list(wide["patient"]) == ["A"]  # B has no score, C only after wave 3
    assert counts == {"n_sessions_beyond_waves": 2, "n_patients_no_scores": 2}
    assert wide.loc[0, ["alliance_1", "symptom_2"]].tolist() == [3.0, 9.0]
    assert np.isnan(wide.loc[0, "alliance_2"]) and np.isnan(wide.loc[0, "symptom_3"])
    dup = pd.concat([frame, frame.iloc[[0]]])
    with pytest.raises(InputError, match="same session_index"):
        wide_panel(dup, "alliance", "symptom", 3)


def test_bad_specs_and_thin_data(panel):
    sessions = sessions_of(panel)
    with pytest.raises(ConfigError, match="session_index"):
        fit(spec(), sessions.drop(columns="session_index"), CONTEXT)
    with pytest.raises(ConfigError, match="alliance_error_var"):
        fit(spec(), sessions.drop(columns="alliance_error_var"), CONTEXT)
    few = sessions[sessions["patient"].isin(panel["patient"][:20])]
    with pytest.raises(Skipped, match="patients"):
        fit(spec(waves=8), few, CONTEXT)
    with pytest.raises(Skipped, match="needs at least 4"):
        fit(spec(waves=3), sessions, CONTEXT)


def test_session_frame_keeps_rows_with_one_score_missing(panel):
    sessions = sessions_of(panel)
    frame = session_frame(spec(), sessions.assign(extra=1))
    assert list(frame.columns) == [
        "patient", "therapist", "session_index", "alliance", "symptom", "alliance_error_var",
    ]  # fmt: skip
    assert len(frame) == len(sessions)
    assert frame["symptom"].isna().any()  # FIML keeps them


def demo_sessions() -> pd.DataFrame:
    """The bundled demo through the clean and score stages (analysis.parquet in memory)."""
    import warnings

    from conftest import FIXTURE_KEY, ROOT

    from alliance.clean.stage import clean_trial
    from alliance.config import load_config
    from alliance.score.stage import run_score
    from alliance.settings import Settings

    cfg = load_config(ROOT / "config" / "config.yaml")
    for key in ("sessions", "patients"):
        cfg["data"][key] = str(ROOT / cfg["data"][key])
    cfg["alliance"]["instruments_dir"] = str(ROOT / cfg["alliance"]["instruments_dir"])
    cfg["privacy"]["key"] = FIXTURE_KEY  # pseudonyms do not matter here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        settings = Settings.from_config(cfg)
        clean = clean_trial(settings.clean())
        return run_score(clean.sessions, clean.patients, settings.score_stage()).analysis


@pytest.mark.slow
def test_runs_on_the_demo_trial():
    s = spec()
    res = fit(s, session_frame(s, demo_sessions()), CONTEXT)
    info = res.fit
    assert info["converged"], info["warnings"]
    assert 3 <= info["waves"] <= 16
    assert info["x_error"]["value"] > 0
    terms = set(res.coefficients["term"])
    assert {"alliance_to_symptom", "symptom_to_alliance", "alliance_ar", "symptom_ar"} <= terms
    assert info["fit_seconds"] < 5


def test_pipeline_default_form_matches_lavaan(panel):
    """The shipped default: y error fixed too, innovation (co)variances free per wave."""
    res = fit(spec(waves=8, equal_innovations=False, y_error=1 / 12), sessions_of(panel), CONTEXT)
    assert_matches_lavaan(res, "b_pipeline")
    assert res.fit["y_error"] == {"source": "options.y_error", "value": 1 / 12}
    assert "innovation_alliance_var_2" in set(res.coefficients["term"])
    assert any("symptom measurement error variance fixed" in n for n in res.fit["notes"])


def test_rounding_error_only_for_integer_scores(panel):
    sessions = sessions_of(panel)
    fractional = fit(spec(waves=8, y_error="rounding"), sessions, CONTEXT)
    assert fractional.fit["y_error"]["value"] is None
    assert any("non-integer" in w for w in fractional.fit["warnings"])
    whole = fit(
        spec(waves=8, y_error="rounding"),
        sessions.assign(symptom=sessions["symptom"].round()),
        CONTEXT,
    )
    assert whole.fit["y_error"]["value"] == pytest.approx(1 / 12)
    assert "Sheppard" in whole.fit["y_error"]["source"]
    for bad in (-0.1, "yes"):
        with pytest.raises(ConfigError, match="y_error"):
            fit(spec(waves=8, y_error=bad), sessions, CONTEXT)
