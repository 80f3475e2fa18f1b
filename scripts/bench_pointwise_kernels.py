"""Check then time the Triton pointwise kernels against torch's GEMM paths; print a TFLOP/s table."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

if "--smoke" in sys.argv:  # the interpreter must be chosen before triton is imported
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch
import torch.nn.functional as F

from convbench.impls import triton_pointwise as tp
from convbench.precision import flags, policy
from convbench.problem import Pointwise
from convbench.reference import reference_ncl, rel_err, tolerance

SHAPES = (  # label, N, C_in, C_out, L  (see ../shared/SHAPES.md and GPU-ANCHORS.md)
    ("dtts_pw_512_2048", 19, 512, 2048, 517),
    ("dtts_pw_1024_512", 19, 1024, 512, 517),
    ("fastconf_L_pw", 128, 512, 1024, 209),
    ("anchor_384_768", 16, 384, 768, 1024),
    ("anchor_1024_4096", 32, 1024, 1024, 4096),
)
SMOKE_SHAPES = (("smoke", 2, 24, 40, 37),)
PRECISIONS = (  # label, dtype, precision policy
    ("bf16", "bfloat16", "default"),
    ("fp16", "float16", "default"),
    ("fp32-tf32", "float32", "tf32"),
    ("fp32-ieee", "float32", "ieee"),
)


@dataclass(frozen=True)
class Row:
    """One timed path on one case."""

    shape: str
    dtype: str
    bias: bool
    layout: str
    path: str
    median_ms: float
    tflops: float
    rel_err: float
    graph_ms: float = float("nan")  # the same closure timed as CUDA-graph replays: GPU time without launch gaps


def parse_only(value: str | None) -> list[str] | None:
    """The shape labels asked for, in the order given (the run follows it)."""
    if value is None:
        return None
    names = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    known = {s[0] for s in SHAPES}
    bad = set(names) - known
    if bad:
        raise SystemExit(f"unknown shape {sorted(bad)[0]!r}; known: {', '.join(sorted(known))}")
    return names


def graph_timer(device: str):
    if device != "cuda":
        return None
    import triton.testing

    def run(fn):
        try:
            return triton.testing.do_bench_cudagraph(fn, rep=20, return_mode="median")
        except Exception as exc:  # noqa: BLE001 - a path that cannot be captured gets no graph time
            print(f"  graph timing failed: {type(exc).__name__}: {exc}", flush=True)
            return float("nan")

    return run


def timer(device: str):
    if device == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median")

    def cpu_time(fn):  # smoke runs only check that the script works
        fn()
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3

    return cpu_time


def torch_paths(x, w, b, layout):
    """Fused-bias torch paths and, with bias, the same paths plus a separate bias add."""
    w2 = w.squeeze(-1)
    paths = {}
    if layout == "ncl":
        paths["conv1d"] = lambda: F.conv1d(x, w, b)
        if b is None:
            paths["matmul"] = lambda: torch.matmul(w2, x)
        else:
            bb, wb = b.view(1, -1, 1).expand(x.shape[0], -1, x.shape[2]), w2.unsqueeze(0).expand(x.shape[0], -1, -1)
            paths["baddbmm"] = lambda: torch.baddbmm(bb, wb, x)
            bv = b.view(1, -1, 1)
            paths["conv1d+add"] = lambda: F.conv1d(x, w).add_(bv)
            paths["matmul+add"] = lambda: torch.matmul(w2, x).add_(bv)
    else:
        paths["linear"] = lambda: F.linear(x, w2, b)
        paths["matmul"] = lambda: torch.matmul(x, w2.t()) if b is None else torch.addmm(
            b, x.reshape(-1, x.shape[-1]), w2.t()).view(x.shape[0], x.shape[1], -1)
        if b is not None:
            paths["linear+add"] = lambda: F.linear(x, w2).add_(b)
    return paths


def check(fn, ref, idx, tol, out_shape, dtype, device):
    """Poison the allocator's next block, run, compare batch elements idx with the float64 ref."""
    poison = torch.full(out_shape, float("nan"), device=device, dtype=dtype)
    del poison
    y = fn()
    err = rel_err(y[idx], ref)
    if not err < tol:
        raise AssertionError(f"rel_err {err:.2e} >= tolerance {tol:.1e}")
    return err


