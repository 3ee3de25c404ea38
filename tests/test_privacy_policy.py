"""Privacy policy (issue #12): the pseudonym key policy, no row-level table in report.html, and
small counts that cannot be recovered from totals (Table 1 always; the participant flow, the
overview page and the flow figure with `privacy.suppress_small_cells`)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import FIXTURE_KEY, ROOT
from disclosure_attack import (
    flow_ranges,
    fully_withheld,
    possible_values,
    recovered_table1,
    table1_blocks,
)
from test_bad_inputs import load_case

from alliance import files
from alliance.clean.pseudonym import DEMO_KEY, DEMO_SHA256, file_sha256, resolve_key
from alliance.clean.stage import clean_trial, write_clean
from alliance.config import load_config
from alliance.errors import ConfigError
from alliance.render.figures.flow import draw_flow
from alliance.render.stage import overview_html
from alliance.render.tables import table1
from alliance.score.stage import run_score, write_score
from alliance.settings import Settings
from alliance.simulate.export import write_trial
from alliance.simulate.trial import simulate_trial

PSEUDONYM = re.compile(r"\b[PTS]-[0-9a-f]{10}\b")
HOW_TO = 'export ALLIANCE_PSEUDONYM_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")'


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)


def demo_settings(config: str = "config/config.yaml", **data) -> Settings:
    cfg = yaml.safe_load((ROOT / config).read_text())
    for key in ("sessions", "patients"):  # relative to the config file's folder
        if cfg["data"].get(key):
            cfg["data"][key] = os.path.normpath((ROOT / config).parent / cfg["data"][key])
    cfg["data"].update(data)
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    return Settings.from_config(cfg)


# ----------------------------------------------------------------------------------- key policy
def test_demo_hashes_are_the_committed_demo_files():
    committed = sorted([*ROOT.glob("data/demo/*.csv"), *ROOT.glob("data/demo_wide/*.sav")])
    assert {file_sha256(p): str(p.relative_to(ROOT)) for p in committed} == DEMO_SHA256


@pytest.mark.parametrize("config", ["config/config.yaml", "config/demo_wide_spss.yaml"])
def test_demo_key_runs_the_bundled_demo_wherever_it_lies(config, tmp_path):
    s = demo_settings(config)
    assert s.privacy.key == DEMO_KEY
    assert resolve_key(s.privacy, s.data) == DEMO_KEY.encode()
    copy = tmp_path / Path(s.data.sessions).name  # the bytes decide, not the folder
    shutil.copy(s.data.sessions, copy)
    moved = demo_settings(config, sessions=str(copy))
    assert resolve_key(moved.privacy, moved.data) == DEMO_KEY.encode()


def test_demo_key_is_refused_on_any_other_data(tmp_path, monkeypatch):
    s = demo_settings()
    edited = tmp_path / "sessions.csv"
    edited.write_bytes(Path(s.data.sessions).read_bytes().replace(b"\n", b"\r\n", 1))
    messages = []
    for data in (
        demo_settings(sessions=str(edited)).data,  # one byte more
        demo_settings(patients=str(ROOT / "tests/bad_inputs/_base/patients.csv")).data,
        demo_settings(sessions=str(tmp_path / "absent.csv")).data,
    ):
        with pytest.raises(ConfigError) as err:
            resolve_key(s.privacy, data)
        messages.append(str(err.value))
    for text in messages:
        assert "config key privacy.key holds the public demo key" in text and HOW_TO in text
    assert "data.sessions" in messages[0] and "differs from every bundled demo file" in messages[0]
    assert "data.patients" in messages[1] and "data.sessions" not in messages[1]
    assert "absent.csv) cannot be read" in messages[2]
    # from the environment too, on the fixture trial
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", DEMO_KEY)
    cfg, _ = load_case("wide_ok")
    fixture = Settings.from_config(cfg)
    with pytest.raises(ConfigError, match="environment variable ALLIANCE_PSEUDONYM_KEY holds"):
        resolve_key(fixture.privacy, fixture.data)


@pytest.mark.parametrize(
    ("key", "strength"),
    [("short", 5), ("x" * 15, 15), ("ab" * 15, 15), ("0123456789abcdef", 8),
     ("Zürich-key-1", 13)],
)  # fmt: skip
def test_short_keys_are_refused_with_the_fix(key, strength):
    s = demo_settings()
    privacy = type(s.privacy)(key_env="ALLIANCE_PSEUDONYM_KEY", key=key, min_cell=5,
                              suppress_small_cells=False)  # fmt: skip
    with pytest.raises(ConfigError) as err:
        resolve_key(privacy, s.data)
    assert f"{strength} bytes of key material, at least 16 (128 bits)" in str(err.value)
    assert HOW_TO in str(err.value)


@pytest.mark.parametrize("key", ["x" * 16, "0123456789abcdef" * 2, "f" * 64,
                                 "q83vEjRWeJCrze8SNFZ4kA", FIXTURE_KEY])  # fmt: skip
def test_keys_of_128_bits_or_more_are_accepted(key, tmp_path):
    s = demo_settings(sessions=str(tmp_path / "any.csv"))  # not the demo: no matter here
    privacy = type(s.privacy)(key_env="ALLIANCE_PSEUDONYM_KEY", key=key, min_cell=5,
                              suppress_small_cells=False)  # fmt: skip
    assert resolve_key(privacy, s.data) == key.encode()


def test_the_key_is_checked_before_any_data_is_read(tmp_path):
    cfg, _ = load_case("file_not_found")  # its data file does not exist
    cfg["privacy"]["key"] = "short"
    with pytest.raises(ConfigError, match="too short"):
        clean_trial(Settings.from_config(cfg).clean())


def _key_of(cfg: dict) -> str | None:
    return (cfg.get("privacy") or {}).get("key")


def test_every_config_and_test_key_obeys_the_policy():
    """Shipped configs and test fixtures: the demo key only on the demo, else 16+ bytes; a case
    that breaks the rule must expect the ConfigError."""
    shipped = [p for p in sorted(ROOT.glob("config/*.yaml")) if "privacy" in p.read_text()]
    assert len(shipped) >= 2
    for path in shipped:
        key = _key_of(yaml.safe_load(path.read_text()))
        s = demo_settings(str(path.relative_to(ROOT)))  # raises unless the demo key is on the demo
        assert resolve_key(s.privacy, s.data) == key.encode(), path
    base = yaml.safe_load((ROOT / "tests/bad_inputs/_base/config.yaml").read_text())
    assert len(_key_of(base).encode()) >= 32
    for case in sorted(ROOT.glob("tests/bad_inputs/*/case.yaml")):
        spec = yaml.safe_load(case.read_text())
        if "privacy" in (spec.get("config") or {}):
            assert spec["expect"]["raises"] == "ConfigError", case
    literal = re.compile(r"""setenv\("ALLIANCE_PSEUDONYM_KEY", "([^"]*)"\)""")
    for test in sorted(ROOT.glob("tests/**/*.py")):
        for key in literal.findall(test.read_text()):
            assert key == DEMO_KEY or len(key.encode()) >= 16, (test.name, key)
    assert len(FIXTURE_KEY) == 32


