"""Profile target for Nsight Compute: tune each case's Triton depthwise forward (outside the
profiled range), then run it twice inside an NVTX range "prof" so that ncu sees only tuned kernels.

GPU machine:
  ncu --nvtx --nvtx-include "prof/" --section SpeedOfLight --section MemoryWorkloadAnalysis \
      --section WarpStateStats --section Occupancy --csv --page details \
      python3 scripts/ncu_depthwise.py --cases dtts_dec_b19:float32:ncl,dtts_dec_b19:float32:nlc
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import problem  # noqa: E402

from convbench.impls import triton_depthwise as td  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", required=True, help="label:dtype:layout,...")
    ap.add_argument("--all-plans", action="store_true",
                    help="profile every generated-kernel candidate, each in an NVTX range named by its plan")
    ap.add_argument("--only", default="",
                    help="with --all-plans: only these plans ('|'-separated), each as its tuple's repr or as "
                         "convbench names it with its spaces left out, e.g. 'cls(block_c=4,G=32,warps=4,V=8,nb=1)'")
    args = ap.parse_args()
    only = set(filter(None, args.only.split("|")))
    for case in args.cases.split(","):
        label, dtype, layout = case.split(":")
        p = problem(label)
        inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=5)
        g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, layout)
        w = inp.weight.reshape(g.C_out, g.K).contiguous()
        if args.all_plans:
            y = torch.empty_like(inp.x)
            plans, launch, _ = td._gen_conv(layout, g.dtype, g.N, g.C_out, g.L_in, g.L_out, g.K,
                                            g.padding, False, inp.x, w, inp.bias, y)
            for plan in plans():
                name = td._describe(layout, "gen", td._tagged(plan))
                if only and str(plan) not in only and name.replace(" ", "") not in only:
                    continue
                launch(*plan)  # compiles
                torch.cuda.synchronize()
                torch.cuda.nvtx.range_push("prof")
                torch.cuda.nvtx.range_push(f"{case}:{name}")
                print(f"{case}: {name}", flush=True)
                launch(*plan)
                torch.cuda.nvtx.range_pop()
                torch.cuda.nvtx.range_pop()
            torch.cuda.synchronize()
            continue
        td._forward(g, inp.x, w, inp.bias)  # tunes
        torch.cuda.synchronize()
        print(f"{case}: {td.plan_of(g)}", flush=True)
        torch.cuda.nvtx.range_push("prof")
        for _ in range(2):
            td._forward(g, inp.x, w, inp.bias)
        torch.cuda.nvtx.range_pop()
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
