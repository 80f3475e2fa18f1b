"""Pointwise (1x1) Conv1d in Triton: a batched GEMM with bias fused, for both layouts via strides."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..precision import triton_input_precision
from ..registry import Case, Impl, register
from ._triton_common import device_reason, interpreting


@triton.jit
def pointwise_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C_in, C_out, L_in, L_out,
    sxn, sxc, sxl, swo, swi, syn, syc, syl,
    conv_stride, padding,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_O: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_I: tl.constexpr,
):
    """y[n, o, l] = sum_i w[o, i] * x[n, i, l*stride - padding] (+ b[o])."""
    pid_l = tl.program_id(0)
    pid_o = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_i = tl.arange(0, BLOCK_I)
    pos = offs_l * conv_stride - padding
    mask_o = offs_o < C_out
    mask_l = (offs_l < L_out) & (pos >= 0) & (pos < L_in)
    acc = tl.zeros((BLOCK_O, BLOCK_L), dtype=tl.float32)
    for i0 in range(0, C_in, BLOCK_I):
        ii = i0 + offs_i
        mask_i = ii < C_in
        wt = tl.load(w_ptr + offs_o[:, None] * swo + ii[None, :] * swi,
                     mask=mask_o[:, None] & mask_i[None, :], other=0.0)
        xt = tl.load(x_ptr + n * sxn + ii[:, None] * sxc + pos[None, :] * sxl,
                     mask=mask_i[:, None] & mask_l[None, :], other=0.0)
        if UPCAST:  # the CPU interpreter's bf16 dot is wrong (triton 3.9); upcast there only
            wt = wt.to(tl.float32)
            xt = xt.to(tl.float32)
        acc = tl.dot(wt, xt, acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_o, mask=mask_o, other=0.0).to(tl.float32)[:, None]
    y_ptrs = y_ptr + n * syn + offs_o[:, None] * syc + offs_l[None, :] * syl
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty),
             mask=mask_o[:, None] & (offs_l < L_out)[None, :])


def pointwise_conv1d(x, weight, bias, stride=1, padding=0, layout="ncl", precision=None):
    """Pointwise Conv1d forward.

    x: (N, C_in, L) for "ncl" or (N, L, C_in) for "nlc"; weight: (C_out, C_in, 1); bias: (C_out,)
    or None. precision: "ieee" | "tf32" for float32 inputs (default: the run's policy).
    Returns y in x's layout, contiguous.
    """
    if layout == "ncl":
        N, C_in, L = x.shape
    elif layout == "nlc":
        N, L, C_in = x.shape
    else:
        raise ValueError(f"layout must be 'ncl' or 'nlc', got {layout!r}")
    C_out, c_in_w, K = weight.shape
    if K != 1 or c_in_w != C_in:
        raise ValueError(f"weight {tuple(weight.shape)} is not a 1x1 conv for C_in={C_in}")
    L_out = (L + 2 * padding - 1) // stride + 1
    w = weight.reshape(C_out, C_in)
    if precision is None:
        precision = triton_input_precision()
    if x.dtype != torch.float32:
        precision = "ieee"  # bf16/fp16 dots are exact products with fp32 accumulation anyway
    if layout == "ncl":
        y = torch.empty((N, C_out, L_out), device=x.device, dtype=x.dtype)
        sx = (x.stride(0), x.stride(1), x.stride(2))
        sy = (y.stride(0), y.stride(1), y.stride(2))
    else:
        y = torch.empty((N, L_out, C_out), device=x.device, dtype=x.dtype)
        sx = (x.stride(0), x.stride(2), x.stride(1))
        sy = (y.stride(0), y.stride(2), y.stride(1))
    block_o, block_l, block_i = 64, 64, 32
    grid = (triton.cdiv(L_out, block_l), triton.cdiv(C_out, block_o), N)
    pointwise_fwd_kernel[grid](
        x, w, bias if bias is not None else w, y,
        C_in, C_out, L, L_out, *sx, w.stride(0), w.stride(1), *sy, stride, padding,
        HAS_BIAS=bias is not None, PRECISION=precision,
        UPCAST=interpreting() and x.dtype == torch.bfloat16,
        BLOCK_O=block_o, BLOCK_L=block_l, BLOCK_I=block_i,
    )
    return y


def _supports(case: Case) -> str | None:
    if case.problem.K != 1:
        return f"the Triton GEMM covers kernel_size 1 only, not K={case.problem.K} (use torch)"
    return device_reason(case)


def _builder(layout):
    def build(p, inp):
        x, w, b = inp.x, inp.weight, inp.bias
        return lambda: pointwise_conv1d(x, w, b, p.stride, p.padding, layout)

    return build


for _layout, _name in (("ncl", "triton"), ("nlc", "triton_nlc")):
    register(Impl(
        name=_name, op="pointwise", layout=_layout, build=_builder(_layout), modes=("fwd",),
        requires=("triton",), supports=_supports, tf32="triton",
        description=f"Triton tiled GEMM, bias fused, on ({'N,C,L' if _layout == 'ncl' else 'N,L,C'}) storage",
    ))
