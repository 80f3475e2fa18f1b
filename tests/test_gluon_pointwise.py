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

gp = pytest.importorskip("convbench.impls.gluon_pointwise")

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
for bm, bn, bk, stages, sk, bias in json.loads(sys.argv[1]):
    sig = {"x_desc": desc((bm, bk)), "w_desc": desc((bn, bk)), "y_desc": desc((bm, bn)), "bias_ptr": "*bf16",
           "ws_ptr": "*fp32", "flag_ptr": "*i32", "M": "i32", "N": "i32", "K": "i32",
           "HAS_BIAS": "constexpr", "STAGES": "constexpr", "STREAM_K": "constexpr"}
    src = gluon_rt.GluonASTSource(pointwise_gluon_kernel, sig,
                                  constexprs={"HAS_BIAS": bias, "STAGES": stages, "STREAM_K": sk})
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "maxnreg": 168})
    ptx = k.asm["ptx"]
    out[f"{bm}x{bn}x{bk} s{stages} sk={sk} bias={bias}"] = dict(
        num_warps=k.metadata.num_warps, shared=k.metadata.shared, cubin="cubin" in k.asm,
        wgmma="wgmma.mma_async" in ptx, tma="cp.async.bulk.tensor" in ptx, setmaxnreg="setmaxnreg" in ptx,
        release=len(re.findall(r"(?:atom|red)\.global\.gpu\.release\.add", ptx)),
        acquire=len(re.findall(r"atom\.global\.gpu\.acquire\.add", ptx)))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def compiled() -> dict:
    cases = [(c.block_m, c.block_n, c.block_k, c.num_stages, c.stream_k, bias)
             for c in tp.GLUON_CONFIGS for bias in (False, True)]
    return json.loads(compile_in_fresh_process(_COMPILE, json.dumps(cases)))


@pytest.mark.parametrize("cfg", tp.GLUON_CONFIGS, ids=lambda c: c.label())
@pytest.mark.parametrize("bias", [False, True])
def test_compiles_for_sm90(compiled, cfg, bias):
    k = compiled[f"{cfg.block_m}x{cfg.block_n}x{cfg.block_k} s{cfg.num_stages} sk={cfg.stream_k} bias={bias}"]
    assert k["num_warps"] == 12  # two 4-warp consumer groups and the producer, rounded up
    assert k["wgmma"] and k["tma"] and k["setmaxnreg"]
    # stream-K: each consumer group publishes its partial with a release and takes the others'
    # with an acquire, at GPU scope (once per group: both groups are compiled from one body)
    want = 2 if cfg.stream_k else 0
    assert (k["release"], k["acquire"]) == (want, want)
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


def _schedules(programs: int, tiles: int, k_tiles: int) -> dict[int, list[tuple]]:
    return {p: gp.stream_k_units(p, programs, tiles, k_tiles) for p in range(programs)}


@pytest.mark.parametrize("programs, tiles, k_tiles", [
    (132, 616, 16),  # DTTS 1024->512 at 128x64 tiles: 4 whole rounds and 88 tiles in the tail
    (132, 308, 16), (132, 132, 16), (132, 72, 16), (132, 24, 6), (132, 7, 5), (132, 1000, 3), (4, 9, 1),
])
def test_stream_k_schedule_covers_every_k_step_once_and_waits_only_on_lower_programs(programs, tiles, k_tiles):
    sched = _schedules(programs, tiles, k_tiles)
    owner = {}
    partial_of = {}  # program -> the tile its one workspace partial belongs to
    for p, units in sched.items():
        assert [u[3] for u in units] == sorted(u[3] for u in units)  # whole tiles, then a partial, then a finish
        assert sum(u[3] == 1 for u in units) <= 1  # one workspace slot a program
        for t, k0, k1, kind, _ in units:
            assert 0 <= k0 < k1 <= k_tiles and 0 <= t < tiles
            for k in range(k0, k1):
                assert (t, k) not in owner
                owner[t, k] = p
            if kind == 1:
                partial_of[p] = t
                assert k1 < k_tiles  # a partial never ends its tile
    assert len(owner) == tiles * k_tiles
    for p, units in sched.items():
        for t, k0, k1, kind, contributors in units:
            if kind == 2:
                assert k1 == k_tiles
                assert all(q < p for q in contributors)
                # exactly the programs that hold this tile's other k steps, each with its partial
                assert set(contributors) == {owner[t, k] for k in range(k0)}
                assert all(partial_of[q] == t for q in contributors)
            elif kind == 0:
                assert (k0, k1) == (0, k_tiles) and not contributors
    # every workspace partial is taken by exactly one finishing piece
    taken = [q for units in sched.values() for u in units for q in u[4]]
    assert sorted(taken) == sorted(partial_of)


def test_stream_k_evens_out_the_last_round():
    """DTTS 1024->512 (N, L, C) at 128x64 tiles on an H200's 132 SMs: without stream-K the
    slowest program runs 5 tiles (80 k steps) where the mean is 4.67 (74.7); with it, 75."""
    def most(stream_k):
        return max(sum(k1 - k0 for _, k0, k1, _, _ in gp.stream_k_units(p, 132, 616, 16, stream_k))
                   for p in range(132))
    assert (most(False), most(True)) == (80, 75)
