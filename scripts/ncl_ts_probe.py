"""PROBE: ncl_ts, the (N, C, L) pointwise through (N, L, C) with y stored (N, C, L) by the GEMM's
epilogue (no transpose back), each TMA config forced, one process per config (session 12's first
run of it hit an illegal address inside the tuner, which poisons the process), with
CUDA_LAUNCH_BLOCKING=1 so a fault names its config. Each config: error against float64 and CUDA
graph time on the odd-L (N, C, L) shapes, beside ncl_t with the same config and the tuned path.

Usage (GPU): OUT=dir python3 scripts/ncl_ts_probe.py
             python3 scripts/ncl_ts_probe.py --one INDEX [--check-only]   (one config; no timing)
"""

from __future__ import annotations

import os
import subprocess
import sys

from probe_io import emit

SHAPES = (  # label, N, C_in, C_out, L
    ("dtts_pw_1024_512", 19, 1024, 512, 517),
    ("dtts_pw_512_2048", 19, 512, 2048, 517),
    ("fastconf_L_pw", 128, 512, 1024, 209),
)


def one(index: int, timed: bool = True) -> None:
    """Config `index` of ncl_ts (-1: the tuned path), every shape, one line each; timed=False
    runs and checks each once (for compute-sanitizer, under which timing is meaningless)."""
    import torch
    import torch.nn.functional as F
    import triton.testing

    from convbench.impls import triton_pointwise as tp

    for label, N, C_in, C_out, L in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn((N, C_in, L), device="cuda", generator=gen).bfloat16()
        w = (torch.randn((C_out, C_in, 1), device="cuda", generator=gen) / C_in**0.5).bfloat16()
        b = torch.randn((C_out,), device="cuda", generator=gen).bfloat16()
        ref = F.conv1d(x.double(), w.double(), b.double())
        configs = tp._tma_configs("ncl_ts", "16bit", C_in, C_out)
        if index < 0:
            runs = {"tuned": lambda x=x, w=w, b=b: tp.pointwise_conv1d(x, w, b, layout="ncl")}
        else:
            cfg = configs[index]
            runs = {f"{v} {cfg.label()}": (lambda v=v, cfg=cfg, x=x, w=w, b=b: tp._forward(x, w, b, 1, 0, "ncl", "ieee", config=cfg,
                                                                   variant=v))
                    for v in ("ncl_ts", "ncl_t")}
        for name, fn in runs.items():
            y = fn()
            torch.cuda.synchronize()
            err = ((y.double() - ref).norm() / ref.norm()).item()
            us = triton.testing.do_bench_cudagraph(fn, rep=40, return_mode="median") * 1e3 if timed else float("nan")
            plan = getattr(list(tp._PLANS.values())[-1], "label", "") if index < 0 and tp._PLANS else ""
            flag = "" if err < 2e-2 else " WRONG"
            print(f"| {label} | {name} {plan} | {err:.1e}{flag} | {us:.1f} |", flush=True)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":  # --one INDEX [--check-only]
        one(int(sys.argv[2]), timed="--check-only" not in sys.argv[3:])
        return 0
    from convbench.impls import triton_pointwise as tp

    n = len(tp._tma_configs("ncl_ts", "16bit", 1024, 512))
    lines = ["| shape | path | rel err vs fp64 | graph µs |", "|---|---|---:|---:|"]
    for i in [*range(n), -1]:
        env = dict(os.environ, CUDA_LAUNCH_BLOCKING="1")
        r = subprocess.run([sys.executable, __file__, "--one", str(i)], env=env, capture_output=True, text=True,
                           timeout=120)
        lines += [ln for ln in r.stdout.splitlines() if ln.startswith("|")]
        if r.returncode:
            err = [ln for ln in r.stderr.splitlines() if "Error" in ln or "error" in ln][-1:]
            lines.append(f"| config {i} | FAILED rc={r.returncode}: {' '.join(err)[:200]} | | |")
        print("\n".join(lines[-7:]), flush=True)
    emit(lines, "ncl_ts_probe.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
