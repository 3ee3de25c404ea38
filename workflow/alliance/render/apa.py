"""APA-style number formatting: one helper per idea, used by every table, caption and report.

Conventions (APA 7, with the choices APA leaves open made once here):
- Rounding is half away from zero on the number as printed by Python's shortest `repr`
  (2.675 -> "2.68", 0.125 -> "0.13"), i.e. what a reader rounding by hand would get; binary
  float rounding (`format(2.675, ".2f")` = "2.67") would not match a hand check.
- Negative numbers use the typographic minus U+2212 ("−1.50"); a value that rounds to zero
  prints without a sign ("0.00", never "−0.00").
- Missing values (None, NaN, pd.NA) print as an em dash "—".
- Numbers of 1,000 or more get comma thousands separators (APA 6.38), except degrees of freedom.
- Quantities that cannot exceed 1 in absolute value (p, r, alpha) drop the leading zero.
- Percentages are written "24.0%": no space before the sign (APA 6.44), one decimal.

Small-cell suppression (`suppress`): a count n with 0 < n < min_cell prints as "< min_cell"
and its percentage is not shown at all (with the total known, a percentage gives the count
back). Zero is not suppressed. Complementary cells that would let a reader recompute a
suppressed count from row or column totals are suppressed too, by
`alliance.render.tables.table1` (see `complementary_suppression` there), and print as
`COMPLEMENTARY` ("s").
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Context, Decimal
from numbers import Real
from typing import Any

import pandas as pd

MISSING = "—"
MINUS = "−"
COMPLEMENTARY = "s"
_CTX = Context(prec=400, rounding=ROUND_HALF_UP)
_CHI2 = {"chi2", "chisq", "chi-square", "chi^2", "x2", "χ2", "χ²"}


def is_missing(x: Any) -> bool:
    """True for None, NaN and pandas NA (the values every helper prints as an em dash)."""
    if x is None or x is pd.NA:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _decimal(x: Any) -> Decimal:
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"expected a number, got {type(x).__name__}: {x!r}")
    return Decimal(repr(float(x)))


def round_half_up(x: float, digits: int) -> Decimal:
    """`x` rounded to `digits` decimals, ties away from zero, on its shortest decimal repr."""
    return _decimal(x).quantize(Decimal(1).scaleb(-digits), context=_CTX)


def _signed(text: str) -> str:
    return MINUS + text[1:] if text.startswith("-") else text


def _plain(d: Decimal, group: bool) -> str:
    if d == 0:
        d = abs(d)  # no "−0.00"
    text = f"{d:,f}" if group else f"{d:f}"
    return _signed(text)


def fmt_num(x: Any, digits: int = 2, *, group: bool = True) -> str:
    """`x` with `digits` decimals, U+2212 minus, thousands commas; NaN -> "—", inf -> "∞"."""
    if is_missing(x):
        return MISSING
    if isinstance(x, Real) and not isinstance(x, bool) and math.isinf(float(x)):
        return "∞" if float(x) > 0 else MINUS + "∞"
    return _plain(round_half_up(x, digits), group)


def digits_for(se: Any, digits: int = 2, most: int = 6) -> int:
    """Decimals for a coefficient row: `digits`, or more so its SE keeps two significant digits.

    Why: a path in small units (0.0153 alliance points per HAM-D point, SE 0.0021) printed with
    two decimals reads "−0.02 (0.00)", which hides both the estimate and its precision.
    """
    try:
        value = abs(float(se))
    except (TypeError, ValueError):
        return digits
    if not math.isfinite(value) or value == 0:
        return digits
    return int(min(most, max(digits, 1 - math.floor(math.log10(value)))))


def fmt_int(n: Any) -> str:
    """A count: whole number with thousands commas ("1,301"); NaN -> "—"."""
    if is_missing(n):
        return MISSING
    value = float(n)
    if not value.is_integer():
        raise ValueError(f"a count must be a whole number, got {n!r}")
    return _signed(f"{int(value):,d}")


def _no_leading_zero(text: str) -> str:
    if text.startswith("0."):
        return text[1:]
    if text.startswith(MINUS + "0."):
        return MINUS + text[2:]
    return text


def fmt_r(r: Any, digits: int = 2, *, check: bool = True) -> str:
    """A correlation-like value without the leading zero (".28", "−.05", "1.00").

    `check` rejects |r| > 1; pass `check=False` for coefficients bounded above only
    (Cronbach's alpha can be below −1), which still drop the leading zero when |x| < 1.
    """
    if is_missing(r):
        return MISSING
    if check and abs(float(r)) > 1 + 1e-12:
        raise ValueError(f"a correlation must lie in [-1, 1], got {r!r}")
    return _no_leading_zero(fmt_num(r, digits, group=False))


def fmt_p(p: Any) -> str:
    """APA p value: three decimals, no leading zero, "< .001" below .001, "> .999" near 1.

    A p below .05 that would round up to ".050" prints as "< .050", so the table never shows a
    significant result as p = .050 (or the reverse). NaN -> "—"; outside [0, 1] is an error.
    """
    if is_missing(p):
        return MISSING
    value = float(p)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a p value must lie in [0, 1], got {p!r}")
    if value < 0.001:
        return "< .001"
    rounded = round_half_up(value, 3)
    if rounded >= 1:
        return "> .999"
    if value < 0.05 and rounded >= Decimal("0.050"):
        return "< .050"
    return _no_leading_zero(_plain(rounded, group=False))


def fmt_ci(lo: Any, hi: Any, digits: int = 2, *, leading_zero: bool = True) -> str:
    """Confidence interval "[0.12, 0.34]"; either bound missing -> "—"."""
    if is_missing(lo) or is_missing(hi):
        return MISSING
    a, b = fmt_num(lo, digits), fmt_num(hi, digits)
    if not leading_zero:
        a, b = _no_leading_zero(a), _no_leading_zero(b)
    return f"[{a}, {b}]"


def fmt_df(df: Any) -> str:
    """Degrees of freedom: whole numbers plain ("17"), fractional ones to 1 decimal ("17.3")."""
    value = float(df)
    if value.is_integer():
        return str(int(value))
    return fmt_num(value, 1, group=False)


def stat_symbol(name: str) -> str:
    """Printed symbol for a test statistic name ("chi2" -> "χ²"; t, z, F unchanged)."""
    return "χ²" if name.strip().lower() in _CHI2 else name.strip()


def fmt_stat(name: str, value: Any, df: Any = None, digits: int = 2) -> str:
    """Test statistic with its df: "t(17.3) = 6.77", "χ²(2) = 5.99", "F(2, 30) = 4.12".

    A t statistic with infinite df is a Wald z test and prints as "z = 3.10", as the engines
    report GLMM and Cox tests; an unknown df (None/NaN) prints the statistic without one.
    `df` for F is a pair (df1, df2). A missing value -> "—".
    """
    if is_missing(value):
        return MISSING
    symbol = stat_symbol(name)
    number = fmt_num(value, digits, group=False)
    dfs = list(df) if isinstance(df, tuple | list) else [df]
    if any(d is None or is_missing(d) for d in dfs):
        return f"{symbol} = {number}"
    if any(math.isinf(float(d)) for d in dfs):
        return f"{'z' if symbol == 't' else symbol} = {number}"
    if symbol == "z":
        return f"z = {number}"
    return f"{symbol}({', '.join(fmt_df(d) for d in dfs)}) = {number}"


def fmt_mean_sd(mean: Any, sd: Any, digits: int = 2) -> str:
    """ "M (SD)": "12.30 (4.56)"; a missing mean -> "—", a missing SD (n = 1) -> "12.30 (—)"."""
    if is_missing(mean):
        return MISSING
    return f"{fmt_num(mean, digits)} ({fmt_num(sd, digits)})"


def fmt_median_iqr(median: Any, q1: Any, q3: Any, digits: int = 2) -> str:
    """ "Mdn [Q1, Q3]": "12.00 [10.00, 14.50]" (the interquartile range as its two ends)."""
    if is_missing(median):
        return MISSING
    return f"{fmt_num(median, digits)} {fmt_ci(q1, q3, digits)}"


def fmt_pct(n: Any, total: Any, digits: int = 1) -> str:
    """Percentage "24.0%" of n in total; total 0 or missing -> "—"."""
    if is_missing(n) or is_missing(total) or float(total) == 0:
        return MISSING
    return f"{fmt_num(100.0 * float(n) / float(total), digits)}%"


def fmt_n_pct(n: Any, total: Any, digits: int = 1) -> str:
    """ "n (percent)": "12 (24.0%)"; total 0 -> "0 (—)"; missing n -> "—"."""
    if is_missing(n):
        return MISSING
    return f"{fmt_int(n)} ({fmt_pct(n, total, digits)})"


def is_suppressed(n: Any, min_cell: int) -> bool:
    """True when a count must be hidden: 0 < n < min_cell (zero is not disclosive)."""
    return not is_missing(n) and 0 < float(n) < min_cell


def suppress(n: Any, min_cell: int) -> str:
    """Count for display: "< 5" when 0 < n < min_cell (min_cell = 5), else the count itself."""
    if is_suppressed(n, min_cell):
        return f"< {fmt_int(min_cell)}"
    return fmt_int(n)
