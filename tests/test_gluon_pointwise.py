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
for bm, bn, bk, stages, coop, sk, bias in json.loads(sys.argv[1]):
    # the cooperative schedule: each group stores its half of the tile's rows
    sig = {"x_desc": desc((bm, bk)), "w_desc": desc((bn, bk)), "y_desc": desc((bm // 2 if coop else bm, bn)),
           "bias_ptr": "*bf16", "ws_ptr": "*fp32", "cnt_ptr": "*i32", "M": "i32", "N": "i32", "K": "i32",
           "SK_START": "i32", "SPLITS": "i32",
           "HAS_BIAS": "constexpr", "STAGES": "constexpr", "COOP": "constexpr", "SK": "constexpr"}
    src = gluon_rt.GluonASTSource(pointwise_gluon_kernel, sig,
                                  constexprs={"HAS_BIAS": bias, "STAGES": stages, "COOP": coop, "SK": sk})
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "maxnreg": 168})
    ptx = k.asm["ptx"]
    out[f"{bm}x{bn}x{bk} s{stages} coop={coop} sk={sk} bias={bias}"] = dict(
        num_warps=k.metadata.num_warps, shared=k.metadata.shared, cubin="cubin" in k.asm,
        wgmma="wgmma.mma_async" in ptx, tma="cp.async.bulk.tensor" in ptx, setmaxnreg="setmaxnreg" in ptx,
        wgmma_m=sorted(set(re.findall(r"wgmma\.mma_async\.sync\.aligned\.m(\d+)n(\d+)k", ptx))),
        spin=ptx.count("ld.acquire.gpu.global.b32"), release=len(re.findall(r"(?:red|atom)\.global\.gpu\.release\.add", ptx)))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def compiled() -> dict:
    cases = [(c.block_m, c.block_n, c.block_k, c.num_stages, c.coop, c.stream_k, bias)
             for c in tp.GLUON_CONFIGS for bias in (False, True)]
    return json.loads(compile_in_fresh_process(_COMPILE, json.dumps(cases)))


@pytest.mark.parametrize("cfg", tp.GLUON_CONFIGS, ids=lambda c: c.label())
@pytest.mark.parametrize("bias", [False, True])
def test_compiles_for_sm90(compiled, cfg, bias):
    k = compiled[f"{cfg.block_m}x{cfg.block_n}x{cfg.block_k} s{cfg.num_stages} coop={cfg.coop} sk={cfg.stream_k} bias={bias}"]
    assert k["num_warps"] == 12  # two 4-warp consumer groups and the producer, rounded up
    assert k["wgmma"] and k["tma"] and k["setmaxnreg"]
    # a warp group's wgmma is always 64 rows; N is the tile's width in both schedules
    assert k["wgmma_m"] == [["64", str(cfg.block_n)]]
    assert k["shared"] <= 232448  # what an sm_90 CTA may have
    assert k["cubin"]
    # stream-K: each group's finishing piece spins on acquire loads, each other piece releases
    assert (k["spin"], k["release"]) == ((2, 2) if cfg.stream_k else (0, 0))


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


def _program_work(pid: int, tiles: int, progs: int, k_tiles: int) -> list[tuple[int, int, int]]:
    """(tile, k0, k1) in the order program pid runs them, by the kernel's arithmetic
    (_sk_piece, and the whole-tile loop up to SK_START)."""
    from convbench.impls.gluon_pointwise import stream_k_plan

    start, splits = stream_k_plan(tiles, progs, k_tiles)
    work = []
    if splits > 1 and pid < (tiles - start) * splits:
        q, p = divmod(pid, splits)
        work.append((start + q, p * k_tiles // splits, (p + 1) * k_tiles // splits))
    work += [(t, 0, k_tiles) for t in range(pid, start, progs)]
    return work


@pytest.mark.parametrize("tiles,progs,k_tiles", [
    (308, 132, 16),   # DTTS 1024->512, 128x128: 2 rounds and 44 tiles, 3 pieces each
    (1232, 132, 8),   # DTTS 512->2048
    (140, 132, 2),    # 8 tail tiles, K of 2 steps: 2 pieces of one step
    (288, 132, 16),   # 24 tail tiles, 5 pieces
    (1672, 132, 8),   # FastConformer-L: 88 tail tiles, no cut (one piece a tile)
    (264, 132, 16),   # whole rounds only
    (100, 100, 16),   # one round, no tail
    (7, 7, 4),
])
def test_stream_k_covers_every_k_step_once_pieces_first(tiles, progs, k_tiles):
    from convbench.impls.gluon_pointwise import stream_k_plan

    start, splits = stream_k_plan(tiles, progs, k_tiles)
    seen: dict[int, list[tuple[int, int]]] = {}
    longest = 0
    for pid in range(progs):
        work = _program_work(pid, tiles, progs, k_tiles)
        for i, (t, k0, k1) in enumerate(work):
            assert 0 <= k0 < k1 <= k_tiles  # every unit has a k step (the consumer's loop needs one)
            if (k0, k1) != (0, k_tiles):
                assert i == 0 and t >= start  # pieces only of tail tiles, and first
            seen.setdefault(t, []).append((k0, k1))
        longest = max(longest, sum(k1 - k0 for _, k0, k1 in work))
    for t in range(tiles):
        steps = sorted(seen[t])
        assert steps[0][0] == 0 and steps[-1][1] == k_tiles
        assert all(a[1] == b[0] for a, b in zip(steps, steps[1:], strict=False))  # contiguous, no overlap
        if t >= start:
            assert len(steps) == splits
            # the last piece finishes the tile: it is the longest, so the others are done first
            assert steps[-1][1] - steps[-1][0] == max(k1 - k0 for k0, k1 in steps)
    whole = -(-tiles // progs) * k_tiles
    if splits > 1:  # the cut shortens the slowest program
        assert longest < whole
        assert longest <= -(-tiles * k_tiles // progs) + 1
    else:
        assert (start, longest) == (tiles, whole)


def test_stream_k_plan_for_dtts_1024_512():
    from convbench.impls.gluon_pointwise import stream_k_plan

    assert stream_k_plan(308, 132, 16) == (264, 3)  # 44 tail tiles x 3 pieces = 132 programs
    assert stream_k_plan(1672, 132, 8) == (1672, 1)
    assert stream_k_plan(50, 132, 16) == (50, 1)  # less than a round: nothing to even out
