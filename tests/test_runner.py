"""alliance.runner: a job's script logs to its rule's log, records its timing, and ends quickly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from workflow_helpers import ROOT


def test_exit_job_runs_the_exit_handlers_and_exits_zero(tmp_path: Path) -> None:
    """`exit_job` skips the interpreter's teardown, not the stage timing or the log's flush."""
    code = textwrap.dedent(f"""
        import sys, types
        sys.path.insert(0, {str(ROOT / "workflow")!r})
        from alliance.runner import exit_job, script_logger
        smk = types.SimpleNamespace(log=[{str(tmp_path / "job.log")!r}], wildcards={{}})
        log = script_logger(smk, "demo")
        log.info("last line")
        exit_job()
        raise SystemExit(3)  # never reached
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "last line" in (tmp_path / "job.log").read_text()
    stamp = json.loads((tmp_path / "timing" / "demo.json").read_text())
    assert stamp["job"] == "demo" and stamp["seconds"] >= 0