# ------------------------------------------------------------------- no row-level report tables
REPORTED = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
root, work = Path(sys.argv[1]), Path(sys.argv[2])
with SnakemakeApi(OutputSettings(quiet=None)) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=root / "Snakefile",
        config_settings=ConfigSettings(config={"configpath": str(root / "config/config.yaml")}),
        workdir=work)
    out = [[r.name, str(f), list(f.flags["report"].patterns or [])]
           for r in wf._workflow.rules for f in r.output if "report" in getattr(f, "flags", {})]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def report_outputs(tmp_path_factory) -> list[tuple[str, str, list[str]]]:
    """(rule, output, patterns) of every output wrapped in report(...) in workflow/rules/."""
    work = tmp_path_factory.mktemp("report_outputs")
    proc = subprocess.run([sys.executable, "-c", REPORTED, str(ROOT), str(work)], cwd=work,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]
    # The power study (results/power, its own report) is not in the default target, and every
    # file it writes comes from simulated trials plus aggregate calibration values: no patient of
    # the analysed trial can reach it (tests/test_power.py checks its tables are aggregate).
    return [r for r in found if not r[1].startswith("results/power/")]


def row_level(path: Path) -> list[str]:
    """Why a file is row-level: a patient column, or pseudonym-shaped values."""
    if path.suffix in (".csv", ".parquet"):
        try:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else files.read_csv(path)
        except pd.errors.EmptyDataError:  # a stage wrote an empty table
            return []
        text = frame.to_csv(index=False)
        why = ["a patient column"] if "patient" in frame.columns else []
    elif path.suffix == ".png":
        return []  # pixels: the SVG beside it is checked
    else:
        text, why = path.read_text(errors="replace"), []
    return why + sorted(set(PSEUDONYM.findall(text)))[:3]