def bench_case(shape, prec, bias, layout, device, time_ms, seed, graph_ms=None):
    label, N, C_in, C_out, L = shape
    plabel, dtype, pol = prec
    p = Pointwise(N=N, C_in=C_in, C_out=C_out, L=L, bias=bias)
    rows = []
    with policy(pol):
        inp = p.make_inputs(dtype, device=device, layout=layout, seed=seed)
        x, w, b = inp.x, inp.weight, inp.bias
        idx = torch.tensor(sorted({0, N - 1}), device=device)
        x_ncl = (x if layout == "ncl" else x.transpose(1, 2))[idx]
        psub = Pointwise(N=len(idx), C_in=C_in, C_out=C_out, L=L, bias=bias)
        ref = reference_ncl(psub, x_ncl, w, b)
        if layout == "nlc":
            ref = ref.transpose(1, 2)
        tf32 = pol == "tf32"
        tol = tolerance(dtype, tf32=tf32)
        out_shape = (N, C_out, L) if layout == "ncl" else (N, L, C_out)
        paths = {"triton": lambda: tp.pointwise_conv1d(x, w, b, layout=layout)}
        paths.update(torch_paths(x, w, b, layout))
        for name, fn in paths.items():
            try:
                err = check(fn, ref, idx, tol, out_shape, x.dtype, device)
                ms = time_ms(fn)
            except Exception as exc:  # noqa: BLE001 - the reason reaches the table
                print(f"  {label} {plabel} bias={bias} {layout} {name}: FAILED {exc}", flush=True)
                continue
            gms = graph_ms(fn) if graph_ms is not None and dtype != "float32" else float("nan")
            rows.append(Row(label, plabel, bias, layout, name, ms, p.flops / ms / 1e9, err, gms))
    return rows


def fwd_bwd_rows(shape, device, time_ms, seed, graph_ms=None):
    """bf16 training step (forward + backward) of ours vs torch, on both layouts."""
    label, N, C_in, C_out, L = shape
    p = Pointwise(N=N, C_in=C_in, C_out=C_out, L=L, bias=True)
    rows = []
    for layout in ("ncl", "nlc"):
        inp = p.make_inputs("bfloat16", device=device, layout=layout, seed=seed, requires_grad=True)
        x, w, b = inp.x, inp.weight, inp.bias
        gy = torch.randn_like(tp.pointwise_conv1d(x, w, b, layout=layout))
        if layout == "ncl":
            fns = {"triton": lambda: tp.pointwise_conv1d(x, w, b, layout="ncl"), "conv1d": lambda: F.conv1d(x, w, b)}
        else:
            fns = {"triton": lambda: tp.pointwise_conv1d(x, w, b, layout="nlc"),
                   "linear": lambda: F.linear(x, w.squeeze(-1), b)}
        for name, fn in fns.items():
            def step(fn=fn):
                for t in (x, w, b):
                    t.grad = None
                fn().backward(gy)
            for t in (x, w, b):
                t.grad = None
            step()
            grads = [t.grad.clone() for t in (x, w, b)]
            for t in (x, w, b):
                t.grad = None
            ms = time_ms(step)
            gms = graph_ms(step) if graph_ms is not None else float("nan")
            # 3 GEMMs of the forward's size
            rows.append(Row(label, "bf16", True, layout, f"fwd_bwd:{name}", ms, 3 * p.flops / ms / 1e9,
                            float("nan"), gms))
            if name == "triton":
                ours = grads
            else:
                errs = [rel_err(a, c.double()) for a, c in zip(ours, grads)]
                print(f"  fwd_bwd {label} {layout}: grads vs {name} rel {['%.1e' % e for e in errs]}", flush=True)
    return rows


