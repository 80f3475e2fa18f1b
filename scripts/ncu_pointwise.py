"""Profile target for Nsight Compute: the tuned Triton pointwise kernel and F.linear (cuBLAS) on
one (N, L, C) shape, each run twice inside an NVTX range "prof" after tuning outside it, so
that ncu sees only the tuned kernels (GPU machine; gpu_evidence.sh step `ncupw`).

  ncu --nvtx --nvtx-include "prof/" --section SpeedOfLight ... \
      python3 scripts/ncu_pointwise.py --shape 19,1024,512,517
"""

from __future__ import annotations

import argparse
import functools

import torch

from convbench.impls.triton_pointwise import GLUON_CONFIGS, TMA_CONFIGS, _forward
from convbench.problem import Pointwise
from convbench.registry import get


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="19,1024,512,517", help="N,C_in,C_out,L")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--bias", action="store_true")
    ap.add_argument("--configs", default="",
                    help="also profile these tile configs, forced: [VARIANT:]LABEL as in the tuning log, "
                         "';'-separated; VARIANT nlc_tma (the default) or nlc_gluon, e.g. "
                         "'64x128x64 w4 s4 p2;nlc_gluon:128x128x64 w4 s4'")
    args = ap.parse_args()
    N, C_in, C_out, L = (int(v) for v in args.shape.split(","))
    p = Pointwise(N=N, C_in=C_in, C_out=C_out, L=L, bias=args.bias)
    inp = p.make_inputs(args.dtype, device="cuda", layout="nlc", seed=5)
    # the two implementations as convbench builds and times them
    tri = get("pointwise", "triton_nlc").build(p, inp)
    paths = {"triton_nlc": tri, "linear_nlc": get("pointwise", "linear_nlc").build(p, inp)}
    sets = {"nlc_tma": TMA_CONFIGS["tf32" if args.dtype == "float32" else "16bit"], "nlc_gluon": GLUON_CONFIGS}
    for item in filter(None, (s.strip() for s in args.configs.split(";"))):
        variant, _, label = item.rpartition(":")
        variant = variant or "nlc_tma"
        cfg = {c.label(): c for c in sets[variant]}[label]  # a KeyError names what is not in the set
        paths[f"{variant} {label}"] = functools.partial(  # precision None: the process's policy
            _forward, inp.x, inp.weight, inp.bias, 1, 0, "nlc", None, config=cfg, variant=variant)
    for name, fn in paths.items():
        fn()  # tunes (Triton) or warms up (cuBLAS)
        torch.cuda.synchronize()
        label = {"triton_nlc": tri.plan(), "linear_nlc": "cuBLAS"}.get(name, name)
        print(f"{name}: {label}", flush=True)
        torch.cuda.nvtx.range_push("prof")
        torch.cuda.nvtx.range_push(name)
        for _ in range(2):
            fn()
        torch.cuda.nvtx.range_pop()
        torch.cuda.nvtx.range_pop()
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
