"""Power study (issue #15): config schema, calibration helpers, closed-form power against the
engine's simulated power, shard-count invariance and the reported columns (coverage included).

The closed-form check (slow, ~40 s) draws data from exactly a balanced two-level random-intercept
design with a cluster-level predictor and fits it with the pipeline's mixed-model engine
(REML, Satterthwaite df): its rejection rate must equal the noncentral-t power within 3.5 MC SE
at each grid point (a false alarm about once in 2,000 per point when both are right).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import TTestIndPower

from alliance.errors import ConfigError
from alliance.simulate.params import DEFAULT_PARAMS
from alliance.studies.power import calibrate, closed_form, results, study, trials

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "seed": 7,
    "replicates": 3,
    "calibrate_from": None,
    "design": {"therapists": [4, 8], "patients_per_therapist": [5], "sessions": [6]},
    "tests": [
        {"model": "symptoms_riclpm", "term": "alliance_to_symptom"},
        {"model": "symptoms_growth", "term": "alliance_pat_prior"},
    ],
}


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    # pipeline_config is relative to the repository root, as in `make power`
    monkeypatch.chdir(ROOT)


# --------------------------------------------------------------------------------- the config
def test_the_shipped_config_is_valid_and_small() -> None:
    s = study.load_power(ROOT / "config" / "power.yaml")
    grid = study.cells(s)
    assert len(grid) * s["replicates"] <= 1000  # `make power` stays near 10 min on 2 cores
    assert [c["cell"] for c in grid] == study.cell_ids(s)
    assert any(c["therapists"] == 30 and c["patients_per_therapist"] == 12 for c in grid)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"replicats": 10}, "replicats is not allowed"),
        ({"design": {"therapist": [10]}}, "design.therapist is not allowed"),
        ({"effects": {"patient": [0.1], "level": 2}}, "effects.level is not allowed"),
        ({"tests": [{"model": "m", "term": "t", "extra": 1}]}, "extra is not allowed"),
        ({"simulator": {"no_such_param": 1}}, "unknown simulator parameter"),
        ({"design": {"therapists": [2]}}, "therapists"),
        ({"sides": 3}, "sides"),
        ({"tests": [{"model": "m", "term": "t"}, {"model": "m", "term": "t"}]}, "twice"),
        ({"tests": [{"model": "m", "term": "t", "parameter": "nope"}]}, "not a simulator"),
    ],
)
def test_the_schema_rejects_unknown_keys_and_bad_values(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        study.validate_power(raw)


def test_the_file_needs_a_power_block(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="power"):
        study.load_power(path)


def test_cells_are_the_grid_product_in_order() -> None:
    s = study.validate_power({"design": {"therapists": [4, 8], "sessions": [6, 8, 10]}})
    grid = study.cells(s)
    assert len(grid) == 6
    assert [(c["therapists"], c["sessions"]) for c in grid[:3]] == [(4, 6), (4, 8), (4, 10)]


# ------------------------------------------------------------------------------- calibration
def test_dropout_intercept_reproduces_the_hazard() -> None:
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    a = calibrate.dropout_intercept(0.03, -1.3, 0.25, 0.4)
    grid = -1.3 * 0.5 * x[:, None] + 0.4 * x[None, :]
    mean = float((w[:, None] * w[None, :] / (1 + np.exp(-(a + grid)))).sum())
    assert mean == pytest.approx(0.03, rel=1e-6)
    # completing T sessions: (1 - h)^(T - 1)
    assert 1 - (1 - calibrate.per_session_hazard(0.25, 12)) ** 11 == pytest.approx(0.25)


def test_an_effect_on_the_r_scale_has_that_correlation() -> None:
    p = dict(DEFAULT_PARAMS)
    beta = calibrate.raw_effect(-0.2, "patient", p)
    sd_a = math.sqrt(p["alliance_var_patient"])
    rest = p["sd_patient_intercept"] ** 2 + p["sd_therapist_outcome"] ** 2 + p["sd_residual"] ** 2
    r = beta * sd_a / math.sqrt(beta**2 * sd_a**2 + rest)
    assert r == pytest.approx(-0.2)


@pytest.mark.slow
def test_calibration_from_the_demo_gives_simulator_parameters(tmp_path_factory) -> None:
    from pipeline_runs import reference_run  # the demo pipeline, run once per test session

    results = reference_run(tmp_path_factory).workdir / "results"
    overrides, record = calibrate.calibrate(results)
    assert set(overrides) <= set(DEFAULT_PARAMS)
    observed = record["observed"]["alliance_variances"]
    assert 0 < overrides["alliance_var_session"] < observed["session"]
    assert 0 < record["dropout_hazard_per_session"] < 0.2
    s = study.validate_power({"calibrate_from": str(results), "design": {"dropout_rate": [0.3]}})
    params = calibrate.cell_params(study.cells(s)[0], s, (overrides, record))
    assert params["dropout_alpha"] < 0 and params["alliance_mu"] == overrides["alliance_mu"]


# ------------------------------------------------------------------------------- closed form
def test_the_formula_is_the_two_sample_t_test_without_clustering() -> None:
    exact = closed_form.exact_power(40, 1, 0.0, 0.6, predictor="binary")
    assert exact == pytest.approx(TTestIndPower().power(0.6, nobs1=20, alpha=0.05), abs=1e-10)
    # the design effect: n members at ICC rho count as n / (1 + (n - 1) rho) independent ones
    # (with many clusters, where the J - 2 df no longer matter)
    assert closed_form.exact_power(200, 10, 0.1, 0.2) == pytest.approx(
        TTestIndPower().power(0.2, nobs1=100 * 10 / 1.9, alpha=0.05), abs=0.005
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clusters", "size", "icc", "effect", "predictor"),
    [(20, 10, 0.10, 0.50, "binary"), (30, 6, 0.20, 0.25, "continuous"), (24, 8, 0.15, 0.35,
     "binary")],
)  # fmt: skip
def test_simulated_power_matches_the_noncentral_t(
    clusters: int, size: int, icc: float, effect: float, predictor: str
) -> None:
    exact = closed_form.exact_power(clusters, size, icc, effect, predictor=predictor)
    sim = closed_form.simulate_power(clusters, size, icc, effect, 1000, seed=clusters,
                                     predictor=predictor)  # fmt: skip
    mc_se = math.sqrt(exact * (1 - exact) / sim["replicates"])
    print(f"J={clusters} n={size} icc={icc} effect={effect} {predictor}: exact {exact:.4f}, "
          f"simulated {sim['power']:.4f} (MC SE {mc_se:.4f}), coverage {sim['coverage']:.3f}, "
          f"singular {sim['singular_rate']:.3f}")  # fmt: skip
    assert abs(sim["power"] - exact) < 3.5 * mc_se, (sim, exact)
    assert 0.93 <= sim["coverage"] <= 0.97  # power is not bought by anticonservative SEs


# ------------------------------------------------------------------------ shards and results
def _run(raw: dict, n_shards: int, out: Path) -> pd.DataFrame:
    s = study.validate_power(raw)
    pipe = trials.power_pipeline(s)
    params = trials.cell_parameters(s, None)
    parts = [
        trials.run_shard(s, c, params[c["cell"]], k, n_shards, pipe)
        for c in study.cells(s)
        for k in range(n_shards)
    ]
    table, _ = results.write_results(results.gather(parts, s), s, params, None, out)
    return table


@pytest.mark.slow
def test_power_csv_is_identical_whatever_the_shard_count(tmp_path: Path) -> None:
    one = _run(TINY, 1, tmp_path / "one")
    _run(TINY, 3, tmp_path / "three")
    for name in ("power.csv", "replicates.csv", "smallest.csv", "power.md", "parameters.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "three" / name).read_bytes()
    # the columns promised: design, truth, power with its CI, coverage, convergence, failures
    for col in ("cell", "therapists", "patients_per_therapist", "sessions", "model", "term",
                "truth", "power", "power_ci_low", "power_ci_high", "mean_estimate", "coverage",
                "convergence_rate", "singular_rate", "replicates", "failed"):  # fmt: skip
        assert col in one.columns
    assert len(one) == 4 and (one["replicates"] == 3).all()
    fitted = one[one["failed"] < one["replicates"]]
    assert fitted["coverage"].between(0, 1).all() and one["truth"].notna().all()
    # 20 patients are too few for the RI-CLPM: skipped, counted as failed and as no detection
    small = one[(one["cell"] == "c01") & (one["model"] == "symptoms_riclpm")].iloc[0]
    assert small["failed"] == 3 and small["power"] == 0 and math.isnan(small["coverage"])
    assert (one["power_ci_low"] <= one["power"]).all()
    assert (one["power"] <= one["power_ci_high"]).all()
    params = json.loads((tmp_path / "one" / "parameters.json").read_text())
    assert set(params["cells"]) == {"c01", "c02"}
    # aggregate only: no per-patient column or pseudonym-shaped value in any table written
    for name in ("power.csv", "replicates.csv", "smallest.csv", "power.md", "parameters.json"):
        text = (tmp_path / "one" / name).read_text()
        assert not re.search(r"\b[PTS]-[0-9a-f]{10}\b", text), name
        if name.endswith(".csv"):
            assert "patient" not in pd.read_csv(tmp_path / "one" / name).columns, name


def test_gather_refuses_gaps() -> None:
    s = study.validate_power({**TINY, "replicates": 2})
    row = {c: 0 for c in trials.ROW_COLUMNS} | {"cell": "c01", "model": "m", "term": "t",
                                                 "status": "fitted", "reason": ""}  # fmt: skip
    with pytest.raises(Exception, match="gaps"):
        results.gather([pd.DataFrame([row])], s)


def test_power_counts_failed_fits_as_no_detection_and_one_sided_tests() -> None:
    rows = pd.DataFrame(
        {"p_value": [0.01, 0.2, np.nan, 0.04], "estimate": [-1.0, -1.0, np.nan, 1.0],
         "truth": [-1.0, -1.0, -1.0, -1.0]}
    )  # fmt: skip
    assert results.rejected(rows, 0.05, 2, "truth").tolist() == [True, False, False, True]
    assert results.rejected(rows, 0.05, 1, "truth").tolist() == [True, False, False, False]
    lo, hi = results.wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)


def test_arm_sets_keep_the_design() -> None:
    cell = {"arms": "CBT+IPT", "therapists": 10, "patients_per_therapist": 6}
    assert trials.simulated_size(cell) == (120, 20)
    cell = {"arms": "IMI-CM+PLA-CM", "therapists": 10, "patients_per_therapist": 6}
    assert trials.simulated_size(cell) == (120, 20)
