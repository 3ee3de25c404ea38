"""Structural-equation models by full-information ML, checked against lavaan 0.6-14.

- `ram`: a model as lavaan-style rows (free, fixed, shared labels), its RAM matrices, implied
  moments with their analytic Jacobian, and the same model as lavaan syntax.
- `fiml`: -log L over missing-data patterns (lavaan `missing = "ml"`), its gradient and the
  expected information; the saturated model's log L by EM.
- `fit`: Fisher scoring then Newton to a tight gradient; SEs from the observed information
  (lavaan's default with missing = "ml"); convergence and admissibility facts.
- `riclpm`: the random-intercept cross-lagged panel model (Hamaker et al. 2015) built in RAM form,
  start values, and a simulator with known truth.
"""

from alliance.engine.sem.fit import INFORMATION, SemFit, fit_sem
from alliance.engine.sem.ram import ModelBuilder, Ram
from alliance.engine.sem.riclpm import Riclpm, Truth, riclpm_model, simulate_panel, start_values

__all__ = [
    "INFORMATION", "ModelBuilder", "Ram", "Riclpm", "SemFit", "Truth", "fit_sem",
    "riclpm_model", "simulate_panel", "start_values",
]  # fmt: skip
