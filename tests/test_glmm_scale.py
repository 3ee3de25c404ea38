"""Binomial GLMMs at scale against lme4 (issue #16): the bench's 10k-, 120k- and 600k-row trials.

At 120k, one model per GLMM kind, `dropout_hazard` (hazard: 115k rows, 700 therapists) and
`suicidality` (glmm: 114k rows, patient and therapist intercepts, 9,170 random effects); at 10k
(cheap, every CI run) one model of each binomial GLMM form the pipeline fits, adding
`missed_sessions` (hazard on scheduled slots, patient and therapist intercepts) and
`adherence_alliance` (proportions with binomial trials weights); at 600k (opt-in,
GLMM_SCALE_600K=1) the 120k pair again. The frames are rebuilt from the bench's seed
(tests/reference/glmm_scale_frames.py), fitted by the pipeline and compared with lme4 1.1-31
run on the same frames with the `formula_r` call (tests/reference/make_glmm_scale_reference.R;
only R's estimates are committed). Where that call stops short of the optimum (dropout_hazard:
lme4's Nelder-Mead stage ends with max|grad| 0.17), the comparison is with lme4's bobyqa refit to
a tight trust region (`_converged`), or with lme4 started at our estimates (`_start_ours`: at
600k, where lme4's own fit takes hours on a loaded machine, and where neither of its own fits
converged); the best lme4 optimum is used (`_best_case`). No lme4 fit of the 10k
adherence_alliance (its Hessian SEs are degenerate) or of the 600k dropout_hazard converges:
those are checked against lme4's best logLik and SEs more loosely (`LME4_STOPS_SHORT`). Before
the engine's own Laplace fit (alliance.engine.mixed.laplace) the suicidality fit stopped at the
start with logLik 78.5 below lme4's and no usable Hessian.

Where lme4 and we differ, lme4's own deviance function is lower at our estimates (hazard:
17416.8072997 vs 17416.8072998 at its bobyqa optimum; suicidality: 29114.10405684 vs
29114.10405698), so estimates are held to 1e-4 relative plus a thousandth of their SE.
Standard errors are compared twice. Against lme4's own `vcov()` at 1e-3: it takes deriv12 at an
absolute step 1e-4, whose truncation error on wide-ranged covariates (period_sq) and whose
rounding (lme4's devfun returns the deviance at the optimum itself offset from the points around
it) move its SEs by up to 4.6e-4 at 120k (8.2e-4 on the 10k hazard). Against `std_error_exact`
at 1e-4: lme4's deviance function differentiated precisely (tests/reference/common.R
`precise_hessian`), which is what ours, differences of the exact gradient, compute. Largest
differences from it: 10k 1.6e-6, 120k 1.1e-5 (hazard) and 3.5e-6 (suicidality). Estimates at
120k: suicidality 3.5e-5; hazard (against the bobyqa refit) 1.1e-4 relative (2.5e-4 SE).
On the 10k adherence_alliance (binomial proportions with trials weights) lme4's vcov SEs are
1/59 of what its own deviance's precise Hessian gives, which agrees with ours to 3.5e-3 at
lme4's unconverged point: lme4's Hessian SEs are not usable there (below).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from alliance.studies.bench.glmm import GLMMS

pytestmark = pytest.mark.slow

REFERENCE = Path(__file__).parent / "reference"
EST_RTOL = 1e-4
EST_SE_SHARE = 1e-3
SE_RTOL = 1e-3  # lme4's own vcov(): deriv12 at an absolute step 1e-4 (see the docstring)
SE_EXACT_RTOL = 1e-4  # lme4's deviance Hessian computed precisely (std_error_exact)
LOGLIK_TOL = 1e-3


def _frames_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "glmm_scale_frames", REFERENCE / "glmm_scale_frames.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


FRAMES = _frames_module()


# (trial, model) compared; 10k: one model of each binomial GLMM form the pipeline fits, cheap
# enough for every CI run; 600k (GLMM_SCALE_600K=1, a few minutes): against lme4 started at our
# estimates (`_start_ours`), since its fit from its own start takes hours on a loaded machine
CASES = [
    *[("120k", m) for m in FRAMES.MODELS],
    *[("10k", m) for m in GLMMS],
    *[
        pytest.param("600k", m, marks=pytest.mark.skipif(
            os.environ.get("GLMM_SCALE_600K") != "1", reason="opt-in: GLMM_SCALE_600K=1"))
        for m in FRAMES.MODELS
    ],
]  # fmt: skip


@pytest.fixture(scope="module")
def prepared() -> Callable[[str], object]:
    """A bench trial, simulated from its seed, cleaned and scored (once per trial)."""
    return functools.cache(FRAMES.prepare)


def _reference(trial: str) -> pd.DataFrame:
    name = "glmm_scale_reference.csv" if trial == "120k" else f"glmm_scale_reference_{trial}.csv"
    return pd.read_csv(REFERENCE / name, dtype={"value": str})


def _best_case(reference: pd.DataFrame, base: str) -> tuple[str, float | None]:
    """lme4's best optimum for `base` and the logLik of its plain formula_r fit (if run).

    Candidates: the formula_r fit, its bobyqa refit when that call stopped short
    (`_converged`), and the same started at our estimates (`_start_ours`, `_start_ours_converged`):
    the highest logLik wins, the earliest of these on a tie.
    """
    order = [base, f"{base}_converged", f"{base}_start_ours", f"{base}_start_ours_converged"]
    present = [c for c in order if (reference["case"] == c).any()]
    assert present, f"no lme4 reference for {base}"
    loglik = {c: float(_ref(reference, c, "fit", "loglik").iloc[0]) for c in present}
    best = max(present, key=lambda c: (loglik[c], -order.index(c)))
    return best, loglik.get(base)


def _ref(reference: pd.DataFrame, case: str, section: str, stat: str) -> pd.Series:
    rows = reference[
        (reference["case"] == case)
        & (reference["section"] == section)
        & (reference["stat"] == stat)
    ]
    return pd.Series(rows["value"].astype(float).to_numpy(), index=rows["term"].to_numpy())


@pytest.mark.parametrize(("trial", "model"), CASES)
def test_glmm_at_scale_equals_lme4(prepared: Callable[[str], object], trial: str, model: str):
    reference = _reference(trial)
    case, formula_r_loglik = _best_case(reference, f"{model}_{trial}")
    result, _ = FRAMES.fit(prepared(trial), model)
    fit = result.fit
    assert fit["status"] == "fitted" and fit["converged"], fit.get("warnings")
    assert not fit["se_approximate"]
    coefs = result.coefficients.set_index("term")
    est = _ref(reference, case, "fixef", "estimate")
    se = _ref(reference, case, "fixef", "std_error")
    assert fit["n_obs"] == int(_ref(reference, case, "fit", "n_obs").iloc[0])
    if (trial, model) in LME4_STOPS_SHORT:
        _check_against_unconverged_lme4(reference, case, fit, coefs, trial, model)
        return
    # 1e-4 relative, or a thousandth of an SE for estimates near zero (the hazard's
    # baseline_symptom is 4e-4 with SE 7e-3; lme4's own optimum is not closer than that)
    diff = (coefs.loc[est.index, "estimate"] - est).abs()
    bound = EST_RTOL * est.abs() + EST_SE_SHARE * se
    assert (diff <= bound).all(), pd.DataFrame({"diff": diff, "bound": bound})
    np.testing.assert_allclose(coefs.loc[se.index, "std_error"], se, rtol=SE_RTOL)
    exact = _ref(reference, case, "fixef", "std_error_exact")
    np.testing.assert_allclose(coefs.loc[exact.index, "std_error"], exact, rtol=SE_EXACT_RTOL)
    # the same optimum as converged lme4, and never below lme4's formula_r fit
    loglik = float(_ref(reference, case, "fit", "loglik").iloc[0])
    assert fit["logLik"] == pytest.approx(loglik, abs=LOGLIK_TOL)
    if formula_r_loglik is not None:
        assert fit["logLik"] >= formula_r_loglik - 1e-6
    sd = _ref(reference, case, "varcorr", "sdcor")
    ours = {f"{r['group']}|{r['term1']}|": r["sd"] for r in fit["variance_components"]}
    for term, value in sd.items():
        assert ours[term] == pytest.approx(value, rel=EST_RTOL, abs=1e-4), term


# Models where no lme4 fit converges (its own gradient check fails), with the SEs to compare
# with and their tolerance: adherence_alliance at 10k (binomial proportions with trials weights)
# stops with max|grad| 0.025 from its start, from ours and after the bobyqa refit, "nearly
# unidentifiable: very large eigenvalue", its Hessian SEs 60x below its own RX-based ones (ours
# are within 0.5 % of those; Hessian and RX SEs differ by about 1 % on well-behaved fits: cbpp
# 0.2312 vs 0.2279); dropout_hazard at 600k, started at our estimates, stops with max|grad|
# 0.071 and a logLik 3.6e-6 below ours (its bobyqa refit did not finish here).
LME4_STOPS_SHORT = {
    ("10k", "adherence_alliance"): ("std_error_rx", 0.02),
    ("600k", "dropout_hazard"): ("std_error", 2e-3),
}


def _check_against_unconverged_lme4(
    reference: pd.DataFrame, case: str, fit: dict, coefs: pd.DataFrame, trial: str, model: str
) -> None:
    """Ours at least as high as lme4's best logLik (and close), estimates within a tenth of an
    SE of lme4's, SEs as LME4_STOPS_SHORT says."""
    loglik = float(_ref(reference, case, "fit", "loglik").iloc[0])
    assert loglik - 1e-6 <= fit["logLik"] <= loglik + LOGLIK_TOL
    est = _ref(reference, case, "fixef", "estimate")
    stat, rtol = LME4_STOPS_SHORT[(trial, model)]
    se = _ref(reference, case, "fixef", stat)
    ours_se = coefs.loc[se.index, "std_error"]
    assert ((coefs.loc[est.index, "estimate"] - est).abs() <= 0.1 * ours_se).all()
    np.testing.assert_allclose(ours_se, se, rtol=rtol)
