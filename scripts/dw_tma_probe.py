"""Probe (session 15): the Gluon TMA (N, C, L) depthwise forward (convbench/impls/gluon_depthwise.py)
against the generated Triton kernels' pick, on SHAPES.md shapes and odd sizes. Every plan is
checked against float64 and timed with the tuner's timer (CUDA-graph replays, cold L2).

Usage (GPU): OUT=dir python3 scripts/dw_tma_probe.py [--shapes a,b] [--dtypes bfloat16,float32]
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import copy_gbps, problem  # noqa: E402
from probe_io import emit  # noqa: E402

from convbench.impls import gluon_depthwise as gd  # noqa: E402
from convbench.impls import triton_depthwise as td  # noqa: E402
from convbench.impls._triton_common import device_ms  # noqa: E402
from convbench.problem import Depthwise  # noqa: E402
from convbench.reference import rel_err, tolerance  # noqa: E402

SHAPES = ("nemo_fastconformer_L", "nemo_fastconformer_XXL", "dtts_dec_b19", "long_seq", "nemo_conformer_L",
          "nemo_fastconformer_S", "dtts_enc")
DTYPES = ("bfloat16", "float16", "float32")


def plans_for(N, C, L_in, L_out, K, padding, itemsize):
    """Plans to try: 16- and 32-byte groups, row tiles of 128-256 outputs (64-128 on short rows),
    one or two rows a thread."""
    out = []
    sr = max(gd.row_stride_multiple(L_in, itemsize), 8)
    tls = (128, 64) if L_out <= 128 else (256, 128)
    for V in (16 // itemsize, 32 // itemsize):
        for TL in tls:
            TR = 32 // min(TL // V, 32)
            for CR in (4 * TR, 8 * TR):
                if V <= 16 and gd.fits(N, C, L_in, L_out, K, padding, itemsize, sr):
                    out.append(gd.TmaPlan(sr, CR, TL, V, 4, L_out * itemsize % 16 != 0))
    return out


TIME = True


def check(lines, path, fn, ref, label, dtype, floor) -> bool | None:
    """One row of the table: fn() runs the path and returns its y. True if within tolerance."""
    try:
        err = float(rel_err(fn(), ref))
        us = device_ms(fn) * 1e3 if TIME else float("nan")
        err = max(err, float(rel_err(fn(), ref)))
    except Exception as exc:  # noqa: BLE001 - a plan that does not compile or launch
        traceback.print_exc()
        lines.append(f"| {label} | {dtype} | {path} | failed: {type(exc).__name__}: {str(exc)[:100]} | | | |")
        print(lines[-1], flush=True)
        return None
    ok = err <= tolerance(dtype, False)
    lines.append(f"| {label} | {dtype} | {path} | {us:.1f} | {100 * floor / us:.0f} | {err:.1e} | {'ok' if ok else 'FAIL'} |")
    print(lines[-1], flush=True)
    return ok


# odd sizes (N, C, L, K, padding): L 1, 7, 129, 517; C not a power of two; K > L; even K and
# paddings other than K // 2 (L_out = L + 2 padding - K + 1)
ODD = {"odd_L1": (2, 48, 1, 9, 4), "odd_L7_K9": (3, 24, 7, 9, 4), "odd_L129": (2, 40, 129, 5, 2),
       "odd_L517_K11": (3, 16, 517, 11, 5), "odd_K4": (2, 32, 130, 4, 1), "odd_pad0": (2, 16, 100, 3, 0),
       "odd_L300_K31": (2, 8, 300, 31, 15), "odd_L1030_K8": (1, 24, 1030, 8, 4)}


def case(lines, label: str, dtype: str, gbps: float, max_plans: int) -> int:
    """The tuned Triton pick and each TMA plan on one shape; the number of wrong results."""
    if label in ODD:
        N, C, L, K, pad = ODD[label]
        p = Depthwise(N=N, C_in=C, C_out=C, L=L, K=K, padding=pad, bias=True)
    else:
        p = problem(label)
    inp = p.make_inputs(dtype, device="cuda", layout="ncl", seed=5)
    x, b = inp.x, inp.bias
    g = td._geometry(x, inp.weight, b, p.stride, p.padding, p.dilation, "ncl")
    if g.K > 32 or g.stride != 1 or g.dilation != 1:
        return 0
    w = inp.weight.reshape(g.C_out, g.K).contiguous()
    ref = F.conv1d(x.double(), inp.weight.double(), None if b is None else b.double(), padding=g.padding,
                   groups=g.C_in)
    floor = p.bytes(dtype) / gbps / 1e3
    bad = check(lines, "triton (tuned pick)", lambda: td._forward(g, x, w, b), ref, label, dtype, floor) is False
    for plan in plans_for(g.N, g.C_out, g.L_in, g.L_out, g.K, g.padding, x.element_size())[:max_plans]:
        y = torch.full((g.N, g.C_out, g.L_out), float("nan"), device="cuda", dtype=x.dtype)
        go = gd.launcher(g.N, g.C_out, g.L_in, g.L_out, g.K, g.padding, x.dtype, plan, b is not None)

        def run(go=go, y=y):
            go(x, w, b if b is not None else w, y)
            return y
        bad += check(lines, plan.label(), run, ref, label, dtype, floor) is False
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--max-plans", type=int, default=12)
    ap.add_argument("--no-time", action="store_true", help="check against float64 only")
    ap.add_argument("--name", default="dw_tma_probe.md")
    args = ap.parse_args()
    global TIME
    TIME = not args.no_time
    gbps = copy_gbps()
    lines = [f"device {torch.cuda.get_device_name()}, triton {td.triton.__version__}, copy {gbps:.0f} GB/s", "",
             "| shape | dtype | path | µs | % floor | rel err | ok |", "|---|---|---|---:|---:|---:|---|"]
    shapes = args.shapes.split(",")
    dtypes = args.dtypes.split(",")
    bad = sum(case(lines, label, dtype, gbps, args.max_plans) for label in shapes for dtype in dtypes)
    emit(lines, args.name)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
