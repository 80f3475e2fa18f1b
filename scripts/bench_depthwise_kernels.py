"""Check, then time, the Triton depthwise kernels against torch and cuDNN on the SHAPES.md shapes (GPU)."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import asdict, dataclass

import torch
from triton.testing import do_bench

from convbench.impls import triton_depthwise as td
from convbench.problem import Depthwise, Problem, same_padding
from convbench.reference import reference_ncl, rel_err, tolerance
from convbench.registry import get

# label: (N, C, L, K, bias), stride 1, "same" padding K // 2 (SHAPES.md)
SHAPES: dict[str, tuple[int, int, int, int, bool]] = {
    "dtts_dec_b19": (19, 1024, 517, 11, True),
    "dtts_dec_b5": (5, 1024, 517, 11, True),
    "dtts_enc": (19, 1024, 128, 7, True),
    "dtts_varpred": (19, 512, 128, 5, True),
    "nemo_conformer_L": (16, 512, 418, 31, True),
    "nemo_fastconformer_L": (128, 512, 209, 9, True),
    "nemo_fastconformer_S": (128, 176, 209, 9, True),
    "nemo_fastconformer_XXL": (128, 1024, 209, 5, True),
    "torchaudio_doc": (10, 80, 400, 31, False),
    "long_seq": (1, 4096, 8192, 4, True),
    "long_kernel": (32, 768, 768, 768, True),
}
NATIVE = {"nemo_conformer_L": "float32,float16", "long_seq": "bfloat16"}
NATIVE.update({k: "bfloat16" for k in SHAPES if k.startswith("nemo_fastconformer")})
BASELINES = {"ncl": ("triton", "torch", "cudnn"), "nlc": ("triton_nlc", "torch_nlc", "cudnn_nlc")}


@dataclass(frozen=True)
class Row:
    shape: str
    dtype: str
    layout: str
    mode: str
    floor_us: float
    mbytes: float
    triton_us: float
    torch_us: float
    cudnn_us: float
    err: str

    @property
    def pct_floor(self) -> float:
        return 100 * self.floor_us / self.triton_us

    @property
    def vs_torch(self) -> float:
        return self.torch_us / self.triton_us

    @property
    def vs_cudnn(self) -> float:
        return self.cudnn_us / self.triton_us


def problem(label: str) -> Problem:
    N, C, L, K, bias = SHAPES[label]
    return Depthwise(N=N, C_in=C, C_out=C, L=L, K=K, padding=same_padding(K), bias=bias)


def copy_gbps() -> float:
    x = torch.randn(2**28, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    ms = do_bench(lambda: y.copy_(x), return_mode="median")
    return 2 * x.numel() * x.element_size() / ms / 1e6


def check(p: Problem, dtype: str, layout: str, grads: bool) -> float:
    """Max rel_err over y (and grads) vs float64; raises if over tolerance.

    long_kernel's float64 reference keeps K (N, C, L) terms for autograd and does not fit the
    GPU (run 1): its gradients are checked on a batch of 2.
    """
    if grads and p.K > 64:
        p = Depthwise(N=2, C_in=p.C_in, C_out=p.C_out, L=p.L, K=p.K, padding=p.padding,
                      bias=p.bias)
    inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=7, requires_grad=grads)
    y = td.depthwise_conv1d(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, layout)
    leaves = [t.detach().double().requires_grad_(grads) for t in inp.tensors()]
    x64, w64 = leaves[0], leaves[1]
    b64 = leaves[2] if inp.bias is not None else None
    ref = reference_ncl(p, x64 if layout == "ncl" else x64.transpose(1, 2), w64, b64)
    ref = ref if layout == "ncl" else ref.transpose(1, 2)
    errs = {"y": rel_err(y, ref)}
    if grads:
        gy = torch.randn(ref.shape, device="cuda").to(y.dtype)
        y.backward(gy)
        ref.backward(gy.double())
        for name, t, t64 in zip(("gx", "gw", "gb"), inp.tensors(), leaves, strict=False):
            errs[name] = rel_err(t.grad, t64.grad)
    tol = tolerance(dtype)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    if bad:
        raise AssertionError(f"{p.label()} {dtype} {layout}: rel_err {bad} > {tol}")
    return max(errs.values())


def time_impl(name: str, p: Problem, dtype: str, layout: str, mode: str) -> float:
    """Median µs of one impl's closure (fwd) or closure + backward (fwd_bwd); nan if it fails."""
    impl = get("depthwise", name)
    grads = mode == "fwd_bwd"
    inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=3, requires_grad=grads)
    fn = impl.build(p, inp)
    try:
        if grads:
            gy = torch.randn_like(fn())

            def step():
                fn().backward(gy)

            step()
            ms = do_bench(step, warmup=10, rep=40, grad_to_none=inp.tensors(),
                          return_mode="median")
        else:
            fn()
            ms = do_bench(fn, warmup=10, rep=40, return_mode="median")
    except (RuntimeError, NotImplementedError) as exc:
        print(f"  {name} {mode} failed: {str(exc).splitlines()[0][:120]}", flush=True)
        return float("nan")
    return ms * 1e3