def test_report_wraps_only_aggregate_clean_and_score_tables(report_outputs, tmp_path):
    """The clean and score stages run on a fixture whose validation.csv quotes a pseudonym; every
    report-wrapped output they write is aggregate."""
    wrapped = {out for _, out, _ in report_outputs}
    assert {"results/clean/flow.csv", "results/scores/reliability.csv"} <= wrapped
    cfg, _ = load_case("therapist_one_patient")
    settings = Settings.from_config(cfg)
    clean = clean_trial(settings.clean())
    results = tmp_path / "results"
    written = write_clean(clean, results / "clean")
    written |= write_score(run_score(clean.sessions, clean.patients, settings.score_stage()),
                           results / "scores")  # fmt: skip
    assert PSEUDONYM.search((results / "clean/validation.csv").read_text())
    produced = {str(p.relative_to(tmp_path)) for p in written.values()}
    for rule, out, _ in report_outputs:
        if out in produced:
            assert not row_level(tmp_path / out), (rule, out, row_level(tmp_path / out))
    other = wrapped - produced
    assert other == {
        "results/scores/alliance_icc.csv",
        "results/models/summary.csv",
        "results/tables",
        "results/figures",
        "results/figures_resistance",
        "results/report/overview.html",
        "results/report/timings.html",
    }


@pytest.mark.slow
def test_report_of_the_demo_has_no_row_level_table(report_outputs, tmp_path_factory):
    """Every report-wrapped file of a real demo run, and report.html decoded, hold no pseudonym."""
    from pipeline_runs import reference_run, with_report
    from test_privacy import DATA_URI, _unpack

    run = reference_run(tmp_path_factory)
    for rule, out, patterns in report_outputs:
        path = run.workdir / out
        found = [path] if path.is_file() else []
        for pattern in patterns:
            glob = pattern.replace("{name}", "*")
            found += sorted(path.glob(glob)) + sorted(path.glob(glob.replace(".png", ".svg")))
        assert found, (rule, out)
        for f in found:
            assert not row_level(f), (rule, str(f), row_level(f))
    report = with_report(run).read_bytes()
    assert len(DATA_URI.findall(report)) > 10
    decoded = _unpack(report).decode(errors="replace")
    assert not PSEUDONYM.findall(decoded)


# -------------------------------------------------------------------------- Table 1 small cells
def random_trial(rng: np.random.Generator) -> pd.DataFrame:
    """10-32 people in 2-3 arms (some smaller than min_cell), sex with missing values, three
    sites, an age with missing values."""
    n = int(rng.integers(10, 33))
    arms = rng.choice([f"A{i}" for i in range(int(rng.integers(2, 4)))], size=n)
    sex = np.where(rng.random(n) < rng.uniform(0.05, 0.5), "M", "F").astype(object)
    sex[rng.random(n) < 0.08] = None
    site = rng.choice(["x", "y", "z"], size=n, p=rng.dirichlet([1, 1, 1]))
    age = np.where(rng.random(n) < 0.1, np.nan, rng.normal(40, 10, n))
    return pd.DataFrame({"arm": arms, "age": age, "sex": sex, "site": site})


