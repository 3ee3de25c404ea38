"""SEM engine (alliance.engine.sem) and the RI-CLPM against lavaan 0.6-14 (R 4.2.2).

Reference values: tests/reference/riclpm/lavaan_estimates.csv, written by
tests/reference/make_riclpm_reference.R, which builds each RI-CLPM's lavaan syntax on its own
(not from ours) and fits it with `sem(..., missing = "ml", meanstructure = TRUE)` (observed
information, lavaan's default with missing = "ml") on the committed panels data_*.csv. Those
panels and cases.csv come from `write_fixtures()` below (`python tests/test_sem.py`): seeded
RI-CLPM simulations with monotone dropout and a few sporadically missing cells.

Agreement required: estimates and logLik to 1e-4 (absolute), standard errors to 1e-3 relative.
The recovery tests simulate large panels from known values and check the estimates within a
few SEs of the truth, and that ignoring x's measurement error attenuates its autoregression
while fixing the known error variance removes the bias.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.engine.sem import Riclpm, Truth, fit_sem, riclpm_model, simulate_panel, start_values
from alliance.engine.sem.fiml import PatternData
from alliance.engine.sem.fit import Objective
from alliance.engine.sem.ram import ModelBuilder
from alliance.errors import InputError

REF = Path(__file__).parent / "reference" / "riclpm"

# Panels of the lavaan fixtures: (patients, waves, truth, dropout per wave, sporadic, seed)
DATASETS = {
    "a": (300, 8, Truth(), 0.08, 0.03, 20260311),
    "b": (
        300, 8,
        Truth(slope_y_var=0.02, slope_ri_x_cov=-0.02, slope_ri_y_cov=0.05, x_error_var=0.15),
        0.06, 0.02, 20260312,
    ),
    "c": (
        200, 6,
        Truth(x_ar=0.5, y_ar=0.2, x_to_y=-0.3, y_to_x=0.1, ri_cov=0.1, innovation_cov=0.05),
        0.12, 0.05, 20260313,
    ),
}  # fmt: skip
# case -> (panel, options of Riclpm)
CASES = {
    "a_default": ("a", {}),
    "a_free": ("a", {"equal_lags": False, "equal_innovations": False}),
    "b_slope": ("b", {"y_slope": True}),
    "b_slope_error": ("b", {"y_slope": True, "x_error_var": 0.15}),
    "b_error": ("b", {"x_error_var": 0.15}),
    "c_default": ("c", {}),
    "c_free_lags": ("c", {"equal_lags": False}),
    # y measured with a fixed error too (an integer total: rounding variance 1/12), and the
    # pipeline's default form: both errors fixed, y slope, innovation variances free per wave
    "b_both_error": ("b", {"y_slope": True, "x_error_var": 0.15, "y_error_var": 1 / 12}),
    "b_pipeline": (
        "b",
        {"y_slope": True, "x_error_var": 0.15, "y_error_var": 1 / 12, "equal_innovations": False},
    ),
}


def panel(name: str) -> pd.DataFrame:
    """A simulated wide panel: patient, x_1..x_W, y_1..y_W (means trend over waves)."""
    n, waves, truth, dropout, sporadic, seed = DATASETS[name]
    rng = np.random.default_rng(seed)
    t = np.arange(waves)
    data = simulate_panel(
        n, waves, truth, rng, x_mean=3.5 + 0.03 * t, y_mean=20.0 - 0.6 * t,
        dropout=dropout, sporadic=sporadic,
    )  # fmt: skip
    data.insert(0, "patient", [f"P{i:03d}" for i in range(1, n + 1)])
    return data.round(4)


def write_fixtures() -> None:
    """Write the panels and cases.csv that make_riclpm_reference.R reads."""
    REF.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        panel(name).to_csv(REF / f"data_{name}.csv", index=False, na_rep="NA")
    rows = []
    for case, (data, opts) in CASES.items():
        rows.append(
            {"case": case, "data": f"data_{data}.csv", "waves": DATASETS[data][1],
             "y_slope": opts.get("y_slope", False), "x_error_var": opts.get("x_error_var", 0.0),
             "y_error_var": opts.get("y_error_var", 0.0),
             "equal_lags": opts.get("equal_lags", True),
             "equal_innovations": opts.get("equal_innovations", True)}
        )  # fmt: skip
    cases = pd.DataFrame(rows)
    for col in ("y_slope", "equal_lags", "equal_innovations"):
        cases[col] = cases[col].map({True: "TRUE", False: "FALSE"})
    cases.to_csv(REF / "cases.csv", index=False)
    # the syntax our builder writes (formula_r carries it); R fits it on data_b.csv
    (REF / "python_syntax.lav").write_text(python_syntax() + "\n")


def python_syntax() -> str:
    """lavaan syntax of case b_slope_error as alliance.engine.sem writes it."""
    return riclpm_model(Riclpm(8, **CASES["b_slope_error"][1])).lavaan_syntax()


# ---- lavaan agreement ---------------------------------------------------------------------------


def _reference() -> pd.DataFrame:
    return pd.read_csv(REF / "lavaan_estimates.csv", keep_default_na=False)


def ref(case: str, section: str) -> pd.DataFrame:
    rows = _REF[(_REF["case"] == case) & (_REF["section"] == section)]
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


_REF = _reference()
_FITS: dict[str, object] = {}


def fitted(case: str):
    if case not in _FITS:
        name, opts = CASES[case]
        data = pd.read_csv(REF / f"data_{name}.csv").drop(columns="patient")
        spec = Riclpm(DATASETS[name][1], **opts)
        model = riclpm_model(spec, start_values(spec, data.to_numpy()))
        _FITS[case] = fit_sem(model, data, saturated=True)
    return _FITS[case]


@pytest.mark.parametrize("case", list(CASES))
def test_estimates_and_standard_errors_match_lavaan(case):
    fit = fitted(case)
    assert fit.converged, fit.warnings
    ours = fit.parameters().set_index("term")
    theirs = ref(case, "par")
    assert sorted(ours.index) == sorted(theirs.index)
    ours = ours.loc[theirs.index]
    assert np.abs(ours["estimate"] - theirs["est"]).max() < 1e-4
    assert (np.abs(ours["std_error"] / theirs["se"] - 1)).max() < 1e-3


@pytest.mark.parametrize("case", list(CASES))
def test_loglik_and_fit_match_lavaan(case):
    fit = fitted(case)
    r = ref(case, "fit").loc[""]
    assert fit.loglik == pytest.approx(r["logl"], abs=1e-4)
    assert fit.n_par == r["npar"]
    assert fit.n == r["ntotal"]
    chi = fit.chisq()
    assert chi["df"] == r["df"]
    assert chi["chisq"] == pytest.approx(r["chisq"], abs=1e-3)


def test_our_lavaan_syntax_is_the_same_model_in_lavaan():
    # make_riclpm_reference.R fitted the syntax our builder writes (python_syntax.lav)
    assert (REF / "python_syntax.lav").read_text().strip() == python_syntax()
    fit = fitted("b_slope_error")
    r = ref("python_syntax", "fit").loc[""]
    assert fit.loglik == pytest.approx(r["logl"], abs=1e-4)
    assert fit.n_par == r["npar"]
    theirs = ref("python_syntax", "par")
    ours = fit.parameters().set_index("term").loc[theirs.index]
    assert np.abs(ours["estimate"] - theirs["est"]).max() < 1e-4


def agreement() -> dict[str, float]:
    """Largest differences from lavaan over every case (reported in the hand-off)."""
    out = {"estimate_abs": 0.0, "se_rel": 0.0, "loglik_abs": 0.0, "chisq_abs": 0.0}
    for case in CASES:
        fit = fitted(case)
        theirs = ref(case, "par")
        ours = fit.parameters().set_index("term").loc[theirs.index]
        r = ref(case, "fit").loc[""]
        out["estimate_abs"] = max(
            out["estimate_abs"], np.abs(ours["estimate"] - theirs["est"]).max()
        )
        out["se_rel"] = max(out["se_rel"], np.abs(ours["std_error"] / theirs["se"] - 1).max())
        out["loglik_abs"] = max(out["loglik_abs"], abs(fit.loglik - r["logl"]))
        out["chisq_abs"] = max(out["chisq_abs"], abs(fit.chisq()["chisq"] - r["chisq"]))
    return out


# ---- engine pieces ------------------------------------------------------------------------------


def test_analytic_gradient_and_jacobian_match_finite_differences():
    data = pd.read_csv(REF / "data_b.csv").drop(columns="patient").to_numpy()
    spec = Riclpm(8, y_slope=True, x_error_var=0.15)
    model = riclpm_model(spec, start_values(spec, data))
    obj = Objective(model, PatternData.from_array(data))
    theta = model.start + 0.01 * np.sin(np.arange(model.k))  # off the start's symmetries
    _, g = obj.gradient(theta)
    eps = 1e-6
    num = np.array(
        [
            (obj.value(theta + eps * e) - obj.value(theta - eps * e)) / (2 * eps)
            for e in np.eye(model.k)
        ]
    )
    assert np.allclose(g, num, rtol=1e-6, atol=1e-4)


def test_patterns_keep_sufficient_statistics_and_drop_empty_rows():
    x = np.array([[1.0, 2.0], [3.0, np.nan], [np.nan, np.nan], [5.0, 4.0], [np.nan, 1.0]])
    pd_ = PatternData.from_array(x)
    assert (pd_.n, pd_.n_empty) == (4, 1)
    full = next(p for p in pd_.patterns if len(p.observed) == 2)
    assert full.n == 2 and np.allclose(full.mean, [3.0, 3.0])
    assert np.allclose(full.cov, [[4.0, 2.0], [2.0, 1.0]])
    assert list(pd_.coverage()) == [3, 3]


def test_loglik_equals_the_multivariate_normal_density_on_complete_data():
    from scipy import stats

    rng = np.random.default_rng(3)
    b = ModelBuilder(["a", "b"])
    b.cov("a", "a", 1.3)
    b.cov("b", "b", 0.7)
    b.cov("a", "b", 0.2, label="ab")
    b.mean("a", 0.5)
    b.mean("b", -0.5)
    model = b.compile()
    x = rng.normal(size=(50, 2))
    obj = Objective(model, PatternData.from_array(x))
    theta = np.array([1.3, 0.7, 0.2, 0.5, -0.5])
    want = stats.multivariate_normal([0.5, -0.5], [[1.3, 0.2], [0.2, 0.7]]).logpdf(x).sum()
    assert -obj.value(theta) == pytest.approx(want, rel=1e-12)


def test_shared_labels_are_one_parameter_and_bad_models_are_refused():
    model = riclpm_model(Riclpm(5))
    assert model.names.count("x_to_y") == 1
    assert (model.row_param == model.names.index("x_to_y")).sum() == 4  # waves 2..5
    free = riclpm_model(Riclpm(5, equal_lags=False, equal_innovations=False))
    assert {"x_to_y_2", "x_to_y_5", "innovation_cov_3"} <= set(free.names)
    assert free.k == model.k + 4 * 3 + 3 * 3
    with pytest.raises(InputError, match="at least 4 waves"):
        Riclpm(3, y_slope=True)
    b = ModelBuilder(["a"])
    b.cov("a", "zz")
    with pytest.raises(InputError, match="not a variable"):
        b.compile()
    with pytest.raises(InputError, match="do not match|not the model's"):
        fit_sem(model, pd.DataFrame(np.zeros((3, 10)), columns=[f"v{i}" for i in range(10)]))


def test_lavaan_syntax_writes_every_row_explicitly():
    model = riclpm_model(Riclpm(4, x_error_var=0.2, y_slope=True))
    lines = model.lavaan_syntax(compact=False).splitlines()
    assert len(lines) == len(model.rows)
    for line in ("ri_x =~ 1*x_1", "slope_y =~ 3*y_4", "w_y_3 ~ x_to_y*w_x_2", "x_2 ~~ 0.2*x_2",
                 "ri_x ~~ 0*w_x_1", "y_4 ~ y_mean_4*1"):  # fmt: skip
        assert line in lines
    compact = model.lavaan_syntax().splitlines()
    assert "w_y_3 ~ y_ar*w_y_2 + x_to_y*w_x_2" in compact
    assert "slope_y =~ 0*y_1 + 1*y_2 + 2*y_3 + 3*y_4" in compact


def test_non_identified_model_is_reported_not_converged():
    # two waves of x, a random intercept and correlated within parts: 4 parameters for 3
    # (co)variances, not identified
    b = ModelBuilder(["x_1", "x_2"], latent=["ri", "w1", "w2"])
    for t, w in ((1, "w1"), (2, "w2")):
        b.load("ri", f"x_{t}")
        b.load(w, f"x_{t}")
        b.cov(f"x_{t}", f"x_{t}", 0.0, free=False)
        b.mean(f"x_{t}", label=f"m{t}")
        b.cov(w, w, 0.5, label=f"v{t}")
    b.cov("ri", "ri", 0.5, label="ri")
    b.cov("ri", "w1", 0.0, free=False)
    b.cov("ri", "w2", 0.0, free=False)
    b.cov("w1", "w2", 0.1, label="c")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 2)) + rng.normal(size=(200, 1))
    fit = fit_sem(b.compile(), x)
    assert not fit.converged
    assert any("not positive definite" in w for w in fit.warnings)


# ---- recovery -----------------------------------------------------------------------------------

RECOVERY_TRUTH = Truth(
    x_ar=0.3, y_ar=0.45, x_to_y=-0.2, y_to_x=-0.1, slope_y_var=0.01, slope_ri_y_cov=0.02,
    x_error_var=0.3,
)  # fmt: skip
KEY = ("x_ar", "y_ar", "x_to_y", "y_to_x")


def recovery_fits(n: int = 3000, waves: int = 8, seed: int = 20260314) -> dict[str, object]:
    """One large panel with x measured with known error; fits ignoring and fixing that error."""
    data = simulate_panel(n, waves, RECOVERY_TRUTH, np.random.default_rng(seed), dropout=0.05)
    out = {}
    for label, err in (("ignored", None), ("corrected", RECOVERY_TRUTH.x_error_var)):
        spec = Riclpm(waves, y_slope=True, x_error_var=err)
        model = riclpm_model(spec, start_values(spec, data.to_numpy()))
        out[label] = fit_sem(model, data)
    return out


@pytest.fixture(scope="module")
def recovery():
    return recovery_fits()


def test_recovery_with_known_measurement_error(recovery):
    fit = recovery["corrected"]
    assert fit.converged
    est = fit.parameters().set_index("term")
    truth = {
        k: getattr(RECOVERY_TRUTH, k) for k in (*KEY, "ri_x_var", "ri_y_var", "innovation_x_var")
    }
    for term, value in truth.items():
        z = (est.loc[term, "estimate"] - value) / est.loc[term, "std_error"]
        assert abs(z) < 3.5, (term, est.loc[term, "estimate"], value)


def test_ignoring_measurement_error_attenuates_the_within_person_paths(recovery):
    naive = recovery["ignored"].parameters().set_index("term")
    good = recovery["corrected"].parameters().set_index("term")
    # the error-laden x autoregression is pulled towards zero, beyond its SE
    gap = good.loc["x_ar", "estimate"] - naive.loc["x_ar", "estimate"]
    assert gap > 4 * naive.loc["x_ar", "std_error"]
    assert (
        abs(naive.loc["x_ar", "estimate"] - RECOVERY_TRUTH.x_ar)
        > 4 * naive.loc["x_ar", "std_error"]
    )
    # and x -> y is attenuated (smaller in magnitude) when x's error is ignored
    assert abs(naive.loc["x_to_y", "estimate"]) < abs(good.loc["x_to_y", "estimate"])


def test_a_240_patient_12_wave_fit_is_fast():
    truth = Truth(slope_y_var=0.02, x_error_var=0.1)
    data = simulate_panel(240, 12, truth, np.random.default_rng(11), dropout=0.05, sporadic=0.02)
    spec = Riclpm(12, y_slope=True, x_error_var=0.1)
    model = riclpm_model(spec, start_values(spec, data.to_numpy()))
    start = time.perf_counter()
    fit = fit_sem(model, data)
    seconds = time.perf_counter() - start
    assert fit.converged
    assert seconds < 3.0, seconds


if __name__ == "__main__":
    write_fixtures()
