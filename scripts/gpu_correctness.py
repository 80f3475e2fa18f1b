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
    ("depthwise", dict(N=2, C_in=7, L=129, K=3, padding=2, dilation=2)),
    ("depthwise", dict(N=3, C_in=176, L=209, K=9, padding=4)),
    ("depthwise", dict(N=4, C_in=1024, L=517, K=11, padding=5)),
    ("depthwise", dict(N=2, C_in=96, L=300, K=257, padding=128)),
    # long K on tensor cores: K > L, and padding > K - 1 (grad_x's flipped padding < 0)
    ("depthwise", dict(N=3, C_in=5, L=7, K=65, padding=32)),
    ("depthwise", dict(N=17, C_in=4, L=50, K=40, padding=45, bias=False)),
    ("pointwise", dict(N=2, C_in=6, C_out=10, L=1)),
    ("pointwise", dict(N=2, C_in=5, C_out=12, L=7, padding=1, stride=2)),
    ("pointwise", dict(N=1, C_in=12, C_out=6, L=129, bias=False)),
    ("pointwise", dict(N=3, C_in=176, C_out=352, L=517)),
    ("pointwise", dict(N=2, C_in=512, C_out=1024, L=209)),
    ("pointwise", dict(N=1, C_in=4, C_out=6, L=7, K=3, padding=1)),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--part", default="1/1", help="I/N: check every N-th shape from the I-th (parallel runs)")
    args = ap.parse_args()
    lines, failures, checks = [], 0, 0
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    head = f"device {args.device}: {torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}, torch {torch.__version__}"
    print(head)
    lines.append(head)
    import time
    t0 = time.time()
    i, n = (int(v) for v in args.part.split("/"))
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