def table(rows: list[Row]) -> str:
    """One line per case: ours, best torch on the same layout, best on either, best with separate add."""
    by_case: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        if r.path.startswith(("fwd_bwd", "triton fold")):
            continue
        by_case.setdefault((r.shape, r.dtype, r.bias), {})[(r.layout, r.path)] = r
    out = [
        "| shape | dtype | bias | layout | triton TFLOP/s | best torch same layout | ratio | best torch any layout | ratio"
        " | best torch + separate bias add | ratio | graph: triton µs | graph: best torch same layout µs | graph ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (shape, dtype, bias), paths in by_case.items():
        fused = {k: v for k, v in paths.items() if k[1] != "triton" and not k[1].endswith("+add")}
        added = {k: v for k, v in paths.items() if k[1].endswith("+add")}
        best_any = max(fused.values(), key=lambda r: r.tflops, default=None)
        best_add = max(added.values(), key=lambda r: r.tflops, default=None)
        for layout in ("ncl", "nlc"):
            ours = paths.get((layout, "triton"))
            if ours is None:
                continue
            same = [v for k, v in fused.items() if k[0] == layout]
            best_same = max(same, key=lambda r: r.tflops, default=None)

            def cell(r):
                if r is None:
                    return "-", "-"
                name = r.path if r.layout == layout else f"{r.path} ({r.layout})"
                return f"{name} {r.tflops:.0f}", f"{ours.tflops / r.tflops:.2f}"

            s, sr = cell(best_same)
            a, ar = cell(best_any)
            d, dr = cell(best_add) if bias else ("-", "-")
            g_same = min((v for v in same if v.graph_ms == v.graph_ms), key=lambda r: r.graph_ms, default=None)
            if ours.graph_ms == ours.graph_ms and g_same is not None:
                g = f"{ours.graph_ms * 1e3:.1f} | {g_same.path} {g_same.graph_ms * 1e3:.1f} | {g_same.graph_ms / ours.graph_ms:.2f}"
            else:
                g = "- | - | -"
            out.append(f"| {shape} | {dtype} | {bias} | {layout} | {ours.tflops:.0f} | {s} | {sr} | {a} | {ar} | {d} | {dr} | {g} |")
    extra = [r for r in rows if r.path.startswith(("fwd_bwd", "triton fold"))]
    if extra:
        out += ["", "| shape | layout | path | median µs | TFLOP/s | graph µs |", "|---|---|---|---|---|---|"]
        out += [f"| {r.shape} | {r.layout} | {r.path} | {r.median_ms * 1e3:.1f} | {r.tflops:.0f} | {r.graph_ms * 1e3:.1f} |"
                for r in extra]
    return "\n".join(out)


def write(rows: list[Row], header: str) -> str:
    """Render the table and, where $OUT is set, write table, rows and the tuning log under it."""
    text = table(rows)
    out = os.environ.get("OUT")
    if out:
        tuned = "\n".join(f"{k} -> {v.label()}" for k, v in tp._TUNED.items())
        log = "\n".join(f"{r.key} {r.candidate} {r.median_ms:.4f} ms" for r in tp.TUNE_LOG)
        with open(os.path.join(out, "pointwise_table.md"), "w") as f:
            f.write(header + "\n\n" + text + "\n")
        with open(os.path.join(out, "pointwise_rows.json"), "w") as f:
            json.dump({"header": header, "rows": [asdict(r) for r in rows]}, f, indent=1)
        with open(os.path.join(out, "pointwise_tune_log.txt"), "w") as f:
            f.write(header + "\n\nchosen:\n" + tuned + "\n\nall candidates:\n" + log + "\n")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny shape on the CPU interpreter: checks the script only")
    ap.add_argument("--only", help="comma-separated shape labels")
    ap.add_argument("--precisions", help=f"comma-separated, among {', '.join(p[0] for p in PRECISIONS)}")
    ap.add_argument("--no-fwd-bwd", action="store_true", help="skip the bf16 training-step rows")
    args = ap.parse_args(argv)
    precs = PRECISIONS
    if args.precisions:
        want = {v.strip() for v in args.precisions.split(",")}
        precs = tuple(p for p in PRECISIONS if p[0] in want)
        if len(precs) != len(want):
            raise SystemExit(f"unknown precision in {args.precisions!r}; known: {', '.join(p[0] for p in PRECISIONS)}")
    if args.smoke:
        device, shapes = "cpu", SMOKE_SHAPES
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device; use --smoke for a CPU check of the script")
        device, only = "cuda", parse_only(args.only)
        by_label = {s[0]: s for s in SHAPES}
        shapes = SHAPES if only is None else tuple(by_label[n] for n in only)
    import triton

    dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)"
    header = f"device: {dev_name}; torch {torch.__version__}; triton {triton.__version__}; flags at start {flags()}"
    print(header, flush=True)
    time_ms, graph_ms = timer(device), graph_timer(device)
    rows: list[Row] = []
    t0 = time.time()
    for shape in shapes:
        for prec in precs:
            if device == "cpu" and prec[1] == "float16":
                continue
            for bias in (True, False):
                for layout in ("ncl", "nlc"):
                    rows += bench_case(shape, prec, bias, layout, device, time_ms, len(rows), graph_ms)
        print(f"[{time.time() - t0:.0f}s] {shape[0]} done", flush=True)
        write(rows, header)  # partial results survive a run cut off at its time limit
    for shape in () if args.no_fwd_bwd else shapes[:3]:
        rows += fwd_bwd_rows(shape, device, time_ms, seed=2, graph_ms=graph_ms)
    print(f"[{time.time() - t0:.0f}s] fwd_bwd done", flush=True)
    text = write(rows, header)
    print("\n".join(f"{k} -> {v.label()}" for k, v in tp._TUNED.items()))
    print(header)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
