"""Foreign trial exports for `alliance init` tests: four ways real exports differ from the demo.

Run `python tests/onboard_fixtures/make_fixtures.py` to rewrite the files next to this script; the
output is byte for byte the same on every run (fixed seed, SPSS header timestamp pinned), and
`tests/test_onboard_exports.py` checks that the committed files are what this script writes.

One simulated trial (20 patients, 4 therapists, 4 sessions; dropouts attend 2 sessions, one
completer misses session 3) is written four ways, none named like the demo:

- `trial_a_upper.sav` — SPSS, wide, upper case, session token at the end and mid-name
  (`HAMD_S01`, `HAMD03_S04`, `WAIp_s03_i07`), codes as value labels (arm, status, sex, event),
  WAI items with a declared user-missing -9, relapse as `RELWEEKS` + a 0/1 `EVT` next to it.
- `trial_b_visitfirst.csv` — CSV, wide, session first (`Visit3_WAI_12`, `Visit1_HDRS`), day-first
  dates as text, codes as words, a 1-7 WAI with no rater word, status in an `Outcome` column.
- `trial_c_items_first.csv` — `;`-separated, lower case, item before session with a `t` token
  (`wai_p_07_t3`, `wai_t_07_t3`, `bdi_t2`), numeric arm codes, a 0/1 dropout flag, -99 for
  missing answers, German sex codes, relapse as `rel_wk` / `rel_ev`.
- `trial_d_dots.tsv` — tab-separated, dotted session token (`HAMD.V02`, `WAI_P.V01.Q07`), the
  HAM-D suicide item alone (`HAMD_ITEM3.V02`), ISO dates, a 0/1 completer flag.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20240613
N, SESSIONS, THERAPISTS = 20, 4, 4
# HAM-D 17 item maxima (items 4-6, 12-14, 16, 17 are scored 0-2).
HAMD_MAX = [4, 4, 4, 2, 2, 2, 4, 4, 4, 4, 4, 2, 2, 2, 4, 2, 2]
SAV_STAMP = b"01 Jan 2400:00:00"  # SPSS header creation date + time, pinned
SAV_STAMP_AT = 92


def trial() -> dict[str, object]:
    """The simulated trial, one value per patient or per patient x session (NaN: not attended)."""
    rng = np.random.default_rng(SEED)
    dropout = np.array([i % 5 == 4 for i in range(N)])
    attended = np.ones((N, SESSIONS), dtype=bool)
    attended[dropout, 2:] = False
    attended[1, 2] = False  # a completer who missed session 3
    severity = rng.uniform(0.45, 0.7, N)  # share of the maximum at session 1
    drop_rate = np.where(rng.uniform(size=N) < 0.6, 0.11, 0.03)  # responders improve faster
    hamd = np.full((N, SESSIONS, 17), np.nan)
    for i in range(N):
        for s in range(SESSIONS):
            if attended[i, s]:
                level = max(0.05, severity[i] - drop_rate[i] * s)
                raw = level * np.array(HAMD_MAX) + rng.normal(0, 0.5, 17)
                hamd[i, s] = np.clip(np.rint(raw), 0, HAMD_MAX)
    alliance = rng.normal(3.4, 0.6, N)
    wai_p = np.full((N, SESSIONS, 12), np.nan)
    wai_t = np.full((N, SESSIONS, 12), np.nan)
    for i in range(N):
        for s in range(SESSIONS):
            if attended[i, s]:
                wai_p[i, s] = np.clip(np.rint(alliance[i] + 0.1 * s + rng.normal(0, 0.6, 12)), 1, 5)
                wai_t[i, s] = np.clip(np.rint(alliance[i] + rng.normal(0, 0.5, 12)), 1, 5)
    totals = np.nansum(hamd, axis=2)
    totals[~attended] = np.nan
    first, last = totals[:, 0], np.array([totals[i][attended[i]][-1] for i in range(N)])
    followed = (~dropout) & (last <= 0.5 * first)
    relapse_event = np.where(followed, (np.arange(N) % 3 == 0).astype(float), np.nan)
    relapse_weeks = np.where(followed, rng.integers(6, 52, N).astype(float), np.nan)
    start = [dt.date(2021, 3, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 200, N)]
    return {
        "dropout": dropout, "attended": attended, "hamd": hamd, "totals": totals,
        "wai_p": wai_p, "wai_t": wai_t, "relapse_event": relapse_event,
        "relapse_weeks": relapse_weeks, "start": start,
        "therapist": np.arange(N) % THERAPISTS, "arm3": np.arange(N) // 2 % 3,
        "arm2": np.arange(N) // 2 % 2, "age": rng.integers(19, 66, N),
        "female": rng.uniform(size=N) < 0.6,
    }  # fmt: skip


def session_date(t: dict, i: int, s: int) -> dt.date | None:
    """Weekly sessions from the patient's start date; None when not attended."""
    return t["start"][i] + dt.timedelta(days=7 * s) if t["attended"][i, s] else None


