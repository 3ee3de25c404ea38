"""Sensitivity grid: cells, shard invariance, and that a setting really changes the refit."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import ROOT, demo_config

from alliance.clean.stage import clean_trial
from alliance.config import load_config
from alliance.errors import ConfigError
from alliance.settings import SensitivityGrid, Settings
from alliance.studies.sensitivity import gather, grid_cells, run_cells


def test_grid_cells_are_every_combination_in_fixed_order():
    grid = SensitivityGrid(early_window=((1, 3), (1, 4)), detrend=(True, False), rater=(), scale=())
    assert grid_cells(grid) == [
        {"early_window": (1, 3), "detrend": True},
        {"early_window": (1, 3), "detrend": False},
        {"early_window": (1, 4), "detrend": True},
        {"early_window": (1, 4), "detrend": False},
    ]
    with pytest.raises(ConfigError, match="sensitivity.grid.window"):
        Settings.from_config({**demo_config(), "sensitivity": {"grid": {"window": [1]}}})


@pytest.fixture(scope="module")
def demo():
    cfg = load_config(ROOT / "config" / "config.yaml")
    for key in ("sessions", "patients"):
        cfg["data"][key] = str(ROOT / cfg["data"][key])
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg["sensitivity"] = {
        "models": ["dropout_gee"],
        "shards": 1,
        "grid": {"early_window": [[1, 3], [1, 1]], "rater": ["patient", "therapist"]},
    }
    settings = Settings.from_config(cfg)
    result = clean_trial(settings.clean())
    run = settings.sensitivity_study()
    return run, result.sessions, result.patients, result.availability


@pytest.mark.slow
def test_grid_is_identical_whatever_the_shard_count_and_settings_matter(demo):
    run, sessions, patients, avail = demo
    one = gather([run_cells(sessions, patients, avail, run, (0, 1))])
    three = gather([run_cells(sessions, patients, avail, run, (i, 3)) for i in range(3)])
    pd.testing.assert_frame_equal(one, three, check_exact=True)
    assert sorted(one["cell"].unique()) == [0, 1, 2, 3]
    assert (one["status"] == "fitted").all()
    early = one[one["term"] == "alliance_early"].set_index("cell")["estimate"]
    # window 1-3 vs session 1 only, and patient- vs therapist-rated: four different estimates
    assert early.nunique() == 4
