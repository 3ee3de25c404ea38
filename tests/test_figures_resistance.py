"""Treatment-resistance figures (issue #14): the TRD slopes are the model's coefficients and their
covariance-based combinations, the observed shares are what the model frame says, the curve is
the model at random effects zero, and a model that was not fitted leaves a note in its panel."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from test_figures import config, synthetic_results, write_results

from alliance.render.captions import figure_caption
from alliance.render.figures import FIGURES, draw_all, draw_figure, load_inputs
from alliance.render.figures.attendance import (
    ADHERENCE,
    ADHERENCE_SHARE,
    MISSED,
    binned_shares,
    marginal,
)
from alliance.render.figures.common import NothingToDraw
from alliance.render.figures.resistance import stage_points, stage_slopes, trd_slopes

Z = 1.959963984540054


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("results"), synthetic_results())


def _inputs(results: Path, name: str) -> dict[str, Any]:
    inputs = load_inputs(FIGURES[name], results)
    assert isinstance(inputs, dict), inputs
    return inputs


def _vcov(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("term")


def _texts(fig: Figure) -> str:
    fig.draw_without_rendering()
    return "\n".join(t.get_text() for t in fig.findobj(Text) if t.get_visible())


# ---- TRD slopes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "terms", "source"),
    [("symptoms", ["alliance_pat_prior", "alliance_within_prior"], "simple_slopes.csv"),
     ("hazard", ["alliance"], "covariance")],
)  # fmt: skip
def test_trd_slopes_are_the_main_term_and_main_plus_interaction(
    results: Path, prefix: str, terms: list[str], source: str
) -> None:
    inputs = _inputs(results, "trd_slopes")
    coefs = inputs[f"{prefix}_coefficients"].set_index("term")
    v = _vcov(inputs[f"{prefix}_vcov"])
    table = trd_slopes(inputs[f"{prefix}_coefficients"], inputs[f"{prefix}_vcov"],
                       inputs.get(f"{prefix}_slopes"))  # fmt: skip
    assert table["term"].unique().tolist() == terms  # weeks:trd is no alliance slope
    for term in terms:
        inter = f"{term}:trd"
        rows = table[table["term"] == term].set_index("row")
        assert rows.loc[["non_trd", "trd"], "source"].eq(source).all()
        # non-TRD: the main term itself
        for col in ("estimate", "std_error"):
            assert rows.loc["non_trd", col] == pytest.approx(coefs.loc[term, col])
        # TRD: main + interaction, SE from the covariance (its off-diagonal matters here)
        se = math.sqrt(v.loc[term, term] + v.loc[inter, inter] + 2 * v.loc[term, inter])
        naive = math.sqrt(v.loc[term, term] + v.loc[inter, inter])
        assert abs(se - naive) > 0.05
        est = coefs.loc[term, "estimate"] + coefs.loc[inter, "estimate"]
        assert rows.loc["trd", "estimate"] == pytest.approx(est)
        assert rows.loc["trd", "std_error"] == pytest.approx(se)
        crit = 1.97 if source == "simple_slopes.csv" else Z  # the model's t, or Wald z
        for row in ("non_trd", "trd"):
            half = rows.loc[row, "ci_high"] - rows.loc[row, "estimate"]
            assert half / rows.loc[row, "std_error"] == pytest.approx(crit, abs=1e-6)
        # the difference: the interaction row, with the model's own test
        for col in ("estimate", "std_error", "ci_low", "ci_high", "p_value"):
            assert rows.loc["difference", col] == pytest.approx(coefs.loc[inter, col])


def test_derived_slopes_equal_the_models_own(results: Path) -> None:
    inputs = _inputs(results, "trd_slopes")
    args = (inputs["symptoms_coefficients"], inputs["symptoms_vcov"])
    own = trd_slopes(*args, inputs["symptoms_slopes"])
    derived = trd_slopes(*args, None)  # no simple_slopes.csv: contrasts.simple_slopes
    assert (derived[derived["row"] != "difference"]["source"] == "covariance").all()
    for col in ("estimate", "std_error"):
        assert derived[col].to_numpy() == pytest.approx(own[col].to_numpy())


def _drawn(fig: Figure, gid: str) -> tuple[float, float, float]:
    """(estimate, ci_low, ci_high) as drawn for the row with this gid."""
    ax = next(a for a in fig.axes for line in a.lines if line.get_gid() == gid)
    (est,) = next(line for line in ax.lines if line.get_gid() == gid).get_xdata()
    ci = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_gid() == gid]
    seg = ci[0].get_segments()[0]
    return float(est), float(seg[0][0]), float(seg[1][0])


def test_the_figure_draws_the_slopes_and_the_interaction_p(results: Path) -> None:
    inputs = _inputs(results, "trd_slopes")
    fig = FIGURES["trd_slopes"].draw(**inputs, settings=config())
    assert isinstance(fig, Figure)
    for prefix, model, ratio in (("symptoms", "symptoms_by_trd", False),
                                 ("hazard", "dropout_hazard_by_trd", True)):  # fmt: skip
        table = trd_slopes(inputs[f"{prefix}_coefficients"], inputs[f"{prefix}_vcov"],
                           inputs.get(f"{prefix}_slopes"))  # fmt: skip
        for r in table.itertuples():
            want = np.array([r.estimate, r.ci_low, r.ci_high])
            drawn = _drawn(fig, f"{model}|{r.term}|{r.row}")
            assert drawn == pytest.approx(np.exp(want) if ratio else want)
    text = _texts(fig)
    assert "p = .04" in text  # the interactions' p (synthetic coefficients)
    assert "TRD (\N{GREATER-THAN OR EQUAL TO} 2 failed trials)" in text
    assert "Ratio TRD / non-TRD (interaction)" in text  # odds-ratio panel


def test_stage_slopes_are_the_line_in_stage_per_sd_of_the_alliance(results: Path) -> None:
    """Slope at stage s = b + (s - 2.5) b x stage (centre: the midpoint of 0-5), SE from the
    covariance, times the alliance SD of fit.json; the interaction row is b x stage per SD."""
    inputs = _inputs(results, "trd_slopes")
    coefs = inputs["stage_coefficients"].set_index("term")
    v = _vcov(inputs["stage_vcov"])
    sd = inputs["stage_fit"]["reliability_correction"]["x_sd"]
    points = stage_points((0, 5), 2.5)
    assert points == {f"stage_{s}": s - 2.5 for s in range(6)}
    table = stage_slopes(inputs["stage_coefficients"], inputs["stage_vcov"], points, sd)
    rows = table.set_index("row")
    assert list(rows.index) == [*points, "difference"]
    b, bz = coefs.loc["alliance", "estimate"], coefs.loc["alliance:stage", "estimate"]
    for key, z in points.items():
        var = v.loc["alliance", "alliance"] + z * z * v.loc["alliance:stage", "alliance:stage"]
        var += 2 * z * v.loc["alliance", "alliance:stage"]
        assert rows.loc[key, "estimate"] == pytest.approx(sd * (b + z * bz))
        assert rows.loc[key, "std_error"] == pytest.approx(sd * math.sqrt(var))
        half = rows.loc[key, "ci_high"] - rows.loc[key, "estimate"]
        assert half == pytest.approx(Z * rows.loc[key, "std_error"])
    assert rows.loc["difference", "estimate"] == pytest.approx(sd * bz)
    assert rows.loc["difference", "p_value"] == coefs.loc["alliance:stage", "p_value"]
    fig = FIGURES["trd_slopes"].draw(**inputs, settings=config())
    for r in table.itertuples():
        drawn = _drawn(fig, f"dropout_hazard_by_stage|alliance|{r.row}")
        assert drawn == pytest.approx(np.exp([r.estimate, r.ci_low, r.ci_high]))
    text = " ".join(_texts(fig).split())
    assert "Thase-Rush stage 0" in text and "Thase-Rush stage 5" in text
    assert "Ratio per stage (interaction)" in text and "per SD of the WAI-SR (SD 0.50" in text
    # a long scale is thinned, both ends kept; a centre moves the points, not the stages
    assert list(stage_points((3, 27), 15)) == [f"stage_{s}" for s in (*range(3, 28, 3),)]
    assert stage_points((0, 5), 2)["stage_0"] == -2


def test_group_labels_follow_the_configured_trd_definition(results: Path) -> None:
    settings = config()
    three = dataclasses.replace(
        settings,
        treatment_resistance=dataclasses.replace(settings.treatment_resistance, trd_min_failed=3),
    )
    fig = FIGURES["trd_slopes"].draw(**_inputs(results, "trd_slopes"), settings=three)
    text = _texts(fig)
    assert "Non-TRD (< 3 failed trials)" in text and "TRD (\N{GREATER-THAN OR EQUAL TO} 3" in text


# ---- attendance and adherence -----------------------------------------------------------------


def _deciles(frame: pd.DataFrame, x: str) -> pd.Series:
    return pd.qcut(frame[x].rank(method="first"), 10, labels=False)


def test_binned_shares_equal_a_direct_computation(results: Path) -> None:
    inputs = _inputs(results, "attendance_adherence")
    missed = inputs["missed_frame"]
    got = binned_shares(missed, "alliance", "event")
    want = missed.groupby(_deciles(missed, "alliance")).agg(
        x=("alliance", "mean"), rows=("event", "size"), share=("event", "mean")
    )
    assert len(got) == 10  # deciles: 384 slots, at least 30 per bin
    assert got["rows"].tolist() == want["rows"].tolist()
    assert got["rows"].sum() == len(missed)
    assert got["share"].to_numpy() == pytest.approx(want["share"].to_numpy())
    assert got["x"].to_numpy() == pytest.approx(want["x"].to_numpy())
    pills = inputs["adherence_frame"]
    got = binned_shares(pills, "alliance_lag1", "adherence", "doses_prescribed", n_bins=10)
    taken = (pills["adherence"] * pills["doses_prescribed"]).groupby(
        _deciles(pills, "alliance_lag1")).sum()  # fmt: skip
    given = pills["doses_prescribed"].groupby(_deciles(pills, "alliance_lag1")).sum()
    assert got["share"].to_numpy() == pytest.approx((taken / given).to_numpy())
    assert got["weight"].to_numpy() == pytest.approx(given.to_numpy())


def test_the_clustered_interval_is_the_usual_one_with_one_row_per_patient() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=200), "y": (rng.random(200) < 0.3).astype(float),
                          "patient": [f"p{i}" for i in range(200)]})  # fmt: skip
    got = binned_shares(frame, "x", "y", n_bins=1).iloc[0]
    se = frame["y"].std(ddof=1) / math.sqrt(len(frame))
    assert got["ci_high"] - got["share"] == pytest.approx(Z * se)
    # two rows per patient, identical: the clustered SE does not shrink with the copies
    twice = pd.concat([frame, frame])
    again = binned_shares(twice, "x", "y", n_bins=1).iloc[0]
    assert again["ci_high"] - again["share"] == pytest.approx(Z * se, rel=0.01)


def test_the_panels_draw_the_binned_shares_and_the_model_averaged_over_random_effects(
    results: Path,
) -> None:
    inputs = _inputs(results, "attendance_adherence")
    fig = FIGURES["attendance_adherence"].draw(**inputs, settings=config())
    assert isinstance(fig, Figure)
    for ax, outcome, prefix in zip(fig.axes, (MISSED, ADHERENCE), ("missed", "adherence"),
                                   strict=True):  # fmt: skip
        frame, coefs = inputs[f"{prefix}_frame"], inputs[f"{prefix}_coefficients"]
        bins = binned_shares(frame, outcome.x, outcome.y, outcome.weight)
        points = next(line for line in ax.lines if line.get_marker() == "o")
        assert points.get_ydata() == pytest.approx(bins["share"].to_numpy())
        curve = next(line for line in ax.lines if line.get_marker() != "o")
        x, y = (np.asarray(a, dtype=float) for a in curve.get_data())
        # fixed effects only (the *_rc row is not a coefficient); arms at the sample mix,
        # other covariates at their means
        b = coefs.set_index("term")["estimate"]
        eta = b["(Intercept)"] + b[outcome.x] * x
        for term in b.index.drop(["(Intercept)", outcome.x, f"{outcome.x}_rc"]):
            eta = eta + b[term] * frame[term].mean()
        # averaged over b ~ N(0, the intercept variances' sum), here by a fine grid
        var = sum(c["variance"] for c in inputs[f"{prefix}_fit"]["variance_components"])
        b_grid = np.linspace(-10, 10, 4001) * np.sqrt(var)
        dens = np.exp(-0.5 * b_grid**2 / var)
        avg = (1 / (1 + np.exp(-(eta[:, None] + b_grid)))) @ dens / dens.sum()
        assert var > 0 and y == pytest.approx(avg, abs=1e-9)
        lo, hi = np.quantile(frame[outcome.x].dropna(), [0.01, 0.99])
        assert x.min() == pytest.approx(lo) and x.max() == pytest.approx(hi)
    text = _texts(fig)
    assert "corrected for item error" in text and "per bin" in text


def _share_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Adherence as a proportion only: the GLMM skipped, the fractional-logit GEE fitted (the
    synthetic GLMM's numbers, its frame without the dose counts)."""
    share = {f"share_{k.removeprefix('adherence_')}": v for k, v in inputs.items()
             if k.startswith("adherence_")}  # fmt: skip
    share["share_fit"] = {**share["share_fit"], "id": ADHERENCE_SHARE.model, "kind": "gee"}
    share["share_frame"] = share["share_frame"].drop(columns=["doses_prescribed"])
    skipped = {"status": "skipped", "reason": "needs adherence.dose_counts: a proportion"}
    return {**inputs, "adherence_fit": skipped, **share}


