"""Write environment.yml from requirements.lock so conda users get the same pins."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)")


def lock_pins(lock: str | Path) -> dict[str, str]:
    """Package -> exact version from a uv/pip-tools requirements lock."""
    pins = {}
    for line in Path(lock).read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def environment_yaml(pins: dict[str, str]) -> str:
    """A conda environment that installs Python from conda-forge and every pin from PyPI."""
    lines = [
        "# Generated from requirements.lock by `make lock` (python -m alliance.envfile).",
        "# A test fails if the two drift apart.",
        "name: alliance-outcomes",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {name}=={version}" for name, version in sorted(pins.items())]
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(
        environment_yaml(lock_pins(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
    )