def unroll_experiment(gbps: float) -> list[str]:
    """Forward with K a compile-time constant (unrolled) vs the runtime tap loop, same tiles."""
    out = []
    for label, dtype in (("dtts_dec_b19", "float32"), ("nemo_fastconformer_L", "bfloat16")):
        p = problem(label)
        floor = p.bytes(dtype) / gbps / 1e3
        for layout in ("ncl", "nlc"):
            name = BASELINES[layout][0]
            times = {}
            for unroll in (td.MAX_UNROLL_K, 0):
                saved = td.MAX_UNROLL_K
                td.MAX_UNROLL_K = unroll
                td.reset_plans()
                try:
                    times[unroll] = time_impl(name, p, dtype, layout, "fwd")
                finally:
                    td.MAX_UNROLL_K = saved
            td.reset_plans()
            line = (f"unroll {label} {dtype} {layout}: static {times[td.MAX_UNROLL_K]:.1f} us "
                    f"({100 * floor / times[td.MAX_UNROLL_K]:.0f}%), runtime loop {times[0]:.1f} us "
                    f"({100 * floor / times[0]:.0f}%)")
            print(line, flush=True)
            out.append(line)
    return out


def host_vs_gpu(p: Problem, dtype: str, layout: str, iters: int = 50) -> tuple[float, float]:
    """Triton fwd+bwd run back to back: wall time per iteration vs the sum of its GPU kernels."""
    inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=4, requires_grad=True)
    fn = get("depthwise", BASELINES[layout][0]).build(p, inp)
    gy = torch.randn_like(fn())

    def step():
        for t in inp.tensors():
            t.grad = None
        fn().backward(gy)

    step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    wall_us = (time.perf_counter() - t0) / iters * 1e6
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                step()
            torch.cuda.synchronize()
        gpu_us = sum(e.self_device_time_total for e in prof.key_averages()) / 10
    except (RuntimeError, AttributeError) as exc:
        print(f"  profiler failed: {exc}")
        gpu_us = float("nan")
    return wall_us, gpu_us