def export_a(t: dict, out: Path) -> Path:
    """SPSS, wide, upper case; `_S01` at the end and `_s01` mid-name; labelled codes."""
    import pyreadstat

    cols: dict[str, list] = {
        "PATNR": [1001.0 + i for i in range(N)],
        "THER_ID": [float(k + 1) for k in t["therapist"]],
        "ARM": [float(a + 1) for a in t["arm3"]],
        "TXEND": [2.0 if d else 1.0 for d in t["dropout"]],
        "AGE": [float(a) for a in t["age"]],
        "SEX": [2.0 if f else 1.0 for f in t["female"]],
    }
    for s in range(SESSIONS):
        tag = f"{s + 1:02d}"
        cols[f"DATE_S{tag}"] = [session_date(t, i, s) for i in range(N)]  # SPSS DATE
        cols[f"HAMD_S{tag}"] = list(t["totals"][:, s])
        for k in range(17):
            cols[f"HAMD{k + 1:02d}_S{tag}"] = list(t["hamd"][:, s, k])
        for rater, key in (("p", "wai_p"), ("t", "wai_t")):
            for k in range(12):
                cols[f"WAI{rater}_s{tag}_i{k + 1:02d}"] = list(t[key][:, s, k])
    cols["RELWEEKS"] = list(t["relapse_weeks"])
    cols["EVT"] = list(t["relapse_event"])
    frame = pd.DataFrame(cols)
    frame.loc[[3, 8], "WAIp_s02_i05"] = -9.0  # item non-response, declared user-missing
    frame.loc[11, "WAIt_s01_i09"] = -9.0
    wai = [c for c in frame if c.startswith("WAI")]
    path = out / "trial_a_upper.sav"
    pyreadstat.write_sav(
        frame,
        str(path),
        variable_value_labels={
            "ARM": {
                1.0: "Cognitive Behavioural Therapy",
                2.0: "Sertraline + CM",
                3.0: "Placebo + CM",
            },
            "TXEND": {1.0: "completed", 2.0: "drop-out"},
            "SEX": {1.0: "male", 2.0: "female"},
            "EVT": {0.0: "no", 1.0: "yes"},
            **{c: {1.0: "never", 5.0: "always", -9.0: "no answer"} for c in wai},
        },  # fmt: skip
        missing_ranges={c: [-9.0] for c in wai},
    )
    blob = bytearray(path.read_bytes())
    blob[SAV_STAMP_AT : SAV_STAMP_AT + len(SAV_STAMP)] = SAV_STAMP
    path.write_bytes(bytes(blob))
    return path


def _dmy(d: dt.date | None) -> str:
    return "" if d is None else d.strftime("%d/%m/%Y")


def export_b(t: dict, out: Path) -> Path:
    """CSV, wide, session token first (`Visit3_WAI_12`); day-first text dates; word codes."""
    arms = ["Cognitive therapy", "Antidepressant medication", "Pill placebo"]
    rows = []
    for i in range(N):
        row: dict[str, object] = {
            "Participant": f"P-{i + 1:03d}",
            "Therapist": ["Dr Adams", "Dr Baker", "Dr Chen", "Dr Diaz"][t["therapist"][i]],
            "Allocation": arms[t["arm3"][i]],
            "Consent": _dmy(t["start"][i] - dt.timedelta(days=9)),
            "Age (years)": int(t["age"][i]),
            "Gender": "F" if t["female"][i] else "M",
            "Outcome": "early termination" if t["dropout"][i] else "completer",
        }
        for s in range(SESSIONS):
            visit = f"Visit{s + 1}"
            here = t["attended"][i, s]
            row[f"{visit}_Date"] = _dmy(session_date(t, i, s))
            row[f"{visit}_HDRS"] = int(t["totals"][i, s]) if here else ""
            row[f"{visit}_HDRS_item03"] = int(t["hamd"][i, s, 2]) if here else ""
            for k in range(12):  # a 1-7 WAI-S: 1-5 answers stretched
                value = t["wai_p"][i, s, k]
                row[f"{visit}_WAI_{k + 1:02d}"] = int(1 + (value - 1) * 1.5) if here else ""
        row["time_to_relapse"] = _num(t["relapse_weeks"][i])
        row["relapsed"] = _num(t["relapse_event"][i])
        rows.append(row)
    path = out / "trial_b_visitfirst.csv"
    pd.DataFrame(rows).to_csv(path, index=False, lineterminator="\n")
    return path


