"""Run one model spec end to end and write its fixed set of outputs; summarise many.

Outputs of `run_model` in `<outdir>` (results/models/<id>/), always, whatever the status:
- `coefficients.csv`: COEF_COLUMNS, one row per term (header only when skipped / failed);
- `fit.json`: status (fitted / skipped / failed) and reason, kind, engine, n, logLik, variance
  components, ICCs, convergence, singularity, warnings verbatim, df method, formula_r, how the
  frame was built. Deterministic: identical inputs give a byte-identical file;
- `timing.json`: fit seconds (kept out of fit.json so that file stays reproducible);
- `frame.parquet`: the rows and columns fitted (empty when skipped);
- one `<name>.csv` per extra (simple_slopes, contrasts, predictions, random_effects, ...).

Failure policy: a ConfigError (bad spec) propagates; Skipped (measure unavailable) and numerical
failures of the fit (InputError from the engine, linear-algebra or convergence errors) are
written with status skipped / failed, so one model cannot stop the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alliance import files
from alliance.errors import ConfigError, InputError
from alliance.models import multiplicity as families
from alliance.models.base import (
    COEF_COLUMNS,
    FitContext,
    ModelResult,
    ModelSpec,
    Skipped,
    kind_function,
)
from alliance.models.frames import FrameMeta, model_frame
from alliance.settings import ModelSettings, MultiplicitySettings

SUMMARY_COLUMNS = [
    "model", "label", "kind", "term", "estimate", "std_error", "ci_low", "ci_high", "p_value",
    "p_holm", "p_bh", "family", "n_obs", "converged", "singular", "status", "reason",
]  # fmt: skip
FIXED_OUTPUTS = ("coefficients.csv", "fit.json", "timing.json", "frame.parquet")
# Numerical failures of a fit; anything else (TypeError, KeyError, ...) is a bug and propagates.
FIT_FAILURES = (InputError, ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)
_TIMING_KEYS = ("fit_seconds",)


def fit_model(
    spec: ModelSpec,
    sessions: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    availability: Mapping[str, Any],
    settings: ModelSettings,
) -> tuple[ModelResult, dict[str, float]]:
    """Frame + fit in memory (no files): a ModelResult whose fit holds the status.

    Returns (result, timing). Reusable for simulation studies on in-memory tables.
    """
    start = time.perf_counter()
    header = {
        "id": spec.id,
        "label": spec.label or spec.id,
        "kind": spec.kind,
        "note": spec.options.get("note"),
        "sensitivity": bool(spec.options.get("sensitivity")),
    }
    codings = settings.codings
    try:
        frame, meta = model_frame(
            spec, sessions, patients, availability,
            arms=codings.arm, arm_reference=codings.arm_reference,
        )  # fmt: skip
    except Skipped as exc:
        return _empty(spec, header, "skipped", exc.reason), {"total_seconds": _since(start)}
    try:
        result = kind_function(spec.kind)(meta.spec, frame, FitContext.from_settings(settings))
    except Skipped as exc:
        return _empty(spec, header, "skipped", exc.reason, frame, meta), {
            "total_seconds": _since(start)
        }
    except ConfigError:
        raise
    except FIT_FAILURES as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return _empty(spec, header, "failed", reason, frame, meta), {"total_seconds": _since(start)}
    timing = {k: float(result.fit.pop(k)) for k in _TIMING_KEYS if k in result.fit}
    timing["total_seconds"] = _since(start)
    result.fit = {
        **header,
        "status": "fitted",
        "reason": "",
        "key_terms": list(spec.key_terms),
        **result.fit,
        "frame": meta.to_json(),
    }
    return result, timing


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _empty(
    spec: ModelSpec,
    header: dict[str, Any],
    status: str,
    reason: str,
    frame: pd.DataFrame | None = None,
    meta: FrameMeta | None = None,
) -> ModelResult:
    fit = {**header, "status": status, "reason": reason, "key_terms": list(spec.key_terms)}
    if meta is not None:
        fit["formula"] = meta.formula
        fit["frame"] = meta.to_json()
    return ModelResult(
        coefficients=pd.DataFrame(columns=COEF_COLUMNS),
        fit=fit,
        frame=frame if frame is not None else pd.DataFrame(),
    )


def write_result(
    result: ModelResult, timing: Mapping[str, float], outdir: str | Path
) -> dict[str, Path]:
    """Write the fixed outputs + extras; remove extras a previous run left behind."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    coefs = result.coefficients.reindex(columns=COEF_COLUMNS)
    frame = result.frame.copy()
    frame.attrs = {}
    paths = {
        "coefficients": files.write_csv(coefs, out / "coefficients.csv"),
        "fit": files.write_json(result.fit, out / "fit.json"),
        "timing": files.write_json(dict(timing), out / "timing.json"),
        "frame": files.write_parquet(frame, out / "frame.parquet"),
    }
    for name, table in sorted(result.extras.items()):
        if f"{name}.csv" in FIXED_OUTPUTS or "/" in name:
            raise ValueError(f"extra name {name!r} collides with a fixed output or is not a name")
        paths[name] = files.write_csv(table, out / f"{name}.csv")
    keep = {p.name for p in paths.values()}
    for old in out.glob("*.csv"):
        if old.name not in keep:
            old.unlink()
    return paths


