"""Depthwise Conv1d in Triton: one kernel for (N, C, L) and (N, L, C) storage via strides."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..registry import Impl, register
from ._triton_common import device_reason


@triton.jit
def depthwise_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C_out, L_in, L_out, K, MULT,
    sxn, sxc, sxl, syn, syc, syl,
    conv_stride, padding, dilation,
    HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """y[n, c, l] = sum_k w[c, k] * x[n, c // MULT, l*stride - padding + k*dilation] (+ b[c])."""
    pid_l = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_c = offs_c < C_out
    mask_l = offs_l < L_out
    x_rows = x_ptr + n * sxn + (offs_c // MULT)[:, None] * sxc
    pos0 = offs_l * conv_stride - padding
    acc = tl.zeros((BLOCK_C, BLOCK_L), dtype=tl.float32)
    for k in range(0, K):
        pos = pos0 + k * dilation
        m = mask_c[:, None] & (mask_l & (pos >= 0) & (pos < L_in))[None, :]
        xv = tl.load(x_rows + pos[None, :] * sxl, mask=m, other=0.0)
        wv = tl.load(w_ptr + offs_c * K + k, mask=mask_c, other=0.0)
        acc += xv.to(tl.float32) * wv.to(tl.float32)[:, None]
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)[:, None]
    y_ptrs = y_ptr + n * syn + offs_c[:, None] * syc + offs_l[None, :] * syl
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask_c[:, None] & mask_l[None, :])


def depthwise_conv1d(x, weight, bias, stride=1, padding=0, dilation=1, layout="ncl"):
    """Depthwise Conv1d forward.

    x: (N, C_in, L) for layout "ncl" or (N, L, C_in) for "nlc"; weight: (C_out, 1, K) with
    C_out a multiple of C_in; bias: (C_out,) or None. Returns y in x's layout, contiguous.
    """
    if layout == "ncl":
        N, C_in, L = x.shape
    elif layout == "nlc":
        N, L, C_in = x.shape
    else:
        raise ValueError(f"layout must be 'ncl' or 'nlc', got {layout!r}")
    C_out, one, K = weight.shape
    if one != 1 or C_out % C_in:
        raise ValueError(f"weight {tuple(weight.shape)} is not depthwise for C_in={C_in}")
    L_out = (L + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    if L_out < 1:
        raise ValueError(f"L_out={L_out} < 1")
    w = weight.reshape(C_out, K).contiguous()
    if layout == "ncl":
        y = torch.empty((N, C_out, L_out), device=x.device, dtype=x.dtype)
        sx = (x.stride(0), x.stride(1), x.stride(2))
        sy = (y.stride(0), y.stride(1), y.stride(2))
        block_c, block_l = 4, min(512, triton.next_power_of_2(L_out))
    else:
        y = torch.empty((N, L_out, C_out), device=x.device, dtype=x.dtype)
        sx = (x.stride(0), x.stride(2), x.stride(1))
        sy = (y.stride(0), y.stride(2), y.stride(1))
        block_c, block_l = min(128, triton.next_power_of_2(C_out)), 16
    grid = (triton.cdiv(L_out, block_l), triton.cdiv(C_out, block_c), N)
    depthwise_fwd_kernel[grid](
        x, w, bias if bias is not None else w, y,
        C_out, L, L_out, K, C_out // C_in,
        *sx, *sy, stride, padding, dilation,
        HAS_BIAS=bias is not None, BLOCK_C=block_c, BLOCK_L=block_l,
    )
    return y


def _builder(layout):
    def build(p, inp):
        x, w, b = inp.x, inp.weight, inp.bias
        return lambda: depthwise_conv1d(x, w, b, p.stride, p.padding, p.dilation, layout)

    return build


for _layout, _name in (("ncl", "triton"), ("nlc", "triton_nlc")):
    register(Impl(
        name=_name, op="depthwise", layout=_layout, build=_builder(_layout), modes=("fwd",),
        requires=("triton",), supports=device_reason,
        description=f"Triton tiled depthwise kernel on ({'N,C,L' if _layout == 'ncl' else 'N,L,C'}) storage",
    ))
