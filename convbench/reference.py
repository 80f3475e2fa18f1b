"""The float64 reference (an explicit sum over taps, independent of torch's conv) and tolerances."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .problem import Inputs, Problem

# Max error relative to max|ref| (see rel_err) that an implementation may show, per dtype and,
# for float32, per whether its matrix units ran in TF32. bf16/fp16 outputs are rounded to 8/11
# mantissa bits, so their bound is set by output rounding plus fp32 accumulation.
TOLERANCES: dict[tuple[str, bool], float] = {
    ("float64", False): 1e-10,
    ("float32", False): 2e-5,
    ("float32", True): 5e-3,
    ("bfloat16", False): 1.6e-2,
    ("bfloat16", True): 1.6e-2,
    ("float16", False): 4e-3,
    ("float16", True): 4e-3,
}


def tolerance(dtype: str, tf32: bool = False) -> float:
    return TOLERANCES[(dtype, tf32 and dtype == "float32")]


def reference_ncl(problem: Problem, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
    """y: (N, C_out, L_out) in float64 from x: (N, C_in, L). Differentiable, for reference grads."""
    p = problem
    x = F.pad(x.double(), (p.padding, p.padding))
    w = w.double()
    span = p.stride * (p.L_out - 1) + 1
    y = None
    for k in range(p.K):
        start = k * p.dilation
        xs = x[:, :, start : start + span : p.stride]  # (N, C_in, L_out)
        if p.op == "depthwise":
            m = p.multiplier
            term = xs.repeat_interleave(m, dim=1) * w[:, 0, k].view(1, -1, 1)
        else:
            term = torch.einsum("oi,nil->nol", w[:, :, k], xs)
        y = term if y is None else y + term
    if b is not None:
        y = y + b.double().view(1, -1, 1)
    return y


def depthwise_grads_ncl(problem: Problem, x: torch.Tensor, w: torch.Tensor, b, gy: torch.Tensor):
    """(y, grad_x, grad_w[, grad_b]) of a depthwise conv in float64, (N, C, L) tensors, written
    out tap by tap: autograd through reference_ncl keeps K (N, C_out, L_out) terms alive, which
    for K = 768 does not fit a GPU; this keeps a few."""
    p = problem
    m = p.multiplier
    xp = F.pad(x.double(), (p.padding, p.padding))
    w = w.double()
    gy = gy.double()
    N, C_in, _ = x.shape
    span = p.stride * (p.L_out - 1) + 1
    y = torch.zeros_like(gy)
    gxp = torch.zeros_like(xp)
    gw = torch.zeros_like(w)
    for k in range(p.K):
        start = k * p.dilation
        xs = xp[:, :, start : start + span : p.stride].repeat_interleave(m, dim=1)
        y += xs * w[:, 0, k].view(1, -1, 1)
        gw[:, 0, k] = (gy * xs).sum((0, 2))
        back = (gy * w[:, 0, k].view(1, -1, 1)).view(N, C_in, m, p.L_out).sum(2)
        gxp[:, :, start : start + span : p.stride] += back
    if b is not None:
        y += b.double().view(1, -1, 1)
    gx = gxp[:, :, p.padding : p.padding + p.L]
    return (y, gx, gw) + ((gy.sum((0, 2)),) if b is not None else ())


def reference(problem: Problem, inputs: Inputs) -> torch.Tensor:
    """Float64 output in the storage layout of the inputs: (N, C_out, L_out) or (N, L_out, C_out)."""
    x = inputs.x if inputs.layout == "ncl" else inputs.x.transpose(1, 2)
    y = reference_ncl(problem, x, inputs.weight, inputs.bias)
    return y if inputs.layout == "ncl" else y.transpose(1, 2)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max|out - ref| / max|ref|: a norm-wise error that is robust where ref crosses zero.

    NaN or Inf anywhere in out gives inf, so a non-finite output can never pass.
    """
    if out.shape != ref.shape:
        raise ValueError(f"output shape {tuple(out.shape)} != reference shape {tuple(ref.shape)}")
    out64 = out.detach().to(device=ref.device, dtype=torch.float64)
    if not torch.isfinite(out64).all():
        return float("inf")
    scale = ref.detach().abs().max().item()
    diff = (out64 - ref.detach()).abs().max().item()
    return diff / scale if scale > 0 else diff
