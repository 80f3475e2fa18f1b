"""The (N, L, C) pointwise GEMM y (M, N) = x (M, K) @ W^T (+ b) in Gluon, Triton's lower-level
language, with the schedule cuBLAS uses on Hopper and that `tl.dot` does not give us: a producer
warp that only issues TMA loads, and two consumer warp groups that take the program's tiles in
turn ("ping-pong"), so that one group's epilogue (bias, cast, TMA store) runs while the other
group's wgmma main loop runs.

Used by triton_pointwise as the variants "nlc_gluon" ((N, L, C)) and "ncl_tg" (the GEMM of the
(N, C, L) path through (N, L, C)), 16-bit, on Hopper; the tuner times them beside the tl.dot
kernels. Measured on the H200 (results/h200/session12/call1, CUDA graphs, no bias): 17.5 µs
against F.linear's 16.6 and tl.dot's 21.2 on DTTS 1024->512; 1.11-1.21x F.linear on the other
shapes (1.02-1.14x with bias).

Why: on DTTS 1024->512 (M = 9823, K = 1024, N = 512) our `tl.dot` TMA kernel reaches 0.76-0.79
of cuBLAS on the H200, and ncu put the gap in the main loop (tensor pipe 40-52 % against 66 %,
2-3x the instructions; notes/pointwise_kernel.md, sessions 10-11). Gluon on triton 3.6 has no
CTA clusters (cuBLAS also pairs CTAs and multicasts), so this is the part of cuBLAS's design that
can be written here.

Schedule, per persistent program (one per SM), tiles t = pid, pid + P, ... in local order j:
- producer (1 warp): for every (tile j, k step) in order, waits until ring stage s is free
  (`empty[s]`), then TMA-loads the x tile (BM, BK) and the W tile (BN, BK) into stage s, and
  `ready[s]` completes when both bytes have landed;
- consumer g (4 warps, g = 0 or 1) takes the local tiles j with j % 2 == g, the two groups
  taking turns on the main loop (`turn` barriers, as CUTLASS's ping-pong order barrier): waits `ready[s]`,
  issues an async wgmma, keeps one in flight and frees the previous stage; after the K loop adds
  the bias in fp32, casts, stores through its own shared buffer and a TMA store.
The ring is shared and filled in (tile, k) order, so the two groups' main loops alternate and
each group's epilogue overlaps the other's main loop. TMA zero-fills reads past M or K and
clips stores past M or N, so no masks are needed except on the bias.

COOP (session 16) is the other schedule cuBLAS uses: both groups work on every tile, group g on
its BM / 2 rows, and a stage is free once both have read it. A 128x128 tile then holds 64
accumulator registers a thread, as a ping-pong 64x128 tile does, but each stage of 32 KB feeds
twice the MMA work of a 24 KB 64x128 stage: a third fewer bytes through L2 per output. Measured
(results/h200/session16/call3_coop and call5_coop_halves, the tuners' timer, no bias): 128x128
s6 coop 44.8-44.9 µs on FastConformer-L against 48.2-49.5 for the best ping-pong config, 34.0
against 37.0 on DTTS 512->2048, 18.4-18.6 against 19.5-19.8 on 16x384->768; on DTTS 1024->512
(308 tiles: 2.33 rounds) 20.6-21.0 against 20.2-20.5. A per-program %globaltimer trace
(session16/call6_trace; the tag that held its script is gone) put the first 128x128 tile at
7.2-8.1 µs, each later one at 5.0-6.5 and a half-width tile at 4.6-4.7: the last partial round
costs nearly a whole round whatever its width.

Works on triton 3.6 (TMA names async_copy_*) and newer (async_load / async_store). Gluon does
not run under TRITON_INTERPRET: tests compile it for sm_90 on the CPU; correctness is checked
on the GPU (scripts/gluon_probe.py, and the GPU correctness matrix through triton_pointwise).
"""

from __future__ import annotations

import functools

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

