"""`alliance init`: guessing a config from a foreign export, TODOs for what cannot be guessed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alliance.clean.mapping import item_columns
from alliance.clean.stage import clean_trial
from alliance.config import load_config, validate_config
from alliance.errors import ConfigError
from alliance.onboard.cli import main, summary
from alliance.onboard.codings import guess_coding
from alliance.onboard.inspection import inspect_export
from alliance.onboard.starter import starter_config
from alliance.onboard.vocabulary import tokens
from alliance.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENTS = ROOT / "config" / "instruments"
ARMS = ["CBT", "IPT", "IMI-CM", "PLA-CM"]
# The demo mapping, copied from config/config.yaml (columns block): the test must not depend on it.
DEMO_COLUMNS = {
    "patient": "subject", "session": "visit", "date": "visit_date", "week": None,
    "therapist": "therapist", "site": "site", "arm": "arm", "modality": "modality",
    "status": "status", "dropout_session": None, "consent_date": "consent_date",
    "baseline_symptom": "baseline_hamd", "suicidality": "hamd_suicide",
    "relapse_time": "relapse_weeks", "relapse_event": "relapse", "agency": "agency",
    "covariates": ["age", "sex"],
    "personality": {"agreeableness": "agreeableness", "extraversion": "extraversion",
                    "openness": "openness"},
    # treatment resistance: not in this export (tests/test_onboard_resistance.py)
    "prior_failed_trials": None, "staging_score": None, "episode_months": None,
    "attendance": None, "missed_before": None, "doses_taken": None, "doses_prescribed": None,
    "adherence": None, "self_report_symptom": None,
}  # fmt: skip


def demo_like(n: int = 16, sessions: int = 6, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long sessions + patients tables with the demo's column names.

    HAM-D stays within 10-40 and visits below 9 so a code 9 planted in items is unambiguous.
    """
    rng = np.random.default_rng(seed)
    patients, rows = [], []
    for i in range(n):
        pid = f"S{i + 1:03d}"
        status = "dropout" if i % 4 == 3 else "completed"
        responder = i % 2 == 0
        patients.append(
            {"subject": pid, "therapist": f"T{i % 4 + 1}", "site": "AB"[i % 2],
             "arm": ARMS[i % 4], "modality": ["in-person", "video"][i // 2 % 2],
             "status": status, "relapse_weeks": 20.0 + i if responder else np.nan,
             "relapse": float(i % 3 == 0) if responder else np.nan,
             "agreeableness": round(float(rng.normal(50, 10)), 1)}
        )  # fmt: skip
        n_sess = 3 if status == "dropout" else sessions
        for k in range(1, n_sess + 1):
            row = {"subject": pid, "visit": k,
                   "visit_date": (pd.Timestamp("2023-01-02") + pd.Timedelta(days=7 * k + i))
                   .date().isoformat(),
                   "hamd": int(max(10, 30 - 3 * k + rng.integers(-2, 3)) if responder
                               else 28 + rng.integers(-3, 4)),
                   "hamd_suicide": int(rng.integers(0, 3))}  # fmt: skip
            for item in range(1, 13):
                row[f"wai_p_{item:02d}"] = int(rng.integers(1, 6))
                row[f"wai_t_{item:02d}"] = int(rng.integers(1, 6))
            rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(patients)


def write(tmp_path: Path, sessions: pd.DataFrame, patients: pd.DataFrame | None = None):
    s = tmp_path / "sessions.csv"
    sessions.to_csv(s, index=False)
    if patients is None:
        return s, None
    p = tmp_path / "patients.csv"
    patients.to_csv(p, index=False)
    return s, p


def guessed_config(sessions: Path, patients: Path | None = None) -> tuple[str, dict]:
    text = starter_config(inspect_export(sessions, patients))
    return text, yaml.safe_load(text)


# ------------------------------------------------------------------------------------ demo-like
def test_demo_like_export_validates_without_edits(tmp_path, monkeypatch):
    s, p = write(tmp_path, *demo_like())
    text, raw = guessed_config(s, p)
    assert "TODO" not in text
    cfg = validate_config(raw)
    expected = {**DEMO_COLUMNS, "consent_date": None, "baseline_symptom": None, "agency": None,
                "covariates": [], "personality": {"agreeableness": "agreeableness"}}  # fmt: skip
    assert cfg["columns"] == expected
    assert cfg["data"]["layout"] == "long" and cfg["data"]["missing_codes"] == []
    assert cfg["codings"] == {
        "arm": {"CBT": "psychotherapy", "IPT": "psychotherapy", "IMI-CM": "drug",
                "PLA-CM": "placebo"},
        "arm_reference": None,
        "modality": {"in-person": "in_person", "video": "telehealth"},
        "status": {"completed": "completed", "dropout": "dropout"},
        "attendance": {},
    }  # fmt: skip
    assert cfg["alliance"]["raters"] == {
        "patient": {"instrument": "wai_sr", "items": r"^wai_p_(\d+)$"},
        "therapist": {"instrument": "wai_sr_t", "items": r"^wai_t_(\d+)$"},
        "observer": None,
    }
    sym = cfg["symptoms"]
    assert (sym["column"], sym["min"], sym["max"], sym["remission_cutoff"]) == ("hamd", 0, 52, 7)
    # Every mapped column carries the reason it was guessed on its own line.
    checked = 0
    for line in text.splitlines():
        key, _, rest = line.strip().partition(":")
        value = rest.split("#")[0].strip()
        mapped = key in ("patient", "session", "arm", "therapist", "CBT", "items", "column")
        if mapped and value not in ("", "null"):
            assert "# guessed: " in line and line.endswith("— review"), line
            checked += 1
    assert checked == 8  # 5 columns, 1 arm code, 2 rater item patterns
    # The guessed config runs through the clean stage as is (bar machine-specific paths).
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", "test-key-for-onboard-tests")
    cfg["alliance"]["instruments_dir"] = str(INSTRUMENTS)
    result = clean_trial(Settings.from_config(cfg).clean())
    assert result.summary["patients"] == 16 and result.summary["therapists"] == 4


def test_inspection_reports_candidates_groups_and_codes(tmp_path):
    s, p = write(tmp_path, *demo_like())
    ins = inspect_export(s, p)
    assert (ins.layout, ins.n_patients, ins.n_patient_rows) == ("long", 16, 16)
    assert ins.n_rows == 12 * 6 + 4 * 3
    assert ins.chosen["patient"].column == "subject" and "ID-like" in ins.chosen["patient"].reason
    assert [(g.stem, len(g.columns), g.low, g.high, g.use) for g in ins.item_groups] == [
        ("wai_p_", 12, 1.0, 5.0, "patient"),
        ("wai_t_", 12, 1.0, 5.0, "therapist"),
    ]
    assert ins.categorical["arm"] == ["CBT", "IMI-CM", "IPT", "PLA-CM"]
    assert ins.numeric_ranges["visit"] == (1.0, 6.0)
    assert ins.suspicious == {} and ins.user_missing == {}
    assert "relapse_weeks" in summary(ins)


# ------------------------------------------------------------------------------------ TODOs
def _unknown_arm_codes(s: pd.DataFrame, p: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return s, p.assign(arm=p["arm"].map(dict(zip(ARMS, "ABCD", strict=True))))


def _rater_unclear(s: pd.DataFrame, p: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    s = s.drop(columns=[c for c in s if c.startswith("wai_t_")])
    return s.rename(columns=lambda c: c.replace("wai_p_", "wai_")), p


def _no_id_name(s: pd.DataFrame, p: pd.DataFrame) -> tuple[pd.DataFrame, None]:
    return s.rename(columns={"subject": "Kennung"}), None


@pytest.mark.parametrize(
    ("variant", "todo_key"),
    [(_unknown_arm_codes, "A"), (_rater_unclear, "TODO_rater_1"), (_no_id_name, "patient")],
)
def test_unguessable_role_is_a_todo_that_validation_rejects(tmp_path, variant, todo_key):
    s, p = write(tmp_path, *variant(*demo_like()))
    text, raw = guessed_config(s, p)
    todo_lines = [line for line in text.splitlines() if "TODO" in line.split("#")[0]]
    assert any(line.strip().startswith(f"{todo_key}:") for line in todo_lines), todo_lines
    with pytest.raises(ConfigError, match="TODO"):
        validate_config(raw)


def test_no_alliance_group_leaves_a_todo_rater(tmp_path):
    s, p = demo_like()
    s = s.rename(columns=lambda c: c.replace("wai_p_", "item").replace("wai_t_", "q"))
    text, raw = guessed_config(*write(tmp_path, s, p))
    assert raw["alliance"]["raters"]["TODO_rater"]["items"].startswith("TODO")
    assert "maybe ^item(\\d+)$" in text  # the unnamed 12-item group is offered as a hint
    with pytest.raises(ConfigError, match="TODO"):
        validate_config(raw)


# ---------------------------------------------------------------------------- renamed variant
def renamed() -> tuple[pd.DataFrame, pd.DataFrame]:
    s, p = demo_like()
    s = s.rename(columns={"subject": "ID", "visit": "Sitzung", "visit_date": "Datum",
                          "hamd": "HDRS", "hamd_suicide": "suicidal_thoughts"})  # fmt: skip
    s = s.rename(columns=lambda c: re.sub(r"wai_([pt])_(\d+)", r"WAI_\1_i\2", c).upper()
                 .replace("_I", "_i") if c.startswith("wai") else c)  # fmt: skip
    for col in [c for c in s if c.startswith("WAI_P")]:
        s[col] = s[col] + (s.index % 3).to_numpy()  # a 1-7 scale: WAI-S, not WAI-SR
    p = p.rename(columns={"subject": "ID", "therapist": "Therapeut", "site": "Zentrum",
                          "arm": "Treatment", "modality": "Setting", "status": "Status",
                          "relapse_weeks": "recurrence_time", "relapse": "Recurrence"})  # fmt: skip
    p["Treatment"] = p["Treatment"].map(
        dict(zip(ARMS, ["CBT", "Sertraline", "Placebo", "TAU"], strict=True))
    )
    p["Setting"] = p["Setting"].map({"in-person": "Office", "video": "Telephone"})
    p["Status"] = p["Status"].map({"completed": "Completer", "dropout": "Withdrawn"})
    return s, p


def test_renamed_variant_is_mapped_where_guessable(tmp_path):
    s, p = renamed()
    assert "WAI_P_i07" in s.columns
    text, raw = guessed_config(*write(tmp_path, s, p))
    cols = raw["columns"]
    assert {k: cols[k] for k in ("patient", "session", "date", "therapist", "site", "arm",
                                 "modality", "status", "suicidality", "relapse_time",
                                 "relapse_event")} == {
        "patient": "ID", "session": "Sitzung", "date": "Datum", "therapist": "Therapeut",
        "site": "Zentrum", "arm": "Treatment", "modality": "Setting", "status": "Status",
        "suicidality": "suicidal_thoughts", "relapse_time": "recurrence_time",
        "relapse_event": "Recurrence",
    }  # fmt: skip
    assert raw["symptoms"]["column"] == "HDRS" and raw["symptoms"]["label"] == "HAM-D 17"
    raters = raw["alliance"]["raters"]
    assert raters["patient"] == {"instrument": "wai_s", "items": r"^WAI_P_i(\d+)$"}
    assert raters["therapist"] == {"instrument": "wai_sr_t", "items": r"^WAI_T_i(\d+)$"}
    assert list(item_columns(s, raters["patient"]["items"])) == list(range(1, 13))
    assert raw["codings"]["arm"] == {
        "CBT": "psychotherapy", "Placebo": "placebo", "Sertraline": "drug",
        "TAU": "TODO: psychotherapy|drug|placebo|combination|other",
    }  # fmt: skip
    assert raw["codings"]["modality"] == {"Office": "in_person", "Telephone": "telehealth"}
    assert raw["codings"]["status"] == {"Completer": "completed", "Withdrawn": "dropout"}
    with pytest.raises(ConfigError, match="TODO"):  # only the TAU arm is left to the user
        validate_config(raw)
    raw["codings"]["arm"]["TAU"] = "other"
    validate_config(raw)


def test_session_column_with_unknown_name_found_from_its_values(tmp_path):
    s, _ = demo_like()
    s = s.rename(columns={"visit": "lfd_nr"})
    ins = inspect_export(write(tmp_path, s)[0])
    assert ins.chosen["session"].column == "lfd_nr"
    assert "increasing within every patient" in ins.chosen["session"].reason


# -------------------------------------------------------------------------------- wide / SPSS
def test_wide_spss_export_is_detected(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    s, p = demo_like(n=8, sessions=3)
    wide = p[["subject", "therapist"]].assign(arm=[1, 2] * 4).rename(columns={"subject": "pid"})
    for k in (1, 2, 3):
        at = s[s["visit"] == k].set_index("subject")
        wide[f"hamd_s{k}"] = wide["pid"].map(at["hamd"]).astype(float)
        for item in range(1, 13):
            wide[f"wai_p_{item:02d}_s{k}"] = wide["pid"].map(at[f"wai_p_{item:02d}"]).astype(float)
    wide.loc[0, "wai_p_03_s1"] = -9.0  # declared user-missing below
    path = tmp_path / "trial.sav"
    items = [c for c in wide if c.startswith("wai_p_")]
    pyreadstat.write_sav(
        wide,
        str(path),
        variable_value_labels={"arm": {1: "CBT", 2: "Placebo"}},
        missing_ranges={c: [-9] for c in items},
    )
    ins = inspect_export(path)
    assert (ins.layout, ins.session_token, ins.n_patients) == ("wide", r"_s(\d+)$", 8)
    assert ins.user_missing["wai_p_03_s1"] == [-9]
    assert "arm" in ins.value_labels
    raw = yaml.safe_load(starter_config(ins))
    assert raw["data"]["layout"] == "wide" and raw["data"]["session_token"] == r"_s(\d+)$"
    assert raw["data"]["missing_codes"] == []  # declared codes are honoured by the reader
    assert raw["columns"]["patient"] == "pid" and raw["columns"]["session"] is None
    assert raw["columns"]["therapist"] == "therapist"
    assert raw["codings"]["arm"] == {"CBT": "psychotherapy", "Placebo": "placebo"}
    assert raw["alliance"]["raters"]["patient"]["items"] == r"^wai_p_(\d+)$"
    assert raw["symptoms"]["column"] == "hamd"
    validate_config(raw)


# -------------------------------------------------------------------------- suspicious codes
def _plant_nines(s: pd.DataFrame) -> pd.DataFrame:
    s = s.copy()
    s.loc[[2, 11, 30], "wai_p_04"] = 9
    s.loc[5, "wai_p_10"] = 9
    return s


def test_suspicious_code_above_item_range_is_suggested(tmp_path):
    s, p = demo_like()
    path_s, path_p = write(tmp_path, _plant_nines(s), p)
    ins = inspect_export(path_s, path_p)
    assert ins.suspicious == {r"^wai_p_(\d+)$": [9.0]}
    assert ins.suggested_missing_codes == [9.0]
    group = ins.item_groups[0]
    assert (group.low, group.high, group.instrument) == (1.0, 5.0, "wai_sr")
    raw = yaml.safe_load(starter_config(ins))
    assert raw["data"]["missing_codes"] == [9]
    assert "suggested data.missing_codes: 9" in summary(ins)
    validate_config(raw)


def test_suspicious_code_that_is_also_a_real_value_is_a_todo(tmp_path):
    s, p = demo_like()
    s = _plant_nines(s)
    s.loc[0, "hamd"] = 9  # a real HAM-D total of 9 would be blanked by missing_codes: [9]
    ins = inspect_export(*write(tmp_path, s, p))
    assert ins.missing_code_clashes == {9.0: ["hamd"]} and ins.suggested_missing_codes == []
    raw = yaml.safe_load(starter_config(ins))
    (entry,) = raw["data"]["missing_codes"]
    assert entry.startswith("TODO: 9") and "hamd" in entry
    with pytest.raises(ConfigError, match="TODO"):
        validate_config(raw)


def test_negative_code_in_a_patient_column_is_suspicious(tmp_path):
    s, p = demo_like()
    p.loc[p["relapse"].isna(), ["relapse", "relapse_weeks"]] = -99
    ins = inspect_export(*write(tmp_path, s, p))
    assert ins.suspicious == {"relapse_weeks": [-99.0], "relapse": [-99.0]}
    assert ins.chosen["relapse_event"].column == "relapse"  # 0/1 once -99 is set aside
    assert yaml.safe_load(starter_config(ins))["data"]["missing_codes"] == [-99]


# ------------------------------------------------------------------------------ rules, CLI
@pytest.mark.parametrize(
    ("role", "code", "expected"),
    [
        ("arm", "PLA-CM", "placebo"), ("arm", "pbo", "placebo"), ("arm", "IMI-CM", "drug"),
        ("arm", "SSRI", "drug"), ("arm", "escitalopram", "drug"), ("arm", "CBT", "psychotherapy"),
        ("arm", "Psychotherapy", "psychotherapy"), ("arm", "CBT+IMI", "combination"),
        ("arm", "TAU", None),
        ("modality", "video", "telehealth"), ("modality", "Telehealth", "telehealth"),
        ("modality", "phone", "telehealth"), ("modality", "in-person", "in_person"),
        ("modality", "face to face", "in_person"), ("modality", "hybrid", None),
        ("status", "not_started", "not_started"), ("status", "Not started", "not_started"),
        ("status", "dropout", "dropout"), ("status", "incomplete", "dropout"),
        ("status", "completed", "completed"), ("status", "unknown", None),
    ],
)  # fmt: skip
def test_guess_coding(role, code, expected):
    assert guess_coding(role, code) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("PatientID", ["patient", "id"]), ("WAI_P_i07", ["wai", "p", "i", "07"]),
     ("visit_date", ["visit", "date"]), ("hamd17", ["hamd", "17"]), ("BDI-II", ["bdi", "ii"])],
)  # fmt: skip
def test_tokens(name, expected):
    assert tokens(name) == expected


def test_cli_writes_once_and_needs_force_to_overwrite(tmp_path, capsys):
    s, p = write(tmp_path, *demo_like())
    out = tmp_path / "my.yaml"
    argv = [str(s), "--patients", str(p), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "wai_p_01..wai_p_12" in printed
    first = out.read_text()
    out.write_text("# edited by the user\n")
    assert main(argv) == 1
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "# edited by the user\n"
    assert main([*argv, "--force"]) == 0
    assert out.read_text() == first


def test_cli_reports_unreadable_input(tmp_path, capsys):
    assert main([str(tmp_path / "absent.csv"), "--out", str(tmp_path / "x.yaml")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.skipif(
    not (ROOT / "data" / "demo" / "sessions.csv").exists(), reason="demo data not generated"
)
def test_init_on_demo_data_reproduces_the_demo_mapping(tmp_path, capsys):
    out = tmp_path / "demo.yaml"
    demo = ROOT / "data" / "demo"
    argv = [str(demo / "sessions.csv"), "--patients", str(demo / "patients.csv"), "--out", str(out)]
    assert main(argv) == 0
    cfg = load_config(out)
    resistance = {"prior_failed_trials": "n_failed_trials", "staging_score": "thase_rush_stage",
                  "episode_months": "episode_months", "attendance": "attendance",
                  "doses_taken": "pills_taken", "doses_prescribed": "pills_prescribed",
                  "self_report_symptom": "phq9_total"}  # fmt: skip
    assert cfg["columns"] == DEMO_COLUMNS | resistance
    assert cfg["treatment_resistance"]["staging_scale"] == "thase_rush"
    assert cfg["self_report"] == {"label": "PHQ-9", "min": 0, "max": 27}
    if (ROOT / "config" / "config.yaml").exists():
        assert cfg["columns"] == load_config(ROOT / "config" / "config.yaml")["columns"]
