"""Config and instrument YAML is untrusted: plain values only, bounded, never templated."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from alliance.config import MAX_YAML_BYTES, load_config, load_yaml_mapping, safe_yaml
from alliance.errors import ConfigError
from alliance.instruments.definition import load_instrument

ROOT = Path(__file__).resolve().parents[1]


def _bomb(levels: int = 9) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "python_apply": ("x: !!python/object/apply:os.system ['touch {marker}']\n", "tag"),
    "python_name": ("x: !!python/name:os.system\n", "tag"),
    "python_new": ("x: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n", "tag"),
    "custom_tag": ("x: !shell touch {marker}\n", "tag"),
    "yte_marker": (
        "__use_yte__: true\ntrial_name: ?__import__('os').system('touch {marker}')\n",
        "templating",
    ),  # fmt: skip
    "yte_if_key": ("models:\n  ?if True:\n    x: 1\n", "templating"),
    "yte_definitions": ("__definitions__:\n  - import os\n", "templating"),
    "alias_bomb": (_bomb(), "aliases"),
    "recursive_alias": ("a: &a [*a]\n", "aliases"),
    "deep_nesting": ("[" * 20000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_and_runs_nothing(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text, expected = HOSTILE[case]
    path = tmp_path / "config.yaml"
    path.write_text(text.format(marker=marker))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)
    assert not marker.exists()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"reading {case} grew the process by {grown_mb:.0f} MB"


def test_oversized_files_are_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml_mapping(path)


def test_ordinary_anchors_still_work() -> None:
    text = "base: &fixed [weeks, arm]\nother: *fixed\n"
    assert safe_yaml(text, "t.yaml") == {"base": ["weeks", "arm"], "other": ["weeks", "arm"]}


def test_values_that_only_look_like_templates_are_plain_strings() -> None:
    # Values are never evaluated, so a question mark in a label is just text.
    assert safe_yaml("trial_name: '?1 + 1'\n", "t.yaml") == {"trial_name": "?1 + 1"}


def test_non_mapping_and_non_utf8_files_are_named_errors(tmp_path: Path) -> None:
    seq = tmp_path / "seq.yaml"
    seq.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_yaml_mapping(seq)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("trial_name: Zürich\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml_mapping(latin)


def test_instrument_files_go_through_the_same_reader(tmp_path: Path) -> None:
    (tmp_path / "evil.yaml").write_text("name: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="tag"):
        load_instrument("evil", tmp_path)
    assert load_instrument("wai_sr", ROOT / "config" / "instruments").n_items == 12


# --- the workflow reads the config itself ------------------------------------------------------


def test_the_workflow_refuses_templating_before_running_anything(tmp_path: Path) -> None:
    from workflow_helpers import absolute_config, run_snakemake

    marker = tmp_path / "pwned"
    config = absolute_config(ROOT / "config" / "config.yaml", tmp_path)
    config.write_text(
        "__use_yte__: true\n"
        + f"trial_name: ?__import__('os').system('touch {marker}')\n"
        + config.read_text().split("\n", 1)[1]
    )
    proc = run_snakemake(tmp_path, config, extra=("-n",))
    assert proc.returncode != 0
    assert "templating markers" in proc.stderr + proc.stdout
    assert not marker.exists()
    assert not (tmp_path / "results").exists()


def test_the_workflow_refuses_snakemakes_own_configfile(tmp_path: Path) -> None:
    import subprocess

    from workflow_helpers import SNAKEMAKE

    proc = subprocess.run(
        [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(ROOT / "config" / "config.yaml"), "-n"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "configpath" in proc.stderr + proc.stdout
