"""What the Triton families share: whether Triton can run here, and the skip reason when not."""

from __future__ import annotations

import importlib.util
import os

from ..registry import Case


def cdiv(a: int, b: int) -> int:
    """Host-side ceil division for grids. triton.cdiv is a jit function: calling it from Python
    costs ~6 µs (measured on the CPU VM), on every launch."""
    return -(-a // b)


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def device_reason(case: Case) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    if case.device_type == "cpu" and not interpreting():
        return "Triton kernels need a CUDA GPU (on CPU they run only under TRITON_INTERPRET=1, for correctness)"
    return None


def tuning_enabled() -> bool:
    """CONVBENCH_TUNE=0 takes the first workable tile instead of timing candidates: for
    correctness sweeps over many shapes, where tuning every shape costs minutes of compiles."""
    return os.environ.get("CONVBENCH_TUNE", "1") != "0"


def split_layout(x, layout: str) -> tuple[int, int, int]:
    """(N, C, L) of x held as (N, C, L) for layout "ncl" or (N, L, C) for "nlc"."""
    if layout == "ncl":
        n, c, length = x.shape
    elif layout == "nlc":
        n, length, c = x.shape
    else:
        raise ValueError(f"layout must be 'ncl' or 'nlc', got {layout!r}")
    return n, c, length
