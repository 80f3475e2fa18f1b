"""Figures: colours that tell implementations apart, and the right latency view for the shapes."""

import matplotlib.colors as mcolors
import pandas as pd
from test_report import row

from convbench import plots
from convbench.report import SIMPLICITY, with_speedup


def test_every_known_implementation_has_its_own_colour():
    """triton once shared torch's colour (a 10-colour map indexed past its end)."""
    colours = [mcolors.to_hex(plots.color(i)) for i in SIMPLICITY]
    assert len(set(colours)) == len(SIMPLICITY)
    assert plots.color("some_plugin") == plots.color("some_plugin")


def _df(rows):
    return with_speedup(pd.DataFrame(rows))


def test_real_shape_sets_get_one_row_per_shape():
    """Shapes that share no axis (one L per other-axes combination) are drawn as a dot per
    implementation on one row per shape, not as panels of single points."""
    shapes = [dict(L=517, C_in=64, K=11), dict(L=209, C_in=32, K=9), dict(L=128, C_in=16, K=7)]
    rows = [row("depthwise", impl, "ncl", median=m * (i + 1), ci=0.01, **s)
            for i, s in enumerate(shapes) for impl, m in (("torch", 1.0), ("triton", 0.3))]
    fig = plots.latency(_df(rows))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 1
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels[0].startswith("N=2 C=16 L=128 K=7") and len(labels) == 3  # slowest on top
    assert {t.get_text() for t in fig.axes[0].get_legend().get_texts()} == {"torch", "triton"}


def test_sweeps_keep_latency_lines():
    rows = [row("depthwise", impl, "ncl", median=m * L / 128, ci=0.01, L=L)
            for L in (128, 256, 512) for impl, m in (("torch", 1.0), ("triton", 0.3))]
    fig = plots.latency(_df(rows))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "L" and len(ax.get_lines()) == 2


def test_channel_sweeps_keep_lines_and_padding_tells_shapes_apart():
    """A depthwise channel sweep (C_out follows C_in) is a sweep; two shapes that differ only in
    padding are two rows of the dot plot, not one."""
    rows = [row("depthwise", impl, "ncl", median=m * C / 64, ci=0.01, C_in=C)
            for C in (64, 128, 256) for impl, m in (("torch", 1.0), ("triton", 0.3))]
    ax = plots.latency(_df(rows)).axes[0]
    assert ax.get_xlabel() == "C_in" and len(ax.get_lines()) == 2
    a = row("depthwise", "torch", "ncl", median=1.0, ci=0.01, L=517, C_in=64, K=11)
    b = {**a, "padding": 0, "L_out": 507, "median_ms": 0.9}
    c = row("depthwise", "torch", "ncl", median=2.0, ci=0.01, L=209, C_in=32, K=9)
    fig = plots.shape_dots(_df([a, b, c]))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 3 and any(lab.endswith("pad=0") for lab in labels), labels
