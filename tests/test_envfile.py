"""environment.yml carries exactly the pins of requirements.lock."""

from conftest import ROOT

from alliance.envfile import environment_yaml, lock_pins


def test_environment_yml_matches_lock():
    pins = lock_pins(ROOT / "requirements.lock")
    assert {"pandas", "numpy", "snakemake", "mixedlm", "statsmodels", "pingouin"} <= set(pins)
    expected = environment_yaml(pins)
    actual = (ROOT / "environment.yml").read_text()
    assert actual == expected, "environment.yml drifted from requirements.lock: run `make lock`"
