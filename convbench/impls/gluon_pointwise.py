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
(308 tiles: 2.33 rounds) 20.6-21.0 against 20.2-20.5. A per-program %globaltimer trace (tag
attic/gluon-coop-trace, call6_trace) put the first 128x128 tile at 7.2-8.1 µs, each later one at
5.0-6.5 and a half-width tile at 4.6-4.7: the last partial round costs nearly a whole round
whatever its width.

Works on triton 3.6 (TMA names async_copy_*) and newer (async_load / async_store). Gluon does
not run under TRITON_INTERPRET: tests compile it for sm_90 on the CPU; correctness is checked
on the GPU (scripts/gluon_probe.py, and the GPU correctness matrix through triton_pointwise).
"""

from __future__ import annotations

import functools
import os

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
def _load_steps(x_desc, w_desc, x_s, w_s, ready, empty, c, m0, n0, k0, k1,
                BK: gl.constexpr, STAGES: gl.constexpr):
    """TMA-load k steps [k0, k1) of the tile at (m0, n0) into the ring from slot count c on."""
    for ki in range(k0, k1):
        s = c % STAGES
        # a fresh barrier counts as having completed the phase before phase 0
        mbarrier.wait(empty.index(s), ((c // STAGES) & 1) ^ 1)
        bar = ready.index(s)
        mbarrier.expect(bar, x_desc.block_type.nbytes + w_desc.block_type.nbytes)
        _tma_load(x_desc, [m0, ki * BK], bar, x_s.index(s))
        _tma_load(w_desc, [n0, ki * BK], bar, w_s.index(s))
        c += 1
    return c


@gluon.jit
def _sk_piece(pid, tiles_n, k_tiles, SK_START, SPLITS, BM: gl.constexpr, BN: gl.constexpr):
    """This program's stream-K piece: (tail tile slot, piece, m0, n0, k0, k1). Tail tile slot q
    (tile SK_START + q) is cut into SPLITS pieces along K, piece p = k steps
    [p * k_tiles // SPLITS, (p + 1) * k_tiles // SPLITS), run by program q * SPLITS + p; the last
    piece is the longest and its program finishes the tile."""
    q = pid // SPLITS
    p = pid % SPLITS
    t = SK_START + q
    return q, p, (t // tiles_n) * BM, (t % tiles_n) * BN, p * k_tiles // SPLITS, (p + 1) * k_tiles // SPLITS


@gluon.jit
def _producer(x_desc, w_desc, x_s, w_s, ready, empty, M, N, K, SK_START, SPLITS,
              BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr,
              SK: gl.constexpr):
    pid = gl.program_id(0)
    progs = gl.num_programs(0)
    tiles_n, tiles, k_tiles = _grid(M, N, K, BM, BN, BK)
    c = 0
    hi = tiles
    if SK:  # the stream-K piece first, then the whole tiles before the tail
        hi = SK_START
        if pid < (tiles - SK_START) * SPLITS:
            q, p, m0, n0, k0, k1 = _sk_piece(pid, tiles_n, k_tiles, SK_START, SPLITS, BM, BN)
            c = _load_steps(x_desc, w_desc, x_s, w_s, ready, empty, c, m0, n0, k0, k1, BK, STAGES)
    for t in range(pid, hi, progs):
        c = _load_steps(x_desc, w_desc, x_s, w_s, ready, empty, c, (t // tiles_n) * BM, (t % tiles_n) * BN,
                        0, k_tiles, BK, STAGES)


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
def _coop_steps(acc, x_s, w_s, ready, empty, c, n_steps, GROUP: gl.constexpr, HM: gl.constexpr,
                STAGES: gl.constexpr):
    """n_steps (>= 1) k steps of this group's rows from ring slot count c on; frees each stage."""
    for ki in range(n_steps):
        s = c % STAGES
        mbarrier.wait(ready.index(s), (c // STAGES) & 1)
        acc = warpgroup_mma(x_s.index(s).slice(GROUP * HM, HM), w_s.index(s).permute((1, 0)), acc,
                            is_async=True)
        acc = warpgroup_mma_wait(1, deps=(acc,))
        mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1, pred=ki > 0)
        c += 1
    acc = warpgroup_mma_wait(0, deps=(acc,))
    mbarrier.arrive(empty.index((c + STAGES - 1) % STAGES), count=1)
    return acc, c


# Each thread waits until the int32 at its pointer reaches a value, with acquire loads at GPU scope
# (a label inside braces is local to them, so the two groups' copies do not clash)
_SPIN_GE = gl.constexpr("""{
.reg .pred p;
.reg .b32 v;
SK_SPIN:
ld.acquire.gpu.global.b32 v, [$1];
setp.lt.s32 p, v, $2;
@p bra SK_SPIN;
mov.b32 $0, v;
}""")


@gluon.jit
def _sk_partial(ws_ptr, q, j, SPLITS, GROUP: gl.constexpr, HM: gl.constexpr, BN: gl.constexpr,
                layout: gl.constexpr):
    """Pointers to piece j's fp32 partial of this group's rows of tail slot q, row-major, in the
    accumulator's layout: thread i of the finishing program reads what thread i of the others wrote."""
    rows = gl.arange(0, HM, layout=gl.SliceLayout(1, layout))[:, None]
    cols = gl.arange(0, BN, layout=gl.SliceLayout(0, layout))[None, :]
    return ws_ptr + ((q * (SPLITS - 1) + j) * 2 + GROUP) * (HM * BN) + rows * BN + cols


@gluon.jit
def _sk_counter(cnt_ptr, q, GROUP: gl.constexpr):
    """Tail slot q's counter for this group, one pointer a thread of the group."""
    cl: gl.constexpr = gl.BlockedLayout([1], [32], [4], [0])
    return cnt_ptr + (q * 2 + GROUP) + gl.zeros([128], gl.int32, cl)


@gluon.jit
def _sk_release(cnt_ptr, q, GROUP: gl.constexpr):
    """One release increment a thread: this thread's partial stores are visible before it counts."""
    cnt = _sk_counter(cnt_ptr, q, GROUP)
    gl.atomic_add(cnt, gl.full(cnt.shape, 1, gl.int32, cnt.type.layout), sem="release", scope="gpu")


@gluon.jit
def _sk_gather(acc, ws_ptr, cnt_ptr, q, SPLITS, GROUP: gl.constexpr, HM: gl.constexpr, BN: gl.constexpr,
               layout: gl.constexpr):
    """The finishing piece: wait until the slot's counter holds the other pieces' 128 increments
    each, add their partials to acc; then its own 128 increments, and the thread that brings the
    counter to SPLITS * 128 (every thread of this group past its wait) sets it back to 0 for the
    next launch (a CUDA graph replays the kernel)."""
    cnt = _sk_counter(cnt_ptr, q, GROUP)
    one = gl.full(cnt.shape, 1, gl.int32, cnt.type.layout)
    seen = gl.inline_asm_elementwise(_SPIN_GE, "=r,l,r", [cnt, one * (128 * (SPLITS - 1))], dtype=gl.int32,
                                     is_pure=False, pack=1)
    for j in range(SPLITS - 1):
        acc = acc + gl.load(_sk_partial(ws_ptr, q, j, SPLITS, GROUP, HM, BN, layout))
    old = gl.atomic_add(cnt, one + seen * 0, sem="relaxed", scope="gpu")
    gl.atomic_xchg(cnt, one * 0, mask=old == SPLITS * 128 - 1, sem="relaxed", scope="gpu")
    return acc


@gluon.jit
def _coop_consumer(y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, ws_ptr, cnt_ptr, M, N, K, SK_START, SPLITS,
                   HAS_BIAS: gl.constexpr, GROUP: gl.constexpr,
                   BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr,
                   SK: gl.constexpr):
    """Cooperative schedule: both groups work on every tile, group g on its rows
    [g * BM / 2, (g + 1) * BM / 2), each freeing a stage once (`empty` counts two arrivals).

    SK (stream-K; see launcher): the program's piece of a tail tile comes first. A piece that does
    not finish its tile stores its fp32 partial at once and counts it (release) after the
    program's first whole tile, when the stores have long landed; the finishing piece keeps its
    partial in registers through the whole tiles and adds the others' at the very end, when they
    have long been written (SK == 2). SK == 1 exchanges at once, right after the pieces."""
    HM: gl.constexpr = BM // 2
    layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                     instr_shape=[16, BN, 16])
    pid = gl.program_id(0)
    progs = gl.num_programs(0)
    tiles_n, tiles, k_tiles = _grid(M, N, K, BM, BN, BK)
    out = c_s.index(GROUP)
    c = 0
    hi = tiles
    if SK:
        hi = SK_START
        has_piece = pid < (tiles - SK_START) * SPLITS
        q, p, pm0, pn0, k0, k1 = _sk_piece(pid, tiles_n, k_tiles, SK_START, SPLITS, BM, BN)
        finishes = has_piece & (p == SPLITS - 1)
        pending = has_piece & (p < SPLITS - 1)  # a partial stored, not yet counted
        pacc = gl.zeros((HM, BN), dtype=gl.float32, layout=layout)
        if has_piece:
            pacc, c = _coop_steps(pacc, x_s, w_s, ready, empty, c, k1 - k0, GROUP, HM, STAGES)
            if pending:
                gl.store(_sk_partial(ws_ptr, q, p, SPLITS, GROUP, HM, BN, layout), pacc)
                if SK == 1:
                    _sk_release(cnt_ptr, q, GROUP)
            elif SK == 1:
                pacc = _sk_gather(pacc, ws_ptr, cnt_ptr, q, SPLITS, GROUP, HM, BN, layout)
                _store_tile(pacc, y_desc, bias_ptr, out, pm0 + GROUP * HM, pn0, N, HAS_BIAS, BN, layout)
    for t in range(pid, hi, progs):
        m0 = (t // tiles_n) * BM + GROUP * HM
        n0 = (t % tiles_n) * BN
        acc = gl.zeros((HM, BN), dtype=gl.float32, layout=layout)
        acc, c = _coop_steps(acc, x_s, w_s, ready, empty, c, k_tiles, GROUP, HM, STAGES)
        if SK == 2:
            if pending:
                _sk_release(cnt_ptr, q, GROUP)
                pending = False
        _store_tile(acc, y_desc, bias_ptr, out, m0, n0, N, HAS_BIAS, BN, layout)
    if SK == 2:
        if pending:  # no whole tile
            _sk_release(cnt_ptr, q, GROUP)
        if finishes:
            pacc = _sk_gather(pacc, ws_ptr, cnt_ptr, q, SPLITS, GROUP, HM, BN, layout)
            _store_tile(pacc, y_desc, bias_ptr, out, pm0 + GROUP * HM, pn0, N, HAS_BIAS, BN, layout)
    tma.store_wait(0)


@gluon.jit
def pointwise_gluon_kernel(x_desc, w_desc, y_desc, bias_ptr, ws_ptr, cnt_ptr, M, N, K, SK_START, SPLITS,
                           HAS_BIAS: gl.constexpr, STAGES: gl.constexpr, COOP: gl.constexpr,
                           SK: gl.constexpr = False):
    BM: gl.constexpr = x_desc.block_type.shape[0]
    BK: gl.constexpr = x_desc.block_type.shape[1]
    BN: gl.constexpr = w_desc.block_type.shape[0]
    # with one wgmma in flight a stage is freed only after the next one is waited on: STAGES = 1
    # deadlocks (the producer waits for a release that comes after the consumer's next ready wait)
    gl.static_assert(STAGES >= 2, "STAGES must be at least 2")
    if SK:
        gl.static_assert(COOP, "stream-K runs in the cooperative schedule only")
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
            (_coop_consumer, (y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, ws_ptr, cnt_ptr, M, N, K,
                              SK_START, SPLITS, HAS_BIAS, 0, BM, BN, BK, STAGES, SK)),
            (_coop_consumer, (y_desc, bias_ptr, x_s, w_s, c_s, ready, empty, ws_ptr, cnt_ptr, M, N, K,
                              SK_START, SPLITS, HAS_BIAS, 1, BM, BN, BK, STAGES, SK)),
            (_producer, (x_desc, w_desc, x_s, w_s, ready, empty, M, N, K, SK_START, SPLITS,
                         BM, BN, BK, STAGES, SK)),
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
            (_producer, (x_desc, w_desc, x_s, w_s, ready, empty, M, N, K, SK_START, SPLITS,
                         BM, BN, BK, STAGES, False)),
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


def stream_k_plan(tiles: int, progs: int, k_tiles: int) -> tuple[int, int]:
    """(SK_START, SPLITS): the tail tiles SK_START.. (those past the last whole round of `progs`
    programs) each cut along K into SPLITS pieces, one a program, run before the whole tiles;
    (tiles, 1), no pieces, where no cut helps: no partial round, or fewer than two pieces a
    tile fit in one program each."""
    rounds, tail = divmod(tiles, progs)
    splits = min(progs // tail, k_tiles) if tail else 0
    if rounds == 0 or splits < 2:
        return tiles, 1
    return rounds * progs, splits


def launcher(M: int, K: int, N: int, sx: int, sw: int, block: tuple[int, int, int], stages: int,
             has_bias: bool, dtype: torch.dtype, sms: int, coop: bool = False, stream_k: bool = False):
    """y (M, N) = x (M, K) @ w (N, K)^T (+ b) as go(x, w, y, bias): x's rows sx apart, w's sw
    apart, y contiguous; the bases may be any tensors holding those views (a descriptor takes
    base, shape and strides). One persistent program per SM at most. The launch goes through
    Relaunch (compiled once, then the launcher straight away); the three descriptors are built
    once, from layouts cached per block shape (session 12: a Gluon launch with three
    descriptors built per call cost 33-53 µs of host time against F.linear's 20,
    results/h200/session12/call4_pwlaunch).

    stream_k (cooperative only): the partial last round is cut along K (stream_k_plan). The
    pieces exchange fp32 partials through a workspace and int32 counters that this launcher
    allocates on its first call and keeps: calls of one launcher must not run concurrently on
    two streams, and the first call must not be under CUDA-graph capture."""
    from ._triton_common import Relaunch, ReusedDescriptors, cdiv

    if stream_k and not coop:
        raise ValueError("stream_k needs the cooperative schedule (coop=True)")
    bm, bn, bk = block
    dt = _GL_DTYPES[dtype]
    ybm = bm // 2 if coop else bm  # the rows one group stores
    lx, lw, ly = _layout((bm, bk), dt), _layout((bn, bk), dt), _layout((ybm, bn), dt)
    tiles = cdiv(M, bm) * cdiv(N, bn)
    progs = min(sms, tiles)
    sk_start, splits = stream_k_plan(tiles, progs, cdiv(K, bk)) if stream_k else (tiles, 1)
    sk = splits > 1
    run = Relaunch(pointwise_gluon_kernel, (progs,),
                   dict(M=M, N=N, K=K, SK_START=sk_start, SPLITS=splits, HAS_BIAS=has_bias, STAGES=stages,
                        COOP=coop, SK=int(os.environ.get('CONVBENCH_SK_MODE', '2')) if sk else 0),
                   dict(num_warps=4, maxnreg=168))
    xs, ws, ys = [M, K], [N, K], [M, N]
    xst, wst, yst = [sx, 1], [sw, 1], [N, 1]
    xb, wb, yb = [bm, bk], [bn, bk], [ybm, bn]
    descs = ReusedDescriptors(lambda x, w, y: (
        TensorDescriptor(x, xs, xst, xb, lx), TensorDescriptor(w, ws, wst, wb, lw), TensorDescriptor(y, ys, yst, yb, ly)))
    scratch: list[torch.Tensor] = []  # [workspace, counters] once allocated

    def exchange(device) -> tuple[torch.Tensor, torch.Tensor]:
        if not scratch:
            if torch.cuda.is_current_stream_capturing():
                raise RuntimeError("the stream-K Gluon launch allocates its workspace on its first call: "
                                   "call it once before CUDA-graph capture")
            tail = tiles - sk_start
            scratch.append(torch.empty(tail * (splits - 1) * bm * bn, device=device, dtype=torch.float32))
            scratch.append(torch.zeros(tail * 2, device=device, dtype=torch.int32))
        return scratch[0], scratch[1]

    def go(x, w, y, bias):
        dx, dw, dy = descs(x, w, y)
        if sk:
            work, counters = exchange(x.device)
            run(x_desc=dx, w_desc=dw, y_desc=dy, bias_ptr=bias, ws_ptr=work, cnt_ptr=counters)
        else:  # unused pointers: any tensor
            run(x_desc=dx, w_desc=dw, y_desc=dy, bias_ptr=bias, ws_ptr=bias, cnt_ptr=bias)
    go.scratch = scratch  # for checks: every counter is back at 0 after a call
    go.stream_k = (sk_start, splits)
    return go


_PROBE_LAUNCHERS: dict[tuple, object] = {}


def pointwise_nlc_gluon(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        block: tuple[int, int, int] = (128, 128, 64), stages: int = 4,
                        coop: bool = False, stream_k: bool = False) -> torch.Tensor:
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
    key = (m, k, c_out, tuple(block), stages, bias is not None, x.dtype, sms, coop, stream_k)
    go = _PROBE_LAUNCHERS.get(key)
    if go is None:  # kept: a stream-K launcher's workspace is allocated on its first call
        go = _PROBE_LAUNCHERS[key] = launcher(m, k, c_out, k, k, block, stages, bias is not None, x.dtype,
                                              sms, coop, stream_k)
    go(x, w, y, bias if bias is not None else w)
    return y
