"""Process-tree sampling: wall time and peak RSS per pipeline stage, from psutil every 0.2 s.

Why: Snakemake runs every stage as its own process; sampling the tree attributes time and
memory to the stage (the script a job runs) rather than to the run as a whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class _Proc:
    stage: str
    first: float
    last: float
    rss: int = 0


@dataclass
class TreeSampler:
    """Samples RSS of a process and its descendants every `interval` seconds (psutil).

    A job is one process; its stage is the script it runs (Snakemake writes `script:` jobs as
    .snakemake/scripts/tmpXXXX.<script>.py), else the program name.
    """

    pid: int
    interval: float = 0.2
    procs: dict[tuple[int, float], _Proc] = field(default_factory=dict)
    peak_total: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for proc in procs:
                try:
                    key = (proc.pid, proc.create_time())
                    rss = proc.memory_info().rss
                    if key not in self.procs:
                        self.procs[key] = _Proc(stage_name(proc.cmdline()), now, now)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                total += rss
                rec = self.procs[key]
                rec.last, rec.rss = now, max(rec.rss, rss)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def stages(self) -> dict[str, dict[str, float]]:
        """Per stage: jobs, longest and summed job lifetime (s), largest job peak RSS (MB)."""
        out: dict[str, dict[str, float]] = {}
        for rec in self.procs.values():
            if rec.stage in ("", "shell"):
                continue
            row = out.setdefault(rec.stage, {"jobs": 0, "max_s": 0.0, "sum_s": 0.0, "rss_mb": 0})
            life = rec.last - rec.first + self.interval  # seen from one sample to the next
            row["jobs"] += 1
            row["max_s"] = round(max(row["max_s"], life), 2)
            row["sum_s"] = round(row["sum_s"] + life, 2)
            row["rss_mb"] = round(max(row["rss_mb"], rec.rss / 2**20), 1)
        return dict(sorted(out.items()))


def stage_name(cmdline: Sequence[str]) -> str:
    """The stage of a process: its Snakemake script, the scheduler, "shell", or the program."""
    for arg in cmdline[1:]:
        name = Path(arg).name
        if "/.snakemake/scripts/" in arg and name.endswith(".py"):
            return name.split(".", 1)[1].removesuffix(".py")  # tmpXXXX.model.py -> model
    if any(Path(a).name == "snakemake" for a in cmdline[:2]):
        return "snakemake (scheduler)"
    prog = Path(cmdline[0]).name if cmdline else ""
    return "shell" if prog in ("sh", "bash", "dash") else prog
