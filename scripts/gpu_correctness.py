"""The correctness matrix on the GPU: every implementation, fp32/fp16/bf16, both layouts, fwd and
fwd_bwd, odd sizes plus real shapes, against the float64 reference. Prints one line per check."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from convbench.problem import make_problem
from convbench.reference import tolerance
from convbench.registry import Case, all_impls
from convbench.runner import reference_outputs, verified_error, with_backward

SHAPES = [
    ("depthwise", dict(N=2, C_in=6, L=1, K=1)),
    ("depthwise", dict(N=2, C_in=6, L=7, K=3, padding=1)),
    ("depthwise", dict(N=1, C_in=5, L=129, K=4, padding=2, stride=2)),
    ("depthwise", dict(N=2, C_in=3, C_out=6, L=517, K=31, padding=15, bias=False)),
    ("depthwise", dict(N=1, C_in=6, L=7, K=31, padding=15)),
    ("depthwise", dict(N=4, C_in=6, L=7, K=31, padding=15)),  # flat (N, C, L): K > L, whole groups
    ("depthwise", dict(N=2, C_in=7, L=129, K=3, padding=2, dilation=2)),
    ("depthwise", dict(N=3, C_in=176, L=209, K=9, padding=4)),
    ("depthwise", dict(N=4, C_in=1024, L=517, K=11, padding=5)),
    ("depthwise", dict(N=2, C_in=96, L=300, K=257, padding=128)),
    # long K on tensor cores: K > L, and padding > K - 1 (grad_x's flipped padding < 0)
    ("depthwise", dict(N=3, C_in=5, L=7, K=65, padding=32)),
    ("depthwise", dict(N=17, C_in=4, L=50, K=40, padding=45, bias=False)),
    # x and y rows of different lengths (even K): (N, C, L) row classes, packed 16-bit words;
    # L_out = L + 1 (long_seq's case), and L_out = L - 3 (d = -3, zero padding) with odd rows
    ("depthwise", dict(N=2, C_in=64, L=1030, K=4, padding=2)),
    ("depthwise", dict(N=3, C_in=40, L=129, K=4, padding=0)),
    ("pointwise", dict(N=2, C_in=6, C_out=10, L=1)),
    ("pointwise", dict(N=2, C_in=5, C_out=12, L=7, padding=1, stride=2)),
    ("pointwise", dict(N=1, C_in=12, C_out=6, L=129, bias=False)),
    ("pointwise", dict(N=3, C_in=176, C_out=352, L=517)),
    ("pointwise", dict(N=2, C_in=512, C_out=1024, L=209)),
    ("pointwise", dict(N=1, C_in=4, C_out=6, L=7, K=3, padding=1)),
]


def _verdict(lines: list[str], what: str, out, ref, tol: float) -> bool:
    """One check's PASS/FAIL line, kept in lines and printed at once (a part cut short by its time
    limit still shows what it checked: its table file is written only at the end); True if it
    passed."""
    from convbench.reference import rel_err

    err = float(rel_err(out, ref))
    ok = err <= tol
    line = f"{'PASS' if ok else 'FAIL'}  {what}: max_rel_err {err:.2e} (tol {tol:.0e})"
    lines.append(line)
    print(line, flush=True)
    return ok


def check_ncl_plans(device: str, families=("flat",), part=(1, 1)) -> tuple[list[str], int, int]:
    """Every generated (N, C, L) candidate of the named families (the GPU matrix above runs only
    the untuned first plan) on each depthwise shape that takes them, forward and grad_x (the
    flipped forward), each dtype, against float64."""
    import torch.nn.functional as F

    from convbench.impls import triton_depthwise as td

    if set(families) - {"flat", "cls"}:
        raise SystemExit(f"--ncl-plans: unknown families {sorted(set(families) - {'flat', 'cls'})}; "
                         "allowed: flat, cls")
    td.NCL_FLAT_MIN_L = 1  # every shape, not only the rows the tuner offers it on
    lines, checks, failures = [], 0, 0
    # parts split (shape, dtype) items, not shapes: the families' candidates apply to few shapes
    # and compile slowly (a row-class kernel has a branch per class)
    items = [(shape, dtype) for op, shape in SHAPES if op == "depthwise"
             for dtype in ("float32", "float16", "bfloat16")]
    for shape, dtype in items[part[0] - 1::part[1]]:
        p = make_problem("depthwise", **shape)
        inp = p.make_inputs(dtype, device, "ncl", seed=2)
        g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, "ncl")
        if not td._uses_gen(g):
            continue
        w = inp.weight.reshape(g.C_out, g.K).contiguous()
        gy = torch.randn((g.N, g.C_out, g.L_out), device=device, dtype=inp.x.dtype)
        bias = None if inp.bias is None else inp.bias.double()
        ref_y = F.conv1d(inp.x.double(), inp.weight.double(), bias, padding=g.padding, groups=g.C_in)
        # grad_x of a stride-1 depthwise conv: the transposed conv of gy
        ref_gx = F.conv_transpose1d(gy.double(), inp.weight.double(), padding=g.padding, groups=g.C_in)
        for flip, src, dst_len, ref in ((False, inp.x, g.L_out, ref_y), (True, gy, g.L_in, ref_gx)):
            dst = torch.empty((g.N, g.C_out, dst_len), device=device, dtype=inp.x.dtype)
            conv = (g.L_in, g.L_out, g.padding) if not flip else (g.L_out, g.L_in, g.K - 1 - g.padding)
            plans, launch, _ = td._gen_conv("ncl", g.dtype, g.N, g.C_out, *conv[:2], g.K, conv[2], flip,
                                            src, w, None if flip else inp.bias, dst)
            mine = [pl for pl in plans() if isinstance(pl[0], str) and pl[0] in families]
            packed_c = td._ncl_packed(g.dtype, g.N, g.C_out, *conv, src, classes=True)
            offered = {"flat": td._ncl_flat_fits(g.N, g.C_out, *conv[:2]),
                       "cls": bool(td._ncl_class_widths(packed_c, g.dtype.itemsize, g.N, g.C_out, *conv))}
            for fam in families:  # where a family applies, it should have had candidates
                if offered[fam] and not any(pl[0] == fam for pl in mine):
                    checks += 1
                    failures += 1
                    line = f"FAIL  {'gx' if flip else 'fwd'} no {fam} candidates {p.label()} {dtype}"
                    lines.append(line)
                    print(line, flush=True)
            for plan in mine:
                checks += 1
                dst.fill_(float("nan"))
                launch(*plan)
                failures += not _verdict(lines, f"{'gx' if flip else 'fwd'} {plan} {p.label()} {dtype}", dst, ref,
                                         tolerance(dtype, False))
    return lines, checks, failures


# every forced variant of the pointwise kernels, where it applies (_forward says which do not)
PW_VARIANTS = ("nlc", "nlc_t", "nlc_wt", "nlc_tma", "nlc_gluon", "ncl", "ncl_fold", "ncl_tma", "ncl_tma_pad",
               "ncl_t", "ncl_ts", "ncl_tg")
PW_PLAN_SHAPES = [shape for op, shape in SHAPES if op == "pointwise" and shape.get("K", 1) == 1] + [
    dict(N=2, C_in=1024, C_out=512, L=517),  # DTTS's channels, odd L: the TMA and Gluon variants
    dict(N=3, C_in=384, C_out=768, L=64, bias=False),  # even L: ncl_tma
]


def check_pw_plans(device: str, part=(1, 1)) -> tuple[list[str], int, int]:
    """Every pointwise variant forced, not only the one the tuner (or CONVBENCH_TUNE=0's first
    plan) takes, on each shape it applies to, each dtype and float32 policy, both layouts,
    forward, against float64: its first config, and every config of the Gluon variants. Each is
    checked on its second call, which reuses the first call's launch (TMA descriptors repointed)."""
    from convbench.impls import triton_pointwise as tp

    os.environ["CONVBENCH_TUNE"] = "0"
    lines, checks, failures = [], 0, 0
    for shape in PW_PLAN_SHAPES[part[0] - 1::part[1]]:
        p = make_problem("pointwise", **shape)
        for dtype, prec in (("float32", "ieee"), ("float32", "tf32"), ("float16", "ieee"), ("bfloat16", "ieee")):
            for layout in ("ncl", "nlc"):
                inp = p.make_inputs(dtype, device, layout, seed=3)
                case = Case(p, "float64", layout, device, "fwd")
                ref = reference_outputs(case, inp, None)[0]
                for v in PW_VARIANTS:
                    configs = tp.GLUON_CONFIGS if v in tp._GLUON_VARIANTS else (None,)
                    for cfg in configs:
                        try:  # a first call on other data builds the plan (and its TMA descriptors);
                            # the checked call then runs the cached launch with new bases
                            tp._forward(torch.randn_like(inp.x), inp.weight, inp.bias, p.stride, p.padding,
                                        layout, prec, config=cfg, variant=v)
                            y = tp._forward(inp.x, inp.weight, inp.bias, p.stride, p.padding, layout, prec,
                                            config=cfg, variant=v)
                        except ValueError as exc:
                            if "does not apply" in str(exc):
                                break
                            raise
                        checks += 1
                        name = v if cfg is None else f"{v} {cfg.label()}"
                        failures += not _verdict(lines, f"{name} {p.label()} {dtype}/{prec} {layout}", y, ref,
                                                 tolerance(dtype, prec == "tf32"))
    return lines, checks, failures


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--part", default="1/1", help="I/N: check every N-th shape from the I-th (parallel runs)")
    ap.add_argument("--ncl-plans", default="",
                    help="only check every generated (N, C, L) candidate of these families (flat, cls)")
    ap.add_argument("--pw-plans", action="store_true",
                    help="only check every pointwise variant forced (its first config; every Gluon config)")
    args = ap.parse_args()
    i, n = (int(v) for v in args.part.split("/"))
    if args.ncl_plans or args.pw_plans:
        if args.pw_plans:
            lines, checks, failures = check_pw_plans(args.device, (i, n))
        else:
            lines, checks, failures = check_ncl_plans(args.device, tuple(args.ncl_plans.split(",")), (i, n))
        summary = f"{checks} checks, {failures} failures"
        print(summary)
        table = "gpu_pw_plans" if args.pw_plans else "gpu_ncl_plans"
        if args.out:
            with open(os.path.join(args.out, f"{table}.part{i}of{n}.txt"), "w") as f:
                f.write("\n".join(lines + [summary]) + "\n")
        return 1 if failures else 0
    lines, failures, checks = [], 0, 0
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    head = f"device {args.device}: {torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}, torch {torch.__version__}"
    print(head)
    lines.append(head)
    import time
    t0 = time.time()
    for op, shape in SHAPES[i - 1 :: n]:
        p = make_problem(op, **shape)
        print(f"[{time.time() - t0:6.1f}s] {p.label()}", flush=True)
        for dtype in ("float32", "float16", "bfloat16"):
            for layout in ("ncl", "nlc"):
                for mode in ("fwd", "fwd_bwd"):
                    case = Case(p, dtype, layout, args.device, mode)
                    inputs = p.make_inputs(dtype, args.device, layout, seed=1, requires_grad=mode == "fwd_bwd")
                    grad_out = None
                    if mode == "fwd_bwd":
                        grad_out = p.make_grad_out(dtype, args.device, layout, seed=1)
                    refs = reference_outputs(case, inputs, grad_out)
                    for impl in all_impls(op):
                        if impl.layout != layout:
                            continue
                        reason = impl.skip_reason(case)
                        if reason:
                            line = f"SKIP  {impl.name:14s} {case.label()}: {reason}"
                        else:
                            checks += 1
                            try:
                                fn = impl.build(p, inputs)
                                if mode == "fwd_bwd":
                                    fn = with_backward(fn, inputs, grad_out)
                                err = verified_error(fn, refs, sync)  # first and cached-launch call
                                tol = tolerance(dtype, impl.uses_tf32(case))
                                ok = err <= tol
                                line = f"{'PASS' if ok else 'FAIL'}  {impl.name:14s} {case.label()}: max_rel_err {err:.2e} (tol {tol:.0e})"
                            except Exception as exc:  # report, keep going
                                ok = False
                                line = f"FAIL  {impl.name:14s} {case.label()}: {type(exc).__name__}: {str(exc)[:200]}"
                            failures += not ok
                        lines.append(line)
                        if not line.startswith(("PASS", "SKIP")):
                            print(line)
    summary = f"{checks} checks, {failures} failures"
    print(summary)
    lines.append(summary)
    if args.out:
        name = "gpu_correctness.txt" if n == 1 else f"gpu_correctness.part{i}of{n}.txt"
        with open(os.path.join(args.out, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
