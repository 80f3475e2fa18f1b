"""unfold + einsum: the textbook im2col formulation; materialises a K-times larger tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import Case, Impl, register

# unfold's backward sums K overlapping windows into grad_x in the input dtype; in bf16/fp16 that
# error grows with K (measured on H100: bf16 K=31 1.7e-2, K=257 4.5e-2, over the 1.6e-2 bound).
MAX_K_16BIT_TRAINING = 16


def _windows(x, p):
    """(N, C, L) -> (N, C, L_out, K) windows, dilation and stride applied."""
    x = F.pad(x, (p.padding, p.padding))
    span = p.dilation * (p.K - 1) + 1
    u = x.unfold(2, span, p.stride)
    return u[..., :: p.dilation] if p.dilation > 1 else u


def _build(p, inp):
    x, w, b = inp.x, inp.weight, inp.bias
    if p.op == "depthwise":
        wm = w.view(p.C_in, p.multiplier, p.K)
        eq = "nclk,cmk->ncml"
    else:
        wm = w
        eq = "nilk,oik->nol"

    def run():
        y = torch.einsum(eq, _windows(x, p), wm).reshape(p.N, p.C_out, p.L_out).contiguous()
        if b is not None:
            y = y + b.view(1, -1, 1)
        return y

    return run


def _supports(case: Case) -> str | None:
    if (case.mode == "fwd_bwd" and case.dtype in ("bfloat16", "float16")
            and case.problem.K > MAX_K_16BIT_TRAINING):
        return (f"unfold's backward accumulates K={case.problem.K} overlapping windows in "
                f"{case.dtype}; beyond K={MAX_K_16BIT_TRAINING} its gradients miss the tolerance")
    return None


for op in ("depthwise", "pointwise"):
    register(Impl(
        name="unfold_einsum", op=op, layout="ncl", build=_build, tf32="matmul", supports=_supports,
        description="x.unfold (im2col view) + torch.einsum; bias added separately",
    ))
