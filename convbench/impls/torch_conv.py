"""nn.Conv1d / F.conv1d as users call it, with cuDNN forced or disabled, and plain GEMM paths."""

from __future__ import annotations

import warnings
from dataclasses import replace

import torch
import torch.nn.functional as F

from ..registry import Case, Impl, register

# mkldnn.flags() also sets oneDNN's TF32 switch, which warns on every CPU-only build
warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")


def _conv_args(p):
    return dict(stride=p.stride, padding=p.padding, dilation=p.dilation, groups=p.groups)


def _build_torch(p, inp):
    w, b, kw = inp.weight, inp.bias, _conv_args(p)
    x = inp.x
    return lambda: F.conv1d(x, w, b, **kw)


def _build_native(p, inp):
    """ATen's own kernels: cuDNN off on CUDA, oneDNN (mkldnn) off on CPU."""
    w, b, kw, x = inp.weight, inp.bias, _conv_args(p), inp.x
    flags = torch.backends.cudnn.flags if x.is_cuda else torch.backends.mkldnn.flags

    def run():
        with flags(enabled=False):
            return F.conv1d(x, w, b, **kw)

    return run


def _build_cudnn(p, inp):
    """cuDNN called directly on the (N, C, 1, L) view of (N, C, L) storage: no layout copy."""
    x4, w4 = inp.x.unsqueeze(2), inp.weight.unsqueeze(2)
    b = inp.bias.view(1, -1, 1, 1) if inp.bias is not None else None
    pad, stride, dil = [0, p.padding], [1, p.stride], [1, p.dilation]
    groups = p.groups

    def run():
        y = torch.cudnn_convolution(
            x4, w4, pad, stride, dil, groups, False, False, torch.backends.cudnn.allow_tf32
        )
        if b is not None:
            y = y + b
        return y.squeeze(2)

    return run


def _build_torch_nlc(p, inp):
    """nn.Conv1d on a tensor held as (N, L, C): the transpose makes conv1d copy x to (N, C, L),
    and the result is copied back to (N, L, C) storage, as the layout contract requires."""
    w, b, kw, x = inp.weight, inp.bias, _conv_args(p), inp.x
    return lambda: F.conv1d(x.transpose(1, 2), w, b, **kw).transpose(1, 2).contiguous()


def _build_cudnn_nlc(p, inp):
    """cuDNN NHWC on the same storage: (N, L, C) seen as a channels-last (N, C, 1, L), no copy."""
    x4 = inp.x.transpose(1, 2).unsqueeze(2)  # channels-last strides, no copy
    w4 = inp.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    b, kw = inp.bias, _conv_args(p)
    kw = dict(stride=(1, p.stride), padding=(0, p.padding), dilation=(1, p.dilation), groups=p.groups)

    def run():
        with torch.backends.cudnn.flags(enabled=True):
            return F.conv2d(x4, w4, b, **kw).squeeze(2).transpose(1, 2)

    return run


def _pad_stride_ncl(x, p):
    if p.padding:
        x = F.pad(x, (p.padding, p.padding))
    return x[..., :: p.stride] if p.stride > 1 else x


def _build_matmul(p, inp):
    """y = W @ x per batch element; bias fused through baddbmm's C operand when present."""
    w2, b, x = inp.weight.squeeze(-1), inp.bias, inp.x
    if b is None:
        return lambda: torch.matmul(w2, _pad_stride_ncl(x, p))
    bb = b.view(1, -1, 1)
    wb = w2.unsqueeze(0)

    def run():
        xs = _pad_stride_ncl(x, p)
        n, _, lo = xs.shape
        return torch.baddbmm(bb.expand(n, -1, lo), wb.expand(n, -1, -1), xs)

    return run


def _build_linear_nlc(p, inp):
    """F.linear on (N, L, C), how Conformer code often writes a pointwise conv."""
    w2, b, x = inp.weight.squeeze(-1), inp.bias, inp.x

    def run():
        xs = x
        if p.padding:
            xs = F.pad(xs, (0, 0, p.padding, p.padding))
        if p.stride > 1:
            xs = xs[:, :: p.stride]
        return F.linear(xs, w2, b)

    return run


def _build_matmul_add(p, inp):
    """The GEMM without bias, then the bias added by a second kernel (what an unfused epilogue costs)."""
    gemm = _build_matmul(p, replace(inp, bias=None))
    bv = inp.bias.view(1, -1, 1)
    return lambda: gemm().add_(bv)


def _build_linear_add_nlc(p, inp):
    gemm = _build_linear_nlc(p, replace(inp, bias=None))
    b = inp.bias
    return lambda: gemm().add_(b)


def _only_k1(case: Case) -> str | None:
    k = case.problem.K
    return None if k == 1 else f"a GEMM path covers kernel_size 1 only, not K={k} (use torch)"


def _k1_with_bias(case: Case) -> str | None:
    if not case.problem.bias:
        return "no bias to add: the same as the GEMM path without it"
    return _only_k1(case)


FLOATS = ("float32", "bfloat16", "float16")

for op in ("depthwise", "pointwise"):
    register(Impl(
        name="torch", op=op, layout="ncl", build=_build_torch, baseline=True, tf32="conv",
        description="F.conv1d as nn.Conv1d calls it; PyTorch picks cuDNN or ATen's kernel",
    ))

register(Impl(
    name="native", op="depthwise", layout="ncl", build=_build_native,
    description="F.conv1d with cuDNN (CUDA) / oneDNN (CPU) disabled: ATen's own kernel",
))
register(Impl(
    name="cudnn", op="depthwise", layout="ncl", build=_build_cudnn, devices=("cuda",), tf32="conv",
    description="torch.cudnn_convolution on the (N,C,1,L) view: cuDNN forced, no layout copy",
))
register(Impl(
    name="torch_nlc", op="depthwise", layout="nlc", build=_build_torch_nlc, baseline=True, tf32="conv",
    description="nn.Conv1d on an (N,L,C) tensor: pays PyTorch's hidden copies in and out",
))
register(Impl(
    name="cudnn_nlc", op="depthwise", layout="nlc", build=_build_cudnn_nlc, devices=("cuda",),
    tf32="conv",
    description="cuDNN NHWC conv2d on the (N,L,C) storage seen as channels-last: no copy",
))
register(Impl(
    name="matmul", op="pointwise", layout="ncl", build=_build_matmul, tf32="matmul",
    supports=_only_k1, description="torch.matmul / baddbmm (bias fused) of W and x per batch element",
))
register(Impl(
    name="linear_nlc", op="pointwise", layout="nlc", build=_build_linear_nlc, baseline=True,
    tf32="matmul", supports=_only_k1, description="F.linear on (N,L,C)",
))
register(Impl(
    name="matmul_add", op="pointwise", layout="ncl", build=_build_matmul_add, tf32="matmul",
    supports=_k1_with_bias, description="torch.matmul of W and x, then the bias in a separate add",
))
register(Impl(
    name="linear_add_nlc", op="pointwise", layout="nlc", build=_build_linear_add_nlc, tf32="matmul",
    supports=_k1_with_bias, description="F.linear without bias on (N,L,C), then the bias in a separate add",
))
