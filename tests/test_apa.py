"""APA number formatting: edge cases a hand check or a journal would catch."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alliance.render import apa


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0004, "< .001"),
        (0.0, "< .001"),
        (0.00099996, "< .001"),  # rounds to .001 but is below it
        (0.001, ".001"),
        (0.0125, ".013"),  # half away from zero, not half-even
        (0.05, ".050"),
        (0.049999, "< .050"),  # below .05 must not print as .050
        (0.0495, "< .050"),
        (0.04949, ".049"),
        (0.0501, ".050"),
        (0.5, ".500"),
        (0.9994, ".999"),
        (0.9995, "> .999"),
        (1.0, "> .999"),
        (np.float64(0.0312), ".031"),
        (float("nan"), "—"),
        (None, "—"),
        (pd.NA, "—"),
    ],
)
def test_fmt_p(p: object, expected: str) -> None:
    assert apa.fmt_p(p) == expected


@pytest.mark.parametrize("p", [-0.01, 1.0001, float("inf")])
def test_fmt_p_rejects_impossible_values(p: float) -> None:
    with pytest.raises(ValueError, match="p value"):
        apa.fmt_p(p)


@pytest.mark.parametrize(
    ("x", "digits", "expected"),
    [
        (2.675, 2, "2.68"),  # binary float 2.67499.. : format() gives 2.67, a reader 2.68
        (0.125, 2, "0.13"),  # exact tie: away from zero (format() rounds half-even to 0.12)
        (-0.125, 2, "−0.13"),  # ties away from zero on the negative side too
        (-1.5, 2, "−1.50"),  # U+2212 minus kept
        (-0.004, 2, "0.00"),  # no negative zero
        (-0.0, 2, "0.00"),
        (1.005, 2, "1.01"),
        (0.5, 0, "1"),
        (2.5, 0, "3"),
        (1234.5, 1, "1,234.5"),  # APA: commas from 1,000 up
        (-12345.678, 2, "−12,345.68"),
        (1e20, 1, "100,000,000,000,000,000,000.0"),  # no precision error on huge values
        (np.int64(7), 2, "7.00"),
        (float("inf"), 2, "∞"),
        (float("-inf"), 2, "−∞"),
        (float("nan"), 2, "—"),
        (None, 2, "—"),
    ],
)
def test_fmt_num(x: object, digits: int, expected: str) -> None:
    assert apa.fmt_num(x, digits) == expected


def test_fmt_num_without_grouping_and_bad_input() -> None:
    assert apa.fmt_num(1234.5, 1, group=False) == "1234.5"
    with pytest.raises(TypeError):
        apa.fmt_num("1.5")
    with pytest.raises(TypeError):
        apa.fmt_num(True)


def test_fmt_int() -> None:
    assert apa.fmt_int(1301) == "1,301"
    assert apa.fmt_int(np.float64(12.0)) == "12"
    assert apa.fmt_int(-3) == "−3"
    assert apa.fmt_int(float("nan")) == "—"
    with pytest.raises(ValueError, match="whole number"):
        apa.fmt_int(2.5)


@pytest.mark.parametrize(
    ("r", "expected"),
    [(0.278, ".28"), (-0.05, "−.05"), (-0.004, ".00"), (1.0, "1.00"), (-1, "−1.00"),
     (0.995, "1.00"), (float("nan"), "—")],
)  # fmt: skip
def test_fmt_r(r: float, expected: str) -> None:
    assert apa.fmt_r(r) == expected


def test_fmt_r_bounds() -> None:
    with pytest.raises(ValueError, match="correlation"):
        apa.fmt_r(1.2)
    # alpha can be below -1 and keeps its leading digit
    assert apa.fmt_r(-1.234, check=False) == "−1.23"
    assert apa.fmt_r(0.7030, 3, check=False) == ".703"


def test_fmt_ci() -> None:
    assert apa.fmt_ci(0.12, 0.34) == "[0.12, 0.34]"
    assert apa.fmt_ci(-0.26, 0.07) == "[−0.26, 0.07]"
    assert apa.fmt_ci(0.256, 0.299, 3, leading_zero=False) == "[.256, .299]"
    assert apa.fmt_ci(-0.256, 0.299, 3, leading_zero=False) == "[−.256, .299]"
    assert apa.fmt_ci(float("nan"), 0.3) == "—"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("t", 6.7712, 17.03), "t(17.0) = 6.77"),
        (("t", 6.7712, 17.0), "t(17) = 6.77"),
        (("t", 3.1, math.inf), "z = 3.10"),  # Wald test of a GLMM / Cox model
        (("t", -3.1, np.inf), "z = −3.10"),
        (("z", 1.96, None), "z = 1.96"),
        (("t", 2.0, float("nan")), "t = 2.00"),  # df unknown: no made-up df
        (("chi2", 5.991, 2), "χ²(2) = 5.99"),
        (("χ²", 12.3456, 4), "χ²(4) = 12.35"),
        (("F", 4.123, (2, 30)), "F(2, 30) = 4.12"),
        (("F", 4.123, (2, 30.55)), "F(2, 30.6) = 4.12"),
        (("t", 1234.5, 10), "t(10) = 1234.50"),  # statistics are not comma-grouped
        (("t", float("nan"), 10), "—"),
    ],
)
def test_fmt_stat(args: tuple, expected: str) -> None:
    assert apa.fmt_stat(*args) == expected


def test_fmt_df_is_not_grouped() -> None:
    assert apa.fmt_df(1234) == "1234"
    assert apa.fmt_df(1234.56) == "1234.6"


def test_summaries() -> None:
    assert apa.fmt_mean_sd(43, 12.0416) == "43.00 (12.04)"
    assert apa.fmt_mean_sd(43, float("nan"), 1) == "43.0 (—)"
    assert apa.fmt_mean_sd(float("nan"), 1.0) == "—"
    assert apa.fmt_median_iqr(25, 22.5, 27.5, 1) == "25.0 [22.5, 27.5]"
    assert apa.fmt_median_iqr(None, 1, 2) == "—"


def test_n_pct() -> None:
    assert apa.fmt_n_pct(12, 50) == "12 (24.0%)"
    assert apa.fmt_n_pct(1, 3) == "1 (33.3%)"
    assert apa.fmt_n_pct(1, 8) == "1 (12.5%)"  # 12.5 exactly
    assert apa.fmt_n_pct(1, 16) == "1 (6.3%)"  # 6.25: tie rounds up
    assert apa.fmt_n_pct(0, 0) == "0 (—)"
    assert apa.fmt_n_pct(1500, 2000) == "1,500 (75.0%)"
    assert apa.fmt_n_pct(float("nan"), 10) == "—"


def test_suppress() -> None:
    assert apa.suppress(3, 5) == "< 5"
    assert apa.suppress(1, 5) == "< 5"
    assert apa.suppress(5, 5) == "5"
    assert apa.suppress(0, 5) == "0"  # zero is not disclosive
    assert apa.suppress(1, 1) == "1"  # min_cell 1 disables suppression
    assert apa.suppress(2000, 5) == "2,000"
    assert not apa.is_suppressed(float("nan"), 5)
    assert apa.is_suppressed(4, 5) and not apa.is_suppressed(0, 5)


def test_round_half_up_uses_the_printed_decimal() -> None:
    assert str(apa.round_half_up(0.285, 2)) == "0.29"
    assert str(apa.round_half_up(-0.285, 2)) == "-0.29"
    assert format(0.285, ".2f") == "0.28"  # what plain formatting would have printed


@pytest.mark.parametrize(
    ("se", "digits"), [(0.84, 2), (0.10, 2), (0.035, 3), (0.0021, 4), (1e-9, 6), (float("nan"), 2),
                       (0.0, 2), (None, 2)],
)  # fmt: skip
def test_small_coefficients_keep_two_significant_digits_of_their_se(se, digits):
    assert apa.digits_for(se) == digits
    assert apa.fmt_num(-0.0153, apa.digits_for(0.0021)) == "\u22120.0153"
