"""Open the HTML report in headless Chromium: rendered DOM for tests, a screenshot for humans."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Flags for a closed network: no background connections, no sandbox (root), fresh profile.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=10000",
)  # fmt: skip


def chromium() -> str | None:
    """Path of a Chromium binary, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(html: Path, *args: str) -> subprocess.CompletedProcess:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("no chromium on PATH (Debian package: chromium)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args, html.resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def rendered_dom(html: Path) -> str:
    """The report's DOM after its scripts ran."""
    return _run(html, "--dump-dom").stdout


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 1000) -> Path:
    """A PNG of the report's first screen."""
    _run(html, f"--window-size={width},{height}", f"--screenshot={png.resolve()}")
    return png


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    if chromium() is None:
        print("no chromium: screenshot skipped (apt-get install chromium)", file=sys.stderr)
        raise SystemExit(0)
    print(screenshot(source, target))
