"""One coefficient-table layout for every model the pipeline fits.

Mixed models, Cox models and meta-analyses all report through `coef_table`, so downstream
tables and figures read the same columns whatever produced them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# scipy.special, not scipy.stats: the same functions (stats.t and stats.norm call these), and
# importing scipy.stats costs about a second in every model job.
from scipy import special

COEF_COLUMNS = [
    "term",
    "estimate",
    "std_error",
    "statistic",
    "df",
    "p_value",
    "ci_low",
    "ci_high",
]


def coef_table(
    terms: Sequence[str],
    estimate: np.ndarray,
    std_error: np.ndarray,
    df: np.ndarray | float = np.inf,
    *,
    level: float = 0.95,
) -> pd.DataFrame:
    """Wald table: statistic = estimate / SE, two-sided p and CI from t(df) (normal when df=inf).

    Rows with infinite df give z-tests, as R reports for GLMMs and Cox models; finite df give
    t-tests, as lmerTest reports with Satterthwaite df.
    """
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    dfs = np.broadcast_to(np.asarray(df, dtype=float), est.shape).copy()
    stat = est / se
    # an unavailable df (NaN) leaves p and CI undefined rather than silently normal
    p = np.full_like(est, np.nan)
    q = np.full_like(est, np.nan)
    normal = np.isposinf(dfs)
    finite = np.isfinite(dfs)
    p[normal] = 2.0 * special.ndtr(-np.abs(stat[normal]))  # norm.sf
    q[normal] = special.ndtri(0.5 + level / 2.0)  # norm.ppf
    p[finite] = 2.0 * special.stdtr(dfs[finite], -np.abs(stat[finite]))  # t.sf
    q[finite] = special.stdtrit(dfs[finite], 0.5 + level / 2.0)  # t.ppf
    return pd.DataFrame(
        {
            "term": list(terms),
            "estimate": est,
            "std_error": se,
            "statistic": stat,
            "df": dfs,
            "p_value": p,
            "ci_low": est - q * se,
            "ci_high": est + q * se,
        }
    )
