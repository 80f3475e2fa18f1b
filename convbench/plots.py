"""Matplotlib figures from a results DataFrame (Agg backend); nothing here measures."""

from __future__ import annotations

import math
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .report import SHAPE_COLS, SIMPLICITY, shape_label  # noqa: E402

# Axes a latency plot may run along, in order of preference when several vary equally.
X_AXES = ("L", "C_in", "C_out", "K", "N")
MAX_PANELS = 8
_MARKERS = {"depthwise": "o", "pointwise": "s"}


# A fixed, distinct colour per known implementation (ours in orange and green), the same in every
# figure; other names (plugins) take one of tab20b's by a hash of the name.
IMPL_COLORS = {
    "torch": "#1f77b4", "torch_nlc": "#6baed6", "native": "#d62728", "cudnn": "#9467bd",
    "cudnn_nlc": "#c5b0d5", "matmul": "#8c564b", "matmul_add": "#c49c94", "linear_nlc": "#17becf",
    "linear_add_nlc": "#9edae5", "unfold_einsum": "#7f7f7f", "triton": "#ff7f0e",
    "triton_nlc": "#2ca02c",
}


def color(impl: str):
    """A fixed colour per implementation name, the same in every figure."""
    if impl in IMPL_COLORS:
        return IMPL_COLORS[impl]
    return plt.get_cmap("tab20b")(zlib.crc32(impl.encode()) % 20)


def _impl_order(impls) -> list[str]:
    return sorted(impls, key=lambda i: (SIMPLICITY.index(i) if i in SIMPLICITY else 99, i))


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["median_ms"].notna()]


def x_axis(df: pd.DataFrame) -> str:
    """The shape axis with most distinct values (L first on ties)."""
    counts = {c: df[c].nunique() for c in X_AXES}
    return max(X_AXES, key=lambda c: (counts[c], -X_AXES.index(c)))


def _facets(df: pd.DataFrame, x: str) -> list[str]:
    """Other shape columns that vary independently of x (a column zipped with x is not one)."""
    out = []
    for c in SHAPE_COLS:
        if c == x or df[c].nunique() < 2:
            continue
        if df.groupby(x)[c].nunique().max() > 1:
            out.append(c)
    return out


# A column that may change along with x in a sweep, one value per x value: C_out with C_in (a
# depthwise channel sweep, a square pointwise one), and padding with anything (same padding).
_COMPANIONS = {"C_in": ("C_out",), "C_out": ("C_in",)}


def _is_sweep(g: pd.DataFrame, x: str) -> bool:
    """Whether a panel's rows are a sweep along x: two or more x values, every other shape column
    fixed or an allowed companion of x (_COMPANIONS, padding). A line through shapes that differ
    in more than x would join unrelated points."""
    def follows(c: str) -> bool:
        return g.groupby(x)[c].nunique().max() == 1 and g.groupby(c)[x].nunique().max() == 1

    others = [c for c in SHAPE_COLS if c != x]
    return g[x].nunique() >= 2 and all(
        g[c].nunique() == 1 or ((c == "padding" or c in _COMPANIONS.get(x, ())) and follows(c))
        for c in others)


