"""Issue 8 status from a convbench run of configs/pointwise_kernels.yaml: per shape, dtype and
bias, the Triton kernels' median against the best torch path (torch / matmul / linear_nlc, any
layout), against the same-storage torch paths, and (with bias) against the best torch GEMM plus
a separate bias add.

Usage: python3 scripts/pointwise_status.py RUN_FOLDER [-o status.md]
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from convbench.results import load

TORCH = ("torch", "matmul", "linear_nlc")
SAME = {"triton": ("torch", "matmul"), "triton_nlc": ("linear_nlc",)}
ADD = ("matmul_add", "linear_add_nlc")


def rows(df: pd.DataFrame) -> list[dict]:
    df = df[df.status == "ok"]
    out = []
    for (n, ci, co, length, bias, dtype), g in df.groupby(["N", "C_in", "C_out", "L", "bias", "dtype"]):
        us = g.set_index("impl").median_ms * 1e3
        plan = g.set_index("impl").plan
        best = us[[i for i in TORCH if i in us.index]].idxmin()
        r = {"shape": f"{n}x{ci}->{co}x{length}", "bias": bool(bias), "dtype": dtype,
             "best torch (µs)": f"{best} {us[best]:.1f}"}
        for impl in ("triton_nlc", "triton"):
            same = us[[i for i in SAME[impl] if i in us.index]].min()
            r[f"{impl} µs"] = f"{us[impl]:.1f}"
            r[f"{impl} vs best"] = round(us[best] / us[impl], 2)
            r[f"{impl} vs same storage"] = round(same / us[impl], 2)
            r[f"{impl} plan"] = plan[impl]
        if bias:
            r["best Triton vs torch + add"] = round(us[[i for i in ADD if i in us.index]].min()
                                                     / us[["triton", "triton_nlc"]].min(), 2)
        out.append(r)
    return out


def markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("-o", "--out")
    args = ap.parse_args(argv)
    df = load(args.run)
    table = pd.DataFrame(rows(df)).astype(object).fillna("-")
    device = df.device_name.dropna().iloc[0] if "device_name" in df else "?"
    text = (f"# Pointwise status ({args.run}, {device})\n\nRatios are torch time / Triton time "
            f"(> 1: Triton faster); medians of convbench's cold-L2 timing.\n\n"
            + markdown(table) + "\n")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
