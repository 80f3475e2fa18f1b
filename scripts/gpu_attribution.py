"""What each implementation really runs, and CUDA-event time vs profiler device-kernel time.

For every depthwise implementation on dtts_dec_b19 and every pointwise one on dtts_pw_up, in
float32 / float16 / bfloat16 and both layouts: the backend attribution (convbench.attribution),
the kernels launched, and a table of convbench's timer (CUDA events, cold L2, adaptive stopping;
convbench.timing.make_timer / measure_interleaved) beside the profiler's device-kernel time per
call (median of --reps profiled calls, each after the same L2 flush). Every row is checked against
the float64 reference first, as in the runner.

    python scripts/gpu_attribution.py                      # on the GPU; OUT=dir also writes
                                                           # $OUT/attribution.md
    python scripts/gpu_attribution.py --device cpu         # CPU fallback (small shapes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from convbench import env, precision
from convbench.attribution import Attribution, short_name, summarize_events
from convbench.presets import preset
from convbench.problem import make_problem, same_padding
from convbench.reference import reference, rel_err, tolerance
from convbench.registry import Case, all_impls
from convbench.timing import MeasureSettings, make_timer, measure_interleaved

SHAPES = ("dtts_dec_b19", "dtts_pw_up")
DTYPES = ("float32", "float16", "bfloat16")
LAYOUTS = ("ncl", "nlc")
SMALL = dict(N=2, L=64)  # CPU fallback: the model's channels and kernel, a short batch


@dataclass(frozen=True)
class Row:
    shape: str
    op: str
    dtype: str
    layout: str
    impl: str
    status: str  # ok | skipped | wrong | error
    reason: str | None = None
    backend: str | None = None
    event_ms: float | None = None
    kernel_ms: float | None = None
    copy_ms: float | None = None
    kernels: tuple[tuple[str, float], ...] = ()
    tf32: bool = False


def problem_for(label: str, small: bool):
    op, shape = preset(label)
    shape = dict(shape)
    if small:
        shape.update(SMALL)
    if shape.get("padding") == "same":
        shape["padding"] = same_padding(shape["K"], shape.get("dilation", 1))
    return make_problem(op, **shape)


def profiled_calls(fn, device: str, reps: int, flush, triton_impl: bool) -> list[Attribution]:
    """reps single calls, each profiled on its own after the timer's L2 flush (outside the trace)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU]
    if torch.device(device).type == "cuda":
        acts.append(ProfilerActivity.CUDA)
    out = []
    for _ in range(reps):
        if flush is not None:
            flush.zero_()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        with profile(activities=acts) as prof:
            fn()
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
        out.append(summarize_events(prof.events(), device, 1, triton_impl=triton_impl))
    return out