def test_without_counts_the_adherence_panel_draws_the_proportion_model(results: Path) -> None:
    """Every interval weighs 1 (the GEE's estimating equations); the curve is
    population-averaged and the legend says so."""
    inputs = _share_inputs(_inputs(results, "attendance_adherence"))
    fig = FIGURES["attendance_adherence"].draw(**inputs, settings=config())
    ax = fig.axes[1]
    frame = inputs["share_frame"]
    bins = binned_shares(frame, "alliance_lag1", "adherence")
    points = next(line for line in ax.lines if line.get_marker() == "o")
    assert points.get_ydata() == pytest.approx(bins["share"].to_numpy())
    equal = pd.qcut(frame["alliance_lag1"].rank(method="first"), len(bins), labels=False)
    means = frame.groupby(equal)["adherence"].mean()
    assert bins["share"].to_numpy() == pytest.approx(means.to_numpy())
    text = " ".join(_texts(fig).split())
    assert "Model, population-averaged" in text and "Share of doses taken" in text
    assert "Odds ratio of taking a dose per" in text
    assert "Not fitted" not in text


def test_without_either_adherence_model_the_panel_gives_both_reasons(results: Path) -> None:
    inputs = _share_inputs(_inputs(results, "attendance_adherence"))
    inputs["share_fit"] = {"status": "skipped", "reason": "needs adherence.proportion_only: no"}
    fig = FIGURES["attendance_adherence"].draw(**inputs, settings=config())
    text = " ".join(_texts(fig).split())
    assert "model adherence_alliance skipped: needs adherence.dose_counts" in text
    assert "model adherence_alliance_share skipped: needs adherence.proportion_only" in text


