"""The recovery study must be able to FAIL: one large simulated trial, the dropout hazard fitted
on the aligned person-period layout and on the old, misaligned one.

The simulator's hazard of not coming back after session t is on the alliance of session t. The
aligned layout (a row per session t at which leaving was possible, event = no session t+1,
predictor A_t) must recover the generating `dropout_beta_alliance`: its 95 % CI holds it and the
verdict is pass. The misaligned layout (event on the last attended row, predictor A_{t-1},
completers at risk at their final session) must miss it: CI without it, verdict fail.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from alliance.models.person_period import person_period
from alliance.studies import recovery, recovery_hazard, recovery_results, recovery_study

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261127
PATIENTS, THERAPISTS = 3000, 300

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def trial() -> dict:
    """One large trial through the study's own path: simulate -> clean -> score."""
    study = recovery_study.load_study(ROOT / "config" / "validate.yaml")
    study["design"] = {**study["design"], "patients": PATIENTS, "therapists": THERAPISTS}
    # one dropout slope for every patient: the layout is under test, not the TRD moderation
    study["simulator"] = {**study["simulator"], "dropout_beta_alliance_trd": 0.0}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # the study's pipeline config is relative to the repository
        pipe = recovery.pipeline(study)
        return recovery.simulate_and_prepare(study, pipe, SEED)


def test_the_aligned_layout_is_the_pipelines_person_period(trial: dict) -> None:
    # the hazard kind's own rows (models.person_period) are the aligned layout, row for row
    ours = recovery_hazard.hazard_rows(trial["sessions"], "aligned")
    theirs = person_period(trial["sessions"][["patient", "session_index", "dropout"]])
    key = ["patient", "session_index", "event"]
    pd.testing.assert_frame_equal(
        ours[key].reset_index(drop=True), theirs[key].reset_index(drop=True), check_dtype=False
    )
    mis = recovery_hazard.hazard_rows(trial["sessions"], "misaligned")
    completers = trial["sessions"].groupby("patient")["dropout"].first().eq(0).sum()
    assert len(mis) - len(ours) == completers  # their final sessions
    assert mis["event"].sum() == ours["event"].sum() > 300


def test_aligned_hazard_covers_the_truth_and_the_misaligned_one_does_not(trial: dict) -> None:
    beta = float(trial["truth"]["params"]["dropout_beta_alliance"])
    rows = recovery_hazard.calibration_rows(trial["sessions"], beta, seed=SEED)
    fits = rows.set_index("model")
    aligned, misaligned = fits.loc["dropout_hazard_aligned"], fits.loc["dropout_hazard_misaligned"]
    print(
        f"\ngenerating {beta:+.3f}; aligned {aligned.estimate:+.3f} "
        f"[{aligned.ci_low:+.3f}, {aligned.ci_high:+.3f}]; misaligned "
        f"{misaligned.estimate:+.3f} [{misaligned.ci_low:+.3f}, {misaligned.ci_high:+.3f}]"
    )
    assert aligned.ci_low <= beta <= aligned.ci_high
    assert not misaligned.ci_low <= beta <= misaligned.ci_high
    # the study's own scoring and verdict, on this one-trial study
    summary = recovery_results.summarise(rows, band=recovery_hazard.ONE_TRIAL_BAND)
    verdicts = summary.set_index("model")["verdict"].to_dict()
    assert verdicts == {"dropout_hazard_aligned": "pass", "dropout_hazard_misaligned": "fail"}
    # and with the full study's band (many replicates), a single trial can never pass
    strict = recovery_results.summarise(rows)
    assert strict["verdict"].eq("fail").all()
