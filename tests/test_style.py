"""Figure style: colour-blind-safe palette, journal sizes, byte-identical files."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from alliance.render import style

# Machado, Oliveira & Fernandes (2009) dichromat simulation matrices (severity 1.0), applied to
# linear RGB; sRGB -> CIELAB with the D65 white point.
CVD = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
         [-0.003882, -0.048116, 1.051998]]
    ),
    "deuteranopia": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
         [-0.011820, 0.042940, 0.968881]]
    ),
    "tritanopia": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
         [0.004733, 0.691367, 0.303900]]
    ),
}  # fmt: skip
_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)  # fmt: skip


def _lab(hex_color: str, vision: str) -> np.ndarray:
    srgb = np.array(matplotlib.colors.to_rgb(hex_color))
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(CVD[vision] @ linear, 0, 1)
    t = (_XYZ @ linear) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def min_delta_e(colors: list[str], vision: str) -> float:
    """Smallest CIE76 colour difference between any two colours as seen with `vision`."""
    labs = [_lab(c, vision) for c in colors]
    return min(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(labs, 2))


VISIONS = [("normal", 20.0), ("protanopia", 15.0), ("deuteranopia", 15.0), ("tritanopia", 15.0)]


@pytest.mark.parametrize(("vision", "threshold"), VISIONS)
def test_palette_has_eight_distinguishable_colours(vision: str, threshold: float) -> None:
    assert len(style.PALETTE) >= 8
    assert len(set(style.PALETTE)) == len(style.PALETTE)
    # Okabe-Ito measured: 26.4 normal; 20.7 protan, 17.0 deutan, 16.1 tritan
    assert min_delta_e(style.PALETTE, vision) >= threshold


def test_the_distinguishability_check_rejects_a_non_cvd_palette() -> None:
    tab10 = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
    assert min_delta_e(tab10[:8], "deuteranopia") < 15.0


def test_named_colours_are_palette_colours_and_distinct() -> None:
    for mapping in (
        style.ARM_CLASS_COLORS,
        style.RATER_COLORS,
        style.MODALITY_COLORS,
        style.TRD_COLORS,
    ):
        assert len(set(mapping.values())) == len(mapping)
        assert set(mapping.values()) <= {*style.PALETTE, style.GREY}
    classes = {"psychotherapy", "drug", "placebo", "combination", "other"}
    assert set(style.ARM_CLASS_COLORS) == classes
    assert {"patient", "therapist"} <= set(style.RATER_COLORS)


def test_colors_for_keeps_known_colours_and_fills_the_rest() -> None:
    got = style.colors_for(["drug", "CBT", "placebo", "IPT"], style.ARM_CLASS_COLORS)
    assert got["drug"] == style.ARM_CLASS_COLORS["drug"]
    assert got["placebo"] == style.ARM_CLASS_COLORS["placebo"]
    assert len(set(got.values())) == 4
    assert got == style.colors_for(["drug", "CBT", "placebo", "IPT"], style.ARM_CLASS_COLORS)
    many = style.colors_for([f"g{i}" for i in range(12)])
    assert len(many) == 12 and len(set(list(many.values())[:9])) == 9


def test_figure_sizes_and_fonts() -> None:
    fig, ax = style.new_figure("single")
    assert tuple(fig.get_size_inches()) == pytest.approx((3.5, 3.5 / 1.618))
    ax.plot([0, 1], [0, 1], label="line")
    ax.set_xlabel("Session")
    ax.legend(title="Arm")
    assert style.smallest_font_pt(fig) >= style.MIN_FONT_PT
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
    fig2, axes = style.new_figure("double", 4.0, nrows=1, ncols=2)
    assert tuple(fig2.get_size_inches()) == pytest.approx((7.2, 4.0))
    assert axes.shape == (2,)
    with pytest.raises(ValueError, match="width"):
        style.new_figure("triple")
    with pytest.raises(ValueError, match="exceeds"):
        style.new_figure(8.0)
    assert matplotlib.get_backend().lower() == "agg"


def _draw(stem: Path) -> list[Path]:
    fig, ax = style.new_figure("single")
    x = np.linspace(0, 1, 25)
    for i in range(len(style.PALETTE)):
        ax.plot(x, x * (i + 1), label=f"arm {i}")
    ax.fill_between(x, x, 2 * x, alpha=0.2)  # clip paths and hatch ids depend on the SVG salt
    ax.set_xlabel("Weeks")
    ax.set_ylabel("Symptoms (HAM-D)")
    ax.legend(ncols=2)
    return style.save_figure(fig, stem)


def test_save_figure_is_byte_identical(tmp_path: Path) -> None:
    first = _draw(tmp_path / "a" / "fig.alliance")
    second = _draw(tmp_path / "b" / "fig.alliance")
    assert [p.name for p in first] == ["fig.alliance.png", "fig.alliance.svg"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    png, svg = first[0].read_bytes(), first[1].read_text(encoding="utf-8")
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"matplotlib" not in png
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg
    assert "<text" in svg  # fonts kept as text (svg.fonttype none)
    # 300 dpi: 3.5 in wide -> 1050 px (PNG IHDR width, big-endian at byte 16)
    assert int.from_bytes(png[16:20], "big") == 1050
    assert not list((tmp_path / "a").glob(".*"))  # no temporary files left behind


def test_save_figure_is_identical_across_processes(tmp_path: Path) -> None:
    # a fresh interpreter gets a fresh random SVG salt unless the style fixes it
    here = _draw(tmp_path / "here")
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
        "import test_style; test_style._draw(Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "there"), str(Path(__file__).parent)],
        check=True,
        timeout=120,
    )
    for path in here:
        assert path.read_bytes() == path.with_name(path.name.replace("here", "there")).read_bytes()
