"""The trial simulator: determinism, data contract, and naive fits pointing where truth says.

Reference bands come from /work/shared/science.md §5 (copied here so tests never need it):
dropout in depression psychotherapy ~20–25 %, relapse within a year after response ~25–40 %,
alliance therapist ICC ~.05–.15, patient-level alliance–outcome r ~.2–.3 (Flückiger 2018: .278).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from alliance.errors import ConfigError
from alliance.simulate.cli import main
from alliance.simulate.design import therapist_rating_sessions
from alliance.simulate.observer import DEMO_OBSERVER_SCALE, OBSERVER_ITEMS
from alliance.simulate.params import WAI_P, WAI_T
from alliance.simulate.trial import PATIENT_COLUMNS, SESSION_COLUMNS, simulate_trial


@pytest.fixture(scope="module")
def trial():
    return simulate_trial()


@pytest.fixture(scope="module")
def per_patient(trial):
    """Patient means of the 12-item patient WAI-SR score joined to the patient table."""
    s = trial.sessions
    s = s.assign(score=s[list(WAI_P)].astype("float64").mean(axis=1))
    per = s.groupby("subject").agg(
        alliance=("score", "mean"), n=("visit", "size"), last=("hamd", "last")
    )
    return per.join(trial.patients.set_index("subject"))


def _ols_slope(x: pd.Series, y: pd.Series) -> float:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return float(np.polyfit(x, y, 1)[0])


def test_same_seed_identical_and_different_seed_differs(trial):
    again = simulate_trial()
    pd.testing.assert_frame_equal(trial.sessions, again.sessions)
    pd.testing.assert_frame_equal(trial.patients, again.patients)
    assert json.dumps(trial.truth, sort_keys=True) == json.dumps(again.truth, sort_keys=True)
    other = simulate_trial(seed=20261128)
    assert not trial.sessions["hamd"].equals(other.sessions["hamd"])
    assert set(trial.patients["subject"]) != set(other.patients["subject"])


def test_columns_ids_and_types(trial):
    s, p = trial.sessions, trial.patients
    assert tuple(s.columns) == SESSION_COLUMNS
    assert tuple(p.columns) == PATIENT_COLUMNS
    assert p["subject"].str.fullmatch(r"(PIT|OKL|GWU)-P\d{4}").all()
    assert p["subject"].is_unique
    assert (p["subject"].str[:3] == p["site"]).all()
    th = p["therapist"].dropna()
    assert th.str.fullmatch(r"(PIT|OKL|GWU)-T\d{2}").all()
    assert (th.str[:3] == p.loc[th.index, "site"]).all()
    assert set(s["subject"]) <= set(p["subject"])
    assert s["visit"].between(1, 16).all()
    assert s["hamd"].between(0, 52).all()
    assert s["hamd_suicide"].between(0, 4).all()
    assert (s["hamd_suicide"] <= s["hamd"]).all()
    items = s[list(WAI_P + WAI_T)].astype("float64")
    assert ((items >= 1) & (items <= 5) | items.isna()).all().all()
    assert all(str(s[c].dtype) == "Int64" for c in WAI_P + WAI_T)
    assert s["visit_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert p["consent_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert set(p["sex"]) == {"F", "M"}
    assert set(p["modality"].dropna()) == {"in-person", "video"}


def test_randomisation_status_and_missingness(trial):
    s, p = trial.sessions, trial.patients
    rand = p[p["arm"].notna()]
    assert len(rand) == 480
    assert 0.05 <= 1 - len(rand) / len(p) <= 0.11  # ~8 % screened but not randomised
    assert set(rand["arm"]) == {"CBT", "IPT", "IMI-CM", "PLA-CM"}
    assert (rand["baseline_hamd"] >= 14).all()
    not_rand = p[p["arm"].isna()]
    assert not_rand[["therapist", "modality", "status"]].isna().all().all()
    assert not set(not_rand["subject"]) & set(s["subject"])
    assert rand["status"].notna().all() and rand["therapist"].notna().all()
    assert 0.005 <= (rand["status"] == "not_started").mean() <= 0.06
    assert not set(rand.loc[rand["status"] == "not_started", "subject"]) & set(s["subject"])
    assert 0.22 <= (rand["modality"] == "video").mean() <= 0.38
    assert 0.01 <= s[list(WAI_P)].isna().to_numpy().mean() <= 0.03
    # responders (and only they) carry relapse follow-up
    has_fu = p["relapse"].notna()
    assert (has_fu == p["relapse_weeks"].notna()).all()
    assert (p.loc[has_fu, "status"] == "completed").all()
    assert p.loc[has_fu, "relapse_weeks"].between(0, 52).all()


def test_sessions_are_consecutive_weekly_and_after_consent(trial):
    s = trial.sessions.merge(trial.patients[["subject", "consent_date", "status"]], on="subject")
    n = s.groupby("subject")["visit"].agg(["size", "max", "min"])
    assert (n["min"] == 1).all() and (n["size"] == n["max"]).all()
    status = trial.patients.set_index("subject")["status"]
    assert (n.loc[status[n.index] == "completed", "size"] == 16).all()
    assert (n.loc[status[n.index] == "dropout", "size"] < 16).all()
    dates = pd.to_datetime(s["visit_date"])
    assert (dates > pd.to_datetime(s["consent_date"])).all()
    gaps = dates.groupby(s["subject"]).diff().dt.days.dropna()
    assert gaps.between(3, 11).all()


def test_therapist_nesting_like_tdcrp(trial):
    p = trial.patients.dropna(subset=["therapist"])
    arms = p.groupby("therapist")["arm"].agg(set)
    for delivered in arms:
        assert delivered in ({"CBT"}, {"IPT"}) or delivered <= {"IMI-CM", "PLA-CM"}
    assert (p.groupby("therapist")["site"].nunique() == 1).all()
    sizes = p.groupby("therapist").size()
    assert len(sizes) == 40 and sizes.between(10, 14).all()


def test_therapist_ratings_follow_schedule(trial):
    s = trial.sessions
    schedule = therapist_rating_sessions(16)
    assert schedule == [1, 2, 3, 5, 7, 9, 11, 13, 15]
    rated = s[list(WAI_T)].notna().any(axis=1)
    assert set(s.loc[rated, "visit"]) == set(schedule)
    per = (
        s.assign(
            p_score=s[list(WAI_P)].astype("float64").mean(axis=1),
            t_score=s[list(WAI_T)].astype("float64").mean(axis=1),
        )
        .groupby("subject")[["p_score", "t_score"]]
        .mean()
    )
    r = per.corr().iloc[0, 1]
    assert 0.25 <= r <= 0.6
    assert per["t_score"].mean() > per["p_score"].mean()


def test_realised_rates_in_published_bands(trial, per_patient):
    rand = trial.patients[trial.patients["arm"].notna()]
    started = rand[rand["status"] != "not_started"]
    assert 0.15 <= (started["status"] == "dropout").mean() <= 0.30
    relapse = trial.patients["relapse"].dropna()
    assert len(relapse) >= 60
    assert 0.15 <= relapse.mean() <= 0.45
    share = (trial.sessions["hamd_suicide"] >= 1).mean()
    assert 0.10 <= share <= 0.20
    first = trial.sessions.loc[trial.sessions["visit"] == 1, "hamd"].mean()
    last = trial.sessions.loc[trial.sessions["visit"] == 16, "hamd"].mean()
    assert 17 <= first <= 22 and 8 <= last <= 12
    sub = per_patient[per_patient["n"] >= 4]
    r = np.corrcoef(sub["alliance"], sub["baseline_hamd"] - sub["last"])[0, 1]
    assert 0.15 <= r <= 0.40
    assert trial.truth["realised"]["r_mean_alliance_improvement"] == pytest.approx(r, abs=1e-4)


def test_naive_fits_point_the_way_truth_says(trial, per_patient):
    p = trial.truth["params"]
    change = per_patient["last"] - per_patient["baseline_hamd"]
    assert np.sign(_ols_slope(per_patient["alliance"], change)) == np.sign(p["beta_P"]) == -1
    # a-path of the mediation: agreeableness raises patient-level alliance
    slope = _ols_slope(per_patient["agreeableness"], per_patient["alliance"])
    assert slope > 0 and np.sign(slope) == np.sign(p["a_agreeableness"])
    # dropouts had lower early alliance (dropout_beta_alliance < 0)
    s = trial.sessions
    early = s[s["visit"] <= 2].assign(score=s[list(WAI_P)].astype("float64").mean(axis=1))
    early = early.groupby("subject")["score"].mean()
    status = trial.patients.set_index("subject").loc[early.index, "status"]
    assert early[status == "dropout"].mean() < early[status == "completed"].mean()
    assert p["dropout_beta_alliance"] < 0
    # relapse: responders who relapsed had lower mean alliance (relapse_beta < 0)
    resp = per_patient[per_patient["relapse"].notna()]
    assert (
        resp.loc[resp["relapse"] == 1, "alliance"].mean()
        < resp.loc[resp["relapse"] == 0, "alliance"].mean()
    )
    # suicidality rises with symptoms
    assert (
        s.loc[s["hamd_suicide"] >= 1, "hamd"].mean() > s.loc[s["hamd_suicide"] == 0, "hamd"].mean()
    )


def test_one_way_anova_therapist_share_is_plausible(trial, per_patient):
    """Therapist variance from a one-way ANOVA of patient means, over session-level variance."""
    s = trial.sessions
    score = s[list(WAI_P)].astype("float64").mean(axis=1)
    per = per_patient.dropna(subset=["therapist"])
    groups = per.groupby("therapist")["alliance"]
    k, n = groups.ngroups, len(per)
    sizes = groups.size().to_numpy()
    n0 = (n - (sizes**2).sum() / n) / (k - 1)
    msb = (sizes * (groups.mean() - per["alliance"].mean()) ** 2).sum() / (k - 1)
    msw = ((per["alliance"] - groups.transform("mean")) ** 2).sum() / (n - k)
    share = max((msb - msw) / n0, 0.0) / score.var()
    expected = trial.truth["alliance"]["observed_score_expected"]["share_therapist"]
    assert 0.02 <= share <= 0.20
    assert abs(share - expected) < 0.06


def test_variance_shares_recorded_and_consistent(trial):
    a = trial.truth["alliance"]
    latent = a["latent_share"]
    assert sum(latent.values()) == pytest.approx(1, abs=1e-3)
    assert latent["therapist"] == pytest.approx(0.10, abs=0.03)
    assert latent["patient"] == pytest.approx(0.55, abs=0.05)
    assert latent["session"] == pytest.approx(0.35, abs=0.05)
    obs = a["observed_score_expected"]
    assert obs["share_therapist"] + obs["share_patient"] + obs["share_session"] == pytest.approx(
        1, abs=2e-3
    )
    # item noise moves variance to the session level, never away from it
    assert obs["share_session"] > latent["session"]
    assert "Monte Carlo" in a["observed_score_method"]


def _score(trial) -> pd.Series:
    s = trial.sessions.assign(score=trial.sessions[list(WAI_P)].astype("float64").mean(axis=1))
    return s.set_index(["subject", "visit"])["score"]


def test_ruptures_listed_and_visible_in_data(trial):
    """Default (`process`) ruptures: one deep alliance shock that decays at alliance_ar1, so two
    sessions later the score is mostly back (rho^2 = 0.16 of the drop is left)."""
    r = trial.truth["ruptures"]
    episodes = r["episodes"]
    assert r["n_episodes"] == len(episodes) and r["repair"] == "process"
    assert r["n_repaired"] is None and all(e["repaired"] is None for e in episodes)
    started = trial.patients["status"].isin(["completed", "dropout"]).sum()
    assert 0.10 <= len({e["subject"] for e in episodes}) / started <= 0.20
    score = _score(trial)
    drops, returns = [], []
    for e in episodes:
        subj, k = e["subject"], e["session"]
        assert (subj, k) in score.index  # only reached ruptures are listed
        drops.append(score[(subj, k)] - score[(subj, k - 1)])
        if (subj, k + 2) in score.index:
            returns.append(score[(subj, k + 2)] - score[(subj, k - 1)])
    assert np.mean(drops) < -2 * r["sd_change"]
    assert abs(np.mean(returns)) < 0.5 * np.mean(np.abs(drops))


def test_linear_repair_scenario_schedules_repairs():
    """`rupture_repair: linear`: scheduled repairs return to the pre-drop level at k."""
    t = simulate_trial(n_patients=480, n_therapists=40, seed=20261127, rupture_repair="linear")
    r = t.truth["ruptures"]
    episodes = r["episodes"]
    assert r["n_repaired"] + r["n_unrepaired"] == len(episodes)
    assert 0.6 <= r["n_repaired"] / len(episodes) <= 0.9
    score = _score(t)
    drops, returns = [], []
    for e in episodes:
        subj, k = e["subject"], e["session"]
        drops.append(score[(subj, k)] - score[(subj, k - 1)])
        if e["repair_observed"]:
            returns.append(score[(subj, k + e["sessions_to_repair"])] - score[(subj, k - 1)])
    assert abs(np.mean(returns)) < 0.5 * np.mean(np.abs(drops))
    with pytest.raises(ConfigError, match="rupture_repair"):
        simulate_trial(n_patients=60, n_therapists=8, rupture_repair="quadratic")


def test_overrides_change_data_and_unknown_keys_fail():
    t = simulate_trial(n_patients=60, n_therapists=8, seed=1, item_missing_p=0.0)
    assert t.truth["params"]["item_missing_p"] == 0.0
    assert t.sessions[list(WAI_P)].notna().all().all()
    t2 = simulate_trial(n_patients=60, n_therapists=8, seed=1, arm_time={"PLA-CM": 0.2})
    assert t2.truth["params"]["arm_time"]["PLA-CM"] == 0.2
    assert t2.truth["params"]["arm_time"]["CBT"] == 0.0
    with pytest.raises(ConfigError, match="unknown parameter 'alliance_mean'"):
        simulate_trial(alliance_mean=3.0)
    with pytest.raises(ConfigError, match="unknown parameter 'outcome_model'"):
        simulate_trial(outcome_model="lagged")  # one coherent process: no outcome models
    with pytest.raises(ConfigError, match="not stationary"):
        simulate_trial(n_patients=60, n_therapists=8, alliance_ar1=1.0)
    with pytest.raises(ConfigError):
        simulate_trial(alliance_var_patient=0.01)  # smaller than the trait paths


def test_truth_is_json_and_complete(trial):
    text = json.dumps(trial.truth, sort_keys=True)
    back = json.loads(text)
    for key in (
        "params", "design", "alliance", "mediation", "ruptures", "relapse", "realised",
        "within_process", "sudden_gains", "estimands", "definitions",
    ):  # fmt: skip
        assert key in back
    for key in ("beta_P", "beta_T", "beta_tP", "lag_phi", "beta_lag", "gamma_lag", "relapse_beta"):
        assert key in back["params"]
    assert "beta_S" not in back["params"]  # no same-session effect: the VAR(1) is lagged only
    assert back["mediation"]["ab_per_sd"]["agreeableness"] == pytest.approx(
        back["mediation"]["a_per_sd"]["agreeableness"] * back["mediation"]["b_final_hamd_mean"],
        abs=1e-3,
    )
    # no direct identifiers
    assert not {"name", "dob", "date_of_birth"} & set(trial.patients.columns)
    assert not any(re.fullmatch(r"\d+", s) for s in trial.patients["subject"])


def test_cli_writes_files(tmp_path, capsys):
    out = tmp_path / "trial"
    argv = ["--out", str(out), "--patients", "40", "--therapists", "8", "--seed", "3"]
    assert main(argv) == 0
    assert {p.name for p in out.iterdir()} == {"sessions.csv", "patients.csv", "truth.json"}
    assert "sessions.csv" in capsys.readouterr().out
    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == 3 and truth["n_patients_randomised"] == 40


def test_module_runs_as_script():
    done = subprocess.run(
        [sys.executable, "-m", "alliance.simulate", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--missing-code" in done.stdout


def _observer_score(sessions: pd.DataFrame) -> pd.Series:
    """The demo observer scale's total: item mean with item 4 reversed (6 - x)."""
    items = sessions[list(OBSERVER_ITEMS)].astype("float64")
    items["obs_04"] = 6 - items["obs_04"]
    return items.mean(axis=1)


