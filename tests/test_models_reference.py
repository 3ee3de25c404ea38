"""The default (G)LMMs of the model stage against lme4 1.1-31 / lmerTest 3.1-3, and its default
GEEs against geepack 1.3.9 (R 4.2.2).

Fixtures (tests/reference/models/): `<case>_frame.csv` are model frames of the default models on
the demo trial (session-level frames keep every third patient, so the fixtures stay small);
`specs.csv` lists each case's resolved terms and `formula_r`; `reference.csv` holds what
make_model_reference.R got in R from those frames with `formula_r` (long format: case, section,
term, stat, value). The tests refit each frame through `alliance.models` and never need R.
`adherence_alliance_share` runs only where adherence is a proportion without dose counts: its
frame comes from the demo with the count columns dropped (conftest.proportion_only), as the
clean stage writes a proportion-only export.

Regenerate (after changing defaults.yaml or the score stage), from the repository root:

    .venv/bin/python tests/test_models_reference.py      # frames + specs.csv from the demo
    Rscript tests/reference/make_model_reference.R        # reference.csv

Tolerances (the brief): estimates 1e-3 relative, SEs 1e-3 relative. Estimates much smaller than
their SE are compared on the SE's scale (their trailing digits are optimizer noise in R too).
GEEs (estimating equations solved to 1e-10 on both sides, no optimiser): estimates, sandwich
SEs, scale, working correlation and QIC to 1e-5 relative.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import proportion_only

from alliance.models.base import FitContext, ModelSpec, kind_function
from alliance.models.spec import load_specs
from alliance.settings import ModelsSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference" / "models"
DEMO_CODINGS = {"arm": {"CBT": "psychotherapy", "IPT": "psychotherapy", "IMI-CM": "drug",
                        "PLA-CM": "placebo"}, "arm_reference": "PLA-CM"}  # fmt: skip
CONTEXT = FitContext(seed=0, arms=DEMO_CODINGS["arm"], higher_is_worse=True)  # (G)LMMs: arms only
DEFAULT_MODELS = ModelsSettings.from_mapping({"use_defaults": True, "disable": [], "custom": []})
# Session-level frames keep every SUBSAMPLE-th patient (sorted pseudonyms) to stay small.
SUBSAMPLE = 3
FEW_THERAPISTS = 6
EST_RTOL, SE_RTOL = 1e-3, 1e-3
# GLMM SEs: against lme4's deviance Hessian computed precisely (std_error_exact, R
# tests/reference/common.R precise_hessian) at 1e-4; against its vcov(), deriv12 at the absolute
# step 1e-4 whose truncation moves the SEs of wide-ranged covariates (period_sq) by ~1e-3, looser
GLMM_SE_EXACT_RTOL, GLMM_SE_VCOV_RTOL = 1e-4, 3e-3
GEE_RTOL = 1e-5
MIXED_KINDS = ("lmm", "glmm", "hazard")


def _specs_table() -> pd.DataFrame:
    return pd.read_csv(REF / "specs.csv", keep_default_na=False)


def _reference() -> pd.DataFrame:
    return pd.read_csv(REF / "reference.csv", keep_default_na=False)


def ref(case: str, section: str) -> pd.DataFrame:
    t = _reference_cached()
    rows = t[(t["case"] == case) & (t["section"] == section)]
    assert not rows.empty, (case, section)
    return rows.pivot(index="term", columns="stat", values="value").astype(float)


@cache
def _reference_cached() -> pd.DataFrame:
    return _reference()


def default_spec(model_id: str) -> ModelSpec:
    return next(s for s in load_specs(DEFAULT_MODELS) if s.id == model_id)


def case_frame(row: pd.Series) -> pd.DataFrame:
    """A fixture frame with its factors re-coded (categorical, reference level first)."""
    frame = pd.read_csv(REF / f"{row['case']}_frame.csv", keep_default_na=True)
    for var, info in json.loads(row["factors"]).items():
        frame[var] = pd.Categorical(frame[var].astype(str), categories=info["levels"])
    for col in ("patient", "therapist"):
        if col in frame.columns:
            frame[col] = frame[col].astype(str)
    return frame


def case_spec(row: pd.Series) -> ModelSpec:
    """The default spec resolved as in the fixture (terms over the frame's columns)."""
    return dataclasses.replace(
        default_spec(row["model"]),
        outcome=row["outcome"],
        fixed=tuple(row["fixed"].split(" + ")),
        random=row["random"] or None,
    )


@cache
def fitted(case: str):
    row = _specs_table().set_index("case").loc[case]
    row["case"] = case
    spec = case_spec(row)
    return kind_function(spec.kind)(spec, case_frame(row), CONTEXT)


_TABLE = _specs_table() if (REF / "specs.csv").exists() else pd.DataFrame(columns=["case", "kind"])
CASES = list(_TABLE["case"])
MIXED_CASES = list(_TABLE.loc[_TABLE["kind"].isin(MIXED_KINDS), "case"])
GEE_CASES = list(_TABLE.loc[_TABLE["kind"] == "gee", "case"])


def _close_estimates(
    ours: pd.Series, theirs: pd.Series, se: pd.Series, rtol: float = EST_RTOL
) -> None:
    scale = np.maximum(theirs.abs(), se)
    bad = np.abs(ours - theirs) > rtol * scale
    assert not bad.any(), pd.DataFrame({"ours": ours, "R": theirs})[bad]


def max_rel_diff(case: str) -> dict[str, float]:
    """Max relative differences to R (estimates on max(|est|, SE) scale), for the report."""
    r = ref(case, "robust" if fitted(case).fit.get("few_groups") else "fixef")
    c = fitted(case).coefficients.set_index("term").loc[r.index]
    scale = np.maximum(r["estimate"].abs(), r["std_error"])
    return {
        "estimate": float((np.abs(c["estimate"] - r["estimate"]) / scale).max()),
        "std_error": float((np.abs(c["std_error"] / r["std_error"] - 1)).max()),
    }


@pytest.mark.parametrize("case", CASES)
def test_coefficients_match_r(case):
    r = ref(case, "fixef")
    res = fitted(case)
    c = res.coefficients.set_index("term")
    rc = res.fit.get("reliability_correction")
    if rc and rc.get("moderator"):  # (x, x:z) -> M (x, x:z), covariance M V M' (moderated)
        pair = [rc["term"], f"{rc['term']}:{rc['moderator']}"]
        m, b = np.asarray(rc["matrix"]), c.loc[pair, "estimate"].to_numpy()
        v = res.extras["vcov"].set_index("term").loc[pair, pair].to_numpy()
        rows = c.loc[[f"{rc['term']}_rc", f"{rc['term']}_rc:{rc['moderator']}"]]
        np.testing.assert_allclose(rows["estimate"], m @ b, rtol=1e-12)
        np.testing.assert_allclose(rows["std_error"], np.sqrt(np.diag(m @ v @ m.T)), rtol=1e-10)
    elif rc:  # derived rows (regression calibration), not coefficients R fits
        x = rc["term"]
        row, naive = c.loc[f"{x}_rc"], c.loc[x]
        assert row["estimate"] == pytest.approx(naive["estimate"] / rc["lambda"], rel=1e-12)
        assert row["std_error"] == pytest.approx(naive["std_error"] / rc["lambda"], rel=1e-12)
        if rc.get("by"):  # each group's slope with its own lambda; the row is their difference
            lam0, lam1 = (g["lambda"] for g in rc["groups"])
            b, b_by = naive["estimate"], c.loc[f"{x}:{rc['by']}", "estimate"]
            assert c.loc[f"{x}_rc:{rc['by']}", "estimate"] == pytest.approx(
                (b + b_by) / lam1 - b / lam0, rel=1e-12
            )
    if rc:
        c = c.drop(index=res.fit["derived_terms"])
    assert sorted(c.index) == sorted(r.index)  # identical term names in R and here
    c = c.loc[r.index]
    _close_estimates(c["estimate"], r["estimate"], r["std_error"])
    if res.fit.get("few_groups"):
        return  # cluster-robust SEs: checked against R's sandwich below
    if "std_error_exact" in r.columns:  # a GLMM
        np.testing.assert_allclose(c["std_error"], r["std_error_exact"], rtol=GLMM_SE_EXACT_RTOL)
        np.testing.assert_allclose(c["std_error"], r["std_error"], rtol=GLMM_SE_VCOV_RTOL)
    else:
        np.testing.assert_allclose(c["std_error"], r["std_error"], rtol=SE_RTOL)
    if "statistic" in r.columns and "statistic" in c.columns:  # t or z, as R prints it
        rtol = GLMM_SE_VCOV_RTOL if "std_error_exact" in r.columns else SE_RTOL
        np.testing.assert_allclose(c["statistic"], r["statistic"], rtol=rtol, atol=1e-6)
    if "df" in r.columns and np.isfinite(r["df"]).all():
        np.testing.assert_allclose(c["df"], r["df"], rtol=1e-3)


@pytest.mark.parametrize("case", MIXED_CASES)
def test_fit_statistics_match_r(case):
    res = fitted(case)
    fit = ref(case, "fit")
    np.testing.assert_allclose(res.fit["logLik"], fit.loc["", "loglik"], rtol=1e-6)
    assert res.fit["n_obs"] == int(fit.loc["", "n_obs"])
    vc = ref(case, "varcorr")
    ours = {}
    for v in res.fit["variance_components"]:
        key = f"{v['group']}|{v['term1']}|{v['term2']}"
        ours[key] = v["variance"]
    top = vc["vcov"].abs().max()
    for term, row in vc.iterrows():
        if max(abs(ours[term]), abs(row["vcov"])) < max(2e-2 * top, 1e-8):
            continue  # both at the boundary (singular fit): lme4 stops at ~1e-5 (or 1e-15), we at 0
        # a component under 5 % of the largest is compared to 1e-4 of the largest at best: the
        # likelihood barely determines it (demo missed_sessions: therapist variance 0.00137,
        # R's own deviance is flat to 1e-8 over +-0.2 % of it and lower at our estimate)
        scale = max(abs(row["vcov"]), 5e-2 * top)
        assert abs(ours[term] - row["vcov"]) <= 2e-3 * scale, (term, ours[term], row["vcov"])


@pytest.mark.parametrize("case", GEE_CASES)
def test_gee_matches_geepack_to_1e5(case):
    """Estimates, sandwich SEs, scale, working correlation and QIC as geeglm gets them."""
    res = fitted(case)
    r = ref(case, "fixef")
    c = res.coefficients.set_index("term")
    c = c.loc[r.index]
    _close_estimates(c["estimate"], r["estimate"], r["std_error"], rtol=GEE_RTOL)
    np.testing.assert_allclose(c["std_error"], r["std_error"], rtol=GEE_RTOL)
    fit = ref(case, "fit").iloc[0]
    assert res.fit["scale"] == pytest.approx(fit["scale"], rel=GEE_RTOL)
    assert res.fit["working_correlation"] == pytest.approx(fit["alpha"], rel=GEE_RTOL)
    assert res.fit["QIC"] == pytest.approx(fit["qic"], rel=GEE_RTOL)
    assert res.fit["n_obs"] == int(fit["n_obs"]) and res.fit["n_clusters"] == int(fit["clusters"])
    assert res.fit["converged"]


def _check_table(ours: pd.DataFrame, case: str, section: str, key) -> None:
    r = ref(case, section)
    ours = ours.assign(_key=ours.apply(key, axis=1)).set_index("_key").loc[r.index]
    _close_estimates(ours["estimate"], r["estimate"], r["std_error"])
    np.testing.assert_allclose(ours["std_error"], r["std_error"], rtol=SE_RTOL)


def test_simple_slopes_and_drug_placebo_contrast_match_r():
    res = fitted("symptoms_by_arm")
    _check_table(
        res.extras["simple_slopes"], "symptoms_by_arm", "slopes", lambda r: f"{r.term}|{r.level}"
    )
    _check_table(
        res.extras["contrasts"], "symptoms_by_arm", "contrasts", lambda r: f"{r.term}|{r.contrast}"
    )


@pytest.mark.parametrize("case", ["symptoms_by_modality", "symptoms_by_agency", "symptoms_by_trd"])
def test_moderator_slopes_match_r(case):
    res = fitted(case)
    _check_table(res.extras["simple_slopes"], case, "slopes", lambda r: f"{r.term}|{r.level}")


@pytest.mark.parametrize("case", ["symptoms_growth", "dropout_hazard", "missed_sessions"])
def test_predictions_match_r(case):
    pred = fitted(case).extras["predictions"].rename(columns={"fit": "estimate"})
    pred = pred.rename(columns={"se_fit": "std_error"})
    _check_table(pred, case, "predictions", lambda r: f"{r.by_level}|{r.x:g}")


def test_therapist_conditional_modes_match_r():
    re = fitted("symptoms_growth").extras["random_effects"]
    r = ref("symptoms_growth", "ranef")
    ours = re.assign(key=re["group"] + "|" + re["term"] + "|" + re["level"]).set_index("key")
    ours = ours.loc[r.index]
    np.testing.assert_allclose(ours["estimate"], r["condval"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours["cond_sd"], r["condsd"], rtol=1e-3)


def test_few_therapists_fall_back_to_cluster_robust_ses_as_computed_in_r():
    case = "symptoms_growth_few_therapists"
    res = fitted(case)
    assert res.fit["few_groups"] == {"group": "therapist", "clusters": FEW_THERAPISTS, "se": "CR1"}
    assert "(1 | therapist)" not in res.fit["formula"]
    r = ref(case, "robust")
    c = res.coefficients.set_index("term").loc[r.index]
    _close_estimates(c["estimate"], r["estimate"], r["std_error"])
    np.testing.assert_allclose(c["std_error"], r["std_error"], rtol=SE_RTOL)
    assert (c["df"] == FEW_THERAPISTS - 1).all()


@pytest.mark.slow
def test_fixture_frames_are_the_default_models_on_the_demo():
    """The fixtures stay in sync with defaults.yaml and the score stage."""
    frames = demo_frames()
    table = _specs_table()
    for _, row in table.iterrows():
        frame, spec_fixed, _ = frames[row["case"]]
        assert spec_fixed == row["fixed"], row["case"]
        fixture = case_frame(row)
        pd.testing.assert_frame_equal(
            frame.reset_index(drop=True), fixture, check_dtype=False, check_categorical=False,
            check_exact=False, rtol=1e-12,
        )  # fmt: skip


# ---- fixture writer (python tests/test_models_reference.py) ------------------------------------


def demo_tables():
    """Demo analysis tables through the clean and score stages (as the pipeline makes them)."""
    import warnings

    from alliance.clean.stage import clean_trial
    from alliance.config import load_config
    from alliance.score.stage import run_score

    cfg = load_config(ROOT / "config" / "config.yaml")
    cfg["data"]["sessions"] = str(ROOT / cfg["data"]["sessions"])
    cfg["data"]["patients"] = str(ROOT / cfg["data"]["patients"])
    cfg["alliance"]["instruments_dir"] = str(ROOT / cfg["alliance"]["instruments_dir"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the therapist key's UNVERIFIED notice
        settings = Settings.from_config(cfg)
        clean = clean_trial(settings.clean())
        scored = run_score(clean.sessions, clean.patients, settings.score_stage())
    return scored.analysis, scored.patient_analysis, clean.availability, settings


def _keep_patients(frame: pd.DataFrame) -> pd.DataFrame:
    ids = sorted(frame["patient"].unique())[::SUBSAMPLE]
    return frame[frame["patient"].isin(ids)]


def demo_frames() -> dict[str, tuple[pd.DataFrame, str, dict]]:
    """case -> (frame, resolved fixed terms, row of specs.csv) for every default (G)LMM and GEE
    (a proportion-only model on the demo without its dose counts)."""
    from alliance.models.frames import model_frame

    demo, patients, demo_availability, settings = demo_tables()
    shares = proportion_only(demo, demo_availability, settings)
    codings = {"arms": settings.codings.arm, "arm_reference": settings.codings.arm_reference}
    out = {}
    for spec in load_specs(settings.models):
        if spec.kind not in (*MIXED_KINDS, "gee"):
            continue
        only_shares = "adherence.proportion_only" in spec.requires
        sessions, availability = shares if only_shares else (demo, demo_availability)
        frame, meta = model_frame(spec, sessions, patients, availability, **codings)
        cases = {spec.id: (_keep_patients(frame) if spec.data == "sessions" else frame, meta)}
        if spec.id == "symptoms_growth":
            # a trial with few therapists: the first FEW_THERAPISTS therapists (sorted pseudonyms)
            ther = sorted(sessions["therapist"].dropna().unique())[:FEW_THERAPISTS]
            few = sessions[sessions["therapist"].isin(ther)]
            cases["symptoms_growth_few_therapists"] = model_frame(
                spec, few, patients, availability, **codings
            )
        for case, (f, meta) in cases.items():
            r = meta.spec
            row = {
                "case": case,
                "model": spec.id,
                "kind": spec.kind,
                "outcome": r.outcome,
                "fixed": " + ".join(r.fixed),
                "random": r.random,
                "reml": bool(spec.options.get("reml", True)),
                "formula": meta.formula,
                "factors": json.dumps(
                    {k: {"levels": v["levels"]} for k, v in meta.factors.items()}
                ),
            }
            out[case] = (f.reset_index(drop=True), row["fixed"], row)
    return out


def write_fixtures() -> None:
    """Frames + specs.csv (formula_r from a fit, so it is exactly what the pipeline records)."""
    from alliance.files import write_csv

    REF.mkdir(parents=True, exist_ok=True)
    rows = []
    for case, (frame, _, row) in demo_frames().items():
        write_csv(frame, REF / f"{case}_frame.csv")
        spec = case_spec(pd.Series(row))
        result = kind_function(spec.kind)(spec, frame, CONTEXT)
        row["formula_r"] = result.fit["formula_r"]
        row["robust_cluster"] = (result.fit.get("few_groups") or {}).get("group", "")
        rows.append(row)
        print(f"{case}: {len(frame)} rows, {row['formula_r']}")
    write_csv(pd.DataFrame(rows), REF / "specs.csv")


if __name__ == "__main__":
    sys.exit(write_fixtures())
