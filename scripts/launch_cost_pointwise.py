"""Where the time of one Triton pointwise call goes on the GPU machine: host enqueue time, calls
back to back, CUDA-graph replay and cold-L2 do_bench, for the TMA kernel with its descriptors
built on the device (pointers passed) or on the host (TensorDescriptor, encoded by the launcher
on every call), the pointer kernel, and torch's best path on the same storage.

Usage (GPU): OUT=dir python3 scripts/launch_cost_pointwise.py [--cases LABEL,...] [--profile]
--cases keeps the cases whose label is named; --profile writes a cProfile of 200 calls of each of
our paths (top functions by own time) to $OUT/launch_cost_profile.txt, to find where host time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
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


def host_us(fn, calls: int = 50) -> tuple[float, float]:
    """Enqueue time per call, wall and this thread's CPU time: the queue never fills in 50 calls,
    so wall is host work alone, and wall well above CPU time means the host waited (a sync, a
    lock, a page fault), not that it computed."""
    wall, cpu = [], []
    for _ in range(7):
        torch.cuda.synchronize()
        t, c = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            fn()
        wall.append((time.perf_counter() - t) / calls * 1e6)
        cpu.append((time.thread_time() - c) / calls * 1e6)
    torch.cuda.synchronize()
    return statistics.median(wall), statistics.median(cpu)


def profile_text(fn, title: str, calls: int = 200) -> str:
    """cProfile of `calls` calls: the top 25 functions by their own time."""
    fn()
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    torch.cuda.synchronize()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    return f"## {title} ({calls} calls)\n{buf.getvalue()}\n"


def back_to_back_us(fn, calls: int = 300) -> float:
    """Steady state of a loop of calls: max(host, GPU) per call."""
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / calls * 1e6


PROFILES: list[str] = []


def case_rows(label, N, C_in, C_out, L, layout, bias, profile=False) -> list[dict]:
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
        wall, cpu = host_us(fn)
        row = dict(case=f"{label} {layout} bias={bias}", path=name, rel_diff_vs_torch=err,
                   host_us=wall, host_cpu_us=cpu, back_to_back_us=back_to_back_us(fn),
                   graph_us=triton.testing.do_bench_cudagraph(fn, rep=30, return_mode="median") * 1e3,
                   cold_l2_us=triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median") * 1e3)
        row["rel_diff_after_timing"] = ((fn().float() - ref).norm() / ref.norm()).item()  # relaunched
        if mode:
            sig = tp._signature(x, w, b, 1, 0, layout, tp.triton_input_precision())
            row["plan"] = getattr(tp._PLANS.get(sig), "label", "")
            if profile:
                PROFILES.append(profile_text(fn, f"{row['case']} {name} {row['plan']}"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    tp.TMA_DESCRIPTORS = "host"
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="comma-separated case labels to keep (default: all)")
    ap.add_argument("--profile", action="store_true", help="cProfile each of our paths")
    args = ap.parse_args()
    keep = {c for c in args.cases.split(",") if c}
    unknown = keep - {c[0] for c in CASES}
    if unknown:
        ap.error(f"unknown case label(s) {sorted(unknown)}; known: {sorted({c[0] for c in CASES})}")
    rows = [r for case in CASES if not keep or case[0] in keep for r in case_rows(*case, profile=args.profile)]
    import convbench
    lines = [f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}; "
             f"convbench from {os.path.dirname(convbench.__file__)}", "",
             "| case | path | plan | host µs/call | host CPU µs/call | back-to-back µs/call | graph µs | cold-L2 µs |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['path']} | {r.get('plan', '')} | {r['host_us']:.1f} | {r['host_cpu_us']:.1f} | {r['back_to_back_us']:.1f} | "
              f"{r['graph_us']:.1f} | {r['cold_l2_us']:.1f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    out = os.environ.get("OUT")
    if out:
        tag = os.environ.get("PW_LAUNCH_TAG", "")
        with open(os.path.join(out, f"launch_cost_pointwise{tag}.md"), "w") as f:
            f.write(text + "\n")
        if PROFILES:
            with open(os.path.join(out, f"launch_cost_profile{tag}.txt"), "w") as f:
                f.write("".join(PROFILES))


if __name__ == "__main__":
    main()