def test_observer_rates_coded_recordings_of_its_sessions_only(trial):
    s = trial.sessions
    items = s[list(OBSERVER_ITEMS)].astype("float64")
    assert ((items >= 1) & (items <= 5) | items.isna()).all().all()
    assert all(str(s[c].dtype) == "Int64" for c in OBSERVER_ITEMS)
    coded = items.notna().any(axis=1)
    schedule = trial.truth["observer"]["rating_sessions"]
    assert schedule == [1, 3, 5, 16]  # sessions 1, 3, 5 and the last planned acute one
    assert set(s.loc[coded, "visit"]) == set(schedule)
    # some recordings are missing: about observer_recording_missing_p of the scheduled ones
    scheduled = s["visit"].isin(schedule)
    missing = 1 - coded[scheduled].mean()
    assert 0.10 < missing < 0.20
    assert trial.truth["observer"]["instrument"] == DEMO_OBSERVER_SCALE


def test_observer_ratings_correlate_moderately_with_patient_and_therapist(trial):
    s = trial.sessions
    obs = _observer_score(s)
    pat = s[list(WAI_P)].astype("float64").mean(axis=1)
    ther = s[list(WAI_T)].astype("float64").mean(axis=1)
    both = obs.notna() & ther.notna()
    r_po = np.corrcoef(obs[obs.notna()], pat[obs.notna()])[0, 1]
    r_to = np.corrcoef(obs[both], ther[both])[0, 1]
    r_pt = np.corrcoef(pat[ther.notna()], ther[ther.notna()])[0, 1]
    assert 0.4 <= r_po <= 0.65 and 0.3 <= r_to <= 0.55 and r_to < r_po
    assert r_pt < r_po  # the coder sees the patient's side more than the therapist does
    # the reverse-worded item runs against the others
    items = s[list(OBSERVER_ITEMS)].astype("float64").dropna()
    assert items.corr().loc["obs_04"].drop("obs_04").lt(0).all()
    assert obs.mean() < pat[obs.notna()].mean()  # coders rate a little lower than patients


def test_the_observer_stream_moves_no_other_column():
    base = simulate_trial(n_patients=80, n_therapists=8, seed=5)
    other = simulate_trial(
        n_patients=80, n_therapists=8, seed=5, observer_recording_missing_p=0.5,
        observer_sessions=[2, 4], observer_last_session=False, observer_var_session=0.5,
    )  # fmt: skip
    rest = [c for c in SESSION_COLUMNS if c not in OBSERVER_ITEMS]
    pd.testing.assert_frame_equal(base.sessions[rest], other.sessions[rest])
    pd.testing.assert_frame_equal(base.patients, other.patients)
    assert not base.sessions[list(OBSERVER_ITEMS)].equals(other.sessions[list(OBSERVER_ITEMS)])
    coded = other.sessions[list(OBSERVER_ITEMS)].notna().any(axis=1)
    assert set(other.sessions.loc[coded, "visit"]) == {2, 4}