def run_case(label: str, problem, dtype: str, layout: str, device: str, settings: MeasureSettings,
             reps: int) -> list[Row]:
    case = Case(problem, dtype, layout, device)
    base = dict(shape=label, op=problem.op, dtype=dtype, layout=layout)
    rows: dict[str, Row] = {}
    fns, impls = {}, {}
    inputs = problem.make_inputs(dtype, device, layout, seed=0)
    ref = reference(problem, inputs)
    for impl in all_impls(problem.op):
        if impl.layout != layout:
            continue
        reason = impl.skip_reason(case)
        if reason:
            rows[impl.name] = Row(**base, impl=impl.name, status="skipped", reason=reason)
            continue
        tf32 = impl.uses_tf32(case)
        try:
            fn = impl.build(problem, inputs)
            err = rel_err(fn(), ref)
        except Exception as exc:  # report and go on: one broken impl must not hide the others
            rows[impl.name] = Row(**base, impl=impl.name, status="error",
                                  reason=f"{type(exc).__name__}: {exc}"[:200])
            continue
        if not err <= tolerance(dtype, tf32):
            rows[impl.name] = Row(**base, impl=impl.name, status="wrong", tf32=tf32,
                                  reason=f"max_rel_err {err:.2e} > {tolerance(dtype, tf32):.0e}")
            continue
        fns[impl.name], impls[impl.name] = fn, (impl, tf32)
    if fns:
        timer = make_timer(device, settings)
        measured = measure_interleaved(fns, timer, settings)
        flush = getattr(timer, "flush_buf", None)
        for name, fn in fns.items():
            impl, tf32 = impls[name]
            atts = profiled_calls(fn, device, reps, flush, "triton" in impl.requires)
            mid = atts[len(atts) // 2]
            k = [a.kernel_time_ms for a in atts if a.kernel_time_ms is not None]
            c = [a.copy_time_ms for a in atts if a.copy_time_ms is not None]
            rows[name] = Row(
                **base, impl=name, status="ok", backend=mid.backend,
                event_ms=measured[name].summary.median_ms,
                kernel_ms=statistics.median(k) if k else None,
                copy_ms=statistics.median(c) if c else None,
                kernels=mid.kernels, tf32=tf32,
            )
    order = [i.name for i in all_impls(problem.op) if i.name in rows]
    return [rows[n] for n in order]


def _ms(v: float | None) -> str:
    return f"{v:.4f}" if v is not None else "n/a"


def table(rows: list[Row]) -> str:
    head = ("| shape | dtype | layout | impl | backend | event ms | kernel ms | kernel/event | "
            "copy ms | note |")
    lines = [head, "|---|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = (f"{100 * r.kernel_ms / r.event_ms:.0f} %"
                 if r.kernel_ms is not None and r.event_ms else "n/a")
        note = r.reason or ("TF32" if r.tf32 else "")
        if r.status != "ok":
            note = f"{r.status}: {note}"
        lines.append(f"| {r.shape} | {r.dtype} | {r.layout} | {r.impl} | {r.backend or ''} | "
                     f"{_ms(r.event_ms)} | {_ms(r.kernel_ms)} | {ratio} | {_ms(r.copy_ms)} | "
                     f"{note.replace('|', '/')} |")
    return "\n".join(lines)


def kernel_lists(rows: list[Row]) -> str:
    out = []
    for r in rows:
        if r.status != "ok":
            continue
        out.append(f"- {r.shape} {r.dtype} {r.layout} **{r.impl}** -> `{r.backend}`")
        for name, us in r.kernels:
            unit = "µs device" if r.kernel_ms is not None else "µs CPU (operator)"
            out.append(f"    - `{short_name(name)[:120]}` {us:.1f} {unit}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES))
    ap.add_argument("--reps", type=int, default=5, help="profiled calls per row (median kept)")
    ap.add_argument("--max-time-s", type=float, default=0.5, help="timer cap per row")
    ap.add_argument("--full", action="store_true", help="on CPU too, the full model shapes")
    args = ap.parse_args(argv)

    device = args.device
    on_cpu = torch.device(device).type == "cpu"
    small = on_cpu and not args.full
    settings = MeasureSettings(l2="cold", target_rel_ci=0.01, min_samples=10,
                               max_time_s=args.max_time_s, warmup_ms=25)
    t0 = time.time()
    rows: list[Row] = []
    with precision.policy("default"):
        for label in args.shapes:
            problem = problem_for(label, small)
            for dtype in args.dtypes:
                for layout in args.layouts:
                    got = run_case(label, problem, dtype, layout, device, settings, args.reps)
                    for r in got:
                        print(f"{label:<13} {dtype:<8} {layout} {r.impl:<14} {r.status:<7} "
                              f"{r.backend or r.reason or ''}  event={_ms(r.event_ms)} "
                              f"kernel={_ms(r.kernel_ms)}", flush=True)
                        for name, us in r.kernels[:8]:
                            print(f"{'':>30}{short_name(name)[:100]}  {us:.1f} µs")
                    rows.extend(got)
        flags = precision.flags()

    shapes_txt = ", ".join(f"{s} = {problem_for(s, small).label()}" for s in args.shapes)
    md = "\n\n".join([
        "# Kernel attribution: what each implementation runs",
        f"Device: {env.device_name(device)} ({device}); torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}. "
        f"Precision flags: {flags}. Shapes: {shapes_txt}"
        + (" (shrunk for the CPU fallback)" if small else "") + ".",
        "event ms: convbench's timer (CUDA events around one call, L2 flushed before each sample, "
        "median). kernel ms: sum of the device kernels of one call in torch.profiler (median of "
        f"{args.reps} calls, same flush). event - kernel is launch and host overhead. copy ms: the "
        "part of kernel ms spent in layout copies.",
        table(rows),
        "## Kernels per row (one profiled call)",
        kernel_lists(rows),
        f"_{len(rows)} rows in {time.time() - t0:.0f} s; `python scripts/gpu_attribution.py`._",
    ]) + "\n"
    print()
    print(table(rows))
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "attribution.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(md, encoding="utf-8")
        print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