def latency(df: pd.DataFrame, y: str = "median_ms"):
    """Latency (or any y) against the most varied shape axis, a line per implementation, a panel
    per combination of the other varying axes. Shapes that are not such sweeps (the real model
    shapes, which differ in several axes at once) get one row per shape instead (shape_dots)."""
    ok = _ok(df)
    if ok.empty:
        return None
    x = x_axis(ok)
    facets = _facets(ok, x)
    panels = list(ok.groupby(facets, sort=True)) if facets else [((), ok)]
    if y == "median_ms" and not all(_is_sweep(g, x) for _, g in panels):
        return shape_dots(ok)
    shown = panels[:MAX_PANELS]
    ncol = min(len(shown), 4)
    nrow = math.ceil(len(shown) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol + 1.2, 3.0 * nrow), squeeze=False)
    for ax, (key, g) in zip(axes.flat, shown, strict=False):
        key = key if isinstance(key, tuple) else (key,)
        for impl, gi in g.groupby("impl", sort=True):
            gi = gi.sort_values(x)
            ax.plot(gi[x], gi[y], marker="o", ms=4, label=impl, color=color(impl))
            if y == "median_ms" and gi["ci_low_ms"].notna().any():
                ax.fill_between(gi[x], gi["ci_low_ms"], gi["ci_high_ms"], color=color(impl), alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted(g[x].unique()), [str(v) for v in sorted(g[x].unique())])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(", ".join(f"{c}={v}" for c, v in zip(facets, key, strict=True)) or "all shapes", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in list(axes.flat)[1:len(shown)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    if len(panels) > MAX_PANELS:
        fig.suptitle(f"first {MAX_PANELS} of {len(panels)} panels", fontsize=9)
    fig.tight_layout()
    return fig


def shape_dots(df: pd.DataFrame):
    """Median latency per shape (a row each, the shape with the slowest implementation on top),
    a marker per implementation with its 95 % CI as a bar, on a log axis: which kernel wins where,
    and by how much, when the shapes are a set of real ones rather than a sweep."""
    ok = _ok(df)
    if ok.empty:
        return None
    labels = [shape_label(r) for r in ok[list(SHAPE_COLS)].to_dict("records")]
    ok = ok.assign(shape=labels)
    if ok.groupby(["impl", "shape"]).size().max() > 1:  # shapes that differ only in padding
        ok = ok.assign(shape=[f"{lab} pad={p}" for lab, p in zip(labels, ok["padding"], strict=True)])
    order = ok.groupby("shape")["median_ms"].max().sort_values(ascending=False).index.tolist()
    impls = _impl_order(ok["impl"].unique())
    unit, scale = ("ms", 1.0) if ok["median_ms"].max() >= 1.0 else ("µs", 1e3)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(order) + 1.4))
    step = 0.6 / max(1, len(impls) - 1)
    for j, impl in enumerate(impls):
        g = ok[ok["impl"] == impl].drop_duplicates("shape", keep="last").set_index("shape").reindex(order)
        yy = np.arange(len(order)) + (j - (len(impls) - 1) / 2) * step
        med = g["median_ms"].to_numpy(dtype=float) * scale
        lo = np.clip(med - g["ci_low_ms"].to_numpy(dtype=float) * scale, 0, None)
        hi = np.clip(g["ci_high_ms"].to_numpy(dtype=float) * scale - med, 0, None)
        ax.errorbar(med, yy, xerr=np.nan_to_num(np.vstack([lo, hi])), fmt="o", ms=5, capsize=2,
                    lw=1, color=color(impl), label=impl)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"median latency ({unit}), 95 % CI; lower is better")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    for k in range(1, len(order)):
        ax.axhline(k - 0.5, color="#eeeeee", lw=0.8)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def speedup_heatmap(df: pd.DataFrame):
    """Speedup over the baseline: a row per shape, a column per implementation; cells that did not
    run correctly are grey and name their status."""
    if "speedup" not in df.columns or df["speedup"].notna().sum() == 0:
        return None
    d = df.copy()
    d["shape"] = [shape_label(r) for r in d[list(SHAPE_COLS)].to_dict("records")]
    shapes = list(dict.fromkeys(d.sort_values(list(SHAPE_COLS))["shape"]))
    impls = _impl_order(d["impl"].unique())
    val = d.pivot_table(index="shape", columns="impl", values="speedup", aggfunc="first").reindex(
        index=shapes, columns=impls)
    status = d.pivot_table(index="shape", columns="impl", values="status", aggfunc="first").reindex(
        index=shapes, columns=impls)
    logv = np.log2(val.to_numpy(dtype=float))
    span = np.nanmax(np.abs(logv)) if np.isfinite(logv).any() else 1.0
    span = max(span, 0.1)
    fig, ax = plt.subplots(figsize=(1.2 * len(impls) + 3.5, 0.42 * len(shapes) + 1.6))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(logv), cmap=cmap, aspect="auto",
                   norm=TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span))
    for i in range(len(shapes)):
        for j in range(len(impls)):
            v = val.iat[i, j]
            text = f"{v:.2f}x" if pd.notna(v) else (status.iat[i, j] if isinstance(status.iat[i, j], str) else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(impls)), impls, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(shapes)), shapes, fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.04)
    cb.set_label("log2 speedup over baseline", fontsize=8)
    fig.tight_layout()
    return fig


