"""convbench's CUDA timer against the truth: for kernels from ~5 µs to ~5 ms, the median that
convbench's cold-L2 event timer reports vs the device time CUPTI (torch.profiler) records for the
same calls under the same flush. Writes a markdown table to $OUT/timer_check.md."""

from __future__ import annotations

import os
import statistics

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from convbench.timing import MeasureSettings, make_timer, measure_interleaved


def cases():
    # (label, closure): depthwise convs (ATen native, one kernel per call) and a GEMM, sized to
    # span 5 µs .. 5 ms; every one launches a single device kernel, so kernel time == call time.
    for n, c, length in ((1, 64, 1024), (4, 256, 1024), (19, 1024, 517), (64, 1024, 1024), (128, 2048, 2048)):
        x = torch.randn(n, c, length, device="cuda")
        w = torch.randn(c, 1, 11, device="cuda")
        yield f"depthwise fp32 N={n} C={c} L={length} K=11", (lambda x=x, w=w: F.conv1d(x, w, padding=5, groups=x.shape[1]))
    for m in (256, 1024, 4096, 8192):
        a = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
        yield f"matmul bf16 {m}^3", (lambda a=a: a @ a)


def profiled_kernel_ms(fn, timer, reps: int = 30) -> float:
    """Median per-call device time of fn's kernels under CUPTI, flush and spin kernels excluded."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            torch.cuda.nvtx.range_push("call")
            timer.sample(fn)
            torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()
    per_call: list[float] = []
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    # the flush (a fill/zero kernel) precedes each call; group the rest by call order
    # drop the flush (a fill/zero kernel before each call) and the timer's spin (sleep) kernel
    skip = ("fill", "zero", "spin", "sleep")
    work = [e for e in kernels if not any(s in e.name.lower() for s in skip)]
    k_per_call = max(1, len(work) // reps)
    for i in range(0, len(work) - k_per_call + 1, k_per_call):
        per_call.append(sum((getattr(e, "device_time", None) or e.cuda_time) for e in work[i:i + k_per_call]) / 1e3)
    return statistics.median(per_call)


def main() -> None:
    settings = MeasureSettings(l2="cold", target_rel_ci=0.005, min_samples=20, max_time_s=2.0, warmup_ms=50)
    timer = make_timer("cuda", settings)
    rows = []
    for label, fn in cases():
        m = measure_interleaved({label: fn}, timer, settings)[label]
        prof_ms = profiled_kernel_ms(fn, timer)
        diff = (m.summary.median_ms - prof_ms) / prof_ms * 100
        rows.append((label, m.summary.median_ms * 1e3, m.summary.rel_ci * 100, prof_ms * 1e3, diff, m.summary.n_samples))
        print(f"{label:42s} convbench {m.summary.median_ms*1e3:10.1f} µs ±{m.summary.rel_ci*100:.1f}%  CUPTI {prof_ms*1e3:10.1f} µs  diff {diff:+.1f}%")
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "timer_check.md"), "w") as f:
            f.write(f"# convbench timer vs CUPTI kernel time\n\nDevice: {torch.cuda.get_device_name()}, torch {torch.__version__}. "
                    "Cold L2 (flush before each sample), medians; CUPTI time is the median over 30 profiled calls "
                    "of the call's kernels' device time (flush kernels excluded).\n\n"
                    "| kernel | convbench median µs | ±CI % | CUPTI median µs | diff % | samples |\n|---|---|---|---|---|---|\n")
            for r in rows:
                f.write(f"| {r[0]} | {r[1]:.1f} | {r[2]:.2f} | {r[3]:.1f} | {r[4]:+.1f} | {r[5]} |\n")


if __name__ == "__main__":
    main()