def true_blocks(df: pd.DataFrame) -> list[np.ndarray]:
    """The counts behind Table 1's blocks (missing age; sex; site), arms then total."""
    arms = sorted(df["arm"].unique())

    def block(values: pd.Series, levels: list) -> np.ndarray:
        rows = [[int(((df["arm"] == a) & values.eq(lv)).sum()) for a in arms] for lv in levels]
        return np.array([[*r, sum(r)] for r in rows])

    out = [block(df["age"].isna(), [True])] if df["age"].isna().any() else []
    for var in ("sex", "site"):
        levels = sorted(df[var].dropna().unique())
        filled = df[var].fillna("<missing>")
        out.append(block(filled, levels + (["<missing>"] if df[var].isna().any() else [])))
    return out


def check_table1(df: pd.DataFrame, m: int) -> tuple[int, int]:
    """Table 1 of `df` attacked; (withheld cells, cells no suppression could protect)."""
    t = table1(df, continuous=["age"], categorical=["sex", "site"], skewed=[], min_cell=m)
    ns, blocks = table1_blocks(t, m)
    truth = true_blocks(df)
    assert len(blocks) == len(truth)
    stuck = 0
    for b, i, j, value in recovered_table1(t, m):
        # a recovered cell must be fixed by the column n's alone: recovered with all withheld
        kind, counts = blocks[b][0], truth[b]
        assert counts[i, j] == value
        alone = possible_values(ns, kind, fully_withheld(counts), m)
        assert alone[(i, j)] == {value}, (b, i, j, t.body.to_string())
        stuck += 1
    body = t.body.iloc[:, 1:]
    assert not body.apply(lambda c: c.str.match(rf"^[1-{m - 1}] \(")).any().any()
    return int(body.isin(["s", f"< {m}"]).sum().sum()), stuck


def test_table1_withheld_cells_cannot_be_recovered_from_totals_and_header_n():
    rng = np.random.default_rng(20261127)
    withheld = stuck = 0
    for _ in range(40):
        w, s = check_table1(random_trial(rng), int(rng.choice([3, 5])))
        withheld, stuck = withheld + w, stuck + s
    assert withheld > 300 and stuck < withheld / 20


def test_table1_issue_case_two_small_cells_filling_the_arm_n():
    """Arm A: n = 8 = 4 F + 4 M. Before, both printed "< 5" (1..4 each) with nothing else
    withheld: 4 + 4 = 8 gave both away. Now one prints "s" (any count) and B's cells are
    withheld with it: M in A is any of 1..4 to a reader."""
    sex = list("FFFFMMMM") + ["F"] * 7 + ["M"] * 5
    df = pd.DataFrame({"arm": ["A"] * 8 + ["B"] * 12, "sex": sex})
    t = table1(df, continuous=[], categorical=["sex"], min_cell=5)
    assert t.body.iloc[1:, 1:].values.tolist() == [["s", "s", "11 (55.0%)"],
                                                   ["< 5", "s", "9 (45.0%)"]]  # fmt: skip
    assert not recovered_table1(t, 5)
    ns, blocks = table1_blocks(t, 5)
    assert possible_values(ns, *blocks[0], 5)[(1, 0)] == {1, 2, 3, 4}


# --------------------------------------------------------------------------- 32-patient trial
@pytest.fixture(scope="module")
def small_trial_run(tmp_path_factory) -> dict:
    """A simulated trial of 32 randomised patients, cleaned with the flow switch off and on."""
    folder = tmp_path_factory.mktemp("trial32")
    write_trial(simulate_trial(n_patients=32, n_therapists=4, n_sessions=8, seed=1), folder)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["data"].update(sessions=str(folder / "sessions.csv"), patients=str(folder / "patients.csv"))
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg["privacy"]["key"] = FIXTURE_KEY
    off = clean_trial(Settings.from_config(cfg).clean())
    cfg["privacy"]["suppress_small_cells"] = True
    settings = Settings.from_config(cfg)
    on = clean_trial(settings.clean())
    results = folder / "results"
    write_clean(on, results / "clean")
    (results / "models").mkdir()
    return {"off": off, "on": on, "settings": settings, "results": results}


