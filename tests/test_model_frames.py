"""Model frames: requires/availability, term checks, missing rows, factor coding, person-period."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alliance.errors import ConfigError, InputError
from alliance.models.base import ModelSpec, Skipped
from alliance.models.coding import factor_columns, make_name
from alliance.models.frames import model_frame
from alliance.models.person_period import person_period

ARMS = {"CBT": "psychotherapy", "IPT": "psychotherapy", "IMI-CM": "drug", "PLA-CM": "placebo"}
CODINGS = {"arms": ARMS, "arm_reference": "PLA-CM"}  # model_frame's codings.arm / arm_reference


def availability(**off: str) -> dict:
    keys = ["therapist", "site", "arm", "modality", "agency", "personality", "suicidality",
            "dropout", "relapse", "symptom"]  # fmt: skip
    out = {k: {"available": k not in off, "reason": off.get(k, "")} for k in keys}
    out["raters"] = {r: {"available": r != "observer", "reason": ""} for r in
                     ("patient", "therapist", "observer")}  # fmt: skip
    return out


def sessions() -> pd.DataFrame:
    """Eight patients (two per arm), four therapists, three sessions each."""
    arms = ["CBT", "CBT", "IPT", "IPT", "IMI-CM", "IMI-CM", "PLA-CM", "PLA-CM"]
    rows = []
    for i, arm in enumerate(arms):
        for t in range(1, 4):
            rows.append(
                {"patient": f"P{i}", "therapist": f"T{i // 2}", "arm": arm,
                 "arm_class": ARMS[arm], "session_index": t, "weeks": float(t - 1),
                 "symptom": 20.0 - t - 0.5 * i, "alliance_pat": 0.1 * i - 0.35,
                 "alliance_within": 0.2 * (t - 2), "telehealth": i % 2, "dropout": int(i == 3)}
            )  # fmt: skip
    s = pd.DataFrame(rows)
    for col in ("patient", "therapist", "arm", "arm_class"):
        s[col] = s[col].astype("string")
    s["telehealth"] = s["telehealth"].astype("Int64")
    return s


def spec(**kw) -> ModelSpec:
    base = {"id": "m", "kind": "lmm", "outcome": "symptom", "fixed": ("weeks",),
            "random": "(1 | patient) + (1 | therapist)"}  # fmt: skip
    return ModelSpec(**{**base, **kw})


def frame_of(sp: ModelSpec, s: pd.DataFrame | None = None, avail: dict | None = None,
             codings=CODINGS):  # fmt: skip
    return model_frame(sp, sessions() if s is None else s, None, avail or availability(),
                       **codings)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "name"),
    [("armIMI-CM", "armIMI.CM"), ("arm2", "arm2"), ("sexF", "sexF"), ("1abc", "X1abc"),
     ("site Pitt/2", "site.Pitt.2"), (".5x", "X.5x"), ("armCBT+IPT", "armCBT.IPT")],
)  # fmt: skip
def test_make_name_follows_r(text, name):
    assert make_name(text) == name


def test_factor_coding_names_reference_and_interaction_expansion():
    sp = spec(fixed=("weeks", "alliance_pat", "arm", "alliance_pat:arm"))
    frame, meta = frame_of(sp)
    cols = ["armCBT", "armIMI.CM", "armIPT"]
    assert meta.factors["arm"] == {
        "reference": "PLA-CM",
        "levels": ["PLA-CM", "CBT", "IMI-CM", "IPT"],
        "columns": {"CBT": "armCBT", "IMI-CM": "armIMI.CM", "IPT": "armIPT"},
    }
    assert meta.spec.fixed == (
        "weeks", "alliance_pat", *cols, *(f"alliance_pat:{c}" for c in cols),
    )  # fmt: skip
    assert meta.formula == (
        "symptom ~ weeks + alliance_pat + armCBT + armIMI.CM + armIPT + alliance_pat:armCBT + "
        "alliance_pat:armIMI.CM + alliance_pat:armIPT + (1 | patient) + (1 | therapist)"
    )
    np.testing.assert_array_equal(frame["armIMI.CM"], (frame["arm"] == "IMI-CM").astype(float))
    assert list(frame["arm"].cat.categories) == ["PLA-CM", "CBT", "IMI-CM", "IPT"]
    assert factor_columns(frame, "arm") == {
        "PLA-CM": None, "CBT": "armCBT", "IMI-CM": "armIMI.CM", "IPT": "armIPT",
    }  # fmt: skip
    # only the used columns, the factor's own column, its 0/1 columns and the IDs
    assert set(frame.columns) == {"symptom", "weeks", "alliance_pat", "arm", "patient",
                                  "therapist", *cols}  # fmt: skip
    assert frame["weeks"].dtype == float and frame["patient"].dtype == "str"


def test_reference_defaults_first_placebo_arm_then_sorted_first_and_override():
    codings = {"arms": ARMS, "arm_reference": None}
    _, meta = frame_of(spec(fixed=("arm", "arm_class")), codings=codings)
    assert meta.factors["arm"]["reference"] == "PLA-CM"
    assert meta.factors["arm_class"]["reference"] == "placebo"
    _, meta = frame_of(spec(fixed=("arm",)), codings={})
    assert meta.factors["arm"]["reference"] == "CBT"  # no codings: first in sorted order
    _, meta = frame_of(spec(fixed=("arm",), options={"reference": {"arm": "IPT"}}))
    assert meta.factors["arm"]["columns"] == {"CBT": "armCBT", "IMI-CM": "armIMI.CM",
                                              "PLA-CM": "armPLA.CM"}  # fmt: skip
    with pytest.raises(ConfigError, match=r"options.reference.arm: level 'XYZ' is not in"):
        frame_of(spec(fixed=("arm",), options={"reference": {"arm": "XYZ"}}))


def test_reference_arm_absent_from_rows_falls_back_with_a_note():
    s = sessions()
    _, meta = frame_of(spec(fixed=("arm",), subset="arm != 'PLA-CM'"), s)
    assert meta.factors["arm"]["reference"] == "CBT"
    assert "reference arm 'PLA-CM' has no model rows" in meta.notes[0]


def test_levels_with_the_same_r_name_are_an_error():
    s = sessions()
    s["arm"] = s["arm"].replace({"IPT": "IMI CM"})
    with pytest.raises(ConfigError, match=r"levels \['IMI CM', 'IMI-CM'\] of 'arm' all become"):
        frame_of(spec(fixed=("arm",)), s)


def test_unknown_term_is_a_clear_config_error():
    with pytest.raises(ConfigError) as err:
        frame_of(spec(fixed=("weeks", "alliance_patient")))
    text = str(err.value)
    assert text.startswith(
        "model 'm': term 'alliance_patient' is not a column of analysis.parquet; columns: patient"
    )
    assert "alliance_pat" in text


def test_requires_unmet_is_skipped_with_the_availability_reason():
    avail = availability(arm="fewer than two arms")
    with pytest.raises(Skipped, match="needs arm: fewer than two arms"):
        frame_of(spec(requires=("symptom", "arm")), avail=avail)
    with pytest.raises(Skipped, match="needs raters.observer: "):
        frame_of(spec(requires=("raters.observer",)))


def test_absent_column_of_an_unavailable_measure_drops_its_terms():
    s = sessions().drop(columns=["arm"])
    avail = availability(arm="fewer than two arms")
    frame, meta = frame_of(spec(fixed=("weeks", "arm", "alliance_pat:arm")), s, avail)
    assert meta.spec.fixed == ("weeks",)
    assert meta.dropped_terms == [
        {"term": "arm", "reason": "arm not available: fewer than two arms"},
        {"term": "alliance_pat:arm", "reason": "arm not available: fewer than two arms"},
    ]
    # the same absence with the measure available is a configuration error
    with pytest.raises(ConfigError, match="term 'arm' is not a column"):
        frame_of(spec(fixed=("weeks", "arm")), s)


def test_outcome_absent_because_unavailable_is_skipped():
    s = sessions()
    with pytest.raises(Skipped, match="outcome 'ideation' is not available: no suicidality item"):
        frame_of(spec(outcome="ideation"), s, availability(suicidality="no suicidality item"))


def test_missing_rows_are_dropped_and_counted():
    s = sessions()
    s.loc[[0, 4], "symptom"] = np.nan
    s.loc[5, "alliance_pat"] = np.nan
    s.loc[7, "telehealth"] = pd.NA  # not used: does not drop the row
    frame, meta = frame_of(spec(fixed=("weeks", "alliance_pat")), s)
    assert (meta.n_subset, meta.n_obs, meta.n_dropped) == (24, 21, 3)
    assert meta.missing == {"symptom": 2, "alliance_pat": 1}
    assert len(frame) == 21 and frame.notna().all().all()


def test_subset_is_applied_and_a_bad_subset_is_a_config_error():
    _, meta = frame_of(spec(subset="session_index >= 2"))
    assert (meta.n_table, meta.n_subset) == (24, 16)
    with pytest.raises(ConfigError, match=r"key subset: 'nosuch == 1' cannot be applied"):
        frame_of(spec(subset="nosuch == 1"))
    with pytest.raises(Skipped, match="leaves no rows"):
        frame_of(spec(subset="session_index > 10"))


def test_no_therapist_ids_drops_therapist_terms_and_keeps_a_two_level_model():
    s = sessions()
    s["therapist"] = pd.array([pd.NA] * len(s), dtype="string")
    s["alliance_ther"] = np.nan
    sp = spec(fixed=("weeks", "alliance_ther"), random="(1 + weeks | patient) + (1 | therapist)")
    frame, meta = frame_of(sp, s)
    assert meta.spec.random == "(1 + weeks | patient)"
    assert meta.spec.fixed == ("weeks",)
    reasons = {d["term"]: d["reason"] for d in meta.dropped_terms}
    assert reasons == {"alliance_ther": "'alliance_ther' is missing on every row",
                       "(1 | therapist)": "'therapist' is missing on every row"}  # fmt: skip
    assert len(frame) == 24
    with pytest.raises(Skipped, match=r"no random-effect term left \(\(1 \| therapist\)"):
        frame_of(spec(random="(1 | therapist)"), s)


def test_one_level_factor_and_constant_columns_drop_their_terms():
    s = sessions()
    s["telehealth"] = 1
    frame, meta = frame_of(spec(fixed=("weeks", "arm", "telehealth"), subset="arm == 'CBT'"), s)
    assert meta.spec.fixed == ("weeks",)
    assert {d["reason"] for d in meta.dropped_terms} == {
        "'arm' has one level in the model rows", "'telehealth' does not vary in the model rows",
        "'therapist' has fewer than 2 levels",
    }  # fmt: skip
    assert meta.spec.random == "(1 | patient)"  # one therapist left: its random term goes


def test_outcome_without_variation_is_skipped():
    s = sessions()
    s["symptom"] = 10.0
    with pytest.raises(Skipped, match="outcome 'symptom' does not vary"):
        frame_of(spec(), s)


def test_text_outcome_is_a_config_error():
    s = sessions()
    with pytest.raises(ConfigError, match="outcome 'arm' must be numeric"):
        frame_of(spec(outcome="arm", fixed=("weeks",)), s)


def test_column_valued_options_are_kept_and_dropped_when_unavailable():
    p = sessions().drop_duplicates("patient").reset_index(drop=True)
    sp = spec(kind="cox", data="patients", outcome="dropout", fixed=("alliance_pat",),
              random=None, options={"cluster": "therapist", "duration": "weeks"})  # fmt: skip
    frame, meta = model_frame(sp, None, p, availability(), **CODINGS)
    assert {"therapist", "weeks"} <= set(frame.columns)
    assert meta.table == "patient_analysis.parquet"
    p2 = p.drop(columns=["therapist"])
    _, meta = model_frame(sp, None, p2, availability(therapist="no therapist IDs"), **CODINGS)
    assert meta.spec.options["cluster"] is None
    assert meta.dropped_terms[0]["term"] == "options.cluster = therapist"


# ---- person-period rows (discrete-time hazard) ---------------------------------------------


def three_patients() -> pd.DataFrame:
    """A drops out after session 3, B completes after 2, C drops out after 4 (session 2 unrated)."""
    rows = [("A", 1, 3.0), ("A", 2, 3.5), ("A", 3, 2.5),
            ("B", 1, 4.0), ("B", 2, 4.5),
            ("C", 1, 3.0), ("C", 2, np.nan), ("C", 3, 3.5), ("C", 4, 2.0)]  # fmt: skip
    s = pd.DataFrame(rows, columns=["patient", "session_index", "alliance"])
    s["dropout"] = s["patient"].map({"A": 1, "B": 0, "C": 1})
    s["therapist"] = s["patient"].map({"A": "T1", "B": "T1", "C": "T2"})
    s["alliance_lag1"] = s.groupby("patient")["alliance"].shift(1)
    return s.sample(frac=1.0, random_state=1)  # order must not matter


def test_person_period_rows_by_hand():
    """Aligned layout: every session of a dropout (event on the last: no next session), every
    session but the last of a completer (B2 ended treatment: not at risk of leaving)."""
    pp = person_period(three_patients())
    assert list(pp["patient"]) == ["A", "A", "A", "B", "C", "C", "C", "C"]
    assert list(pp["period"]) == [1, 2, 3, 1, 1, 2, 3, 4]
    assert list(pp["event"]) == [0, 0, 1, 0, 0, 0, 0, 1]


def test_person_period_counts_a_session_one_leaver():
    s = pd.DataFrame({"patient": ["A", "B", "B"], "session_index": [1, 1, 2],
                      "dropout": [1, 0, 0], "alliance": [2.0, 4.0, 4.0]})  # fmt: skip
    pp = person_period(s)
    assert list(zip(pp["patient"], pp["period"], pp["event"], strict=True)) == [
        ("A", 1.0, 1.0), ("B", 1.0, 0.0),
    ]  # fmt: skip


def test_person_period_unknown_dropout_gives_missing_event_and_varying_dropout_fails():
    s = three_patients()
    s.loc[s["patient"] == "B", "dropout"] = np.nan
    pp = person_period(s)
    assert pp.loc[pp["patient"] == "B", "event"].isna().all()
    s.loc[s.index[0], "dropout"] = 1 - s.loc[s.index[0], "dropout"]
    with pytest.raises(InputError, match="same on every row of a patient"):
        person_period(s.fillna({"dropout": 0}))


def test_hazard_frame_on_the_session_just_attended_counts_events():
    sp = ModelSpec(id="h", kind="hazard", outcome="dropout", fixed=("alliance",),
                   random="(1 | therapist)", options={"time": "quadratic"})  # fmt: skip
    frame, meta = model_frame(sp, three_patients(), None, availability(), **CODINGS)
    # risk rows with a rating: all of A, B1 (B2 ended treatment), C1, C3, C4 (C2 unrated)
    assert list(zip(frame["patient"], frame["period"], frame["event"], strict=True)) == [
        ("A", 1.0, 0.0), ("A", 2.0, 0.0), ("A", 3.0, 1.0), ("B", 1.0, 0.0), ("C", 1.0, 0.0),
        ("C", 3.0, 0.0), ("C", 4.0, 1.0),
    ]  # fmt: skip
    assert list(frame["period_sq"]) == [1.0, 4.0, 9.0, 1.0, 1.0, 9.0, 16.0]
    assert meta.spec.outcome == "event"
    assert meta.spec.fixed == ("period", "period_sq", "alliance")
    assert meta.extra["person_period"]["events_in_table"] == 2
    assert meta.missing == {"alliance": 1}


def test_hazard_factor_time_codes_sessions_in_numeric_order():
    s = pd.concat([three_patients()] * 1)
    s = pd.concat([s, s.assign(patient=s["patient"] + "x")])
    rows = [("D", k, 3.0) for k in range(1, 11)]
    d = pd.DataFrame(rows, columns=["patient", "session_index", "alliance"])
    d = d.assign(dropout=1, therapist="T3", alliance_lag1=np.nan)
    s = pd.concat([s, d])
    sp = ModelSpec(id="h", kind="hazard", outcome="dropout", fixed=(), random="(1 | therapist)",
                   options={"time": "factor"})  # fmt: skip
    frame, meta = model_frame(sp, s, None, availability(), **CODINGS)
    assert meta.factors["period"]["levels"] == [str(k) for k in range(1, 11)]
    assert meta.spec.fixed == tuple(f"period{k}" for k in range(2, 11))
