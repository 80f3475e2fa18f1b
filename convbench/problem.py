"""Depthwise and pointwise Conv1d problem specs: output length, analytic FLOPs and bytes, inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import torch

OPS = ("depthwise", "pointwise")
LAYOUTS = ("ncl", "nlc")
MODES = ("fwd", "fwd_bwd")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}
SHAPE_KEYS = ("N", "C_in", "C_out", "L", "K", "stride", "padding", "dilation", "bias")


def torch_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; allowed: {', '.join(DTYPES)}") from None


def same_padding(K: int, dilation: int = 1) -> int:
    """Symmetric "same" padding, dilation*(K-1)//2: L_out == L at stride 1 for odd K, L-1 for even K."""
    return dilation * (K - 1) // 2


@dataclass(frozen=True)
class Inputs:
    """Tensors of one case. x: (N, C_in, L) for layout ncl, (N, L, C_in) for nlc; weight: (C_out, C_in/groups, K)."""

    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    layout: str

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.x, self.weight, self.bias) if t is not None]


@dataclass(frozen=True)
class Problem:
    """One Conv1d shape. Subclasses fix the op; fields are in elements, padding is symmetric."""

    op: ClassVar[str] = ""
    N: int
    C_in: int
    C_out: int
    L: int
    K: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    bias: bool = True

    @property
    def groups(self) -> int:
        raise NotImplementedError

    @property
    def L_out(self) -> int:
        return (self.L + 2 * self.padding - self.dilation * (self.K - 1) - 1) // self.stride + 1

    def invalid_reason(self) -> str | None:
        """Why this shape cannot be computed, or None."""
        for name in ("N", "C_in", "C_out", "L", "K", "stride", "dilation"):
            if getattr(self, name) < 1:
                return f"{name}={getattr(self, name)} must be >= 1"
        if self.padding < 0:
            return f"padding={self.padding} must be >= 0"
        if self.L_out < 1:
            return (
                f"L_out={self.L_out} < 1: L={self.L} + 2*padding={2 * self.padding} is shorter than "
                f"the dilated kernel dilation*(K-1)+1={self.dilation * (self.K - 1) + 1}"
            )
        return None

    @property
    def weight_shape(self) -> tuple[int, int, int]:
        return (self.C_out, self.C_in // self.groups, self.K)

    @property
    def flops(self) -> int:
        raise NotImplementedError

    def bytes(self, dtype: str) -> int:
        """Minimal bytes: x, weight, bias read once and y written once."""
        elems = self.N * self.C_in * self.L + self.N * self.C_out * self.L_out
        elems += self.C_out * (self.C_in // self.groups) * self.K + (self.C_out if self.bias else 0)
        return elems * torch_dtype(dtype).itemsize

    def shape(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def label(self) -> str:
        s = f"{self.op} N={self.N} C={self.C_in}"
        if self.C_out != self.C_in:
            s += f"->{self.C_out}"
        s += f" L={self.L} K={self.K}"
        for name, default in (("stride", 1), ("dilation", 1)):
            if getattr(self, name) != default:
                s += f" {name}={getattr(self, name)}"
        s += f" pad={self.padding}"
        return s + ("" if self.bias else " nobias")

    def make_inputs(
        self,
        dtype: str,
        device: str | torch.device = "cpu",
        layout: str = "ncl",
        seed: int = 0,
        requires_grad: bool = False,
    ) -> Inputs:
        """Seeded random inputs (uniform, fan-in scaled weights, so outputs are O(1)); never zeros."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
        dt = torch_dtype(dtype)
        gen = torch.Generator(device=device).manual_seed(seed)
        shape_x = (self.N, self.C_in, self.L) if layout == "ncl" else (self.N, self.L, self.C_in)
        x = torch.randn(shape_x, generator=gen, device=device, dtype=torch.float32).to(dt)
        fan_in = (self.C_in // self.groups) * self.K
        bound = fan_in**-0.5
        w = torch.rand(self.weight_shape, generator=gen, device=device, dtype=torch.float32)
        w = ((w * 2 - 1) * bound).to(dt)
        b = None
        if self.bias:
            b = torch.rand(self.C_out, generator=gen, device=device, dtype=torch.float32)
            b = ((b * 2 - 1) * bound).to(dt)
        if requires_grad:
            for t in (x, w, b):
                if t is not None:
                    t.requires_grad_(True)
        return Inputs(x=x, weight=w, bias=b, layout=layout)

    def out_shape(self, layout: str = "ncl") -> tuple[int, int, int]:
        """Shape of y in the storage layout: (N, C_out, L_out) or (N, L_out, C_out)."""
        if layout == "ncl":
            return (self.N, self.C_out, self.L_out)
        return (self.N, self.L_out, self.C_out)

    def make_grad_out(self, dtype: str, device: str | torch.device = "cpu", layout: str = "ncl",
                      seed: int = 0) -> torch.Tensor:
        """Seeded random dL/dy for fwd_bwd cases (seed + 1, so it differs from the inputs)."""
        gen = torch.Generator(device=device).manual_seed(seed + 1)
        y = torch.randn(self.out_shape(layout), generator=gen, device=device, dtype=torch.float32)
        return y.to(torch_dtype(dtype))

    def to_dict(self) -> dict:
        return {"op": self.op, **asdict(self)}


@dataclass(frozen=True)
class Depthwise(Problem):
    """Depthwise Conv1d: groups = C_in, C_out = multiplier * C_in."""

    op: ClassVar[str] = "depthwise"

    @property
    def groups(self) -> int:
        return self.C_in

    @property
    def multiplier(self) -> int:
        return self.C_out // self.C_in

    def invalid_reason(self) -> str | None:
        if self.C_in >= 1 and self.C_out % self.C_in:
            return (
                f"depthwise needs C_out to be a multiple of C_in (groups = C_in); "
                f"got C_in={self.C_in}, C_out={self.C_out}"
            )
        return super().invalid_reason()

    @property
    def flops(self) -> int:
        return 2 * self.N * self.C_out * self.L_out * self.K


@dataclass(frozen=True)
class Pointwise(Problem):
    """Pointwise Conv1d (kernel_size 1 by default): a GEMM over channels per batch element."""

    op: ClassVar[str] = "pointwise"
    K: int = 1

    @property
    def groups(self) -> int:
        return 1

    @property
    def flops(self) -> int:
        return 2 * self.N * self.C_out * self.C_in * self.L_out * self.K


PROBLEMS: dict[str, type[Problem]] = {"depthwise": Depthwise, "pointwise": Pointwise}


def make_problem(op: str, **shape) -> Problem:
    """Build a problem; C_out defaults to C_in for depthwise, K to 1 for pointwise."""
    if op not in PROBLEMS:
        raise ValueError(f"unknown op {op!r}; allowed: {', '.join(OPS)}")
    if op == "depthwise" and shape.get("C_out") is None:
        shape["C_out"] = shape["C_in"]
    return PROBLEMS[op](**shape)