def test_flow_is_exact_with_the_switch_off(small_trial_run):
    flow = small_trial_run["off"].flow
    assert pd.api.types.is_integer_dtype(flow["n"]) and "not randomised" not in set(flow["step"])
    assert flow["note"].isin(["", "see validation.csv"]).all()
    assert flow["n"].between(1, 4).any()  # small counts are printed: CONSORT wants them exact
    demo = Settings.from_config(load_config(ROOT / "config/config.yaml"))
    assert demo.privacy.suppress_small_cells is False


def printed_numbers(texts: list[str]) -> list[int]:
    return [int(x.replace(",", "")) for t in texts for x in re.findall(r"(?<![\w.<-])\d[\d,]*", t)]


def test_flow_with_the_switch_on_hides_small_counts_for_good(small_trial_run):
    m = small_trial_run["settings"].privacy.min_cell
    exact = small_trial_run["off"].flow
    flow = files.read_csv(small_trial_run["results"] / "clean/flow.csv")  # as written
    shown = flow["n"].astype(str)
    assert shown.isin([f"< {m}", "s"]).sum() >= 10 and not exact["n"].between(1, m - 1).all()
    numbers = [int(x) for x in shown if x.isdigit()]
    assert all(n == 0 or n >= m for n in numbers), shown.tolist()
    truth = {(r.step, r.arm): int(r.n) for r in exact.itertuples()}
    truth["not randomised", "all"] = truth["assessed", "all"] - truth["randomised", "all"]
    for r in flow.itertuples():  # what is printed is exact
        assert not str(r.n).isdigit() or int(r.n) == truth[r.step, r.arm]
    randomised = {a: n for (s, a), n in truth.items() if s == "randomised"}
    assert min(randomised.values()) >= m  # arm sizes are printed (Table 1 prints them too)
    for g in randomised:  # differences nobody prints
        get = {s: truth[s, g] for s in ("started", "completed", "dropped out", "responders",
                                        "followed for relapse")}  # fmt: skip
        truth["status unknown", g] = get["started"] - get["completed"] - get["dropped out"]
        truth["non-responders", g] = get["started"] - get["responders"]
        truth["responders not followed", g] = get["responders"] - get["followed for relapse"]
    ranges = flow_ranges(flow, m)
    withheld = {(r.step, r.arm) for r in flow.itertuples() if str(r.n) in (f"< {m}", "s")}
    assert withheld <= set(ranges)
    for name, (low, high) in ranges.items():
        assert low <= truth[name] <= high, name
        if name in withheld or 0 < truth[name] < m:  # withheld, or a small difference
            assert low < high, (name, low, high, shown.tolist())


def test_overview_and_flow_figure_show_no_small_number(small_trial_run):
    m = small_trial_run["settings"].privacy.min_cell
    results, settings = small_trial_run["results"], small_trial_run["settings"].render()
    page = overview_html(results, settings, {})
    text = html.unescape(re.sub(r"<[^>]+>", " ", page.split("<body>")[1]))
    text = text.replace(settings.symptoms.label, "")
    assert f"< {m}" in text
    assert all(n == 0 or n >= m for n in printed_numbers([text])), text
    flow = files.read_csv(results / "clean/flow.csv")
    fig = draw_flow(flow=flow, settings=settings)
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert any(f"n < {m}" in t for t in texts) and any("n withheld" in t for t in texts)
    numbers = printed_numbers(texts)
    assert numbers and all(n == 0 or n >= m for n in numbers), texts
    patients = small_trial_run["on"].patients
    randomised = patients.loc[patients["arm"].notna(), ["arm", "age", "sex", "site"]]
    withheld, stuck = check_table1(randomised.reset_index(drop=True), m)
    assert stuck == 0