def bwd_breakdown(gbps: float) -> list[str]:
    """Each backward kernel alone (after its tiles are picked), against one pass over its bytes."""
    out = []
    for label, dtype in (("dtts_dec_b19", "float32"), ("nemo_fastconformer_L", "bfloat16")):
        p = problem(label)
        one_pass = p.bytes(dtype) / gbps / 1e3
        for layout in ("ncl", "nlc"):
            inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=5)
            g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, layout)
            w = inp.weight.reshape(g.C_out, g.K).contiguous()
            gy = td._forward(g, inp.x, w, inp.bias)
            gx_us = do_bench(lambda g=g, gy=gy, w=w: td._grad_x(g, gy, w), return_mode="median") * 1e3
            x = inp.x
            gw_us = do_bench(lambda g=g, x=x, gy=gy, w=w: td._grad_w(g, x, gy, w.dtype),
                             return_mode="median") * 1e3
            wall_us, gpu_us = host_vs_gpu(p, dtype, layout)
            line = (f"bwd {label} {dtype} {layout}: one pass {one_pass:.1f} us, grad_x {gx_us:.1f} us, "
                    f"grad_w+grad_b (2 stages) {gw_us:.1f} us; fwd+bwd back-to-back wall "
                    f"{wall_us:.1f} us/iter, GPU kernels {gpu_us:.1f} us/iter")
            print(line, flush=True)
            out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--dtypes", default="float32,bfloat16,float16",
                    help="comma list, or 'native' for each shape's SHAPES.md dtype")
    ap.add_argument("--layouts", default="ncl,nlc")
    ap.add_argument("--modes", default="fwd,fwd_bwd")
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop starting new cases after this")
    ap.add_argument("--unroll-experiment", action="store_true")
    args = ap.parse_args(argv)
    for s in args.shapes.split(","):
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r}; known: {', '.join(SHAPES)}")
    t_start = time.time()
    out_dir = os.environ.get("OUT")
    dev = torch.cuda.get_device_name()
    gbps = copy_gbps()
    head = (f"device {dev}, torch {torch.__version__}, triton {td.triton.__version__}, "
            f"copy {gbps:.0f} GB/s")
    print(head, flush=True)
    extra = unroll_experiment(gbps) + bwd_breakdown(gbps) if args.unroll_experiment else []
    rows: list[Row] = []
    for label in args.shapes.split(","):
        p = problem(label)
        dtypes = NATIVE.get(label, "float32") if args.dtypes == "native" else args.dtypes
        for dtype in dtypes.split(","):
            for layout in args.layouts.split(","):
                for mode in args.modes.split(","):
                    if time.time() - t_start > args.budget_s:
                        print(f"budget spent, skipping {label} {dtype} {layout} {mode}")
                        continue
                    err = check(p, dtype, layout, grads=mode == "fwd_bwd")
                    us = [time_impl(n, p, dtype, layout, mode) for n in BASELINES[layout]]
                    floor = p.bytes(dtype) / gbps / 1e3
                    if mode == "fwd_bwd":  # fwd + grad_x + grad_w: x, y, gy, gx each once, x and gy again
                        floor *= 3
                    row = Row(label, dtype, layout, mode, floor, p.bytes(dtype) / 1e6, *us,
                              f"{err:.1e}")
                    rows.append(row)
                    print(f"{label:24s} {dtype:8s} {layout} {mode:7s} floor {floor:7.1f} "
                          f"triton {us[0]:8.1f} ({row.pct_floor:3.0f}%) torch {us[1]:8.1f} "
                          f"(x{row.vs_torch:4.1f}) cudnn {us[2]:8.1f} (x{row.vs_cudnn:4.1f}) "
                          f"err {row.err}", flush=True)
                    if out_dir:
                        write(rows, out_dir, head, extra)
    print(table(rows))
    print(f"total {time.time() - t_start:.0f} s")
    return 0


def table(rows: list[Row]) -> str:
    lines = ["| shape | dtype | layout | mode | MB | floor µs | triton µs | % floor | torch µs | "
             "× torch | cuDNN µs | × cuDNN | max rel_err |", "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r.shape} | {r.dtype} | {r.layout} | {r.mode} | {r.mbytes:.1f} | {r.floor_us:.1f} | "
            f"{r.triton_us:.1f} | {r.pct_floor:.0f} | {r.torch_us:.1f} | {r.vs_torch:.2f} | "
            f"{r.cudnn_us:.1f} | {r.vs_cudnn:.2f} | {r.err} |")
    return "\n".join(lines)


def write(rows: list[Row], out_dir: str, head: str, extra: list[str]) -> None:
    with open(os.path.join(out_dir, "depthwise_kernels.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*asdict(rows[0]), "pct_floor", "vs_torch", "vs_cudnn"])
        w.writeheader()
        for r in rows:
            w.writerow({**asdict(r), "pct_floor": f"{r.pct_floor:.1f}",
                        "vs_torch": f"{r.vs_torch:.2f}", "vs_cudnn": f"{r.vs_cudnn:.2f}"})
    plans = [f"- {k[0]} {k[1].layout} {k[1].dtype} N={k[1].N} C={k[1].C_out} L={k[1].L_in} "
             f"K={k[1].K}: {v[0]}" for k, v in td._PLANS.items()]
    with open(os.path.join(out_dir, "depthwise_kernels.md"), "w") as f:
        f.write(f"{head}\n\n" + "\n".join(extra) + "\n\n" + table(rows) + "\n\nTiles picked:\n"
                + "\n".join(plans) + "\n")


if __name__ == "__main__":
    sys.exit(main())
