"""Implementation records, the registry, and capability checks that turn into skip reasons."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .problem import DTYPES, LAYOUTS, MODES, OPS, Inputs, Problem


@dataclass(frozen=True)
class Case:
    """One measurable case: a problem in a dtype, storage layout, device and mode."""

    problem: Problem
    dtype: str
    layout: str
    device: str
    mode: str = "fwd"

    @property
    def op(self) -> str:
        return self.problem.op

    @property
    def device_type(self) -> str:
        return torch.device(self.device).type

    def label(self) -> str:
        return f"{self.problem.label()} {self.dtype} {self.layout} {self.device} {self.mode}"


Builder = Callable[[Problem, Inputs], Callable[[], torch.Tensor]]


@dataclass(frozen=True)
class Impl:
    """An implementation: data about what it supports plus a builder of the closure to time.

    build(problem, inputs) does all set-up (reshapes, compilation, autotuning) and returns a
    zero-argument closure computing y in the same storage layout as inputs.x. A closure may
    carry `plan()`: a short description of the variant its tuning chose, read after its first
    call and recorded in the row's `plan` column.
    tf32: which switch decides whether float32 runs in TF32 ("conv", "matmul", "triton", "none").
    supports(case) -> reason | None: shape constraints beyond the fields here.
    """

    name: str
    op: str
    layout: str
    build: Builder
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")
    modes: tuple[str, ...] = ("fwd", "fwd_bwd")
    requires: tuple[str, ...] = ()
    min_cc: tuple[int, int] | None = None
    baseline: bool = False
    tf32: str = "none"
    supports: Callable[[Case], str | None] | None = None
    description: str = ""

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"impl {self.name!r}: op {self.op!r} not in {OPS}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"impl {self.name!r}: layout {self.layout!r} not in {LAYOUTS}")
        bad = [m for m in self.modes if m not in MODES] + [d for d in self.dtypes if d not in DTYPES]
        if bad:
            raise ValueError(f"impl {self.name!r}: unknown modes/dtypes {bad}")

    @property
    def key(self) -> tuple[str, str]:
        return (self.op, self.name)

    def uses_tf32(self, case: Case) -> bool:
        """Whether float32 math of this implementation runs in TF32 under the flags in force now."""
        if case.dtype != "float32" or case.device_type != "cuda":
            return False
        if self.tf32 == "conv":
            return bool(torch.backends.cudnn.allow_tf32)
        if self.tf32 == "matmul":
            return bool(torch.backends.cuda.matmul.allow_tf32)
        if self.tf32 == "triton":
            from .precision import triton_input_precision

            return triton_input_precision() == "tf32"
        return False

    def skip_reason(self, case: Case) -> str | None:
        """Why this implementation cannot run the case here, or None."""
        if case.op != self.op or case.layout != self.layout:
            return f"{self.name} is a {self.op}/{self.layout} implementation, the case is {case.op}/{case.layout}"
        if case.device_type not in self.devices:
            return f"{self.name} runs on {'/'.join(self.devices)}, not {case.device_type}"
        if case.dtype not in self.dtypes:
            return f"{self.name} supports dtypes {', '.join(self.dtypes)}, not {case.dtype}"
        if case.mode not in self.modes:
            return f"{self.name} has no backward (modes: {', '.join(self.modes)})"
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                return f"{self.name} needs the Python module {mod!r}, which is not installed"
        if self.min_cc is not None and case.device_type == "cuda":
            cc = torch.cuda.get_device_capability(case.device)
            if cc < self.min_cc:
                return f"{self.name} needs compute capability >= {self.min_cc}, device has {cc}"
        if self.supports is not None:
            return self.supports(case)
        return None


_REGISTRY: dict[tuple[str, str], Impl] = {}


def register(impl: Impl) -> Impl:
    if impl.key in _REGISTRY:
        raise ValueError(f"implementation {impl.op}/{impl.name} is registered twice")
    _REGISTRY[impl.key] = impl
    return impl


def unregister(op: str, name: str) -> None:
    _REGISTRY.pop((op, name), None)


def _ensure_loaded() -> None:
    from . import impls  # noqa: F401  (explicit imports register the built-in families)


def all_impls(op: str | None = None) -> list[Impl]:
    _ensure_loaded()
    return [i for i in _REGISTRY.values() if op is None or i.op == op]


def names(op: str | None = None) -> list[str]:
    return sorted({i.name for i in all_impls(op)})


def get(op: str, name: str) -> Impl:
    _ensure_loaded()
    try:
        return _REGISTRY[(op, name)]
    except KeyError:
        known = ", ".join(n for (o, n) in _REGISTRY if o == op)
        raise KeyError(f"no {op} implementation named {name!r}; registered: {known}") from None


def baseline(op: str, layout: str) -> Impl | None:
    for i in all_impls(op):
        if i.layout == layout and i.baseline:
            return i
    return None
