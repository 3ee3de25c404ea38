"""Helpers shared by the figure modules: skipping, labels from settings, intervals, layout bits,
and the one mathtext escaper every figure's text goes through (`plain_text`).

A drawing function raises `NothingToDraw(reason)` when its input says there is nothing to show
(model skipped, file empty); `skippable` turns that into a `None` return for callers who only
want the figure, while the registry calls the undecorated function to learn the reason.
"""

from __future__ import annotations

import functools
import json
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.category import StrCategoryFormatter
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import (
    FixedFormatter,
    FixedLocator,
    Formatter,
    FuncFormatter,
    NullLocator,
)
from scipy import special  # not scipy.stats: ndtri/stdtrit are its ppf, ~0.3 s less import

from alliance import files
from alliance.render import apa, style
from alliance.settings import AllianceSettings

P = ParamSpec("P")

# Low / middle / high alliance groups keep one colour in every figure (trajectories, KM):
# vermillion for the worst-off group, blue for the best, black between.
LEVEL_COLORS: dict[str, str] = {
    "low": style.OKABE_ITO["vermillion"],
    "mid": style.OKABE_ITO["black"],
    "high": style.OKABE_ITO["blue"],
}
TERTILE_NAMES = ("Low", "Middle", "High")
# Tick formatters whose labels are given text (not formatted numbers): `plain_text` escapes them.
TEXT_FORMATTERS = (FixedFormatter, FuncFormatter, StrCategoryFormatter)


class NothingToDraw(Exception):
    """The input says the analysis was not done (or left nothing to plot); `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


Pages = Figure | list[Figure]  # a figure, or its pages when it does not fit on one


def skippable(fn: Callable[P, Pages]) -> Callable[P, Pages | None]:
    """`fn` returning None instead of raising NothingToDraw (`fn.__wrapped__` still raises);
    the figure's text (every page's) is made plain (`plain_text`)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Pages | None:
        try:
            return plain_pages(fn(*args, **kwargs))
        except NothingToDraw:
            return None

    return wrapper


def plain_pages(fig: Pages) -> Pages:
    """`plain_text` on a figure or on each of its pages."""
    return [plain_text(f) for f in fig] if isinstance(fig, list) else plain_text(fig)


# ---- text: no mathtext from labels, codes or names --------------------------------------------


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def mathtext_escape(text: str) -> str:
    """`text` shown as typed by matplotlib: every `$` escaped, so an even number of them (an
    arm code "$5$", a label "$\\input{x}$") never switches to mathtext; control characters
    (tab, CR; no font has a glyph for them) as spaces, line breaks kept. Applied once, to the
    whole string that reaches the figure."""
    return _CONTROL.sub(" ", str(text)).replace("$", r"\$")


class _PlainTicks(FuncFormatter):
    """A tick formatter that shows the labels of `inner` as typed (`mathtext_escape`)."""

    def __init__(self, inner: Formatter) -> None:
        super().__init__(lambda x, pos=None: mathtext_escape(inner(x, pos)))


def plain_text(fig: Figure) -> Figure:
    """`fig` with `mathtext_escape` applied to all of its text once: titles, axis and colour-bar
    labels, legend entries and titles, annotations, and tick labels given as text (fixed labels
    from `set_yticks(ticks, labels)`, categories). Tick labels matplotlib formats from numbers
    keep their own mathtext (e.g. 10^3 on a log axis).

    Figures draw no intended mathtext, so every `$` in them came from a setting or the data.
    """
    if getattr(fig, "_alliance_plain_text", False):
        return fig
    for text in fig.findobj(Text):
        content = text.get_text()
        if mathtext_escape(content) != content:
            text.set_text(mathtext_escape(content))
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):  # shared axes share a formatter: wrap it once
            for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                             (axis.get_minor_formatter, axis.set_minor_formatter)):  # fmt: skip
                inner = get()
                if isinstance(inner, TEXT_FORMATTERS) and not isinstance(inner, _PlainTicks):
                    put(_PlainTicks(inner))
    fig._alliance_plain_text = True  # type: ignore[attr-defined]
    return fig


