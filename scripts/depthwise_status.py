"""Issue 7 status from convbench runs: per SHAPES.md shape and dtype, % of the byte floor
(bytes / the run's measured copy bandwidth) of `triton` and `triton_nlc` and, where the run
recorded it, % of a same-size copy timed alongside (`pct_same_size_copy`), their speedup over
`torch`, and the fastest other implementation in the same layout; then forward+backward from a
training run. Prints markdown.

Usage: python3 scripts/depthwise_status.py RUN_DIR [TRAINING_RUN_DIR] [--newer RUN_DIR]...
                                           [--flush COLD_RUN CLEAN_RUN]

--newer (repeatable, later runs last): rows of that run replace the main run's rows of the same implementation, shape, dtype,
layout and mode (a focused re-run of changed kernels); their times are marked with †.
--flush: two runs of one config, the first under `measure.l2: cold` (the dirty flush every table
above uses), the second under `clean` (a flush that writes, then reads), made in one device call: our kernels'
% of the floor and of a same-size copy under each.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

import convbench
from convbench.results import load_meta

SHAPE_LABELS = {  # (N, C, L, K) -> SHAPES.md label
    (19, 1024, 517, 11): "dtts_dec_b19", (5, 1024, 517, 11): "dtts_dec_b5",
    (19, 1024, 128, 7): "dtts_enc", (19, 512, 128, 5): "dtts_varpred",
    (16, 512, 418, 31): "nemo_conformer_L", (128, 512, 209, 9): "nemo_fastconformer_L",
    (128, 176, 209, 9): "nemo_fastconformer_S", (128, 1024, 209, 5): "nemo_fastconformer_XXL",
    (10, 80, 400, 31): "torchaudio_doc", (1, 4096, 8192, 4): "long_seq",
    (32, 768, 768, 768): "long_kernel",
}
OURS = {"ncl": "triton", "nlc": "triton_nlc"}


def label(r) -> str:
    return SHAPE_LABELS.get((r.N, r.C_in, r.L, r.K), f"N{r.N}C{r.C_in}L{r.L}K{r.K}")


KEY = ["impl", "N", "C_in", "L", "K", "dtype", "layout", "mode"]


def load(run: str, newer: list[str] | None = None) -> pd.DataFrame:
    df = convbench.load(run).assign(newer=False)
    for later in newer or []:  # in order: the last run given wins
        df = pd.concat([df, convbench.load(later).assign(newer=True)])
        df = df[df.status == "ok"].drop_duplicates(KEY, keep="last")
    return df


def floor_us(df: pd.DataFrame) -> pd.Series:
    """Each row's byte floor in µs: its bytes over the run's measured copy ceiling (the base of
    pct_peak_bw, recovered from gbps and pct_peak_bw)."""
    return df.bytes / (df.gbps / df.pct_peak_bw * 100 * 1e3)


def forward_table(run: str, newer: list[str] | None = None) -> tuple[str, pd.DataFrame]:
    df = load(run, newer)
    df = df[(df.op == "depthwise") & (df.status == "ok") & (df["mode"] == "fwd")].copy()
    df["shape"] = df.apply(label, axis=1)
    df["us"] = df.median_ms * 1e3
    df["floor_us"] = floor_us(df)
    rows = []
    for (shape, dtype), g in df.groupby(["shape", "dtype"]):
        torch_us = g[g.impl == "torch"].us.min()
        r = {"shape": shape, "dtype": dtype, "MB": g.bytes.iloc[0] / 1e6, "floor": g.floor_us.iloc[0]}
        for layout, ours in OURS.items():
            gl = g[g.layout == layout]
            mine = gl[gl.impl == ours].us.min()
            other = gl[gl.impl != ours].sort_values("us").iloc[0]
            r[f"{layout}_us"] = mine
            r[f"{layout}_mark"] = "†" if gl[gl.impl == ours].newer.any() else ""
            r[f"{layout}_pct"] = 100 * r["floor"] / mine
            mrow = gl[gl.impl == ours].sort_values("us").iloc[0]
            r[f"{layout}_copy"] = mrow["pct_same_size_copy"]
            r[f"{layout}_x_torch"] = torch_us / mine
            r[f"{layout}_best_other"] = f"{other.impl} {other.us:.1f}"
            r[f"{layout}_vs_other"] = other.us / mine
        rows.append(r)
    t = pd.DataFrame(rows).sort_values(["MB"], ascending=False)
    lines = [
        "| shape | dtype | MB | floor µs | triton µs (% floor; % copy) | × torch | best other ncl (µs) | "
        "triton_nlc µs (% floor; % copy) | × torch | best other nlc (µs) |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in t.itertuples():
        big = "**" if r.MB >= 50 else ""
        lines.append(
            f"| {big}{r.shape}{big} | {r.dtype} | {r.MB:.0f} | {r.floor:.1f} | "
            f"{r.ncl_us:.1f}{r.ncl_mark} ({r.ncl_pct:.0f} %{_copy(r.ncl_copy)}) | {r.ncl_x_torch:.2f} | {r.ncl_best_other} | "
            f"{r.nlc_us:.1f}{r.nlc_mark} ({r.nlc_pct:.0f} %{_copy(r.nlc_copy)}) | {r.nlc_x_torch:.2f} | {r.nlc_best_other} |")
    return "\n".join(lines), t


def _copy(pct) -> str:
    """'; N %' of a same-size copy (runs from before that column: '')."""
    return "" if pd.isna(pct) else f"; {pct:.0f} %"


def summary(t: pd.DataFrame) -> str:
    out = []
    big = t[t.MB >= 50]
    for layout in OURS:
        pct = t[f"{layout}_pct"]
        out.append(f"- {OURS[layout]}: median {pct.median():.0f} % of the floor over all "
                   f"{len(t)} shape×dtype rows; >= 85 % on {int((big[f'{layout}_pct'] >= 85).sum())}"
                   f" of {len(big)} rows moving >= 50 MB; fastest in its layout (or within 3 %) on "
                   f"{int((t[f'{layout}_vs_other'] >= 0.97).sum())} of {len(t)}")
        cp = t[f"{layout}_copy"].dropna()
        if len(cp):
            bigcp = big[f"{layout}_copy"].dropna()
            out.append(f"  - of a same-size copy under the same timer ({len(cp)} rows measured it): median "
                       f"{cp.median():.0f} %; >= 85 % on {int((bigcp >= 85).sum())} of {len(bigcp)} rows moving >= 50 MB")
    return "\n".join(out)


def flush_table(cold: str, clean: str) -> str:
    runs, graphs = [], set()
    for run, mode in ((cold, "cold"), (clean, "clean")):
        measure = (load_meta(run).get("comparability") or {}).get("measure") or {}
        if measure.get("l2", "cold") != mode:
            raise SystemExit(f"--flush: {run} was measured under measure.l2 {measure.get('l2')!r}, expected {mode!r}")
        graphs.add(bool(measure.get("graph")))
        if len(graphs) > 1:
            raise SystemExit(f"--flush: {cold} and {clean} differ in measure.graph; compare flushes under one timer")
        df = convbench.load(run)
        df = df[(df.status == "ok") & df.impl.isin(OURS.values())].copy()
        df["floor_us"] = floor_us(df)
        runs.append(df.assign(l2=mode, us=df.median_ms * 1e3, shape=df.apply(label, axis=1)))
    df = pd.concat(runs)
    lines = ["| shape | dtype | MB | floor µs | kernel | µs cold / clean | % floor cold / clean | "
             "% copy cold / clean | the copy's % floor cold / clean |", "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    met = {(k, m): [0, 0] for k in OURS.values() for m in ("cold", "clean")}
    copy_short = {"cold": set(), "clean": set()}  # cases where a same-size copy itself is under 85 %
    for (shape, dtype, impl), g in sorted(df.groupby(["shape", "dtype", "impl"]),
                                          key=lambda kv: (-kv[1].bytes.iloc[0], kv[0])):
        if set(g.l2) != {"cold", "clean"}:  # a row only one run has (a run cut short)
            lines.append(f"| {shape} | {dtype} | | | {impl} | only {', '.join(sorted(set(g.l2)))} | | | |")
            continue
        c, k = (g[g.l2 == m].iloc[0] for m in ("cold", "clean"))
        pct = {m: 100 * r.floor_us / r.us for m, r in (("cold", c), ("clean", k))}
        copy = {m: 100 * r.floor_us / (r.same_size_copy_ms * 1e3) for m, r in (("cold", c), ("clean", k))}
        for m in pct:
            met[(impl, m)][0] += pct[m] >= 85
            met[(impl, m)][1] += 1
            if copy[m] < 85:
                copy_short[m].add((shape, dtype))
        lines.append(f"| {shape} | {dtype} | {c.bytes / 1e6:.0f} | {c.floor_us:.1f} | {impl} | {c.us:.1f} / {k.us:.1f} | "
                     f"{pct['cold']:.0f} / {pct['clean']:.0f} % | {c.pct_same_size_copy:.0f} / {k.pct_same_size_copy:.0f} % | "
                     f"{copy['cold']:.0f} / {copy['clean']:.0f} % |")
    lines.append("")
    for (impl, mode), (n, of) in met.items():
        lines.append(f"- {impl}, {mode} flush: >= 85 % of the floor on {n} of {of} rows")
    for mode, short in copy_short.items():
        names = ", ".join(f"{a} {b}" for a, b in sorted(short)) or "none"
        lines.append(f"- shape x dtype cases where a same-size copy, timed beside the kernels in either layout, "
                     f"was itself under 85 % of the floor ({mode} flush): {names}")
    return "\n".join(lines)


def training_table(run: str) -> str:
    df = convbench.load(run)
    df = df[df.status == "ok"].copy()
    df["shape"] = df.apply(label, axis=1)
    df["us"] = df.median_ms * 1e3
    lines = ["| shape | dtype | mode | torch µs | triton µs (× torch) | triton_nlc µs (× torch, × torch_nlc) |",
             "|---|---|---|---:|---:|---:|"]
    for (shape, dtype, mode), g in df.groupby(["shape", "dtype", "mode"]):
        u = g.groupby("impl").us.min()
        lines.append(f"| {shape} | {dtype} | {mode} | {u['torch']:.1f} | {u['triton']:.1f} "
                     f"({u['torch'] / u['triton']:.2f}×) | {u['triton_nlc']:.1f} "
                     f"({u['torch'] / u['triton_nlc']:.2f}×, {u['torch_nlc'] / u['triton_nlc']:.2f}×) |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?")
    ap.add_argument("training", nargs="?")
    ap.add_argument("--newer", action="append", help="a later focused run (repeatable)")
    ap.add_argument("--flush", nargs=2, metavar=("COLD_RUN", "CLEAN_RUN"),
                    help="one config measured under measure.l2 cold and clean")
    args = ap.parse_args(argv[1:])
    if args.flush and not args.run:
        print(flush_table(*args.flush))
        return 0
    table, t = forward_table(args.run, args.newer)
    print(table + "\n\n" + summary(t))
    if args.training:
        print("\n" + training_table(args.training))
    if args.flush:
        print("\n" + flush_table(*args.flush))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