def memory_bars(df: pd.DataFrame):
    """Peak memory per shape (a group of bars), one bar per implementation, in MiB."""
    ok = _ok(df)
    ok = ok[ok["peak_mem_bytes"].notna()]
    if ok.empty:
        return None
    ok = ok.assign(shape=[shape_label(r) for r in ok[list(SHAPE_COLS)].to_dict("records")])
    shapes = list(dict.fromkeys(ok.sort_values(list(SHAPE_COLS))["shape"]))
    impls = _impl_order(ok["impl"].unique())
    width = 0.8 / len(impls)
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(shapes) * len(impls) + 1.2))
    for j, impl in enumerate(impls):
        g = ok[ok["impl"] == impl].set_index("shape")["peak_mem_bytes"].reindex(shapes) / 2**20
        ax.barh(np.arange(len(shapes)) + j * width, g.to_numpy(dtype=float), height=width,
                label=impl, color=color(impl))
    ax.set_yticks(np.arange(len(shapes)) + 0.4 - width / 2, shapes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("peak memory of one call (MiB)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def roofline(df: pd.DataFrame, ceilings: dict | None = None):
    """Achieved TFLOP/s against arithmetic intensity (flops/bytes), with the measured copy
    bandwidth and matmul ceilings of the device as the roofs."""
    ok = _ok(df)
    ok = ok[ok["tflops"].notna()]
    if ok.empty:
        return None
    ai = pd.to_numeric(ok["flops"]) / pd.to_numeric(ok["bytes"])
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for (op, impl), g in ok.assign(ai=ai).groupby(["op", "impl"], sort=True):
        ax.scatter(g["ai"], g["tflops"], color=color(impl), marker=_MARKERS.get(op, "^"),
                   label=f"{op}/{impl}", s=28, edgecolor="k", linewidth=0.4)
    lo, hi = ai.min() / 4, ai.max() * 4
    xs = np.geomspace(lo, hi, 200)
    ceilings = ceilings or {}
    bw = ceilings.get("copy_gbps")
    peaks = {k: v for k, v in (ceilings.get("matmul_tflops") or {}).items() if v}
    if bw:  # the bandwidth roof, up to the highest compute roof
        top = max(peaks.values()) if peaks else np.inf
        ax.plot(xs, np.minimum(xs * bw / 1e3, top), "k--", lw=1, label=f"copy bandwidth {bw:.0f} GB/s")
    for k, v in peaks.items():
        roof = np.minimum(xs * bw / 1e3, v) if bw else np.full_like(xs, v)
        ax.plot(xs, roof, lw=1.2, alpha=0.7, label=f"matmul {k} {v:.3g} TFLOP/s")
    if not bw and not peaks:
        ax.text(0.02, 0.97, "no measured ceilings in meta.json", transform=ax.transAxes,
                va="top", fontsize=8, color="#a00")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP / byte, analytic)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def adhoc(df: pd.DataFrame, x: str, y: str, hue: str | None = None, logx: bool = False,
          logy: bool = False, title: str | None = None):
    """One figure: y against x, a line per value of hue (numeric x) or grouped bars (other x)."""
    d = df[df[y].notna()] if y in df.columns else df
    fig, ax = plt.subplots(figsize=(8, 5))
    groups = list(d.groupby(hue, sort=True)) if hue else [(None, d)]
    numeric_x = pd.api.types.is_numeric_dtype(d[x]) and not pd.api.types.is_bool_dtype(d[x])
    cats = list(dict.fromkeys(d[x].astype(str))) if not numeric_x else []
    for i, (key, g) in enumerate(groups):
        label = str(key) if hue else y
        kw = {"color": color(str(key))} if hue == "impl" else {}
        if numeric_x:
            g = g.groupby(x, sort=True)[y].median()
            ax.plot(g.index, g.to_numpy(), marker="o", label=label, **kw)
        else:
            g = g.groupby(g[x].astype(str))[y].median().reindex(cats)
            w = 0.8 / len(groups)
            ax.bar(np.arange(len(cats)) + i * w, g.to_numpy(dtype=float), width=w, label=label, **kw)
    if not numeric_x:
        ax.set_xticks(np.arange(len(cats)) + 0.4 - 0.4 / len(groups), cats, rotation=30, ha="right")
    if logx and numeric_x:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if hue:
        ax.legend(title=hue, fontsize=8)
    fig.tight_layout()
    return fig