# triton 3.9 renamed the TMA copies and made the old names raise; 3.6 has only the old ones
_tma_load = tma.async_load if hasattr(tma, "async_load") else tma.async_copy_global_to_shared
_tma_store = tma.async_store if hasattr(tma, "async_store") else tma.async_copy_shared_to_global


@gluon.jit
def _grid(M, N, K, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr):
    """(tiles along N, tiles, k steps a tile); tile t is at rows (t // tiles_n) * BM, columns
    (t % tiles_n) * BN, so consecutive programs share x's rows."""
    tiles_n = gl.cdiv(N, BN)
    return tiles_n, gl.cdiv(M, BM) * tiles_n, gl.cdiv(K, BK)


@gluon.jit
def _store_tile(acc, y_desc, bias_ptr, out, m0, n0, N, HAS_BIAS: gl.constexpr, BN: gl.constexpr,
                layout: gl.constexpr):
    """Bias in fp32, cast, and a TMA store through the group's own buffer `out`."""
    if HAS_BIAS:
        offs = n0 + gl.arange(0, BN, layout=gl.SliceLayout(0, layout))
        acc = acc + gl.load(bias_ptr + offs, mask=offs < N, other=0.0).to(gl.float32)[None, :]
    tma.store_wait(0)  # this group's previous tile has left its buffer
    out.store(acc.to(y_desc.dtype))
    fence_async_shared()
    _tma_store(y_desc, [m0, n0], out)


