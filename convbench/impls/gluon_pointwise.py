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
                layout: gl.constexpr, WAIT: gl.constexpr = True):
    """Bias in fp32, cast, and a TMA store through the group's own buffer `out`. WAIT: first wait
    until this group's earlier stores have left their buffers (False for a tile's later pieces,
    whose buffers the first piece's wait has freed)."""
    if HAS_BIAS:
        offs = n0 + gl.arange(0, BN, layout=gl.SliceLayout(0, layout))
        acc = acc + gl.load(bias_ptr + offs, mask=offs < N, other=0.0).to(gl.float32)[None, :]
    if WAIT:
        tma.store_wait(0)
    out.store(acc.to(y_desc.dtype))
    fence_async_shared()
    _tma_store(y_desc, [m0, n0], out)


@gluon.jit
def _producer(x_desc, w_desc, w1_desc, w2_desc, x_s, w_s, w1_s, w2_s, ready, empty, M, N, K,
              BM: gl.constexpr, BN: gl.constexpr, BN1: gl.constexpr, BN2: gl.constexpr,
              BK: gl.constexpr, STAGES: gl.constexpr):
    """Fills the ring in (tile, k) order. A tile is BN + BN1 + BN2 columns wide: W's rows come in
    up to three boxes (the pieces of a width that is not a power of two; BN1 = BN2 = 0 for one)."""
    pid = gl.program_id(0)
    progs = gl.num_programs(0)
    tiles_n, tiles, k_tiles = _grid(M, N, K, BM, BN + BN1 + BN2, BK)
    # TMA counts a box's full bytes, zero-filled parts included
    nbytes: gl.constexpr = x_desc.block_type.nbytes // BM * (BM + BN + BN1 + BN2)
    c = 0
    for t in range(pid, tiles, progs):
        m0 = (t // tiles_n) * BM
        n0 = (t % tiles_n) * (BN + BN1 + BN2)
        for ki in range(k_tiles):
            s = c % STAGES
            # a fresh barrier counts as having completed the phase before phase 0
            mbarrier.wait(empty.index(s), ((c // STAGES) & 1) ^ 1)
            bar = ready.index(s)
            mbarrier.expect(bar, nbytes)
            _tma_load(x_desc, [m0, ki * BK], bar, x_s.index(s))
            _tma_load(w_desc, [n0, ki * BK], bar, w_s.index(s))
            if BN1 > 0:
                _tma_load(w1_desc, [n0 + BN, ki * BK], bar, w1_s.index(s))
            if BN2 > 0:
                _tma_load(w2_desc, [n0 + BN + BN1, ki * BK], bar, w2_s.index(s))
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
def _coop_consumer(y_desc, y1_desc, y2_desc, bias_ptr, x_s, w_s, w1_s, w2_s, c_s, c1_s, c2_s, ready, empty,
                   M, N, K, HAS_BIAS: gl.constexpr, GROUP: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr,
                   BN1: gl.constexpr, BN2: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr):
    """Cooperative schedule: both groups work on every tile, group g on its rows
    [g * BM / 2, (g + 1) * BM / 2), each freeing a stage once (`empty` counts two arrivals).
    A tile BN + BN1 + BN2 wide (BN1, BN2 > 0: a width that is not a power of two) is up to three
    accumulators, one wgmma each a k step, and up to three stores."""
    HM: gl.constexpr = BM // 2
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                     instr_shape=[16, BN, 16])
    pid = gl.program_id(0)
    progs = gl.num_programs(0)
    tiles_n, tiles, k_tiles = _grid(M, N, K, BM, BN + BN1 + BN2, BK)
    out = c_s.index(GROUP)
    c = 0
    for t in range(pid, tiles, progs):
        m0 = (t // tiles_n) * BM + GROUP * HM
        n0 = (t % tiles_n) * (BN + BN1 + BN2)
        acc = gl.zeros((HM, BN), dtype=gl.float32, layout=layout)
        if BN1 > 0:
            layout1: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                              instr_shape=[16, BN1, 16])
            acc1 = gl.zeros((HM, BN1), dtype=gl.float32, layout=layout1)
        if BN2 > 0:
            layout2: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                              instr_shape=[16, BN2, 16])
            acc2 = gl.zeros((HM, BN2), dtype=gl.float32, layout=layout2)
        for ki in range(k_tiles):
            s = c % STAGES
            mbarrier.wait(ready.index(s), (c // STAGES) & 1)
            a = x_s.index(s).slice(GROUP * HM, HM)
            acc = warpgroup_mma(a, w_s.index(s).permute((1, 0)), acc, is_async=True)
            # one k step's wgmmas in flight: the previous step's have finished reading their stage
            if BN2 > 0:
                acc1 = warpgroup_mma(a, w1_s.index(s).permute((1, 0)), acc1, is_async=True)
                acc2 = warpgroup_mma(a, w2_s.index(s).permute((1, 0)), acc2, is_async=True)
                acc, acc1, acc2 = warpgroup_mma_wait(3, deps=(acc, acc1, acc2))
            elif BN1 > 0:
                acc1 = warpgroup_mma(a, w1_s.index(s).permute((1, 0)), acc1, is_async=True)
                acc, acc1 = warpgroup_mma_wait(2, deps=(acc, acc1))
            else:
                acc = warpgroup_mma_wait(1, deps=(acc,))
            mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1, pred=ki > 0)
            c += 1
        if BN2 > 0:
            acc, acc1, acc2 = warpgroup_mma_wait(0, deps=(acc, acc1, acc2))
        elif BN1 > 0:
            acc, acc1 = warpgroup_mma_wait(0, deps=(acc, acc1))
        else:
            acc = warpgroup_mma_wait(0, deps=(acc,))
        mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1)
        _store_tile(acc, y_desc, bias_ptr, out, m0, n0, N, HAS_BIAS, BN, layout)
        if BN1 > 0:
            _store_tile(acc1, y1_desc, bias_ptr, c1_s.index(GROUP), m0, n0 + BN, N, HAS_BIAS, BN1, layout1, False)
        if BN2 > 0:
            _store_tile(acc2, y2_desc, bias_ptr, c2_s.index(GROUP), m0, n0 + BN + BN1, N, HAS_BIAS, BN2, layout2,
                        False)
    tma.store_wait(0)


@gluon.jit
def pointwise_gluon_kernel(x_desc, w_desc, w1_desc, w2_desc, y_desc, y1_desc, y2_desc, bias_ptr, M, N, K,
                           HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, COOP: gl.constexpr,
                           BN1: gl.constexpr = 0, BN2: gl.constexpr = 0):
    """w1/w2 and y1/y2: the descriptors of a tile's second and third column pieces, BN1 and BN2
    wide (cooperative schedule only; 0 and unused otherwise, where w_desc and y_desc may stand in)."""
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = w_desc.block_type.shape[0]
    # with one wgmma in flight a stage is freed only after the next one is waited on: STAGES = 1
    # deadlocks (the producer waits for a release that comes after the consumer's next ready wait)
    gl.static_assert(STAGES >= 2, "STAGES must be at least 2")
    gl.static_assert(COOP or (BN1 == 0 and BN2 == 0), "column pieces need the cooperative schedule")
    gl.static_assert(BN2 == 0 or BN1 > 0, "a third piece needs a second")
    x_s = gl.allocate_shared_memory(x_desc.dtype, [STAGES, BM, BK], x_desc.layout)
    w_s = gl.allocate_shared_memory(w_desc.dtype, [STAGES, BN, BK], w_desc.layout)
    # an epilogue buffer a group: y's block is the group's share of a tile (BM rows in ping-pong,
    # BM / 2 in the cooperative schedule)
    YM: gl.constexpr = y_desc.block_type.shape[0]
    c_s = gl.allocate_shared_memory(y_desc.dtype, [2, YM, BN], y_desc.layout)
    w1_s, c1_s, w2_s, c2_s = w_s, c_s, w_s, c_s  # stand-ins where a piece is absent
    if BN1 > 0:
        w1_s = gl.allocate_shared_memory(w1_desc.dtype, [STAGES, BN1, BK], w1_desc.layout)
        c1_s = gl.allocate_shared_memory(y1_desc.dtype, [2, YM, BN1], y1_desc.layout)
    if BN2 > 0:
        w2_s = gl.allocate_shared_memory(w2_desc.dtype, [STAGES, BN2, BK], w2_desc.layout)
        c2_s = gl.allocate_shared_memory(y2_desc.dtype, [2, YM, BN2], y2_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=2 if COOP else 1)
    if COOP:
        gl.warp_specialize([
            (_coop_consumer, (y_desc, y1_desc, y2_desc, bias_ptr, x_s, w_s, w1_s, w2_s, c_s, c1_s, c2_s,
                              ready, empty, M, N, K, HAS_BIAS, 0, BM, BN, BN1, BN2, BK, STAGES)),
            (_coop_consumer, (y_desc, y1_desc, y2_desc, bias_ptr, x_s, w_s, w1_s, w2_s, c_s, c1_s, c2_s,
                              ready, empty, M, N, K, HAS_BIAS, 1, BM, BN, BN1, BN2, BK, STAGES)),
            (_producer, (x_desc, w_desc, w1_desc, w2_desc, x_s, w_s, w1_s, w2_s, ready, empty, M, N, K,
                         BM, BN, BN1, BN2, BK, STAGES)),
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
            (_producer, (x_desc, w_desc, w1_desc, w2_desc, x_s, w_s, w1_s, w2_s, ready, empty, M, N, K,
                         BM, BN, BN1, BN2, BK, STAGES)),
        ], [4, 1], [232, 40])


def column_pieces(bn: int) -> tuple[int, ...]:
    """A tile width as the powers of two a wgmma and a TMA box take, largest first: 176 ->
    (128, 32, 16). At most three pieces, each at least 8 columns (wgmma's smallest N)."""
    pieces = tuple(1 << b for b in reversed(range(bn.bit_length())) if bn >> b & 1)
    if not 1 <= len(pieces) <= 3 or pieces[-1] < 8:
        raise ValueError(f"tile width {bn} is not up to three powers of two of at least 8")
    return pieces


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
    Relaunch (compiled once, then the launcher straight away); the descriptors are built
    once, from layouts cached per block shape (session 12: a Gluon launch with three
    descriptors built per call cost 33-53 µs of host time against F.linear's 20,
    results/h200/session12/call4_pwlaunch)."""
    from ._triton_common import Relaunch, ReusedDescriptors, cdiv

    bm, bn, bk = block
    pieces = column_pieces(bn)  # a width that is not a power of two: up to three boxes
    if len(pieces) > 1 and not coop:
        raise ValueError(f"a {bn}-wide tile needs the cooperative schedule")
    dt = _GL_DTYPES[dtype]
    ybm = bm // 2 if coop else bm  # the rows one group stores
    tiles = cdiv(M, bm) * cdiv(N, bn)
    extra = dict(zip(("BN1", "BN2"), pieces[1:]))
    run = Relaunch(pointwise_gluon_kernel, (min(sms, tiles),),
                   dict(M=M, N=N, K=K, HAS_BIAS=has_bias, STAGES=stages, COOP=coop, **extra),
                   dict(num_warps=4, maxnreg=168))
    pieces3 = pieces + (pieces[0],) * (3 - len(pieces))  # an absent piece: the first stands in

    def make(x, w, _w1, _w2, y, _y1, _y2):
        return ([TensorDescriptor(x, [M, K], [sx, 1], [bm, bk], _layout((bm, bk), dt))]
                + [TensorDescriptor(w, [N, K], [sw, 1], [p, bk], _layout((p, bk), dt)) for p in pieces3]
                + [TensorDescriptor(y, [M, N], [N, 1], [ybm, p], _layout((ybm, p), dt)) for p in pieces3])
    descs = ReusedDescriptors(make)

    def go(x, w, y, bias):
        dx, dw, dw1, dw2, dy, dy1, dy2 = descs(x, w, w, w, y, y, y)  # a descriptor a base
        run(x_desc=dx, w_desc=dw, w1_desc=dw1, w2_desc=dw2, y_desc=dy, y1_desc=dy1, y2_desc=dy2, bias_ptr=bias)
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
