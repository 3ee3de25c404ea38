"""The benchmark trials: simulated with a fixed seed at about 10k / 120k / 600k session rows.

Why: pipeline and engine times are only comparable across runs on the same data; a marker file
lets a rerun reuse a trial instead of simulating the 600k one again.
"""

from __future__ import annotations

import json
from pathlib import Path

SEED = 20261127
# name -> (randomised patients, therapists); about 13.6 attended session rows per patient.
TRIALS: dict[str, tuple[int, int]] = {
    "10k": (740, 60),
    "120k": (8_900, 700),
    "600k": (44_000, 3_500),
}


# The process the lme4 references were fitted on (tests/reference/glmm_scale_frames.py): the TRD
# moderations of the dropout hazard and of the alliance's symptom effects, added to the
# simulator later, are off, so the bench's GLMM frames are row for row the frames lme4 was timed
# on and the ratios compare the same data.
REFERENCE_PROCESS = {"dropout_beta_alliance_trd": 0.0, "beta_alliance_trd_attenuation": 0.0}


def simulate(name: str, data_root: Path, patients: int, therapists: int) -> Path:
    """The simulated trial `name` in data_root/name (reused when the same parameters made it)."""
    from alliance.simulate.export import write_trial
    from alliance.simulate.trial import simulate_trial

    out = data_root / name
    stamp = {"seed": SEED, "patients": patients, "therapists": therapists, **REFERENCE_PROCESS}
    marker = out / "bench_params.json"
    if marker.exists() and json.loads(marker.read_text()) == stamp:
        return out
    trial = simulate_trial(
        n_patients=patients, n_therapists=therapists, seed=SEED, **REFERENCE_PROCESS
    )
    write_trial(trial, out, fmt="csv", layout="long")
    marker.write_text(json.dumps(stamp) + "\n")
    return out