@gluon.jit
def _producer(x_desc, w_desc, x_s, w_s, ready, empty, M, N, K,
              BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr):
    pid = gl.program_id(0)
    progs = gl.num_programs(0)
    tiles_n, tiles, k_tiles = _grid(M, N, K, BM, BN, BK)
    c = 0
    for t in range(pid, tiles, progs):
        m0 = (t // tiles_n) * BM
        n0 = (t % tiles_n) * BN
        for ki in range(k_tiles):
            s = c % STAGES
            # a fresh barrier counts as having completed the phase before phase 0
            mbarrier.wait(empty.index(s), ((c // STAGES) & 1) ^ 1)
            bar = ready.index(s)
            mbarrier.expect(bar, x_desc.block_type.nbytes + w_desc.block_type.nbytes)
            _tma_load(x_desc, [m0, ki * BK], bar, x_s.index(s))
            _tma_load(w_desc, [n0, ki * BK], bar, w_s.index(s))
            c += 1


@gluon.jit
def _consumer(y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, turn, M, N, K,
              HAS_BIAS: gl.constexpr, GROUP: gl.constexpr,
              BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr):
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                     instr_shape=[16, BN, 16])
    pid = gl.program_id(0)
    progs = gl.num_programs(0)
    tiles_n, tiles, k_tiles = _grid(M, N, K, BM, BN, BK)
    out = c_s.index(GROUP)
    j = GROUP  # local tile index (the producer's order)
    i = 0  # this group's own tile count
    for t in range(pid + GROUP * progs, tiles, 2 * progs):
        m0 = (t // tiles_n) * BM
        n0 = (t % tiles_n) * BN
        # Take turns on the main loop. Besides ordering the groups, this keeps every wait on a
        # `ready` barrier at most one phase ahead of it: a group that waited on a slot of its
        # next tile while the other group's tile still cycled the ring would match an earlier
        # phase of the same parity and read the other tile's data.
        if GROUP == 0:
            mbarrier.wait(turn.index(0), (i - 1) & 1, pred=i > 0)
        else:
            mbarrier.wait(turn.index(1), i & 1)
        base = j * k_tiles  # this tile's first ring slot: the ring is filled in (tile, k) order
        acc = gl.zeros((BM, BN), dtype=gl.float32, layout=layout)
        for ki in range(k_tiles):
            c = base + ki
            s = c % STAGES
            mbarrier.wait(ready.index(s), (c // STAGES) & 1)
            acc = warpgroup_mma(x_s.index(s), w_s.index(s).permute((1, 0)), acc, is_async=True)
            # one wgmma in flight: the previous one has finished reading its stage
            acc = warpgroup_mma_wait(1, deps=(acc,))
            mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1, pred=ki > 0)
        acc = warpgroup_mma_wait(0, deps=(acc,))
        mbarrier.arrive(empty.index((base + k_tiles - 1) % STAGES), count=1)
        mbarrier.arrive(turn.index(1 - GROUP), count=1)  # the other group's main loop may start
        _store_tile(acc, y_desc, bias_ptr, out, m0, n0, N, HAS_BIAS, BN, layout)
        j += 2
        i += 1
    tma.store_wait(0)


@gluon.jit
def _coop_consumer(y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, M, N, K,
                   HAS_BIAS: gl.constexpr, GROUP: gl.constexpr,
                   BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr):
    """Cooperative schedule: both groups work on every tile, group g on its rows
    [g * BM / 2, (g + 1) * BM / 2), each freeing a stage once (`empty` counts two arrivals)."""
    HM: gl.constexpr = BM // 2
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                     instr_shape=[16, BN, 16])
    pid = gl.program_id(0)
    progs = gl.num_programs(0)
    tiles_n, tiles, k_tiles = _grid(M, N, K, BM, BN, BK)
    out = c_s.index(GROUP)
    c = 0
    for t in range(pid, tiles, progs):
        m0 = (t // tiles_n) * BM + GROUP * HM
        n0 = (t % tiles_n) * BN
        acc = gl.zeros((HM, BN), dtype=gl.float32, layout=layout)
        for ki in range(k_tiles):
            s = c % STAGES
            mbarrier.wait(ready.index(s), (c // STAGES) & 1)
            acc = warpgroup_mma(x_s.index(s).slice(GROUP * HM, HM), w_s.index(s).permute((1, 0)), acc,
                                is_async=True)
            acc = warpgroup_mma_wait(1, deps=(acc,))
            mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1, pred=ki > 0)
            c += 1
        acc = warpgroup_mma_wait(0, deps=(acc,))
        mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1)
        _store_tile(acc, y_desc, bias_ptr, out, m0, n0, N, HAS_BIAS, BN, layout)
    tma.store_wait(0)


@gluon.jit
def pointwise_gluon_kernel(x_desc, w_desc, y_desc, bias_ptr, M, N, K,
                           HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, COOP: gl.constexpr):
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = w_desc.block_type.shape[0]
    # with one wgmma in flight a stage is freed only after the next one is waited on: STAGES = 1
    # deadlocks (the producer waits for a release that comes after the consumer's next ready wait)
    gl.static_assert(STAGES >= 2, "STAGES must be at least 2")
    x_s = gl.allocate_shared_memory(x_desc.dtype, [STAGES, BM, BK], x_desc.layout)
    w_s = gl.allocate_shared_memory(w_desc.dtype, [STAGES, BN, BK], w_desc.layout)
    # an epilogue buffer a group: y's block is the group's share of a tile (BM rows in ping-pong,
    # BM / 2 in the cooperative schedule)
    c_s = gl.allocate_shared_memory(y_desc.dtype, [2, y_desc.block_type.shape[0], BN], y_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=2 if COOP else 1)
    if COOP:
        gl.warp_specialize([
            (_coop_consumer, (y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, M, N, K, HAS_BIAS, 0,
                              BM, BN, BK, STAGES)),
            (_coop_consumer, (y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, M, N, K, HAS_BIAS, 1,
                              BM, BN, BK, STAGES)),
            (_producer, (x_desc, w_desc, x_s, w_s, ready, empty, M, N, K, BM, BN, BK, STAGES)),
        ], [4, 1], [232, 40])
    else:
        turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(2):
            mbarrier.init(turn.index(i), count=1)
        gl.warp_specialize([
            (_consumer, (y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, turn, M, N, K, HAS_BIAS, 0,
                         BM, BN, BK, STAGES)),
            (_consumer, (y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, turn, M, N, K, HAS_BIAS, 1,
                         BM, BN, BK, STAGES)),
            (_producer, (x_desc, w_desc, x_s, w_s, ready, empty, M, N, K, BM, BN, BK, STAGES)),
        ], [4, 1], [232, 40])


@functools.cache
def _layout(block: tuple[int, int], dtype):
    return gl.NVMMASharedLayout.get_default_for(list(block), dtype)


_GL_DTYPES = {torch.bfloat16: gl.bfloat16, torch.float16: gl.float16}


def available(x: torch.Tensor) -> bool:
    """The kernel can run on x's device: a Hopper GPU (wgmma is sm_90's; Blackwell has tcgen05)
    and a 16-bit dtype."""
    return (x.is_cuda and x.dtype in _GL_DTYPES
            and torch.cuda.get_device_capability(x.device)[0] == 9)


def launcher(M: int, K: int, N: int, sx: int, sw: int, block: tuple[int, int, int], stages: int,
             has_bias: bool, dtype: torch.dtype, sms: int, coop: bool = False):
    """y (M, N) = x (M, K) @ w (N, K)^T (+ b) as go(x, w, y, bias): x's rows sx apart, w's sw
    apart, y contiguous; the bases may be any tensors holding those views (a descriptor takes
    base, shape and strides). One persistent program per SM at most. The launch goes through
    Relaunch (compiled once, then the launcher straight away); the three descriptors are built
    once, from layouts cached per block shape (session 12: a Gluon launch with three
    descriptors built per call cost 33-53 µs of host time against F.linear's 20,
    results/h200/session12/call4_pwlaunch)."""
    from ._triton_common import Relaunch, ReusedDescriptors, cdiv

    bm, bn, bk = block
    dt = _GL_DTYPES[dtype]
    ybm = bm // 2 if coop else bm  # the rows one group stores
    lx, lw, ly = _layout((bm, bk), dt), _layout((bn, bk), dt), _layout((ybm, bn), dt)
    tiles = cdiv(M, bm) * cdiv(N, bn)
    run = Relaunch(pointwise_gluon_kernel, (min(sms, tiles),),
                   dict(M=M, N=N, K=K, HAS_BIAS=has_bias, STAGES=stages, COOP=coop),
                   dict(num_warps=4, maxnreg=168))
    xs, ws, ys = [M, K], [N, K], [M, N]
    xst, wst, yst = [sx, 1], [sw, 1], [N, 1]
    xb, wb, yb = [bm, bk], [bn, bk], [ybm, bn]
    descs = ReusedDescriptors(lambda x, w, y: (
        TensorDescriptor(x, xs, xst, xb, lx), TensorDescriptor(w, ws, wst, wb, lw), TensorDescriptor(y, ys, yst, yb, ly)))

    def go(x, w, y, bias):
        dx, dw, dy = descs(x, w, y)
        run(x_desc=dx, w_desc=dw, y_desc=dy, bias_ptr=bias)
    return go


def pointwise_nlc_gluon(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        block: tuple[int, int, int] = (128, 128, 64), stages: int = 4,
                        coop: bool = False) -> torch.Tensor:
    """y (N, L, C_out) = x (N, L, C_in) @ W^T (+ b) for 16-bit contiguous x; weight (C_out, C_in, 1).
    One config, no plan cache: for scripts/gluon_probe.py (convbench's path is triton_pointwise's
    "nlc_gluon" variant, which tunes the config)."""
    if x.dtype not in _GL_DTYPES or not x.is_contiguous():
        raise ValueError("the Gluon kernel takes contiguous bf16/fp16 (N, L, C) x only")
    n, length, k = x.shape
    c_out = weight.shape[0]
    m = n * length
    w = weight.reshape(c_out, k).contiguous()
    y = torch.empty((n, length, c_out), device=x.device, dtype=x.dtype)
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    go = launcher(m, k, c_out, k, k, block, stages, bias is not None, x.dtype, sms, coop)
    go(x, w, y, bias if bias is not None else w)
    return y
