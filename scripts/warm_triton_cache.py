"""Compile every tuning candidate of the Triton depthwise (or, --op pointwise, pointwise) kernels
for the SHAPES.md shapes into
Triton's on-disk cache, one slice of the shapes per process (GPU machine). A convbench sweep
started afterwards tunes from cached binaries instead of compiling serially in its one worker.
The timings taken here (processes share the GPU) are thrown away with the process.

Usage: python3 scripts/warm_triton_cache.py --part I/N [--modes fwd,fwd_bwd] [--op pointwise]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import SHAPES, problem  # noqa: E402
from bench_pointwise_kernels import SHAPES as PW_SHAPES  # noqa: E402

from convbench.impls import triton_depthwise as td  # noqa: E402
from convbench.impls import triton_pointwise as tp  # noqa: E402
from convbench.problem import Pointwise  # noqa: E402


def warm_pointwise(args, i: int, n: int) -> None:
    """Both bias settings compile separately (bias is a constexpr); the tuner keys ignore it."""
    want = None if args.shapes is None else set(args.shapes.split(","))
    cases = [(s, d, lay, bias) for s in PW_SHAPES if want is None or s[0] in want
             for d in args.dtypes.split(",") for lay in args.layouts.split(",") for bias in (True, False)]
    for (label, N, C_in, C_out, L), dtype, layout, bias in cases[i - 1::n]:
        inp = Pointwise(N=N, C_in=C_in, C_out=C_out, L=L, bias=bias).make_inputs(dtype, device="cuda", layout=layout)
        tp.pointwise_conv1d(inp.x, inp.weight, inp.bias, layout=layout)
        torch.cuda.synchronize()
        print(f"warmed {label} {dtype} {layout} bias={bias}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="1/1")
    ap.add_argument("--dtypes", default="float32,bfloat16,float16")
    ap.add_argument("--modes", default="fwd")
    ap.add_argument("--shapes", default=None, help="default: every shape of the op")
    ap.add_argument("--op", choices=("depthwise", "pointwise"), default="depthwise")
    ap.add_argument("--layouts", default="ncl,nlc")
    args = ap.parse_args()
    i, n = (int(v) for v in args.part.split("/"))
    if args.op == "pointwise":
        warm_pointwise(args, i, n)
        return 0
    if args.shapes is None:
        args.shapes = ",".join(SHAPES)
    cases = [(s, d, lay) for s in args.shapes.split(",") for d in args.dtypes.split(",")
             for lay in args.layouts.split(",")]
    for s, dtype, layout in cases[i - 1::n]:
        p = problem(s)
        grads = "fwd_bwd" in args.modes
        inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=1, requires_grad=grads)
        y = td.depthwise_conv1d(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation,
                                layout)
        if grads:
            y.backward(torch.ones_like(y))
        torch.cuda.synchronize()
        print(f"warmed {s} {dtype} {layout}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
