"""Test-only GPU faults for scripts/gpu_fault.py, registered via CONVBENCH_PLUGINS=fault_plugin.

fault_oob: a Triton depthwise "kernel" whose store lands 4 TiB past its output buffer, so the GPU
raises an illegal memory access (a sticky error: the CUDA context of that process is lost).
fault_cuda_oom: asks the caching allocator for 32 TiB, a real torch.OutOfMemoryError.
Both fault only on the case with L == FAULT_L and skip (with a reason) elsewhere.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from convbench.registry import Impl, register

FAULT_L = 517
FAR_ELEMENTS = 1 << 40  # 4 TiB of float32 past y: no allocation is mapped there


@triton.jit
def oob_store_kernel(y_ptr, n, far, BLOCK: tl.constexpr):
    """y: any contiguous buffer of n elements; every store goes `far` elements past it."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + far + offs, tl.zeros((BLOCK,), tl.float32), mask=offs < n)


def _build_oob(p, inputs):
    y = torch.empty((p.N, p.C_out, p.L_out), device=inputs.x.device, dtype=torch.float32)
    n, block = y.numel(), 1024

    def fn():
        oob_store_kernel[(triton.cdiv(n, block),)](y, n, FAR_ELEMENTS, BLOCK=block)
        return y.to(inputs.x.dtype)
    return fn


def _build_oom(p, inputs):
    hog = torch.empty(32 << 40, dtype=torch.uint8, device=inputs.x.device)  # raises: 32 TiB
    return lambda: hog


def _only_fault_case(case):
    if case.problem.L != FAULT_L:
        return f"fault plugin faults only on L == {FAULT_L}"
    return None


register(Impl(name="fault_cuda_oom", op="depthwise", layout="ncl", build=_build_oom,
              devices=("cuda",), modes=("fwd",), supports=_only_fault_case,
              description="test-only: a real CUDA out-of-memory in build"))
register(Impl(name="fault_oob", op="depthwise", layout="ncl", build=_build_oob,
              devices=("cuda",), modes=("fwd",), requires=("triton",), supports=_only_fault_case,
              description="test-only: Triton store far out of bounds -> illegal memory access"))
