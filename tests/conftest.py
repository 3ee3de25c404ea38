"""Shared fixtures: a tiny hand-made trial whose derived values are computed by hand in tests."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml

if TYPE_CHECKING:
    from alliance.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# Pseudonym key of every test trial that is not the bundled demo: the demo key is refused on
# other data and keys need 16+ bytes (alliance.clean.pseudonym).
FIXTURE_KEY = "alliance-test-fixture-key-32byte"


def small_trial() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four randomised patients + one screen failure, two therapists, up to four sessions.

    Symptom totals (HAM-D) per session are chosen so response/remission are obvious by eye.
    """
    plan = {
        # patient: (therapist, arm, status, baseline, hamd by session, relapse_weeks, relapse)
        "PIT-P001": ("PIT-T01", "CBT", "completed", 20, [18, 14, 10, 6], 30.0, 1),
        "PIT-P002": ("PIT-T01", "PLA-CM", "dropout", 24, [22, 21], None, None),
        "OKL-P003": ("OKL-T02", "IMI-CM", "completed", 18, [17, 15, 12, 11], None, None),
        "OKL-P004": ("OKL-T02", "CBT", "completed", 22, [20, 15, 11, 10], 52.0, 0),
    }
    sessions, patients = [], []
    for pid, (ther, arm, status, base, scores, rt, rel) in plan.items():
        patients.append(
            {"subject": pid, "therapist": ther, "site": pid[:3], "arm": arm,
             "modality": "video" if pid.endswith("2") else "in-person", "status": status,
             "consent_date": "2024-01-02", "baseline_hamd": base, "age": 40, "sex": "F",
             "agreeableness": 50.0, "relapse_weeks": rt, "relapse": rel}
        )  # fmt: skip
        for k, score in enumerate(scores, start=1):
            row = {"subject": pid, "visit": k, "visit_date": f"2024-01-{7 * k + 3:02d}",
                   "hamd": score, "hamd_suicide": 1 if score > 20 else 0}  # fmt: skip
            for i in range(1, 13):
                row[f"wai_p_{i:02d}"] = 3 + (k + i) % 3  # 3..5
                row[f"wai_t_{i:02d}"] = 2 + (k + i) % 4  # 2..5
            for i in range(1, 7):  # the demo's observer scale (config alliance.instruments)
                row[f"obs_{i:02d}"] = 1 + (k + 2 * i + len(patients)) % 5  # 1..5
            sessions.append(row)
    patients.append(
        {"subject": "GWU-P005", "therapist": None, "site": "GWU", "arm": None, "modality": None,
         "status": None, "consent_date": "2024-01-02", "baseline_hamd": 12, "age": 30, "sex": "M",
         "agreeableness": 40.0, "relapse_weeks": None, "relapse": None}
    )  # fmt: skip
    return pd.DataFrame(sessions), pd.DataFrame(patients)


# The demo config's treatment-resistance roles (docs/data.md), absent from hand-made fixtures.
RESISTANCE_ROLES = (
    "prior_failed_trials", "staging_score", "episode_months", "attendance", "doses_taken",
    "doses_prescribed", "self_report_symptom",
)  # fmt: skip


def demo_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.fixture
def trial_files(tmp_path: Path) -> tuple[Path, Path]:
    sessions, patients = small_trial()
    s, p = tmp_path / "sessions.csv", tmp_path / "patients.csv"
    sessions.to_csv(s, index=False)
    patients.to_csv(p, index=False)
    return s, p


@pytest.fixture
def trial_config(trial_files: tuple[Path, Path]) -> dict:
    """The demo config pointed at the small trial (instrument folder absolute, test key)."""
    cfg = copy.deepcopy(demo_config())
    cfg["data"]["sessions"] = str(trial_files[0])
    cfg["data"]["patients"] = str(trial_files[1])
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg["columns"]["personality"] = {"agreeableness": "agreeableness"}
    cfg["columns"]["agency"] = None
    for role in RESISTANCE_ROLES:  # the small trial has none: as a config without them
        cfg["columns"][role] = None
    cfg["privacy"]["key"] = FIXTURE_KEY
    return cfg


def proportion_only(
    sessions: pd.DataFrame, availability: Mapping[str, Any], settings: Settings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The same trial as the clean stage writes it when adherence is mapped as a 0-1 proportion
    only (columns.adherence, no dose counts): the session table without the count columns and
    availability.json's `adherence` entry for it (source `proportion`, `proportion_only`)."""
    from alliance.clean.resistance import resistance_availability

    s = sessions.drop(columns=["doses_taken", "doses_prescribed"])
    entry = resistance_availability(
        s, pd.DataFrame(), settings.treatment_resistance, settings.self_report, None
    )["adherence"]
    return s, {**copy.deepcopy(dict(availability)), "adherence": entry}
