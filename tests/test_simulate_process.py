"""The simulator's causal structure, checked on the latent arrays of one large trial.

The within-person alliance–symptom VAR(1) (the RI-CLPM's within part), the dropout hazard's
alignment (leaving before session t+1 depends on the alliance of session t), sudden gains, the
prior-only alliance term of the suicide item, stream independence, and truth's estimands.
Every statistical check allows 4 standard errors of its own estimate (fixed seeds: the
outcomes are deterministic, the tolerance says how close is close).
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from alliance.simulate.estimands import estimands
from alliance.simulate.params import DEFAULT_PARAMS, STREAMS, WAI_P, stream
from alliance.simulate.process import within_system
from alliance.simulate.trial import simulate_trial

P = DEFAULT_PARAMS
BIG = {"n_patients": 4000, "n_therapists": 80, "seed": 11, "mc_therapists": 8}
SMALL = {"n_patients": 120, "n_therapists": 12, "seed": 4, "mc_therapists": 8}


@pytest.fixture(scope="module")
def big():
    return simulate_trial(**BIG)


def _ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and their SEs of y on the columns of x (no intercept)."""
    fit = sm.OLS(y, x).fit()
    return fit.params, fit.bse


def _lags(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value at t, value at t-1) for t >= 2, flattened over patients and sessions."""
    return a[:, 1:].ravel(), a[:, :-1].ravel()


def test_within_process_is_a_stationary_var1_with_the_stated_variances():
    s = within_system(P)
    assert s["spectral_radius"] < 1
    assert np.allclose(
        s["phi"], [[P["alliance_ar1"], P["gamma_lag"]], [P["beta_lag"], P["lag_phi"]]]
    )
    assert s["stationary_cov"][0, 0] == pytest.approx(P["alliance_var_session"])
    assert s["stationary_cov"][1, 1] == pytest.approx(P["sd_residual"] ** 2)
    # Sigma = Phi Sigma Phi' + Q
    phi, sigma = s["phi"], s["stationary_cov"]
    assert np.allclose(phi @ sigma @ phi.T + np.diag(s["innovation_var"]), sigma)


def test_within_regressions_recover_the_var_coefficients(big):
    """wY_t on (wY_{t-1}, wA_{t-1}) and wA_t on both: the four generating coefficients.

    Rupture and sudden-gain shocks are taken out of the innovations (they are known), which
    leaves the Gaussian VAR(1) exactly; with them in, the estimates move only a little.
    """
    lat = big.latent
    a_t, a_1 = _lags(lat["w_a"])
    y_t, y_1 = _lags(lat["w_y"])
    shock_a, _ = _lags(lat["shock_a"])
    shock_y, _ = _lags(lat["gain_shocks"])
    x = np.column_stack([a_1, y_1])
    b_a, se_a = _ols(a_t - shock_a, x)
    b_y, se_y = _ols(y_t - shock_y, x)
    truth = {
        "alliance_ar1": (b_a[0], se_a[0]), "gamma_lag": (b_a[1], se_a[1]),
        "beta_lag": (b_y[0], se_y[0]), "lag_phi": (b_y[1], se_y[1]),
    }  # fmt: skip
    for name, (est, se) in truth.items():
        assert abs(est - P[name]) < 4 * se, (name, est, se)
    # the symptom-to-alliance path is small but clearly there (Falkenstrom et al. 2013)
    assert b_a[1] + 4 * se_a[1] < 0
    # shocks included (what any model of the data sees): close to the generating values
    raw_a, _ = _ols(a_t, x)
    raw_y, _ = _ols(y_t, x)
    assert raw_a[0] == pytest.approx(P["alliance_ar1"], abs=0.04)
    assert raw_y[0] == pytest.approx(P["beta_lag"], abs=0.15)
    assert raw_y[1] == pytest.approx(P["lag_phi"], abs=0.02)


def test_within_variances_stationary_from_session_one():
    t = simulate_trial(**{**BIG, "rupture_patient_p": 0.0, "sudden_gain_p": 0.0})
    w_a, w_y = t.latent["w_a"], t.latent["w_y"]
    n = w_a.shape[0]
    se_a = P["alliance_var_session"] * np.sqrt(2 / n)
    se_y = P["sd_residual"] ** 2 * np.sqrt(2 / n)
    for s in (0, 7, 15):  # session 1 is drawn from the stationary distribution
        assert abs(w_a[:, s].var() - P["alliance_var_session"]) < 4 * se_a
        assert abs(w_y[:, s].var() - P["sd_residual"] ** 2) < 4 * se_y


def test_dropout_hazard_is_aligned_to_the_last_attended_session(big):
    """Leaving before session t+1 depends on latent A_t (the last attended), not on A_{t+1};
    among TRD patients (>= 2 prior failures) with the slope plus dropout_beta_alliance_trd."""
    lat = big.latent
    att, a = lat["attended"], lat["a_true"] - P["alliance_mu"]
    rows = att[:, :-1]  # at risk: attended session t (t = 1..T-1)
    left = (~att[:, 1:])[rows].astype(float)
    a_now, a_next = a[:, :-1][rows], a[:, 1:][rows]
    trd = np.broadcast_to((lat["prior_failed_trials"] >= 2)[:, None], rows.shape)[rows]
    offset = np.broadcast_to(lat["dropout_therapist"][:, None], rows.shape)[rows]
    x = np.column_stack([np.ones(len(left)), a_now, a_now * trd, trd, a_next])
    fit = sm.GLM(left, x, family=sm.families.Binomial(), offset=offset).fit()
    want = [P["dropout_alpha"], P["dropout_beta_alliance"], P["dropout_beta_alliance_trd"], 0, 0]
    assert (np.abs(fit.params - want) < 4 * fit.bse).all(), (fit.params, fit.bse)
    assert P["dropout_beta_alliance_trd"] > 0  # the alliance matters less in TRD ...
    assert P["dropout_beta_alliance"] + P["dropout_beta_alliance_trd"] < 0  # ... but still helps


def test_resistance_is_drawn_before_attendance_from_its_own_stream():
    """Without the TRD moderation the trial is the one before it existed: drawing resistance
    earlier moves no other stream; with it only attendance (and what follows) changes."""
    off = simulate_trial(**SMALL, dropout_beta_alliance_trd=0.0)
    on = simulate_trial(**SMALL)
    cols = ["subject", "n_failed_trials", "thase_rush_stage", "episode_months", "baseline_hamd"]
    pd.testing.assert_frame_equal(off.patients[cols], on.patients[cols])
    assert np.array_equal(off.latent["a_true"], on.latent["a_true"])
    assert not np.array_equal(off.latent["attended"], on.latent["attended"])
    # TRD moves attendance only through the alliance slope (no main effect): without a slope,
    # who is TRD (trd_slope_loading) leaves attendance alone
    flat = {"dropout_beta_alliance": 0.0, "dropout_beta_alliance_trd": 0.0}
    a = simulate_trial(**SMALL, **flat).latent
    b = simulate_trial(**SMALL, **flat, trd_slope_loading=2.0).latent
    assert not np.array_equal(a["prior_failed_trials"], b["prior_failed_trials"])
    assert np.array_equal(a["attended"], b["attended"])


def test_trd_attenuates_the_alliance_symptom_effects_and_nothing_else():
    """beta_alliance_trd_attenuation scales the alliance's between-level symptom effects (beta_T,
    beta_P, beta_tP) among TRD patients only; at 0 nothing moves (no draw depends on it)."""
    att = P["beta_alliance_trd_attenuation"]
    assert 0 < att < 1  # weaker among TRD patients, but still there
    off = simulate_trial(**SMALL, beta_alliance_trd_attenuation=0.0).latent
    on = simulate_trial(**SMALL).latent
    flat = {"beta_T": 0.0, "beta_P": 0.0, "beta_tP": 0.0}
    none = simulate_trial(**SMALL, **flat).latent  # symptoms without any alliance level effect
    trd = on["prior_failed_trials"] >= 2
    assert 0 < trd.mean() < 1
    for key in ("a_true", "attended", "w_a", "w_y", "prior_failed_trials"):
        assert np.array_equal(off[key], on[key]), key
    # non-TRD patients' symptoms are the trial without the attenuation, bit for bit; TRD
    # patients' alliance part of the symptoms is (1 - att) of theirs
    assert np.array_equal(on["hamd_latent"][~trd], off["hamd_latent"][~trd])
    part_off = off["hamd_latent"] - none["hamd_latent"]
    part_on = on["hamd_latent"] - none["hamd_latent"]
    assert np.allclose(part_on[trd], (1 - att) * part_off[trd], rtol=0, atol=1e-9)
    assert np.abs(part_off[trd]).max() > 0.5  # the alliance part is not negligible


def test_sudden_gains_recorded_visible_and_raise_the_next_alliance(big):
    gains = big.truth["sudden_gains"]
    episodes = gains["episodes"]
    T = big.truth["n_sessions"]
    started = (big.patients["status"].isin(["completed", "dropout"])).sum()
    assert 0.08 <= len(episodes) / started <= 0.16  # p = 0.15 among patients reaching the session
    assert all(P["sudden_gain_first_session"] <= e["session"] <= T - 2 for e in episodes)
    lat = big.latent
    index = {s: k for k, s in enumerate(lat["subject"])}
    rows = np.array([index[e["subject"]] for e in episodes])
    cols = np.array([e["session"] - 1 for e in episodes])
    assert (lat["gain_shocks"][rows, cols] == P["sudden_gain_size"]).all()
    assert (lat["gain_shocks"] != 0).sum() >= len(episodes)  # unreached ones stay unrecorded
    # visible in the observed HAM-D: a drop of about the shock at the gain session
    hamd = big.sessions.set_index(["subject", "visit"])["hamd"]
    drops = [
        hamd[(e["subject"], e["session"])] - hamd[(e["subject"], e["session"] - 1)]
        for e in episodes
    ]
    assert np.mean(drops) < 0.7 * P["sudden_gain_size"]
    # through gamma_lag the next alliance rises by about gamma_lag x (shock + E[wY] = 0)
    nxt = lat["w_a"][rows, cols + 1]
    expected = P["gamma_lag"] * P["sudden_gain_size"]
    assert abs(nxt.mean() - expected) < 4 * nxt.std(ddof=1) / np.sqrt(len(nxt))
    assert nxt.mean() > 0


def test_suicide_item_uses_the_previous_sessions_alliance():
    base = simulate_trial(**SMALL)
    off = simulate_trial(**SMALL, suicide_b_within=0.0)
    s0, s1 = base.sessions, off.sessions
    first = s0["visit"] == 1
    # session 1 has no previous session: the within term is 0 there, so nothing changes
    assert s0.loc[first, "hamd_suicide"].equals(s1.loc[first, "hamd_suicide"])
    assert not s0.loc[~first, "hamd_suicide"].equals(s1.loc[~first, "hamd_suicide"])


def test_suicide_logit_loads_on_lagged_not_current_within_alliance(big):
    lat = big.latent
    sess = big.sessions.set_index(["subject", "visit"])["hamd_suicide"]
    idx = {s: k for k, s in enumerate(lat["subject"])}
    keys = [(s, v) for s, v in sess.index if v >= 2]
    i = np.array([idx[s] for s, _ in keys])
    t = np.array([v - 1 for _, v in keys])
    y = (sess.loc[keys].to_numpy() >= 1).astype(float)
    x = np.column_stack([
        np.ones(len(i)), lat["hamd_latent"][i, t] - 15, (lat["a_t"] + lat["a_p"])[i],
        lat["w_a"][i, t - 1], lat["w_a"][i, t],
    ])  # fmt: skip
    fit = sm.Logit(y, x).fit(disp=0)
    b_prev, b_now = fit.params[3], fit.params[4]
    assert abs(b_now) < 4 * fit.bse[4]
    # the omitted patient intercept (SD 1) attenuates the marginal slope somewhat
    assert P["suicide_b_within"] - 4 * fit.bse[3] < b_prev < 0.5 * P["suicide_b_within"]


def test_streams_independent_as_documented():
    # the new stream is appended: the others keep their index and so their draws
    assert STREAMS.index("sudden_gains") == 12
    assert STREAMS[13:] == ("resistance", "missed", "adherence", "self_report", "observer")
    assert STREAMS.index("alliance") == 2 and STREAMS.index("outcome") == 7
    a = stream(3, "alliance").random(3)
    assert np.array_equal(a, np.random.default_rng([3, 2]).random(3))
    base = simulate_trial(**SMALL, gamma_lag=0.0)
    # without the symptom-to-alliance path, symptom parameters leave the alliance, its items
    # and attendance (a hazard on the alliance) untouched; only the symptom columns move
    for over in ({"beta_lag": -3.0}, {"sudden_gain_p": 0.9}, {"hamd_b0": 25.0}):
        other = simulate_trial(**SMALL, gamma_lag=0.0, **over)
        cols = ["subject", "visit", "visit_date", *WAI_P]
        pd.testing.assert_frame_equal(base.sessions[cols], other.sessions[cols])
        assert not base.sessions["hamd"].equals(other.sessions["hamd"])
    # with it, symptoms feed back into the alliance (the reciprocal process)
    coupled = simulate_trial(**SMALL)
    moved = simulate_trial(**SMALL, sudden_gain_p=0.9)
    assert not np.array_equal(coupled.latent["w_a"], moved.latent["w_a"])
    # no outcome or alliance parameter changes who is in the trial or when they consented
    people = ["subject", "therapist", "site", "arm", "consent_date", "baseline_hamd", "agency"]
    pd.testing.assert_frame_equal(coupled.patients[people], moved.patients[people])
    grown = simulate_trial(**SMALL, alliance_growth=0.05)
    pd.testing.assert_frame_equal(coupled.patients[people], grown.patients[people])
    # ... nor when a session is held: the dates of sessions attended in both trials agree
    both = coupled.sessions.merge(grown.sessions, on=["subject", "visit"])
    assert len(both) > 0.8 * len(coupled.sessions)
    assert (both["visit_date_x"] == both["visit_date_y"]).all()


def test_relapse_estimand_is_per_point_of_the_realised_responder_sd(big):
    p, s = big.patients, big.sessions
    score = s[list(WAI_P)].astype("float64").mean(axis=1)
    mean = score.groupby(s["subject"]).mean()
    responders = p.loc[p["relapse"].notna(), "subject"]
    sd = float(mean.loc[responders].std(ddof=1))
    rel = big.truth["relapse"]
    assert rel["alliance_scale"] == pytest.approx(sd, abs=1e-4)
    assert "last session" in rel["time_origin"]
    est = {(e["model"], e["term"]): e for e in big.truth["estimands"]}
    # the bias-corrected row is judged; the Firth row carries the same value but is not
    cox = est[("relapse_cox", "alliance_mean_bc")]
    assert cox["identified"] and cox["value"] == pytest.approx(P["relapse_beta"] / sd, rel=1e-3)
    assert not est[("relapse_cox", "alliance_mean")]["identified"]
    assert est[("relapse_cox", "alliance_mean")]["value"] == cox["value"]
    assert est[("relapse_cox", "alliance_last_bc")]["value"] == 0.0


KEY_TERMS = {
    "symptoms_riclpm": ["alliance_to_symptom", "symptom_to_alliance", "alliance_ar", "symptom_ar"],
    "symptoms_growth": [
        "alliance_ther_prior", "alliance_pat_prior", "alliance_within_prior",
        "weeks:alliance_pat_prior",
    ],
    "symptoms_lagged": ["alliance_within_prior", "alliance_pat_prior", "alliance_ther_prior"],
    "symptoms_lagged_detrended": [
        "alliance_within_dt_prior", "alliance_pat_prior", "alliance_ther_prior",
    ],
    "symptoms_by_arm": ["alliance_pat_prior", "alliance_within_prior"],
    "symptoms_by_modality": ["alliance_pat_prior:telehealth", "alliance_within_prior:telehealth"],
    "symptoms_by_agency": ["alliance_pat_prior:agency", "alliance_within_prior:agency"],
    "dropout_hazard": ["alliance", "alliance_rc"],
    "dropout_early_alliance": ["alliance_early"],
    "dropout_gee": ["alliance_early"],
    "relapse_cox": ["alliance_mean", "alliance_last", "alliance_mean_bc", "alliance_last_bc"],
    "suicidality": ["alliance_within_prior", "alliance_pat_prior", "alliance_ther_prior"],
    "agreement_rsa": ["a1", "a2", "a3", "a4"],
    "mediation_personality": [
        "indirect.agreeableness", "indirect.extraversion", "indirect.openness",
    ],
    "pooled_sites": ["pooled_r_REML"],
    "symptoms_observer_early": ["alliance_o_early"],
    # treatment resistance (issue #14)
    "symptoms_by_trd": ["alliance_pat_prior:trd", "alliance_within_prior:trd"],
    "dropout_hazard_by_trd": ["alliance", "alliance:trd", "alliance_rc", "alliance_rc:trd"],
    "symptoms_by_stage": ["alliance_pat_prior:stage", "alliance_within_prior:stage"],
    "dropout_hazard_by_stage": ["alliance", "alliance:stage", "alliance_rc", "alliance_rc:stage"],
    "missed_sessions": ["alliance", "alliance_rc"],
    "adherence_alliance": ["alliance_lag1", "alliance_lag1_rc"],
    "reporting_alliance": ["alliance_lag1", "alliance_lag1_rc"],
    **{
        m: ["rupture_unrepaired_prior", "rupture_repaired_prior"]
        for m in ("symptoms_after_ruptures", "missed_after_ruptures", "dropout_after_ruptures")
    },
}  # fmt: skip


def test_estimands_cover_every_default_key_term(big):
    rows = big.truth["estimands"]
    got = {(e["model"], e["term"]) for e in rows}
    wanted = {(m, t) for m, terms in KEY_TERMS.items() for t in terms}
    assert got == wanted and len(rows) == len(got)
    for e in rows:
        assert set(e) == {"model", "term", "value", "identified", "reason", "parameter"}
        assert e["value"] is None or isinstance(e["value"], float)
        assert isinstance(e["identified"], bool) and len(e["reason"]) > 20 and e["parameter"]
    identified = {(e["model"], e["term"]) for e in rows if e["identified"]}
    assert identified == {
        *(("symptoms_riclpm", t) for t in KEY_TERMS["symptoms_riclpm"]),
        ("dropout_hazard", "alliance_rc"), ("relapse_cox", "alliance_mean_bc"),
        ("relapse_cox", "alliance_last_bc"), ("missed_sessions", "alliance_rc"),
        ("dropout_hazard_by_trd", "alliance_rc"), ("dropout_hazard_by_trd", "alliance_rc:trd"),
        ("adherence_alliance", "alliance_lag1_rc"), ("reporting_alliance", "alliance_lag1_rc"),
    }  # fmt: skip
    # the models see the alliance on the observed scale: latent paths times its slope
    scale = big.truth["alliance"]["observed_score_reliability"]
    assert 0.85 < scale["scale_within"] < 1 and 0.85 < scale["scale_total"] < 1
    value = {(e["model"], e["term"]): e["value"] for e in rows}
    c_w, c_t = scale["scale_within"], scale["scale_total"]
    approx = functools.partial(pytest.approx, rel=1e-5)
    assert value[("symptoms_riclpm", "alliance_to_symptom")] == approx(P["beta_lag"] / c_w)
    assert value[("symptoms_riclpm", "symptom_to_alliance")] == approx(P["gamma_lag"] * c_w)
    assert value[("symptoms_riclpm", "alliance_ar")] == P["alliance_ar1"]
    assert value[("symptoms_riclpm", "symptom_ar")] == P["lag_phi"]
    # dropout_hazard pools TRD and non-TRD patients: the event-weighted mean of their slopes
    att, trd = big.latent["attended"], big.latent["prior_failed_trials"] >= 2
    dropped = att[:, 0] & ~att[:, -1]
    share = big.truth["treatment_resistance"]["realised"]["trd_share_of_dropouts"]
    assert share == pytest.approx(trd[dropped].mean(), abs=1e-6) and 0.2 < share < 0.6
    pooled = P["dropout_beta_alliance"] + share * P["dropout_beta_alliance_trd"]
    assert value[("dropout_hazard", "alliance_rc")] == approx(pooled / c_t)
    assert value[("missed_sessions", "alliance_rc")] == approx(P["missed_beta_alliance"] / c_t)
    by_trd = {t: value[("dropout_hazard_by_trd", t)] for t in KEY_TERMS["dropout_hazard_by_trd"]}
    assert by_trd["alliance_rc"] == by_trd["alliance"] == approx(P["dropout_beta_alliance"] / c_t)
    assert (
        by_trd["alliance_rc:trd"]
        == by_trd["alliance:trd"]
        == approx(P["dropout_beta_alliance_trd"] / c_t)
    )
    assert value[("adherence_alliance", "alliance_lag1")] == approx(
        P["adherence_beta_alliance"] / c_t
    )
    # self-report points -> POMP over the declared 0-27 range, at a given clinician rating
    per_pomp = 100 * P["phq_beta_alliance"] / 27
    assert value[("reporting_alliance", "alliance_lag1_rc")] == approx(per_pomp / c_t)
    # TRD patients' A_P level effect is attenuated; the within path is common to both groups
    counts = big.truth["design"]["arm_counts"]
    mult = sum(P["beta_P_arm_multiplier"][a] * k for a, k in counts.items()) / sum(counts.values())
    att = P["beta_alliance_trd_attenuation"]
    assert value[("symptoms_by_trd", "alliance_pat_prior:trd")] == approx(-att * P["beta_P"] * mult)
    assert value[("symptoms_by_trd", "alliance_within_prior:trd")] == 0.0
    # models without a TRD term pool the groups: the patient effect times the mean attenuation
    share = big.truth["treatment_resistance"]["realised"]["trd_share_of_randomised"]
    assert value[("symptoms_growth", "alliance_pat_prior")] == approx(
        P["beta_P"] * mult * (1 - att * share)
    )
    assert value[("missed_after_ruptures", "rupture_unrepaired_prior")] is None


def test_stage_estimands_are_identified_only_without_a_trd_step(big):
    """The generating dropout slope steps at TRD (stage >= II in the simulator), not along the
    stage: with the demo's step the stage rows have no generating value; with none (the recovery
    study's validate.yaml) the slope at the centre stage is dropout_beta_alliance and its change
    per stage 0, both judged."""
    model = "dropout_hazard_by_stage"
    rows = {(e["model"], e["term"]): e for e in big.truth["estimands"]}
    stage_rows = [rows[(model, t)] for t in KEY_TERMS[model]]
    assert P["dropout_beta_alliance_trd"] != 0
    assert all(e["value"] is None and not e["identified"] for e in stage_rows)
    assert all("projection" in e["reason"] for e in stage_rows)
    assert rows[("symptoms_by_stage", "alliance_pat_prior:stage")]["value"] is None
    # trd: failed >= 2 is exactly stage >= II in the simulated trial
    both = big.patients[["n_failed_trials", "thase_rush_stage"]].dropna().astype(float)
    assert len(both) > 3000
    assert ((both["n_failed_trials"] >= 2) == (both["thase_rush_stage"] >= 2)).all()
    flat = copy.deepcopy(big.truth)
    flat["params"].update(dropout_beta_alliance_trd=0.0, beta_alliance_trd_attenuation=0.0)
    rows = {(e["model"], e["term"]): e for e in estimands(flat)}
    c_t = flat["alliance"]["observed_score_reliability"]["scale_total"]
    slope = pytest.approx(P["dropout_beta_alliance"] / c_t, rel=1e-6)
    for term, value, judged in (
        ("alliance", slope, False),
        ("alliance:stage", 0.0, False),
        ("alliance_rc", slope, True),
        ("alliance_rc:stage", 0.0, True),
    ):
        assert rows[(model, term)]["value"] == value and rows[(model, term)]["identified"] is judged
    for term in KEY_TERMS["symptoms_by_stage"]:
        e = rows[("symptoms_by_stage", term)]
        assert e["value"] == 0.0 and not e["identified"] and "descriptive" in e["reason"]
