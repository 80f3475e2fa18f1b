"""Where the time of one Triton pointwise call goes on the GPU machine: host enqueue time, calls
back to back, CUDA-graph replay and cold-L2 do_bench, for the TMA kernel with its descriptors
built on the device (pointers passed) or on the host (TensorDescriptor, encoded by the launcher
on every call), the pointer kernel, and torch's best path on the same storage.

Usage (GPU): OUT=dir python3 scripts/launch_cost_pointwise.py
"""

from __future__ import annotations

import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
import triton
import triton.testing

from convbench.impls import triton_pointwise as tp
from convbench.problem import Pointwise

CASES = (  # label, N, C_in, C_out, L, layout, bias
    ("anchor_384_768", 16, 384, 768, 1024, "nlc", False),
    ("anchor_384_768", 16, 384, 768, 1024, "nlc", True),
    ("dtts_pw_1024_512", 19, 1024, 512, 517, "nlc", False),
    ("anchor_384_768", 16, 384, 768, 1024, "ncl", False),
    # odd L in (N, C, L): ncl_t's three launches (transpose, GEMM, transpose) per call
    ("dtts_pw_1024_512", 19, 1024, 512, 517, "ncl", False),
    ("fastconf_L_pw", 128, 512, 1024, 209, "ncl", True),
)


def host_us(fn, calls: int = 50) -> float:
    """Enqueue time per call: the queue never fills in 50 calls, so this is host work alone."""
    samples = []
    for _ in range(7):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t) / calls * 1e6)
    torch.cuda.synchronize()
    return statistics.median(samples)


def back_to_back_us(fn, calls: int = 300) -> float:
    """Steady state of a loop of calls: max(host, GPU) per call."""
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / calls * 1e6


def case_rows(label, N, C_in, C_out, L, layout, bias) -> list[dict]:
    """Every path of one case: ours with each descriptor mode, and torch's."""
    p = Pointwise(N=N, C_in=C_in, C_out=C_out, L=L, bias=bias)
    inp = p.make_inputs("bfloat16", device="cuda", layout=layout, seed=0)
    x, w, b = inp.x, inp.weight, inp.bias
    ref = (F.linear(x, w.squeeze(-1), b) if layout == "nlc" else F.conv1d(x, w, b)).float()

    def ours():
        return tp.pointwise_conv1d(x, w, b, layout=layout)

    paths = {"tma device desc": ("device", ours), "tma host desc": ("host", ours)}
    if layout == "nlc":
        paths["torch F.linear"] = (None, lambda: F.linear(x, w.squeeze(-1), b))
    else:
        paths["torch conv1d"] = (None, lambda: F.conv1d(x, w, b))
    rows = []
    for name, (mode, fn) in paths.items():
        if mode:  # a fresh plan built in this descriptor mode (the tuned choice is kept)
            tp.TMA_DESCRIPTORS = mode
            tp._PLANS.clear()
        err = ((fn().float() - ref).norm() / ref.norm()).item()
        row = dict(case=f"{label} {layout} bias={bias}", path=name, rel_diff_vs_torch=err,
                   host_us=host_us(fn), back_to_back_us=back_to_back_us(fn),
                   graph_us=triton.testing.do_bench_cudagraph(fn, rep=30, return_mode="median") * 1e3,
                   cold_l2_us=triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median") * 1e3)
        row["rel_diff_after_timing"] = ((fn().float() - ref).norm() / ref.norm()).item()  # relaunched
        if mode:
            sig = tp._signature(x, w, b, 1, 0, layout, tp.triton_input_precision())
            row["plan"] = getattr(tp._PLANS.get(sig), "label", "")
        rows.append(row)
        print(json.dumps(row), flush=True)
    tp.TMA_DESCRIPTORS = "host"
    return rows


def main() -> None:
    rows = [r for case in CASES for r in case_rows(*case)]
    lines = [f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}", "",
             "| case | path | plan | host µs/call | back-to-back µs/call | graph µs | cold-L2 µs |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['path']} | {r.get('plan', '')} | {r['host_us']:.1f} | {r['back_to_back_us']:.1f} | "
              f"{r['graph_us']:.1f} | {r['cold_l2_us']:.1f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "launch_cost_pointwise.md"), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