def _num(x: float) -> object:
    return "" if np.isnan(x) else int(x)


def export_c(t: dict, out: Path) -> Path:
    """`;`-separated, item before session (`wai_p_07_t3`); numeric arm codes; -99 missing."""
    rows = []
    for i in range(N):
        row: dict[str, object] = {
            "id": 501 + i,
            "clinician": f"c{t['therapist'][i] + 1}",
            "group": int(t["arm2"][i] + 1),
            "site": "north" if i < 10 else "south",
            "dropout": int(t["dropout"][i]),
            "age": int(t["age"][i]),
            "sex": "w" if t["female"][i] else "m",
        }
        for s in range(SESSIONS):
            here = t["attended"][i, s]
            # BDI-II total from the HAM-D severity (0-63 scale)
            row[f"bdi_t{s + 1}"] = int(round(t["totals"][i, s] * 1.2)) if here else ""
        for rater, key in (("p", "wai_p"), ("t", "wai_t")):
            for k in range(12):
                for s in range(SESSIONS):
                    here = t["attended"][i, s]
                    row[f"wai_{rater}_{k + 1:02d}_t{s + 1}"] = int(t[key][i, s, k]) if here else ""
        row["rel_wk"] = _num(t["relapse_weeks"][i])
        row["rel_ev"] = _num(t["relapse_event"][i])
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.loc[[2, 9], "wai_p_04_t2"] = -99
    frame.loc[6, "wai_t_11_t1"] = -99
    path = out / "trial_c_items_first.csv"
    frame.to_csv(path, index=False, sep=";", lineterminator="\n")
    return path


def export_d(t: dict, out: Path) -> Path:
    """Tab-separated, dotted token (`HAMD.V02`, `WAI_P.V01.Q07`); suicide item alone; ISO dates."""
    rows = []
    for i in range(N):
        row: dict[str, object] = {
            "PID": f"{i + 1:04d}",
            "THERAPIST": f"TH{t['therapist'][i] + 1}",
            "TREATMENT": ["IPT", "Escitalopram"][t["arm2"][i]],
            "COMPLETER": int(not t["dropout"][i]),
            "AGE_AT_BASELINE": int(t["age"][i]),
        }
        for s in range(SESSIONS):
            v = f"V{s + 1:02d}"
            here = t["attended"][i, s]
            d = session_date(t, i, s)
            row[f"VISITDATE.{v}"] = d.isoformat() if d else ""
            row[f"HAMD.{v}"] = int(t["totals"][i, s]) if here else ""
            row[f"HAMD_ITEM3.{v}"] = int(t["hamd"][i, s, 2]) if here else ""
            for rater, key in (("P", "wai_p"), ("T", "wai_t")):
                for k in range(12):
                    value = int(t[key][i, s, k]) if here else ""
                    row[f"WAI_{rater}.{v}.Q{k + 1:02d}"] = value
        row["RELAPSE_WKS"] = _num(t["relapse_weeks"][i])
        row["RELAPSE"] = _num(t["relapse_event"][i])
        rows.append(row)
    path = out / "trial_d_dots.tsv"
    pd.DataFrame(rows).to_csv(path, index=False, sep="\t", lineterminator="\n")
    return path


def main(out: Path = HERE) -> list[Path]:
    """Write every fixture into `out` (this folder by default); return the paths."""
    t = trial()
    return [export(t, out) for export in (export_a, export_b, export_c, export_d)]


if __name__ == "__main__":
    for written in main():
        print(written.name)