def run_model(
    spec: ModelSpec,
    sessions: pd.DataFrame | None,
    patients: pd.DataFrame | None,
    availability: Mapping[str, Any],
    settings: ModelSettings,
    outdir: str | Path,
) -> ModelResult:
    """Fit one spec on in-memory tables and write `<outdir>/` (see module docstring)."""
    result, timing = fit_model(spec, sessions, patients, availability, settings)
    write_result(result, timing, outdir)
    return result


def load_result(outdir: str | Path) -> ModelResult:
    """Read a model folder back (coefficients + fit.json + extras; the frame is not loaded)."""
    out = Path(outdir)
    fit = json.loads((out / "fit.json").read_text(encoding="utf-8"))
    coefs = files.read_csv(out / "coefficients.csv")
    extras = {
        p.stem: files.read_csv(p) for p in sorted(out.glob("*.csv")) if p.name != "coefficients.csv"
    }
    return ModelResult(coefficients=coefs, fit=fit, frame=pd.DataFrame(), extras=extras)


def summarise(
    results: Mapping[str, ModelResult | Skipped],
    specs: Mapping[str, ModelSpec] | None = None,
    multiplicity: MultiplicitySettings | None = None,
) -> pd.DataFrame:
    """results/models/summary.csv: key terms of every fitted model, one row per skipped/failed.

    Rows of a fitted model are its `key_terms` (all terms when it names none) and any term a
    multiplicity family names. A bare Skipped takes label and kind from `specs` when given.
    With `multiplicity`, p_holm / p_bh are adjusted within each family (alliance.models.
    multiplicity); entries not fitted are rows with status "not fitted".
    """
    rows: list[dict[str, Any]] = []
    specs = specs or {}
    named = families.extra_terms(multiplicity)
    statuses: dict[str, tuple[str, str]] = {}
    labels = {i: (s.label or s.id, s.kind) for i, s in specs.items()}
    for model_id, res in results.items():
        spec = specs.get(model_id)
        if isinstance(res, Skipped):
            statuses[model_id] = ("skipped", res.reason)
            rows.append(
                {"model": model_id, "label": (spec.label or spec.id) if spec else model_id,
                 "kind": spec.kind if spec else "", "status": "skipped", "reason": res.reason}
            )  # fmt: skip
            continue
        fit = res.fit
        base = {
            "model": model_id,
            "label": fit.get("label") or model_id,
            "kind": fit.get("kind", ""),
            "n_obs": fit.get("n_obs"),
            "converged": fit.get("converged"),
            "singular": fit.get("singular"),
            "status": fit.get("status", "fitted"),
            "reason": fit.get("reason", ""),
        }
        coefs = res.coefficients
        statuses[model_id] = (str(base["status"]), str(base["reason"] or ""))
        labels[model_id] = (str(base["label"]), str(base["kind"]))
        if base["status"] != "fitted" or coefs.empty:
            rows.append(base)
            continue
        key = list(fit.get("key_terms") or (spec.key_terms if spec else ()))
        chosen = coefs[coefs["term"].isin(key)] if key else coefs
        if key and chosen.empty:
            base["reason"] = f"none of the key terms {key} is a coefficient"
            rows.append(base)
        extra = named.get(model_id, set()) - set(chosen["term"])
        chosen = pd.concat([chosen, coefs[coefs["term"].isin(extra)]])
        for _, c in chosen.iterrows():
            rows.append({**base, **{k: c[k] for k in SUMMARY_COLUMNS if k in c.index}})
    out = pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS if c not in families.ADDED])
    fitted = {i: r for i, r in results.items() if not isinstance(r, Skipped)}
    sensitivity = {i for i, r in fitted.items() if r.fit.get("sensitivity")}
    sensitivity |= {i for i, sp in specs.items() if sp.options.get("sensitivity")}
    # rows a kind derives from another row's test (fit.json `derived_terms`): one hypothesis
    derived = {(i, t) for i, r in fitted.items() for t in r.fit.get("derived_terms") or ()}
    out = families.add_families(out, multiplicity, statuses, labels, sensitivity, derived)
    out = out[SUMMARY_COLUMNS]
    for col in ("estimate", "std_error", "ci_low", "ci_high", "p_value", *families.ADDED[:-1]):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    for col in ("converged", "singular"):
        out[col] = out[col].astype("boolean")
    out["n_obs"] = out["n_obs"].astype("Int64")
    return out
