"""Rupture-repair detection on constructed series whose episodes are known by eye."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from alliance.errors import InputError
from alliance.score.ruptures import detect_ruptures, rupture_table, series_from_scores


def table(series: dict[str, dict[int, float]], background: int = 40) -> pd.DataFrame:
    """Series table; `background` stable patients alternate 3.0/3.2 so the sample SD of change is
    small (~0.25) and the constructed drops of >= 1 point are several SDs."""
    rows = [(p, s, v) for p, ser in series.items() for s, v in ser.items()]
    for b in range(background):
        rows += [(f"B{b:02d}", s, 3.0 + 0.2 * (s % 2)) for s in range(1, 13)]
    return pd.DataFrame(rows, columns=["patient", "session", "score"])


def seq(*values: float, start: int = 1) -> dict[int, float]:
    return {start + i: v for i, v in enumerate(values)}


def sample_sd(t: pd.DataFrame) -> float:
    """SD of changes between adjacent session numbers, computed independently of the module."""
    changes = []
    for _, g in t.dropna(subset=["score"]).sort_values("session").groupby("patient"):
        s, v = g["session"].to_numpy(), g["score"].to_numpy()
        changes += list((v[1:] - v[:-1])[np.diff(s) == 1])
    return float(np.std(changes, ddof=1))


SERIES = {
    "V": seq(4, 4, 4, 3, 3.5, 4, 4, 4),  # drop at 4, back to 4 at 6
    "NOREPAIR": seq(4, 4, 4, 3, 3, 3, 3, 3),
    "TWO": seq(4, 4, 3, 4, 4, 4, 3, 3.2, 3.5, 3.6),  # repaired at 4; unrepaired from 7
    "GAP": {1: 4, 2: 4, 3: 4, 5: 3, 6: 3},  # the 4 -> 3 fall spans missing session 4
    "GAPREPAIR": {1: 4, 2: 4, 3: 3, 5: 4, 6: 4},  # repair across a missing session
    "FLAT": seq(3.5, 3.5, 3.5, 3.5, 3.5, 3.5),
    "SHORT": seq(4, 2),
    "LAST": seq(4, 4, 4, 4, 3),  # drop at the last session
    "NEAREND": seq(4, 4, 4, 4, 4, 3, 3),  # ends one session before the window closes
    "MEDIUM": seq(3.6, 3.6, 3.6, 3.25, 3.6, 3.6),  # 0.35 drop: between 1 and 2 SD
}


@pytest.fixture(scope="module")
def result():
    t = table(SERIES)
    ep, pp = detect_ruptures(t, k=2.0)
    return t, ep, pp.set_index("patient")


def episodes_of(ep: pd.DataFrame, patient: str) -> pd.DataFrame:
    return ep[ep["patient"] == patient].reset_index(drop=True)


def test_sample_sd_is_the_sd_of_adjacent_changes(result):
    t, ep, pp = result
    sd = sample_sd(t)
    assert ep.attrs["sample_sd"] == pytest.approx(sd, rel=1e-12)
    assert (ep["sd"] == ep.attrs["sample_sd"]).all()
    assert sd < 0.35 < 2 * sd  # the MEDIUM drop sits between 1 and 2 SD
    np.testing.assert_allclose(ep["drop_sd"], ep["drop_size"] / sd)


def test_clean_v_is_repaired_with_the_right_delay(result):
    _, ep, pp = result
    v = episodes_of(ep, "V")
    assert len(v) == 1
    row = v.iloc[0]
    assert (row["session_before"], row["session_drop"], row["session_repair"]) == (3, 4, 6)
    assert row["repaired"] and row["sessions_to_repair"] == 2 and not row["censored"]
    assert row["drop_size"] == pytest.approx(1.0)
    assert (pp.loc["V", "n_ruptures"], pp.loc["V", "n_repaired"]) == (1, 1)
    assert pp.loc["V", "any_repaired"]


def test_drop_without_return_is_unrepaired_not_censored(result):
    _, ep, pp = result
    row = episodes_of(ep, "NOREPAIR").iloc[0]
    assert not row["repaired"] and not row["censored"]
    assert np.isnan(row["sessions_to_repair"]) and pd.isna(row["session_repair"])
    assert row["n_window_rated"] == 3
    assert pp.loc["NOREPAIR", "n_unrepaired"] == 1
    assert pp.loc["NOREPAIR", "any_rupture"] and not pp.loc["NOREPAIR", "any_repaired"]


def test_two_ruptures_in_one_series(result):
    _, ep, pp = result
    two = episodes_of(ep, "TWO")
    assert two["session_drop"].tolist() == [3, 7]
    assert two["repaired"].tolist() == [True, False]
    assert two["sessions_to_repair"].iloc[0] == 1
    assert not two["censored"].iloc[1]  # sessions 8-10 rated, none back to 4
    assert pp.loc["TWO", ["n_ruptures", "n_repaired", "n_unrepaired"]].tolist() == [2, 1, 1]


def test_no_change_is_computed_across_a_missing_session(result):
    _, ep, pp = result
    assert episodes_of(ep, "GAP").empty
    assert pp.loc["GAP", "n_changes"] == 3  # 1-2, 2-3, 5-6
    assert pp.loc["GAP", "n_ruptures"] == 0
    row = episodes_of(ep, "GAPREPAIR").iloc[0]
    # the drop 2 -> 3 is adjacent; the repair at 5 lies within 3 session numbers despite the gap
    assert row["repaired"] and row["sessions_to_repair"] == 2 and row["n_window_rated"] == 2


def test_flat_and_short_series(result):
    _, ep, pp = result
    assert pp.loc["FLAT", "assessable"] and pp.loc["FLAT", "flat"]
    assert pp.loc["FLAT", "n_ruptures"] == 0 and "flat" in pp.loc["FLAT", "note"]
    assert not pp.loc["SHORT", "assessable"]
    assert episodes_of(ep, "SHORT").empty  # a 2-point drop, but only 2 rated sessions
    assert pd.isna(pp.loc["SHORT", "n_ruptures"]) and pd.isna(pp.loc["SHORT", "any_rupture"])
    assert "fewer than 3" in pp.loc["SHORT", "note"]
    _, pp_own = detect_ruptures(table({"FLAT": SERIES["FLAT"]}, background=0), k=1.0, sd="patient")
    assert pp_own.iloc[0]["n_ruptures"] == 0 and pp_own.iloc[0]["sd"] == 0.0


def test_drop_near_the_end_is_censored_not_unrepaired(result):
    _, ep, pp = result
    last = episodes_of(ep, "LAST").iloc[0]
    assert last["censored"] and not last["repaired"] and last["n_window_rated"] == 0
    near = episodes_of(ep, "NEAREND").iloc[0]
    assert near["censored"] and near["n_window_rated"] == 1
    assert pp.loc["LAST", ["n_censored", "n_unrepaired"]].tolist() == [1, 0]


def test_k1_finds_the_medium_drop_that_k2_misses():
    eps, pps = rupture_table(table(SERIES), ks=(1.0, 2.0))
    medium = eps[eps["patient"] == "MEDIUM"]
    assert medium["k"].tolist() == [1.0]
    assert medium["repaired"].tolist() == [True]
    counts = eps.groupby("k").size()
    assert counts[1.0] >= counts[2.0] + 1
    # every k = 2 rupture is also a k = 1 rupture
    key = ["patient", "session_drop"]
    k2 = eps.loc[eps["k"] == 2.0, key]
    assert len(k2.merge(eps.loc[eps["k"] == 1.0, key])) == len(k2)
    assert pps["k"].value_counts().to_dict() == {1.0: len(SERIES) + 40, 2.0: len(SERIES) + 40}
    assert eps.attrs["ks"] == [1.0, 2.0]


def test_the_two_sd_definitions_differ_as_expected():
    # Alternating 4, 2: own SD = sqrt(6/5) = 1.095, so a 2-point drop is 1.83 own SDs (a rupture at
    # k = 1, not at k = 2) but many sample SDs of change (a rupture at k = 2).
    t = table({"NOISY": seq(4, 2, 4, 2, 4, 2)})
    own = np.sqrt(6 / 5)
    ep_p, pp_p = detect_ruptures(t, k=2.0, sd="patient")
    assert ep_p[ep_p["patient"] == "NOISY"].empty
    ep_p1, _ = detect_ruptures(t, k=1.0, sd="patient")
    noisy = ep_p1[ep_p1["patient"] == "NOISY"]
    assert noisy["session_drop"].tolist() == [2, 4, 6]
    np.testing.assert_allclose(noisy["sd"], own)
    np.testing.assert_allclose(noisy["drop_sd"], 2 / own)
    assert pp_p.set_index("patient").loc["NOISY", "sd"] == pytest.approx(own)
    ep_s, _ = detect_ruptures(t, k=2.0, sd="sample_change")
    assert ep_s[ep_s["patient"] == "NOISY"]["session_drop"].tolist() == [2, 4, 6]
    # background patients alternate 3.0 / 3.2: own SD ~0.1, so their 0.2 falls are ~2 own SDs
    bg = detect_ruptures(t, k=1.0, sd="patient")[0]
    assert (bg["patient"].str.startswith("B")).any()
    assert not detect_ruptures(t, k=1.0, sd="sample_change")[0]["patient"].str.startswith("B").any()


def test_unsorted_input_and_missing_scores():
    t = table({"V": SERIES["V"]}).sample(frac=1.0, random_state=3)
    ep, _ = detect_ruptures(t, k=2.0)
    assert episodes_of(ep, "V")["session_drop"].tolist() == [4]
    # an unrated session (NaN) breaks adjacency like a missing one
    t2 = table({"X": {1: 4, 2: 4, 3: np.nan, 4: 3, 5: 3}})
    ep2, pp2 = detect_ruptures(t2, k=2.0)
    assert episodes_of(ep2, "X").empty
    assert pp2.set_index("patient").loc["X", "n_rated"] == 4


def test_series_from_scores_and_bad_arguments():
    scores = pd.DataFrame(
        {"patient": ["P1"] * 3 + ["P1"], "session": [1, 2, 3, 1],
         "rater": ["patient"] * 3 + ["therapist"], "instrument": ["wai_sr"] * 3 + ["wai_sr_t"],
         "scale": "total", "score": [4.0, 3.0, 4.0, 2.0], "n_items": 12}
    )  # fmt: skip
    series = series_from_scores(scores)
    assert series["score"].tolist() == [4.0, 3.0, 4.0]
    with pytest.raises(InputError, match="k"):
        detect_ruptures(series, k=0)
    with pytest.raises(InputError, match="sd must be"):
        detect_ruptures(series, k=1, sd="pooled")
    with pytest.raises(InputError, match="twice"):
        detect_ruptures(pd.concat([series, series.iloc[[0]]]), k=1)
    with pytest.raises(InputError, match="whole"):
        detect_ruptures(series.assign(session=[1.5, 2, 3]), k=1)


@pytest.mark.slow
def test_600k_rows_in_under_two_seconds():
    rng = np.random.default_rng(0)
    n_pat, n_sess = 40_000, 15
    t = pd.DataFrame(
        {
            "patient": np.repeat([f"P{i:05d}" for i in range(n_pat)], n_sess),
            "session": np.tile(np.arange(1, n_sess + 1), n_pat),
            "score": rng.normal(3.7, 0.4, n_pat * n_sess),
        }
    )
    t.loc[rng.random(len(t)) < 0.1, "score"] = np.nan
    start = time.perf_counter()
    ep, pp = detect_ruptures(t, k=2.0)
    assert time.perf_counter() - start < 2.0
    assert len(pp) == n_pat and len(ep) > 0
