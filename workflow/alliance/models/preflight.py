"""What is checked before any job runs, and the outputs a config no longer produces.

`preflight` runs when the workflow starts (workflow/rules/common.smk, once SETTINGS and SPECS are
built) and in `alliance validate`: the data files exist, every model names only columns the clean
and score stages write for this config (alliance.models.columns; a typo gets a "did you mean"),
`bootstrap.models` and `sensitivity.models` name models that are fitted, the pseudonym key
resolves and passes the key policy (alliance.clean.pseudonym), and every configured instrument
has a confirmed scoring key or is opted in (alliance.instruments.status). Every problem is
reported at once,
before anything under the results folder is written or removed.

`stale_models` and `stale_studies` list what an earlier config left in the results folder that
this one does not produce: the folder of a model since disabled or renamed; the bootstrap of a
model no longer listed, the sensitivity grid of a removed block, shard files beyond the current
shard count. The `prune_models` and `prune_studies` rules remove them at the start of a run
(`remove_stale`), so they never sit beside new results. Only folders and files the pipeline's own
jobs make are looked at: anything else in the results folder is left alone.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from alliance.clean.pseudonym import resolve_key
from alliance.errors import ConfigError
from alliance.instruments.status import unverified_key_problems
from alliance.models.base import ModelSpec
from alliance.models.columns import spec_problems
from alliance.settings import Settings


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def data_problems(settings: Settings) -> list[str]:
    """Data files named in config that do not exist (paths as resolved by alliance.config)."""
    data = settings.data
    named = [("data.sessions", data.sessions), ("data.patients", data.patients)]
    return [
        f"config key {key}: file not found: {path}"
        for key, path in named
        if path and not Path(path).is_file()
    ]


def study_problems(settings: Settings, model_ids: Sequence[str]) -> list[str]:
    """Model ids in `bootstrap.models` / `sensitivity.models` that are not fitted models."""
    out = []
    for key, listed in (
        ("bootstrap.models", settings.bootstrap.models),
        ("sensitivity.models", settings.sensitivity.models),
    ):
        for model_id in listed:
            if model_id not in model_ids:
                out.append(
                    f"config key {key}: '{model_id}' is not a model of this config"
                    f"{_suggest(model_id, model_ids)}"
                )
    return out


def key_problems(settings: Settings) -> list[str]:
    """The pseudonym key policy (missing, too short, the demo key on other data)."""
    try:
        resolve_key(settings.privacy, settings.data)
    except ConfigError as exc:
        return [str(exc)]
    return []


def model_problems(settings: Settings, specs: Iterable[ModelSpec]) -> list[str]:
    """Model columns (with "did you mean") and bootstrap / sensitivity model ids."""
    specs = list(specs)
    return [*spec_problems(specs, settings), *study_problems(settings, [s.id for s in specs])]


def preflight(settings: Settings, specs: Iterable[ModelSpec]) -> None:
    """Raise one ConfigError listing every problem that would stop the run (none: return)."""
    missing = data_problems(settings)
    problems = [
        *missing,
        *model_problems(settings, specs),
        *([] if missing else key_problems(settings)),
        *unverified_key_problems(settings.alliance, settings.symptoms),
    ]
    if problems:
        raise ConfigError(
            "the run cannot start (nothing was written or removed):\n  - " + "\n  - ".join(problems)
        )


# ---------------------------------------------------------------------------- stale outputs
# What a model / bootstrap job writes in its folder: a folder holding none of these was not made
# by the pipeline and is never removed.
MODEL_FILES = ("fit.json", "coefficients.csv", "frame.parquet", "timing.json")
BOOTSTRAP_FILES = ("ci.csv", "draws.parquet", "shards")


def _made_by(folder: Path, names: Sequence[str]) -> list[Path]:
    """Subfolders of `folder` holding at least one of `names`."""
    if not folder.is_dir():
        return []
    return [
        d
        for d in sorted(folder.iterdir())
        if d.is_dir() and not d.is_symlink() and any((d / n).exists() for n in names)
    ]


def _shards_beyond(folder: Path, n_shards: int) -> list[Path]:
    """Shard files `<k>.parquet` in `folder` with k >= n_shards."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.glob("*.parquet") if p.stem.isdigit() and int(p.stem) >= n_shards
    )


def stale_models(results: str | Path, models: Sequence[str]) -> list[Path]:
    """Model folders under `results/models/` of models not in `models`."""
    folder = Path(results) / "models"
    return [d for d in _made_by(folder, MODEL_FILES) if d.name not in models]


def stale_studies(
    results: str | Path,
    *,
    bootstrap: Sequence[str] = (),
    bootstrap_shards: int = 1,
    sensitivity: Sequence[str] = (),
    sensitivity_shards: int = 1,
) -> list[Path]:
    """Bootstrap folders of models not in `bootstrap`, shard files beyond the shard counts, and
    the sensitivity grid when `sensitivity` lists no model."""
    out = Path(results)
    stale: list[Path] = []
    for sub in _made_by(out / "bootstrap", BOOTSTRAP_FILES):
        if sub.name in bootstrap:
            stale += _shards_beyond(sub / "shards", bootstrap_shards)
        else:
            stale.append(sub)
    folder = out / "sensitivity"
    if folder.is_dir():
        if sensitivity:
            stale += _shards_beyond(folder / "shards", sensitivity_shards)
        else:
            stale += [p for p in (folder / "grid.csv", folder / "shards") if p.exists()]
    return stale


def remove_stale(paths: Iterable[Path]) -> list[str]:
    """Remove files and folders; the paths removed, as text."""
    removed = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path.as_posix())
    return removed


def clear_folder(folder: str | Path) -> list[str]:
    """Empty a job's own output folder of files an earlier run left (a model's extras from a
    former spec); the names removed."""
    path = Path(folder)
    if not path.is_dir():
        return []
    return [Path(p).name for p in remove_stale(sorted(path.iterdir()))]