# ---- missing models ----------------------------------------------------------------------------

SKIPPED = {"status": "skipped", "reason": "needs adherence: no dose counts in this export"}


@pytest.mark.parametrize(
    ("name", "prefix", "model"),
    [("attendance_adherence", "adherence", "adherence_alliance"),
     ("attendance_adherence", "missed", "missed_sessions"),
     ("trd_slopes", "hazard", "dropout_hazard_by_trd"),
     ("trd_slopes", "symptoms", "symptoms_by_trd"),
     ("trd_slopes", "stage", "dropout_hazard_by_stage")],
)  # fmt: skip
def test_a_model_not_fitted_leaves_a_note_in_its_panel(
    results: Path, name: str, prefix: str, model: str
) -> None:
    inputs = _inputs(results, name)
    absent = {**inputs, **{k: None for k in inputs if k.startswith(f"{prefix}_")}}
    text = _texts(FIGURES[name].draw(**absent, settings=config()))
    assert f"Not fitted: model {model} has no fit.json" in " ".join(text.split())
    skipped = {**inputs, f"{prefix}_fit": SKIPPED}
    text = " ".join(_texts(FIGURES[name].draw(**skipped, settings=config())).split())
    assert f"Not fitted: model {model} skipped: needs adherence: no dose counts" in text


