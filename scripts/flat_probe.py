"""Time chosen (N, C, L) forward plans of the generated kernels side by side (the tuner's own
timer: CUDA-graph replays, cold L2) and check each against float64: the flat kernel's
candidates against the row-tile plans the tuner picked. A probe for kernel work, quicker than a
full tuning run (GPU machine).

  python3 scripts/flat_probe.py --case "nemo_fastconformer_L:bfloat16:4,32,4,8,4,0;8,16,4,8,4,0"
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import copy_gbps, problem  # noqa: E402

from convbench.impls import triton_depthwise as td  # noqa: E402
from convbench.reference import rel_err, tolerance  # noqa: E402


def ncl_case(label: str, dtype: str):
    """A SHAPES.md case in (N, C, L) on the GPU: (problem, inputs, geometry, weight (C, K), y,
    the generated kernels' (plans, launch), float64 reference)."""
    p = problem(label)
    inp = p.make_inputs(dtype, device="cuda", layout="ncl", seed=5)
    g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, "ncl")
    w = inp.weight.reshape(g.C_out, g.K).contiguous()
    y = torch.empty((g.N, g.C_out, g.L_out), device="cuda", dtype=inp.x.dtype)
    plans, launch, _ = td._gen_conv("ncl", g.dtype, g.N, g.C_out, g.L_in, g.L_out, g.K, g.padding,
                                    False, inp.x, w, inp.bias, y)
    ref = F.conv1d(inp.x.double(), inp.weight.double(), inp.bias.double() if inp.bias is not None else None,
                   padding=g.padding, groups=g.C_in)
    return p, inp, g, w, y, plans, launch, ref


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--case", action="append", required=True,
                    help="label:dtype[:row plan;row plan...], a row plan as block_c,G,warps,V,nb,split")
    ap.add_argument("--toeplitz", action="store_true",
                    help="also the tensor-core (Toeplitz) kernel's plans, at any K")
    ap.add_argument("--no-flat", action="store_true", help="leave out the flat kernel's plans")
    ap.add_argument("--v16", action="store_true",
                    help="also 16-element groups at any K (the tuner offers them from NCL_V16_MIN_K)")
    args = ap.parse_args()
    td.NCL_FLAT_MIN_L = 1  # probe the flat kernel on every row length, not only where it is offered
    if args.v16:
        td.NCL_V16_MIN_K = 1
    gbps = copy_gbps()
    print(f"device {torch.cuda.get_device_name()}, triton {td.triton.__version__}, copy {gbps:.0f} GB/s", flush=True)
    bad = 0
    for spec in args.case:
        label, dtype, *rows = spec.split(":")
        p, inp, g, w, y, plans, launch, ref = ncl_case(label, dtype)
        cands = [] if args.no_flat else [pl for pl in plans() if isinstance(pl[0], str)]
        for r in (rows[0].split(";") if rows else []):
            v = [int(t) for t in r.split(",")]
            cands.insert(0, (*v[:5], bool(v[5])))
        floor = p.bytes(dtype) / gbps / 1e3
        print(f"{label} {dtype} floor {floor:.1f} us", flush=True)
        if args.toeplitz:
            tz = td._toeplitz_launch(g, inp.x, w, inp.bias, y, g.L_in, g.L_out, g.padding, False)
            cands += td._toeplitz_plans()
        for pl in cands:
            y.fill_(float("nan"))
            run = tz if pl[0] == "toeplitz" else launch
            run(*pl)
            err = float(rel_err(y, ref))
            ok = err <= tolerance(dtype, False)
            bad += not ok
            us = td._timed_or_inf(run, pl) * 1e3
            print(f"    {us:8.1f} us ({100 * floor / us:3.0f}% of floor)  err {err:.1e}{'' if ok else ' FAIL'}  {pl}",
                  flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
