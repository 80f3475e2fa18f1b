"""Compile every tuning candidate of the Triton depthwise kernels for the SHAPES.md shapes into
Triton's on-disk cache, one slice of the shapes per process (GPU machine). A convbench sweep
started afterwards tunes from cached binaries instead of compiling serially in its one worker.
The timings taken here (processes share the GPU) are thrown away with the process.

Usage: python3 scripts/warm_triton_cache.py --part I/N [--modes fwd,fwd_bwd]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import SHAPES, problem  # noqa: E402

from convbench.impls import triton_depthwise as td  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="1/1")
    ap.add_argument("--dtypes", default="float32,bfloat16,float16")
    ap.add_argument("--modes", default="fwd")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--layouts", default="ncl,nlc")
    args = ap.parse_args()
    i, n = (int(v) for v in args.part.split("/"))
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