@pytest.mark.parametrize("name", ["trd_slopes", "attendance_adherence"])
def test_without_any_of_its_models_the_figure_is_skipped_with_both_reasons(
    results: Path, name: str, tmp_path: Path
) -> None:
    spec = FIGURES[name]
    none = {k: None for k in _inputs(results, name)}
    with pytest.raises(NothingToDraw) as err:
        spec.draw.__wrapped__(**none, settings=config())
    assert all(f"model {m} has no fit.json" in err.value.reason for m in spec.models)
    assert isinstance(draw_figure(spec, tmp_path, config()), str)


def test_the_resistance_section_draws_only_its_figures(results: Path, tmp_path: Path) -> None:
    got = draw_all(results, config(), tmp_path / "r", section="resistance")
    assert set(got) == {"trd_slopes", "attendance_adherence"}
    assert all(isinstance(v, list) for v in got.values()), got
    main = draw_all(results, config(), tmp_path / "f", names=["flow", "trd_slopes"],
                    section="figures")  # fmt: skip
    assert set(main) == {"flow"}
    with pytest.raises(ValueError, match="section"):
        draw_all(results, config(), tmp_path / "x", section="resistence")


def test_the_caption_carries_both_models_notes(results: Path) -> None:
    caption = figure_caption("trd_slopes", results)
    assert "Model note (symptoms_by_trd): TRD = at least 2 failed trials." in caption
    assert "b + b x TRD" in caption  # the estimand of the TRD slope
    assert "rated at sessions before the symptom assessment" in caption
    attendance = figure_caption("attendance_adherence", results)
    assert "rated at the last attended session, i.e. before the outcome" in attendance


def test_marginal_curve_without_random_effects_is_the_curve_and_refuses_slopes():
    curve = pd.DataFrame({"x": [0.0, 1.0], "fit": [0.2, 0.7], "ci_low": [0.1, 0.6],
                          "ci_high": [0.3, 0.8]})  # fmt: skip
    assert marginal(curve, {"variance_components": []}).equals(curve)
    flat = marginal(
        curve,
        {
            "variance_components": [
                {"group": "patient", "term1": "(Intercept)", "term2": "", "variance": 2.0}
            ]
        },
    )
    assert (flat["fit"] - 0.5).abs().lt((curve["fit"] - 0.5).abs()).all()  # towards 50 %
    assert (flat["ci_low"] < flat["fit"]).all() and (flat["fit"] < flat["ci_high"]).all()
    slopes = {
        "variance_components": [
            {"group": "patient", "term1": "weeks", "term2": "", "variance": 1.0}
        ]
    }
    with pytest.raises(NothingToDraw, match="random slopes"):
        marginal(curve, slopes)
