"""The Gluon pointwise probe (branch pw-gluon) compiles for sm_90 here, where it cannot run (Gluon
has no CPU interpreter): each config, with and without bias, to PTX and a cubin, with the warp
groups, TMA copies and register budget it was written for. Its numbers are checked on the GPU
(scripts/gluon_probe.py)."""

from __future__ import annotations

import pytest

gluon_rt = pytest.importorskip("triton.experimental.gluon._runtime")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.experimental.gluon import language as gl  # noqa: E402

from convbench.impls.gluon_pointwise import pointwise_gluon_kernel  # noqa: E402


def _desc(shape):
    layout = gl.NVMMASharedLayout.get_default_for(list(shape), gl.bfloat16)
    return f"tensordesc<bf16[{shape[0]},{shape[1]}],{layout!r}>"


@pytest.mark.parametrize("bm,bn,bk,stages", [(128, 128, 64, 4), (128, 64, 64, 6), (64, 256, 64, 4)])
@pytest.mark.parametrize("bias", [False, True])
def test_compiles_for_sm90(bm, bn, bk, stages, bias):
    sig = {"x_desc": _desc((bm, bk)), "w_desc": _desc((bn, bk)), "y_desc": _desc((bm, bn)),
           "bias_ptr": "*bf16", "M": "i32", "N": "i32", "K": "i32", "HAS_BIAS": "constexpr", "STAGES": "constexpr"}
    src = gluon_rt.GluonASTSource(pointwise_gluon_kernel, sig, constexprs={"HAS_BIAS": bias, "STAGES": stages})
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "maxnreg": 168})
    ptx = k.asm["ptx"]
    assert k.metadata.num_warps == 12  # two 4-warp consumer groups and the producer, rounded up
    assert "wgmma.mma_async" in ptx and "cp.async.bulk.tensor" in ptx and "setmaxnreg" in ptx
    assert k.metadata.shared <= 232448  # what an sm_90 CTA may have
    assert "cubin" in k.asm