def require_fitted(fit: Mapping[str, Any] | None, model: str) -> Mapping[str, Any]:
    """`fit` when the model was fitted, else NothingToDraw with the model stage's reason."""
    if fit is None:
        raise NothingToDraw(f"model {model} has no fit.json (model stage not run)")
    status = fit.get("status", "fitted")
    if status != "fitted":
        reason = fit.get("reason") or "no reason recorded"
        raise NothingToDraw(f"model {model} {status}: {reason}")
    return fit


def unfitted_reason(fit: Mapping[str, Any] | None, model: str) -> str | None:
    """None when the model was fitted, else why not (as `require_fitted` says it): for figures
    that draw a note in the panel of a missing model instead of skipping the whole figure."""
    try:
        require_fitted(fit, model)
    except NothingToDraw as exc:
        return exc.reason
    return None


def require_rows(frame: pd.DataFrame | None, what: str) -> pd.DataFrame:
    """`frame` when it has rows, else NothingToDraw naming `what`."""
    if frame is None:
        raise NothingToDraw(f"{what} not found")
    if frame.empty:
        raise NothingToDraw(f"{what} has no rows")
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """NothingToDraw naming the first missing column (an optional measure not in the data)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise NothingToDraw(f"{what} lacks column(s) {', '.join(missing)}")


# ---- labels from settings --------------------------------------------------------------------


def _instrument(alliance: AllianceSettings, name: str) -> tuple[str, float, float] | None:
    from alliance.errors import ConfigError

    try:
        inst = alliance.instrument(name)
    except (ConfigError, OSError):
        return None
    label = re.sub(r"\s*\((patient|therapist|observer)\)\s*$", "", inst.label).strip()
    return label or name, inst.low, inst.high


def early_window_text(early_window: Sequence[int], early_session: int | None) -> str:
    """ "sessions 1–3" (score.early_window) or "session 2" (score.early_session)."""
    if early_session is not None:
        return f"session {early_session}"
    lo, hi = early_window
    return f"session {lo}" if lo == hi else f"sessions {lo}\N{EN DASH}{hi}"


def alliance_instrument(
    alliance: AllianceSettings, rater: str
) -> tuple[str, tuple[float, float] | None]:
    """(short instrument label, (low, high) or None) of a rater's alliance instrument.

    The label drops the rater suffix ("WAI-SR (patient)" -> "WAI-SR"); when the instrument file
    cannot be read the configured instrument name is used and the range is unknown.
    """
    name = alliance.rater_specs().get(rater, {}).get("instrument")
    if not name:
        return "alliance", None
    found = _instrument(alliance, str(name))
    if found is None:
        return str(name), None
    label, low, high = found
    return label, (low, high)


def alliance_axis_label(alliance: AllianceSettings, rater: str, scale: str, what: str = "") -> str:
    """e.g. "Patient-rated alliance (WAI-SR, 1–5)"; `what` replaces the words before the
    parenthesis; a subscale (`scale` other than total) is named in it."""
    label, rng = alliance_instrument(alliance, rater)
    name = label if scale == "total" else f"{label} {scale}"
    inside = f"{name}, {range_text(rng)}" if rng else name
    head = what or f"{rater.capitalize()}-rated alliance"
    return f"{head} ({inside})"


def range_text(rng: tuple[float, float]) -> str:
    """ "1–5": a response range with an en dash (and U+2212 minus signs)."""
    low, high = (f"{x:g}".replace("-", "\N{MINUS SIGN}") for x in rng)
    return f"{low}\N{EN DASH}{high}"


def arm_classes(arm_codings: Mapping[Any, Any]) -> dict[str, str]:
    """Arm code -> treatment class (`codings.arm`), as strings, in config order."""
    return {str(k): str(v) for k, v in arm_codings.items()}


def arm_order(arms: Iterable[str], configured: Iterable[str]) -> list[str]:
    """Arms in config order (`configured`, the codes of codings.arm), unknown arms after them in
    sorted order."""
    present = list(dict.fromkeys(str(a) for a in arms))
    known = [a for a in configured if a in present]
    return known + sorted(a for a in present if a not in known)


# ---- intervals ------------------------------------------------------------------------------


def mean_ci(values: pd.Series | np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) with a t interval; low/high NaN when n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(x.mean())
    if n < 2:
        return m, math.nan, math.nan, n
    half = float(special.stdtrit(n - 1, 0.5 + level / 2) * x.std(ddof=1) / math.sqrt(n))
    return m, m - half, m + half, n


def wilson_ci(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n (sensible near 0 and 1, unlike Wald)."""
    if n <= 0:
        return math.nan, math.nan
    z = float(special.ndtri(0.5 + level / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def equal_count_bins(values: pd.Series, n_bins: int) -> pd.Series:
    """Bin number 0..n_bins-1 of each value in equal-count bins (ties split by row order, so
    bins differ in size by one at most and the split is the same on every run)."""
    return pd.qcut(values.rank(method="first"), n_bins, labels=False)


def tertiles(values: pd.Series) -> pd.Series:
    """ "Low" / "Middle" / "High" thirds of `values` (ordered categorical; ties by rank)."""
    ranks = values.rank(method="first")
    return pd.qcut(ranks, 3, labels=list(TERTILE_NAMES))


def level_key(label: str) -> str:
    """ "low" / "mid" / "high" of a prediction level ("-1 SD", "mean", "+1 SD"; LEVEL_COLORS)."""
    text = str(label).strip().lower()
    if text.startswith("-") or text.startswith("\N{MINUS SIGN}") or "low" in text:
        return "low"
    if text.startswith("+") or "high" in text:
        return "high"
    return "mid"


# ---- numbers on figures ----------------------------------------------------------------------


def p_text(p: Any) -> str:
    """ "p = .03" or "p < .001" (APA: no leading zero; the sign replaces "=" at the limits)."""
    p = apa.fmt_p(p)
    return f"p {p}" if p.startswith(("<", ">")) else f"p = {p}"


def estimate_text(
    est: float, lo: float, hi: float, p: Any = None, digits: int = 2, *, r_like: bool = False
) -> str:
    """ "−1.67 [−2.47, −0.88], p < .001"; correlations without the leading zero; no p when
    there is none (site correlations, the benchmark)."""
    if r_like:
        num = apa.fmt_r(est, digits)
        ci = f"[{apa.fmt_r(lo, digits)}, {apa.fmt_r(hi, digits)}]"
    else:
        num, ci = apa.fmt_num(est, digits), apa.fmt_ci(lo, hi, digits)
    return f"{num} {ci}" if apa.is_missing(p) else f"{num} {ci}, {p_text(p)}"


def ratio_ticks(lo: float, hi: float) -> list[float]:
    """Ratio ticks at 1-2-5 steps covering [lo, hi], always including 1 (log axes)."""
    nice = [m * 10.0**e for e in range(-3, 3) for m in (1, 2, 5)]
    inside = [t for t in nice if lo <= t <= hi]
    return sorted(set(inside) | {1.0})


def ratio_axis(ax: Axes, lo: float, hi: float) -> None:
    """A log x axis for odds or hazard ratios from `lo` to `hi` (and 1), 15 % margin each side,
    ticks at 1-2-5 steps written as plain numbers."""
    lo, hi = min(lo, 1.0) / 1.15, max(hi, 1.0) * 1.15
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = ratio_ticks(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())


# ---- small layout helpers --------------------------------------------------------------------


def panel_note(ax: Axes, text: str, width: int = 48) -> None:
    """A panel that could not be drawn: its axes hidden and `text` (why) wrapped in the middle,
    so the figure still shows the panels that could."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, textwrap.fill(text, width), transform=ax.transAxes, ha="center",
            va="center", fontsize=7, color="#555555")  # fmt: skip


def panel_label(ax: Axes, letter: str) -> None:
    """Bold panel letter at the top left, outside the axes, as journals print them."""
    ax.text(
        -0.02, 1.02, letter, transform=ax.transAxes, ha="right", va="bottom",
        fontsize=9, fontweight="bold",
    )  # fmt: skip


def read_input(path: Path) -> Any:
    """A results file by its suffix: parquet / csv -> DataFrame (CSV text cells as written
    before `files.write_csv` neutralised them), json -> dict."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        try:
            return files.read_csv(path)
        except pd.errors.EmptyDataError:  # a stage wrote an empty table without a header
            return pd.DataFrame()
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    raise ValueError(f"no reader for {path}")
