"""The Gluon pointwise GEMM compiles for sm_90 here, where it cannot run (Gluon has no CPU
interpreter): each tuning config, with and without bias, to PTX and a cubin, with the warp
groups, TMA copies and register budget it was written for. Its numbers are checked on the GPU
(scripts/gluon_probe.py; gpu_correctness.py --pw-plans forces every config). Off Hopper and in
the interpreter the tuner never offers it.

The compiles run in a fresh process: once the interpreter has run in a process (the other tests
set TRITON_INTERPRET=1), Triton's compiler paths are patched there and Gluon fails to compile."""

from __future__ import annotations

import json

import pytest
from conftest import compile_in_fresh_process

pytest.importorskip("triton.experimental.gluon._runtime")

import torch  # noqa: E402

from convbench.impls import triton_pointwise as tp  # noqa: E402

_COMPILE = r"""
import json, re, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.experimental.gluon import _runtime as gluon_rt, language as gl
from convbench.impls.gluon_pointwise import pointwise_gluon_kernel

def desc(shape):
    layout = gl.NVMMASharedLayout.get_default_for(list(shape), gl.bfloat16)
    return f"tensordesc<bf16[{shape[0]},{shape[1]}],{layout!r}>"

out = {}
for bm, bn, bk, stages, coop, bias in json.loads(sys.argv[1]):
    # the cooperative schedule: each group stores its half of the tile's rows
    sig = {"x_desc": desc((bm, bk)), "w_desc": desc((bn, bk)), "y_desc": desc((bm // 2 if coop else bm, bn)),
           "bias_ptr": "*bf16", "M": "i32", "N": "i32", "K": "i32",
           "HAS_BIAS": "constexpr", "STAGES": "constexpr", "COOP": "constexpr"}
    src = gluon_rt.GluonASTSource(pointwise_gluon_kernel, sig,
                                  constexprs={"HAS_BIAS": bias, "STAGES": stages, "COOP": coop})
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "maxnreg": 168})
    ptx = k.asm["ptx"]
    out[f"{bm}x{bn}x{bk} s{stages} coop={coop} bias={bias}"] = dict(
        num_warps=k.metadata.num_warps, shared=k.metadata.shared, cubin="cubin" in k.asm,
        wgmma="wgmma.mma_async" in ptx, tma="cp.async.bulk.tensor" in ptx, setmaxnreg="setmaxnreg" in ptx,
        wgmma_m=sorted(set(re.findall(r"wgmma\.mma_async\.sync\.aligned\.m(\d+)n(\d+)k", ptx))))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def compiled() -> dict:
    cases = [(c.block_m, c.block_n, c.block_k, c.num_stages, c.coop, bias)
             for c in tp.GLUON_CONFIGS for bias in (False, True)]
    return json.loads(compile_in_fresh_process(_COMPILE, json.dumps(cases)))


@pytest.mark.parametrize("cfg", tp.GLUON_CONFIGS, ids=lambda c: c.label())
@pytest.mark.parametrize("bias", [False, True])
def test_compiles_for_sm90(compiled, cfg, bias):
    k = compiled[f"{cfg.block_m}x{cfg.block_n}x{cfg.block_k} s{cfg.num_stages} coop={cfg.coop} bias={bias}"]
    assert k["num_warps"] == 12  # two 4-warp consumer groups and the producer, rounded up
    assert k["wgmma"] and k["tma"] and k["setmaxnreg"]
    # a warp group's wgmma is always 64 rows; N is the tile's width in both schedules
    assert k["wgmma_m"] == [["64", str(cfg.block_n)]]
    assert k["shared"] <= 232448  # what an sm_90 CTA may have
    assert k["cubin"]


def test_tuner_offers_gluon_configs_only_on_a_gpu():
    cands = tp._candidates(["nlc_gluon", "ncl_tg", "nlc_tma"], "16bit", 1024, 512)
    assert [c.config for c in cands if c.variant == "ncl_tg"] == list(tp.GLUON_CONFIGS)
    assert {c.variant for c in cands} == {"nlc_gluon", "ncl_tg", "nlc_tma"}
    x = torch.randn(2, 16, 1024, dtype=torch.bfloat16)
    w = torch.randn(512, 1024, 1, dtype=torch.bfloat16)
    assert not tp._gluon_ok(x, "16bit")  # a CPU tensor: no Gluon, whatever the Triton
    for layout, v in (("nlc", "nlc_gluon"), ("ncl", "ncl_tg")):
        xl = x if layout == "nlc" else x.transpose(1, 2).contiguous()
        with pytest.raises(ValueError, match="does not apply"):
            tp._forward(xl, w, None, 1, 0, layout, "ieee", variant=v)
