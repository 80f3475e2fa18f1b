"""DepthWiseConv1d / PointwiseConv1d: drop-in modules of the reference API with a backend= switch."""

from __future__ import annotations

import math

import torch
from torch import nn

from .problem import Depthwise, Inputs, Pointwise, Problem
from .registry import Case, Impl, get, names


def _backend(op: str, backend: str, layout: str) -> Impl:
    if backend not in names(op):
        raise ValueError(f"backend={backend!r} is not a {op} implementation; choose one of "
                         f"{', '.join(names(op))}")
    impl = get(op, backend)
    if impl.layout != layout:
        raise ValueError(f"backend={backend!r} works on {impl.layout} tensors but layout={layout!r}; "
                         f"pick a backend of layout {layout!r} or pass layout={impl.layout!r}")
    return impl


class _Conv1dBase(nn.Module):
    op = ""

    def __init__(self, problem_kw: dict, weight_shape, bias: bool, backend: str, layout: str,
                 device=None, dtype=None):
        super().__init__()
        if layout not in ("ncl", "nlc"):
            raise ValueError(f"layout={layout!r}: allowed 'ncl' (N, C, L) or 'nlc' (N, L, C)")
        self.layout = layout
        self._kw = problem_kw
        self.weight = nn.Parameter(torch.empty(weight_shape, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(weight_shape[0], device=device, dtype=dtype)) if bias else None
        self.backend = backend
        self.impl = _backend(self.op, backend, layout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv1d's initialisation: kaiming-uniform weights, uniform bias in ±1/sqrt(fan_in)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2]
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def _problem(self, x: torch.Tensor) -> Problem:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, L) for layout ncl, (N, L, C_in) for nlc; returns y in the same layout."""
        if x.dim() != 3:
            raise ValueError(f"{type(self).__name__} expects a 3-D input, got shape {tuple(x.shape)}")
        p = self._problem(x)
        training = torch.is_grad_enabled() and (
            x.requires_grad or any(t.requires_grad for t in self.parameters())
        )
        case = Case(p, str(x.dtype).removeprefix("torch."), self.layout, str(x.device),
                    "fwd_bwd" if training else "fwd")
        reason = self.impl.skip_reason(case)
        if reason:
            raise RuntimeError(f"{type(self).__name__}(backend={self.backend!r}) cannot run this "
                               f"input: {reason}")
        return self.impl.build(p, Inputs(x, self.weight, self.bias, self.layout))()

    def _c_in(self, x: torch.Tensor) -> tuple[int, int]:
        n, a, b = x.shape
        c, length = (a, b) if self.layout == "ncl" else (b, a)
        if c != self.in_channels:
            raise ValueError(f"input has {c} channels, the module expects in_channels={self.in_channels}")
        return n, length

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self._kw['stride']}, padding={self._kw['padding']}, "
                f"bias={self.bias is not None}, backend={self.backend!r}, layout={self.layout!r}")


class DepthWiseConv1d(_Conv1dBase):
    """Depthwise Conv1d (groups = in_channels), as the DelightfulTTS reference API.

    x: (batch, in_channels, length) -> (batch, out_channels, L_out), with out_channels a multiple
    of in_channels. backend names a registered depthwise implementation (`convbench list`).
    """

    op = "depthwise"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int,
                 bias: bool = True, stride: int = 1, dilation: int = 1, backend: str = "torch",
                 layout: str = "ncl", device=None, dtype=None):
        if in_channels < 1 or out_channels < 1 or kernel_size < 1:
            raise ValueError(f"DepthWiseConv1d({in_channels}, {out_channels}, {kernel_size}): "
                             "channels and kernel_size must be >= 1")
        if out_channels % in_channels:
            lo = out_channels // in_channels * in_channels
            options = ", ".join(str(v) for v in (lo, lo + in_channels) if v >= in_channels)
            raise ValueError(
                f"DepthWiseConv1d({in_channels}, {out_channels}, {kernel_size}, padding={padding}): "
                f"out_channels={out_channels} is not a multiple of in_channels={in_channels}. A "
                f"depthwise conv (groups=in_channels) gives every input channel the same number of "
                f"filters, so out_channels must be k*{in_channels} (e.g. {options})."
            )
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        kw = dict(K=kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias)
        super().__init__(kw, (out_channels, 1, kernel_size), bias, backend, layout, device, dtype)

    def _problem(self, x):
        n, length = self._c_in(x)
        return Depthwise(N=n, C_in=self.in_channels, C_out=self.out_channels, L=length, **self._kw)


class PointwiseConv1d(_Conv1dBase):
    """Pointwise (1x1) Conv1d, as the DelightfulTTS reference API.

    x: (batch, in_channels, length) -> (batch, out_channels, L_out). backend names a registered
    pointwise implementation (`convbench list`).
    """

    op = "pointwise"

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, kernel_size: int = 1, backend: str = "torch",
                 layout: str = "ncl", device=None, dtype=None):
        if min(in_channels, out_channels, kernel_size, stride) < 1 or padding < 0:
            raise ValueError(f"PointwiseConv1d({in_channels}, {out_channels}, stride={stride}, "
                             f"padding={padding}, kernel_size={kernel_size}): channels, stride and "
                             "kernel_size must be >= 1 and padding >= 0")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        kw = dict(K=kernel_size, stride=stride, padding=padding, dilation=1, bias=bias)
        super().__init__(kw, (out_channels, in_channels, kernel_size), bias, backend, layout,
                         device, dtype)

    def _problem(self, x):
        n, length = self._c_in(x)
        return Pointwise(N=n, C_in=self.in_channels, C_out=self.out_channels, L=length, **self._kw)
