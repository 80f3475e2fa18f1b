"""Pointwise (1x1) Conv1d in Triton: a tiled tensor-core GEMM with bias fused, for (N,C,L) and (N,L,C)."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
import triton.testing
from triton.tools.tensor_descriptor import TensorDescriptor

from ..precision import triton_input_precision
from ..registry import Case, Impl, register
from ._triton_common import (
    Relaunch,
    ReusedDescriptors,
    cdiv,
    device_ms,
    device_reason,
    interpreting,
    precompile,
    split_layout,
    tuning_enabled,
)


@triton.jit
def _k_loop(a_ptrs, b_ptrs, row_ok, col_ok, offs_k, C_in, a_step, b_step,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
            EVEN_K: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc (BLOCK_M, BLOCK_N) = sum over C_in of A (rows x K tiles) @ B (K x cols tiles); the
    pointers advance by a_step / b_step per K tile; rows/cols outside the output read zeros."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, tl.cdiv(C_in, BLOCK_K)):
        if EVEN_K:
            a = tl.load(a_ptrs, mask=row_ok[:, None], other=0.0)
            b = tl.load(b_ptrs, mask=col_ok[None, :], other=0.0)
        else:
            k_ok = offs_k < C_in - k0 * BLOCK_K
            a = tl.load(a_ptrs, mask=row_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        if UPCAST:  # the CPU interpreter's bf16 dot is wrong (triton 3.9); upcast there only
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        a_ptrs += a_step
        b_ptrs += b_step
    return acc


@triton.jit
def _grouped_tile(pid, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Program id -> (tile row, tile column), GROUP_M row tiles at a time, so that the B
    columns a group streams stay in L2 while its A rows are reused (the Triton tutorial order)."""
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    return pid_m, pid_n


# Sizes that differ between shapes but never sit on a vectorised (contiguous) axis are not
# specialised, so one compiled kernel serves every shape of a family (fewer compiles to tune).
@triton.jit(do_not_specialize=["M", "L_in", "L_out", "sxn", "conv_stride", "padding"])
def pointwise_nlc_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, C_in, C_out, L_in, L_out,
    sxn, sxl, sxc, swo, swi,
    conv_stride, padding,
    HAS_BIAS: tl.constexpr, FOLDED: tl.constexpr, EVEN_K: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """(N,L,C) storage: y[r, o] = sum_i x[row(r), i] * w[o, i] (+ b[o]), r over all N*L_out rows.

    x: (N, L_in, C_in) via strides; w: (C_out, C_in); y: contiguous (N*L_out, C_out).
    FOLDED: rows of x are evenly spaced (stride 1, padding 0, batch stride == L_in * sxl), so
    row r sits at r * sxl; otherwise row r is batch r // L_out at position (r % L_out)*stride - padding.
    """
    pid = tl.program_id(0)
    pid_m, pid_n = _grouped_tile(pid, tl.cdiv(M, BLOCK_M), tl.cdiv(C_out, BLOCK_N), GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    if FOLDED:
        row_ok = offs_m < M
        row_off = offs_m.to(tl.int64) * sxl
    else:
        nb = offs_m // L_out
        pos = (offs_m % L_out) * conv_stride - padding
        row_ok = (offs_m < M) & (pos >= 0) & (pos < L_in)
        row_off = nb.to(tl.int64) * sxn + pos.to(tl.int64) * sxl
    col_ok = offs_n < C_out
    a_ptrs = x_ptr + row_off[:, None] + offs_k[None, :] * sxc
    b_ptrs = w_ptr + offs_n[None, :] * swo + offs_k[:, None] * swi
    acc = _k_loop(a_ptrs, b_ptrs, row_ok, col_ok, offs_k, C_in, BLOCK_K * sxc, BLOCK_K * swi,
                  BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, PRECISION, UPCAST)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m.to(tl.int64)[:, None] * C_out + offs_n[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=(offs_m < M)[:, None] & col_ok[None, :])


@triton.jit(do_not_specialize=["NB", "L_in", "conv_stride", "padding"])
def pointwise_ncl_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    NB, C_in, C_out, L_in, L_out,
    sxn, sxc, sxl, swo, swi, syn, syc, syl,
    conv_stride, padding,
    HAS_BIAS: tl.constexpr, FOLD_BATCH: tl.constexpr, PLAIN: tl.constexpr, EVEN_K: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """(N,C,L) storage: y[n, o, l] = sum_i w[o, i] * x[n, i, l*stride - padding] (+ b[o]).

    Tile rows are output channels (A = w), tile columns are output positions (B = x[n]).
    FOLD_BATCH: columns run over all NB*L_out (n, l) pairs, so a short L fills whole tiles; used
    when x's rows are not 16-byte aligned anyway (odd L), where folding costs no vector width.
    Otherwise the batch is folded into the program id. PLAIN: stride 1 and padding 0.
    y: (NB, C_out, L_out) with strides (syn, syc, syl); syl is 1 except when the (N,L,C) GEMM
    runs here transposed (y^T = W @ x^T, with NB = 1 and the N*L rows as positions).
    """
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(C_out, BLOCK_M)
    if FOLD_BATCH:
        pid_m, pid_n = _grouped_tile(pid, num_pid_m, tl.cdiv(NB * L_out, BLOCK_N), GROUP_M)
        offs_j = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        nb = (offs_j // L_out).to(tl.int64)
        offs_l = offs_j % L_out
        col_in = offs_j < NB * L_out
        x_col = nb * sxn
        y_col = nb * syn + offs_l * syl
    else:
        tiles_per_batch = num_pid_m * tl.cdiv(L_out, BLOCK_N)
        nb = (pid // tiles_per_batch).to(tl.int64)
        pid_m, pid_n = _grouped_tile(pid % tiles_per_batch, num_pid_m, tl.cdiv(L_out, BLOCK_N), GROUP_M)
        offs_l = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_in = offs_l < L_out
        x_col = nb * sxn
        y_col = nb * syn + offs_l.to(tl.int64) * syl
    if PLAIN:
        col_ok = col_in
        x_col = x_col + offs_l.to(tl.int64) * sxl
    else:
        pos = offs_l * conv_stride - padding
        col_ok = col_in & (pos >= 0) & (pos < L_in)
        x_col = x_col + pos.to(tl.int64) * sxl
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    row_ok = offs_m < C_out
    a_ptrs = w_ptr + offs_m[:, None] * swo + offs_k[None, :] * swi
    b_ptrs = x_ptr + offs_k[:, None] * sxc + x_col[None, :]
    acc = _k_loop(a_ptrs, b_ptrs, row_ok, col_ok, offs_k, C_in, BLOCK_K * swi, BLOCK_K * sxc,
                  BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, PRECISION, UPCAST)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_m, mask=row_ok, other=0.0).to(tl.float32)[:, None]
    y_ptrs = y_ptr + offs_m[:, None] * syc + y_col[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_in[None, :])


@triton.jit
def pointwise_tma_kernel(
    a_src, b_src, y_src, bias_ptr,
    NB, ROWS, COLS, K, SA, SB,
    HAS_BIAS: tl.constexpr, NCL: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    SPLIT_EPILOGUE: tl.constexpr, PROGRAMS: tl.constexpr, WARP_SPECIALIZE: tl.constexpr,
    DEVICE_DESC: tl.constexpr, Y_PTR: tl.constexpr, Y_NCL: tl.constexpr, YL,
):
    """Persistent GEMM on TMA tensor descriptors (Hopper): PROGRAMS programs (one or two per SM)
    walk the output tiles, each taking every PROGRAMS-th tile.

    DEVICE_DESC: a_src, b_src, y_src are pointers and the descriptors are built here (SA, SB:
    row strides of a and b; the launch needs a Triton allocator for their global scratch);
    otherwise they are host-built TensorDescriptors, which the launcher encodes on every call.
    Y_PTR: y_src is a pointer and y is stored element-wise (its rows are not 16-byte aligned).
    Y_NCL (with Y_PTR, NCL=False): the (N*L, C_out) GEMM's tile is stored into y (N, C_out, L),
    L = YL: GEMM row r is batch r // YL, position r % YL, and a tile may span batches.

    The bulk copy engine brings each (BLOCK, BLOCK_K) operand tile into shared memory with no
    address arithmetic or masks in the program (out-of-range reads arrive as zeros, out-of-range
    stores are clipped), and a persistent program overlaps a tile's epilogue with the next tile's
    loads. Output y is (NB * ROWS, COLS) rows of a 2-D view.
    - NCL=False, (N,L,C): y (ROWS=N*L, COLS=C_out) = x (ROWS, K) @ w^T; a_desc over x rows,
      b_desc over w (C_out, K) rows, both K-contiguous; NB = 1.
    - NCL=True, (N,C,L): y[n] (ROWS=C_out, COLS=L) = w (C_out, K) @ x[n] (K, L); a_desc over w,
      b_desc over x viewed as (N*K, L). The host guarantees K % BLOCK_K == 0 and
      ROWS % BLOCK_M == 0 so that no tile reads or writes across a batch boundary.
    """
    Y_BLOCK_N: tl.constexpr = BLOCK_N // 2 if SPLIT_EPILOGUE else BLOCK_N
    if DEVICE_DESC:
        a_desc = tl.make_tensor_descriptor(a_src, shape=[ROWS, K], strides=[SA, 1],
                                           block_shape=[BLOCK_M, BLOCK_K])
        if NCL:
            b_desc = tl.make_tensor_descriptor(b_src, shape=[NB * K, COLS], strides=[SB, 1],
                                               block_shape=[BLOCK_K, BLOCK_N])
        else:
            b_desc = tl.make_tensor_descriptor(b_src, shape=[COLS, K], strides=[SB, 1],
                                               block_shape=[BLOCK_N, BLOCK_K])
        if Y_PTR:
            y_desc = y_src
        else:
            y_desc = tl.make_tensor_descriptor(y_src, shape=[NB * ROWS, COLS], strides=[COLS, 1],
                                               block_shape=[BLOCK_M, Y_BLOCK_N])
    else:
        a_desc = a_src
        b_desc = b_src
        y_desc = y_src
    start = tl.program_id(0)
    num_pid_m = tl.cdiv(ROWS, BLOCK_M)
    num_pid_n = tl.cdiv(COLS, BLOCK_N)
    tiles_per_batch = num_pid_m * num_pid_n
    k_tiles = tl.cdiv(K, BLOCK_K)
    # the epilogue recomputes its tile from its own counter (the Triton persistent-matmul
    # tutorial's way of keeping the pipelined loop's prologue and epilogue independent)
    tile_c = start - PROGRAMS
    for tile in tl.range(start, NB * tiles_per_batch, PROGRAMS, flatten=True, warp_specialize=WARP_SPECIALIZE):
        nb = tile // tiles_per_batch
        pid_m, pid_n = _grouped_tile(tile % tiles_per_batch, num_pid_m, num_pid_n, GROUP_M)
        m0 = pid_m * BLOCK_M
        n0 = pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ki in range(k_tiles):
            k0 = ki * BLOCK_K
            a = a_desc.load([m0, k0])
            if NCL:
                b = b_desc.load([nb * K + k0, n0])
            else:
                b = b_desc.load([n0, k0]).T
            if UPCAST:  # the CPU interpreter's bf16 dot is wrong (triton 3.9); upcast there only
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
        tile_c += PROGRAMS
        nb = tile_c // tiles_per_batch
        pid_m, pid_n = _grouped_tile(tile_c % tiles_per_batch, num_pid_m, num_pid_n, GROUP_M)
        m0 = pid_m * BLOCK_M
        n0 = pid_n * BLOCK_N
        if HAS_BIAS:
            if NCL:
                offs = m0 + tl.arange(0, BLOCK_M)
                acc += tl.load(bias_ptr + offs, mask=offs < ROWS, other=0.0).to(tl.float32)[:, None]
            else:
                offs = n0 + tl.arange(0, BLOCK_N)
                acc += tl.load(bias_ptr + offs, mask=offs < COLS, other=0.0).to(tl.float32)[None, :]
        row = nb * ROWS + m0
        if Y_NCL:  # (N,L,C) rows into (N, C, L), one store per batch the tile spans
            # Row m of batch b sits at y[b, c, m - b*YL] = y_src + b*(COLS-1)*YL + c*YL + m: for
            # one batch the address is affine in m, so the store is contiguous along the rows
            # (y's contiguous axis) and coalesces. (Session 11's first version computed
            # m // YL and m % YL per element, which no analysis sees as contiguous: 4-5x slower.)
            offs_m = m0 + tl.arange(0, BLOCK_M)
            offs_n = n0 + tl.arange(0, BLOCK_N)
            val = acc.to(y_src.dtype.element_ty)
            cols = offs_n.to(tl.int64)[None, :] * YL
            col_ok = (offs_n < COLS)[None, :]
            for b in range(m0 // YL, (tl.minimum(m0 + BLOCK_M, ROWS) - 1) // YL + 1):
                lo = b * YL
                row_ok = (offs_m >= lo) & (offs_m < lo + YL) & (offs_m < ROWS)
                y_ptrs = y_src + tl.cast(b, tl.int64) * (COLS - 1) * YL + cols + offs_m[:, None]
                tl.store(y_ptrs, val, mask=row_ok[:, None] & col_ok)
        elif Y_PTR:  # y rows not 16-byte aligned (odd L): element stores, rows masked to this batch
            offs_m = m0 + tl.arange(0, BLOCK_M)
            offs_n = n0 + tl.arange(0, BLOCK_N)
            y_ptrs = y_src + (nb * ROWS + offs_m).to(tl.int64)[:, None] * COLS + offs_n[None, :]
            tl.store(y_ptrs, acc.to(y_src.dtype.element_ty), mask=(offs_m < ROWS)[:, None] & (offs_n < COLS)[None, :])
        elif SPLIT_EPILOGUE:  # two half-width stores: half the shared memory for the epilogue
            halves = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
            acc0, acc1 = tl.split(halves)
            y_desc.store([row, n0], acc0.to(y_desc.dtype))
            y_desc.store([row, n0 + BLOCK_N // 2], acc1.to(y_desc.dtype))
        else:
            y_desc.store([row, n0], acc.to(y_desc.dtype))


@triton.jit
def transpose_kernel(src, dst, A, B, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr):
    """dst[n] (B, A) = src[n] (A, B)^T for contiguous (N, A, B) src and (N, B, A) dst; grid
    (cdiv(A, BLOCK_A) * cdiv(B, BLOCK_B), N). The tile is loaded along B and stored along A;
    Triton moves it through shared memory between the two, so both sides are coalesced. A and B
    are specialised on their divisibility by 16, so the side whose rows are 16-byte aligned
    (the channels) moves in vectors; an odd L stays element-wise, coalesced."""
    pid = tl.program_id(0)
    nb = tl.program_id(1).to(tl.int64)
    n_b = tl.cdiv(B, BLOCK_B)
    offs_a = (pid // n_b) * BLOCK_A + tl.arange(0, BLOCK_A)
    offs_b = (pid % n_b) * BLOCK_B + tl.arange(0, BLOCK_B)
    ok = (offs_a < A)[:, None] & (offs_b < B)[None, :]
    base = nb * A * B
    tile = tl.load(src + base + offs_a[:, None] * B + offs_b[None, :], mask=ok)
    tl.store(dst + base + offs_b[None, :] * A + offs_a[:, None], tile, mask=ok)


# (BLOCK_A, BLOCK_B, num_warps) of ncl_t's two transposes, from scripts/transpose_probe.py on the
# H200 (results/h200/session11/call7_transpose): x (N, C, L) -> (N, L, C) at 128x32 w4 runs at
# 0.99-1.14x a same-size copy's time; y back to (N, C, L), whose odd rows take element stores,
# at 128x64 w8 takes 45.6 / 34.0 / 11.1 µs where 64x64 w4 took 52.8 / 38.8 / 10.9.
TRANSPOSE_TILE = (128, 32, 4)
TRANSPOSE_TILE_TO_NCL = (128, 64, 8)


def _transposer(n: int, a: int, b: int, tile: tuple[int, int, int] | None = None) -> Relaunch:
    """The launch of transpose_kernel for (n, a, b) -> (n, b, a); call it with src= and dst=."""
    ba, bb, warps = (16, 16, 4) if interpreting() else (tile or TRANSPOSE_TILE)
    return Relaunch(transpose_kernel, (cdiv(a, ba) * cdiv(b, bb), n),
                    dict(A=a, B=b, BLOCK_A=ba, BLOCK_B=bb), dict(num_warps=warps))


@dataclass(frozen=True)
class TileConfig:
    """One launch configuration: tile sizes in elements, warps per program, pipeline depth."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int
    group_m: int = 8
    split_epilogue: bool = False  # TMA kernel: store the output tile in two halves
    programs_per_sm: int = 1  # TMA kernel: persistent programs per SM (2 where two fit in shared memory)
    warp_specialize: bool = False  # TMA kernel: Triton's producer/consumer warp groups
    coop: bool = False  # Gluon kernel: both consumer groups on each tile, not a tile each in turn

    def label(self) -> str:
        extra = " split" if self.split_epilogue else ""
        extra += f" p{self.programs_per_sm}" if self.programs_per_sm != 1 else ""
        extra += " ws" if self.warp_specialize else ""
        extra += " coop" if self.coop else ""
        return f"{self.block_m}x{self.block_n}x{self.block_k} w{self.num_warps} s{self.num_stages}{extra}"


# Small candidate sets per operand kind (H100: 228 KB shared memory per SM). 16-bit: wgmma
# tiles from 64x128 up to 128x256; tf32 halves BLOCK_K for the same bytes per stage; the ieee
# float32 dot has no tensor-core path, so its tiles are sized for FMA register pressure.
CONFIGS: dict[str, tuple[TileConfig, ...]] = {
    "16bit": (
        TileConfig(128, 256, 64, 8, 3),
        TileConfig(128, 256, 64, 8, 4),
        TileConfig(256, 128, 64, 8, 3),
        TileConfig(128, 128, 64, 8, 4),
    ),
    "tf32": (
        TileConfig(128, 256, 32, 8, 3),
        TileConfig(128, 128, 32, 8, 4),
        TileConfig(64, 128, 32, 4, 4),
    ),
    "ieee": (
        TileConfig(128, 128, 32, 8, 2),
        TileConfig(128, 64, 32, 4, 3),
        TileConfig(64, 64, 32, 4, 3),
    ),
}
# The persistent TMA kernel (Hopper and newer): its operand tiles live only in shared memory, so
# deeper pipelines fit; the split epilogue frees half the output tile's shared memory.
TMA_CONFIGS: dict[str, tuple[TileConfig, ...]] = {
    "16bit": (
        TileConfig(128, 256, 64, 8, 3, split_epilogue=True),
        TileConfig(128, 256, 64, 8, 4, split_epilogue=True),
        TileConfig(128, 128, 64, 8, 4),
        TileConfig(128, 128, 64, 4, 4),
        TileConfig(64, 256, 64, 4, 4, split_epilogue=True),
        # small tiles, two programs per SM: fewer idle SMs in the last round of tiles when
        # there are only 1-3 rounds (DTTS 1024->512: 154 tiles of 128x256 on 132 SMs)
        TileConfig(64, 128, 64, 4, 4, programs_per_sm=2),
        TileConfig(128, 64, 64, 4, 4, programs_per_sm=2),
        TileConfig(128, 256, 64, 8, 3, split_epilogue=True, warp_specialize=True),
        TileConfig(128, 128, 64, 4, 4, warp_specialize=True),
        # the same small tiles one program per SM (4.7 rounds of tiles instead of 2.3)
        TileConfig(64, 128, 64, 4, 4),
        TileConfig(128, 64, 64, 4, 4),
        TileConfig(128, 128, 128, 8, 3),
        TileConfig(128, 128, 64, 8, 4, warp_specialize=True),
        TileConfig(64, 128, 64, 4, 4, programs_per_sm=2, warp_specialize=True),
        # One program per tile instead (commit 6093c47): its best was 13-20 % slower than the best
        # persistent config on every (N,L,C) bf16 key (DTTS 1024->512: 33.9 vs 30.0 µs) and it won
        # none (session 5, results/h100/session5/bench/tune_log_*_per_tile.txt); removed.
    ),
    "tf32": (
        TileConfig(128, 256, 32, 8, 3, split_epilogue=True),
        TileConfig(128, 128, 32, 8, 4),
        TileConfig(128, 128, 32, 4, 4),
    ),
    "ieee": (),  # an IEEE float32 dot runs on CUDA cores from registers: TMA buys nothing
}
# The Gluon ping-pong GEMM (gluon_pointwise.py; 16-bit, Hopper): (BM, BN, BK) and ring stages;
# num_warps is each consumer group's 4. Each of the first four was the fastest on at least one of
# the four probe shapes, or within 4 % of it (results/h200/session12/call1/gluon_probe.md). The
# 8-stage rings (as much as fits beside the two epilogue buffers: 229.7 KB) took DTTS 1024->512
# from 22.1 to 20.1 µs (no bias) and 22.2 to 20.1 µs (bias) under the tuners' timer, against
# F.linear's 17.7-18.0 (results/h200/session15/call9_gluon_stages/gluon_probe.md). The
# cooperative 128x128 tile (both groups on one tile, 64 rows each; 6 stages of 32 KB) moves a
# third less through L2 per output than 128x64 and took FastConformer-L from 48.2 to 44.8 µs,
# DTTS 512->2048 from 37.0 to 34.0 and 16x384->768 from 19.8 to 18.6 (no bias; DTTS 1024->512,
# 2.33 rounds of it, stays at 20.6-21.0). Cooperative 128x64 s8 was 0.3-0.6 µs faster than the
# ping-pong configs on DTTS 1024->512 without bias (results/h200/session16/call3_coop,
# call5_coop_halves, call12_refactor_check).
GLUON_CONFIGS: tuple[TileConfig, ...] = (
    TileConfig(128, 128, 64, 4, 4),
    TileConfig(128, 64, 64, 4, 6),
    TileConfig(64, 128, 64, 4, 6),
    TileConfig(64, 256, 64, 4, 4),
    TileConfig(64, 128, 64, 4, 8),
    TileConfig(128, 64, 64, 4, 8),
    TileConfig(128, 128, 64, 4, 6, coop=True),
    TileConfig(128, 64, 64, 4, 8, coop=True),
)


@dataclass(frozen=True)
class Candidate:
    """A kernel variant with a tile config. variant: "nlc" (x rows as A), "nlc_t" (the (N,L,C)
    GEMM transposed, y^T = W @ x^T, run by the ncl kernel), "ncl", "ncl_fold", and "nlc_tma",
    "ncl_tma" (the persistent TMA kernel), "ncl_tma_pad" (the same on a row-padded copy of x),
    "ncl_t" ((N,C,L) through (N,L,C): x transposed, the (N,L,C) TMA GEMM, y transposed back),
    "ncl_ts" (the same with y stored (N,C,L) by the GEMM's epilogue, no transpose back: two
    launches instead of three; offered where ncl_t is on odd L, without warp-specialized
    configs),
    "nlc_wt" (the "nlc" kernel on a transposed copy of W, for IEEE fp32),
    "nlc_gluon" and "ncl_tg" (the Gluon ping-pong GEMM for (N,L,C), and as ncl_t's GEMM)."""

    variant: str
    config: TileConfig

    def label(self) -> str:
        return f"{self.variant} {self.config.label()}"


@dataclass(frozen=True)
class TuneRecord:
    """One candidate's time on one tuning key (kept so the bench can show why a config won)."""

    key: tuple
    candidate: str
    median_ms: float


_TUNED: dict[tuple, Candidate] = {}
TUNE_LOG: list[TuneRecord] = []
# signature of a call (shapes, strides, dtype, bias, conv args, precision) -> ready launch
_PLANS: dict[tuple, object] = {}


def _operand_kind(dtype: torch.dtype, precision: str) -> str:
    if dtype == torch.float32:
        return "tf32" if precision == "tf32" else "ieee"
    return "16bit"


def _interpreter_config(rows: int, cols: int, depth: int) -> TileConfig:
    """The CPU interpreter runs one numpy op per tile: few, large tiles are fastest there."""

    def fit(n: int, cap: int) -> int:
        return max(16, min(cap, triton.next_power_of_2(n)))

    return TileConfig(fit(rows, 64), fit(cols, 64), fit(depth, 32), 4, 1, 8)


FINALISTS = 3  # candidates timed a second time before the choice


def _pick(key: tuple, candidates: list[Candidate], run) -> Candidate:
    """Best candidate for this key by median time of run(cand), then cached.

    Every candidate is timed once; the FINALISTS fastest are timed again, and the choice is
    the lowest of each one's two medians. With one pass, DTTS 1024->512 fp16 (N,C,L) chose a
    candidate that the same sweep then measured 19 % slower than another (H100, session 5).
    """
    best = _TUNED.get(key)
    if best is not None:
        return best
    best_ms = float("inf")
    timed: dict[Candidate, float] = {}
    if tuning_enabled():
        precompile(run, candidates)
    for cand in candidates:
        try:
            run(cand)  # compile, and find configs this device cannot hold
            if not tuning_enabled():
                best = cand
                break
            ms = device_ms(lambda c=cand: run(c))
        except Exception as exc:  # noqa: BLE001 - e.g. OutOfResources: shared memory
            TUNE_LOG.append(TuneRecord(key, f"{cand.label()} failed: {type(exc).__name__}", float("inf")))
            continue
        TUNE_LOG.append(TuneRecord(key, cand.label(), ms))
        timed[cand] = ms
        if ms < best_ms:
            best, best_ms = cand, ms
    if best is None:
        raise RuntimeError(f"no pointwise tile config could run for {key}")
    for cand in sorted(timed, key=timed.get)[:FINALISTS] if len(timed) > 1 else ():
        ms = device_ms(lambda c=cand: run(c))
        TUNE_LOG.append(TuneRecord(key, f"{cand.label()} (again)", ms))
        if ms < best_ms:
            best, best_ms = cand, ms
    _TUNED[key] = best
    return best


def _aligned(t: torch.Tensor) -> bool:
    """A TMA descriptor's base must sit on a 16-byte boundary (a sliced view may not)."""
    return t.data_ptr() % 16 == 0


def _signature(x, weight, bias, stride, padding, layout, precision) -> tuple:
    """What a cached plan depends on: shapes, strides, dtype and the 16-byte alignment of the
    bases (which decides whether the TMA kernel may run at all)."""
    return (layout, x.shape, x.stride(), x.dtype, x.device, weight.shape, weight.stride(),
            bias is not None, stride, padding, precision, _aligned(x), _aligned(weight),
            bias is None or _aligned(bias))


# Where the TMA descriptors are built: "device" (in the kernel, from pointers: the launch
# passes plain pointers) or "host" (triton.tools TensorDescriptor, encoded by the launcher on
# every call). CONVBENCH_PW_TMA_DESC picks one, for the host-cost comparison.
TMA_DESCRIPTORS = os.environ.get("CONVBENCH_PW_TMA_DESC", "host")


def _scratch(size: int, alignment: int, stream):
    return torch.empty(size, device="cuda" if torch.cuda.is_available() else "cpu", dtype=torch.int8)


def _ensure_allocator() -> None:
    """In-kernel descriptors live in global scratch that Triton asks an allocator for at launch.
    The allocator is a context variable (per thread), so it is set on every launch (~0.1 µs)."""
    triton.set_allocator(_scratch)


@functools.cache
def _num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return 3  # the interpreter: a few programs, each walking several tiles
    return torch.cuda.get_device_properties(device).multi_processor_count


def _tma_ok(x, weight, *row_strides: int) -> bool:
    """The persistent TMA kernel applies: a Hopper-or-newer GPU (or the interpreter), 16-byte
    aligned bases, and 16-byte aligned row strides for every 2-D view it reads or writes."""
    if x.is_cuda and torch.cuda.get_device_capability(x.device)[0] < 9:
        return False
    es = x.element_size()
    return _aligned(x) and _aligned(weight) and all((r * es) % 16 == 0 for r in row_strides)


def _is_tma(variant: str) -> bool:
    return "_tma" in variant or variant in ("ncl_t", "ncl_ts")


def _candidates(variants: list[str], kind: str, C_in: int, C_out: int) -> list[Candidate]:
    """What the tuner times: each variant with its own config set."""
    def configs(v: str) -> tuple[TileConfig, ...]:
        if v in _GLUON_VARIANTS:
            return GLUON_CONFIGS
        return _tma_configs(v, kind, C_in, C_out) if _is_tma(v) else CONFIGS[kind]
    return [Candidate(v, c) for v in variants for c in configs(v)]


_GLUON_VARIANTS = ("nlc_gluon", "ncl_tg")


@functools.cache
def _gluon_module():
    """gluon_pointwise, or None where this Triton has no Gluon Hopper API."""
    try:
        from . import gluon_pointwise
    except ImportError:
        return None
    return gluon_pointwise


def _gluon_ok(x, kind: str) -> bool:
    """The Gluon GEMM may run: 16-bit operands on a Hopper GPU, not the interpreter (Gluon has
    none), and a Triton with Gluon. The caller checks TMA alignment (_tma_ok)."""
    if kind != "16bit" or not x.is_cuda or interpreting():
        return False
    g = _gluon_module()
    return g is not None and g.available(x)


def _tma_configs(variant: str, kind: str, C_in: int, C_out: int) -> tuple[TileConfig, ...]:
    """TMA tile configs; in (N,C,L) a tile must not straddle batches (see pointwise_tma_kernel)."""
    configs = TMA_CONFIGS[kind]
    if variant == "ncl_t":  # the (N,L,C) GEMM: no batch boundary inside a tile
        return configs
    if variant == "ncl_ts":  # its epilogue stores element-wise: no split (TMA) stores. And no
        # warp-specialized configs: 128x128x64 w4 s4 ws faults on DTTS 1024->512 under Triton
        # 3.6, an out-of-range shared-memory address inside the kernel (compute-sanitizer, H200,
        # session 14), which poisons the process; the other ws configs were 1.15-3.3x slower
        return tuple(dict.fromkeys(dataclasses.replace(c, split_epilogue=False) for c in configs
                                   if not c.warp_specialize))
    if variant == "ncl_tma":
        configs = tuple(c for c in configs if C_in % c.block_k == 0 and C_out % c.block_m == 0)
    elif variant == "ncl_tma_pad":  # element-wise stores are masked to the batch; loads are not
        configs = tuple(c for c in configs if C_in % c.block_k == 0)
    return configs


def _forward(x, weight, bias, stride, padding, layout, precision, config=None, fold=None, variant=None):
    """The launcher: checks arguments, allocates y, picks a kernel variant and tile config, launches.

    After the first call of a signature the launch is cached (_PLANS), so a repeated call costs
    one allocation and one kernel launch. config / fold / variant force a tile config, (ncl) the
    batch folding and the kernel variant, for tests and experiments.
    """
    if precision is None:
        precision = triton_input_precision()
    sig = _signature(x, weight, bias, stride, padding, layout, precision)
    forced = config is not None or fold is not None or variant is not None
    plan = None if forced else _PLANS.get(sig)
    if plan is not None:
        return plan(x, weight, bias)
    N, C_in, L = split_layout(x, layout)
    C_out, c_in_w, K = weight.shape
    if K != 1 or c_in_w != C_in:
        raise ValueError(f"weight {tuple(weight.shape)} is not a 1x1 conv for C_in={C_in}")
    if stride < 1 or padding < 0:
        raise ValueError(f"stride={stride!r} must be >= 1 and padding={padding!r} >= 0")
    L_out = (L + 2 * padding - 1) // stride + 1
    if L_out < 1:
        raise ValueError(f"L={L} with padding={padding} gives no output positions")
    if precision not in ("ieee", "tf32"):
        raise ValueError(f"precision must be 'ieee' or 'tf32', got {precision!r}")
    prec = precision if x.dtype == torch.float32 else "ieee"  # 16-bit dots: exact products, fp32 sums
    kind = _operand_kind(x.dtype, prec)
    upcast = interpreting() and x.dtype == torch.bfloat16
    has_bias = bias is not None
    plain = stride == 1 and padding == 0
    swo, swi = weight.stride(0), weight.stride(1)
    common = dict(HAS_BIAS=has_bias, PRECISION=prec, UPCAST=upcast)
    w_rows_ok = swi == 1  # TMA needs the weight's C_in axis contiguous

    def tma_launch(cand, a_shape, a_stride, b_shape, b_stride, y_shape, nb, rows, cols, ncl, device, y_ptr=False,
                   y_ncl_len=0):
        """A launch of the TMA kernel; a, b: the operand tensors (w or x), in the kernel's order.
        y_ncl_len > 0: the (N,L,C) GEMM stores into (N, C, L) y with L = y_ncl_len (Y_NCL)."""
        y_ptr = y_ptr or y_ncl_len > 0
        y_ncl = dict(Y_NCL=y_ncl_len > 0, YL=max(1, y_ncl_len))
        cfg = cand.config
        bm, bn, bk = cfg.block_m, cfg.block_n, cfg.block_k
        tiles = nb * cdiv(rows, bm) * cdiv(cols, bn)
        programs = min(_num_sms(device) * cfg.programs_per_sm, tiles)
        device_desc = TMA_DESCRIPTORS == "device"
        run = Relaunch(pointwise_tma_kernel, (programs,), dict(
            NB=nb, ROWS=rows, COLS=cols, K=C_in, SA=a_stride[0], SB=b_stride[0],
            NCL=ncl, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=cfg.group_m,
            SPLIT_EPILOGUE=cfg.split_epilogue, PROGRAMS=programs, WARP_SPECIALIZE=cfg.warp_specialize,
            DEVICE_DESC=device_desc, Y_PTR=y_ptr, **y_ncl, **common), dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
        if device_desc:
            def go(a, b, y, bias_t):
                _ensure_allocator()
                run(a_src=a, b_src=b, y_src=y, bias_ptr=bias_t)
            return go
        a_block, b_block = ((bm, bk), (bk, bn)) if ncl else ((bm, bk), (bn, bk))
        y_block = (bm, bn // 2 if cfg.split_epilogue else bn)
        y_stride = (y_shape[1], 1)

        descs = ReusedDescriptors(lambda a, b, y: (
            TensorDescriptor(a, a_shape, a_stride, a_block), TensorDescriptor(b, b_shape, b_stride, b_block),
            None if y_ptr else TensorDescriptor(y, y_shape, y_stride, y_block)))

        def go_host(a, b, y, bias_t):
            da, db, dy = descs(a, b, y)
            run(a_src=da, b_src=db, y_src=y if dy is None else dy, bias_ptr=bias_t)
        return go_host

    if layout == "nlc":
        M = N * L_out
        sxn, sxl, sxc = x.stride()
        folded = plain and (N == 1 or sxn == L * sxl)
        out_shape = (N, L_out, C_out)
        variants = ["nlc", "nlc_t"] if folded else ["nlc"]
        if folded and sxc == 1 and w_rows_ok and kind != "ieee" and _tma_ok(x, weight, sxl, swo, C_out):
            variants.insert(0, "nlc_tma")
            if _gluon_ok(x, kind):
                variants.insert(0, "nlc_gluon")
        if kind == "ieee":  # the FMA dot's B tile loads well along its N side: W^T's rows
            variants.insert(0, "nlc_wt")
        key = ("nlc", folded, plain, str(x.dtype), prec, M, C_in, C_out, sxl, sxc, tuple(variants))
        rows, cols = M, C_out

        def make_launch(cand: Candidate):
            """cand's launch as f(x, w, b, y), its scalar arguments fixed."""
            cfg = cand.config
            if cand.variant == "nlc_gluon":
                go = _gluon_module().launcher(M, C_in, C_out, sxl, swo, (cfg.block_m, cfg.block_n, cfg.block_k),
                                              cfg.num_stages, has_bias, x.dtype, _num_sms(x.device), cfg.coop)
                return lambda x, w, b, y: go(x, w, y, b)
            if cand.variant == "nlc_tma":
                go = tma_launch(cand, (M, C_in), (sxl, 1), (C_out, C_in), (swo, 1), (M, C_out),
                                1, M, C_out, False, x.device)
                return lambda x, w, b, y: go(x, w, y, b)
            meta = dict(EVEN_K=C_in % cfg.block_k == 0, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
                        BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, **common)
            options = dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages)
            if cand.variant in ("nlc", "nlc_wt"):
                # nlc_wt: W^T (C_in, C_out) copied contiguous per call (C_out x C_in elements, a
                # few µs against IEEE GEMMs of 0.3-12 ms), so B's tile rows are contiguous
                wt = cand.variant == "nlc_wt"
                run = Relaunch(pointwise_nlc_kernel, (cdiv(M, cfg.block_m) * cdiv(C_out, cfg.block_n),), dict(
                    M=M, C_in=C_in, C_out=C_out, L_in=L, L_out=L_out, sxn=sxn, sxl=sxl, sxc=sxc,
                    swo=1 if wt else swo, swi=C_out if wt else swi, conv_stride=stride, padding=padding,
                    FOLDED=folded, **meta), options)
                if wt:
                    return lambda x, w, b, y: run(x_ptr=x, w_ptr=w[:, :, 0].t().contiguous(), b_ptr=b, y_ptr=y)
            else:  # y^T (C_out, M) = W @ x^T: the rows of x are the "positions" of one batch
                run = Relaunch(pointwise_ncl_kernel, (cdiv(C_out, cfg.block_m) * cdiv(M, cfg.block_n),), dict(
                    NB=1, C_in=C_in, C_out=C_out, L_in=M, L_out=M, sxn=0, sxc=sxc, sxl=sxl, swo=swo, swi=swi,
                    syn=0, syc=1, syl=C_out, conv_stride=1, padding=0, FOLD_BATCH=False, PLAIN=True,
                    **meta), options)
            return lambda x, w, b, y: run(x_ptr=x, w_ptr=w, b_ptr=b, y_ptr=y)
    else:
        sxn, sxc, sxl = x.stride()
        if fold is None:
            # Folding the batch into the columns gathers x one element at a time (measured 4x
            # slower than per-batch tiles on odd L, H100 run 1), so it is kept for tiny L only.
            fold = L_out <= 16
        out_shape = (N, C_out, L_out)
        cols_total = N * L_out if fold else L_out
        variants = ["ncl_fold" if fold else "ncl"]
        dense = sxl == 1 and (N == 1 or sxn == C_in * sxc)
        # x transposed to (N, L, C), the (N,L,C) GEMM, y transposed back: its operands are
        # K-major and its rows TMA-aligned whatever L is
        through = dense and sxc == L and _tma_ok(x, weight, C_in, C_out)
        if plain and not fold and dense and w_rows_ok and kind != "ieee" and _tma_ok(x, weight, sxc, swo, L_out):
            variants.insert(0, "ncl_tma")
            if through and kind == "tf32":  # x's tile here is N-major, and tf32 wgmma takes K-major only
                variants.insert(1, "ncl_t")
        elif plain and not fold and w_rows_ok and kind != "ieee" and _tma_ok(x, weight, swo):
            variants.insert(0, "ncl_tma_pad")  # rows of x not 16-byte aligned (odd L): pad a copy
            if through:  # or run the (N,L,C) GEMM between two transposes, tl.dot's or Gluon's;
                # or transpose x only, the GEMM's epilogue storing y (N, C, L) (ncl_ts: picked on
                # FastConformer-L and DTTS 512->2048, 6-9 % faster in 16 bits and 9-22 % in tf32
                # on odd L than session 12's picks; H200, results/h200/session14/status.md)
                variants[0:0] = (["ncl_tg"] if _gluon_ok(x, kind) else []) + ["ncl_t", "ncl_ts"]
        if variant == "ncl_ts" and "ncl_t" in variants and "ncl_ts" not in variants:  # even L, tf32
            variants.append("ncl_ts")
        key = ("ncl", fold, plain, str(x.dtype), prec, N, C_in, C_out, L, L_out, sxc, sxl, tuple(variants))
        rows, cols = C_out, cols_total

        def make_launch(cand: Candidate):
            """cand's launch as f(x, w, b, y), its scalar arguments fixed."""
            cfg = cand.config
            if cand.variant == "ncl_tma":
                go = tma_launch(cand, (C_out, C_in), (swo, 1), (N * C_in, L), (sxc, 1), (N * C_out, L_out),
                                N, C_out, L_out, True, x.device)
                return lambda x, w, b, y: go(w, x, y, b)
            if cand.variant in ("ncl_t", "ncl_ts", "ncl_tg"):
                # x (N, C_in, L) -> xt (N*L, C_in); yt (N*L, C_out) = xt @ W^T (+ b) by the
                # (N,L,C) kernel (ncl_tg: the Gluon one); yt -> y (N, C_out, L). Both transposes
                # are row-aligned on the channel side, and the GEMM runs on TMA-aligned rows
                # whatever L is.
                M = N * L
                if cand.variant == "ncl_tg":
                    go = _gluon_module().launcher(M, C_in, C_out, C_in, swo, (cfg.block_m, cfg.block_n, cfg.block_k),
                                                  cfg.num_stages, has_bias, x.dtype, _num_sms(x.device), cfg.coop)
                else:  # ncl_ts: y stored (N, C, L) by the GEMM's epilogue
                    go = tma_launch(cand, (M, C_in), (C_in, 1), (C_out, C_in), (swo, 1), (M, C_out),
                                    1, M, C_out, False, x.device, y_ncl_len=L if cand.variant == "ncl_ts" else 0)
                to_nlc = _transposer(N, C_in, L)
                if cand.variant == "ncl_ts":
                    def through_nlc_store_ncl(x, w, b, y):
                        xt = torch.empty((M, C_in), device=x.device, dtype=x.dtype)
                        to_nlc(src=x, dst=xt)
                        go(xt, w, y, b)
                    return through_nlc_store_ncl
                to_ncl = _transposer(N, L, C_out, TRANSPOSE_TILE_TO_NCL)

                def through_nlc(x, w, b, y):
                    xt = torch.empty((M, C_in), device=x.device, dtype=x.dtype)
                    to_nlc(src=x, dst=xt)
                    yt = torch.empty((M, C_out), device=x.device, dtype=x.dtype)
                    go(xt, w, yt, b)
                    to_ncl(src=yt, dst=y)
                return through_nlc
            if cand.variant == "ncl_tma_pad":
                per_16b = 16 // x.element_size()
                Lp = -(-L // per_16b) * per_16b
                # One copy of x into rows of Lp elements (16-byte aligned) that TMA can read; the
                # descriptor stops at L, so the padding is never read and need not be zeroed.
                # y keeps its odd rows: stored element-wise.
                go = tma_launch(cand, (C_out, C_in), (swo, 1), (N * C_in, L), (Lp, 1), (N * C_out, L_out),
                                N, C_out, L_out, True, x.device, y_ptr=True)

                def padded(x, w, b, y):
                    xp = torch.empty((N, C_in, Lp), device=x.device, dtype=x.dtype)
                    xp[:, :, :L].copy_(x)
                    go(w, xp, y, b)
                return padded
            tiles = cdiv(C_out, cfg.block_m) * cdiv(cols_total, cfg.block_n)
            run = Relaunch(pointwise_ncl_kernel, (tiles if fold else tiles * N,), dict(
                NB=N, C_in=C_in, C_out=C_out, L_in=L, L_out=L_out, sxn=sxn, sxc=sxc, sxl=sxl, swo=swo, swi=swi,
                syn=C_out * L_out, syc=L_out, syl=1, conv_stride=stride, padding=padding,
                FOLD_BATCH=fold, PLAIN=plain, EVEN_K=C_in % cfg.block_k == 0,
                BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, **common),
                dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
            return lambda x, w, b, y: run(x_ptr=x, w_ptr=w, b_ptr=b, y_ptr=y)

    def plan(x, weight, bias):
        y = torch.empty(out_shape, device=x.device, dtype=x.dtype)
        launch(x, weight, bias if bias is not None else weight, y)
        return y

    y = torch.empty(out_shape, device=x.device, dtype=x.dtype)
    b = bias if bias is not None else weight
    if variant is not None:
        if variant not in variants:
            raise ValueError(f"variant {variant!r} does not apply here; allowed: {variants}")
        variants = [variant]
        key = (*key, ("forced", variant))  # a forced pick must not become the key's tuned choice
        if config is None and x.is_cuda and not interpreting() and not _candidates(variants, kind, C_in, C_out):
            raise ValueError(f"variant {variant!r} does not apply here: none of its tile configs fits "
                             f"C_in={C_in}, C_out={C_out} at {kind}")
    if config is not None:
        cand = Candidate(variants[0], config)
    elif interpreting() or not x.is_cuda:
        # the interpreter runs the pointer kernels unless a variant is forced (tests force TMA)
        v = variants[0] if variant is not None else next(v for v in variants if not _is_tma(v))
        cand = Candidate(v, _interpreter_config(rows, cols, C_in))
    else:
        cands = _candidates(variants, kind, C_in, C_out)
        launches: dict[Candidate, object] = {}

        def trial(c):
            if c not in launches:
                launches[c] = make_launch(c)
            launches[c](x, weight, b, y)

        cand = _pick(key, cands, trial)
    launch = make_launch(cand)
    launch(x, weight, b, y)
    if not forced:
        plan.label = cand.label()  # what convbench records in a row's `plan` column
        _PLANS[sig] = plan
    return y


def _valid_positions(L_in: int, L_out: int, stride: int, padding: int) -> tuple[int, int]:
    """(first output position whose input is not padding, how many such positions)."""
    lo = -(-padding // stride)
    hi = min(L_out - 1, (L_in - 1 + padding) // stride)
    return lo, max(0, hi - lo + 1)


def _gather_x(x, L_out, stride, padding, l_dim):
    """x at the positions the conv reads, zeros where it reads padding: (.., L_out, ..) along l_dim."""
    if stride == 1 and padding == 0:
        return x
    pad = (padding, padding) if l_dim == 2 else (0, 0, padding, padding)
    xp = torch.nn.functional.pad(x, pad)
    return xp.narrow(l_dim, 0, (L_out - 1) * stride + 1)[(slice(None),) * l_dim + (slice(None, None, stride),)]


class PointwiseConv1dFunction(torch.autograd.Function):
    """Triton forward; backward as three torch GEMMs/reductions.

    Why torch for the backward: grad_x = W^T @ grad_y is the same GEMM shape family as the
    forward and cuBLAS runs it near peak; grad_W = sum_n grad_y[n] @ x[n]^T reduces over N*L
    (up to 500k) into a small C_out x C_in output, which needs split-K to fill 132 SMs, and
    cuBLAS already chooses split-K by heuristic. A Triton split-K kernel could save the layout
    copies the (N,C,L) grad_W pays (grad_y and x are permuted to (C, N*L) first), but that is
    memory traffic, not FLOPs, and is left for later. grad_b is one fp32-accumulated sum.
    Float32 backward GEMMs run at the forward's precision (TF32 or IEEE), whatever the global flag.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, layout, precision):
        if precision is None:
            precision = triton_input_precision()
        y = _forward(x, weight, bias, stride, padding, layout, precision)
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, layout, precision, bias is not None)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        stride, padding, layout, precision, has_bias = ctx.conf
        C_out, C_in, _ = weight.shape
        w = weight.reshape(C_out, C_in)
        gy = gy.contiguous()
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        try:
            if layout == "ncl":
                N, _, L_in = x.shape
                L_out = gy.shape[2]
                if need_x:
                    gxs = torch.matmul(w.t(), gy)  # (N, C_in, L_out), strided-batched GEMM
                    gx = _scatter_grad(gxs, x, L_in, L_out, stride, padding, l_dim=2)
                if need_w:
                    xs = _gather_x(x, L_out, stride, padding, l_dim=2)
                    g2 = gy.transpose(0, 1).reshape(C_out, N * L_out)
                    x2 = xs.transpose(0, 1).reshape(C_in, N * L_out)
                    gw = (g2 @ x2.t()).reshape(C_out, C_in, 1)
                if need_b and has_bias:
                    gb = gy.sum(dim=(0, 2), dtype=torch.float32).to(gy.dtype)
            else:
                N, L_in, _ = x.shape
                L_out = gy.shape[1]
                g2 = gy.reshape(N * L_out, C_out)
                if need_x:
                    gxs = (g2 @ w).reshape(N, L_out, C_in)
                    gx = _scatter_grad(gxs, x, L_in, L_out, stride, padding, l_dim=1)
                if need_w:
                    xs = _gather_x(x, L_out, stride, padding, l_dim=1)
                    gw = (g2.t() @ xs.reshape(N * L_out, C_in)).reshape(C_out, C_in, 1)
                if need_b and has_bias:
                    gb = g2.sum(dim=0, dtype=torch.float32).to(gy.dtype)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved
        return gx, gw, gb, None, None, None, None


def _scatter_grad(gxs, x, L_in, L_out, stride, padding, l_dim):
    """grad w.r.t. x from grad at the gathered positions: zero where x was never read."""
    if stride == 1 and padding == 0 and L_out == L_in:
        return gxs
    gx = torch.zeros_like(x, memory_format=torch.contiguous_format)
    lo, count = _valid_positions(L_in, L_out, stride, padding)
    if count:
        start = lo * stride - padding
        dst = gx.narrow(l_dim, start, (count - 1) * stride + 1)
        dst = dst[(slice(None),) * l_dim + (slice(None, None, stride),)]
        dst.copy_(gxs.narrow(l_dim, lo, count))
    return gx


def pointwise_conv1d(x, weight, bias, stride=1, padding=0, layout="ncl", precision=None):
    """Pointwise Conv1d, differentiable.

    x: (N, C_in, L) for "ncl" or (N, L, C_in) for "nlc"; weight: (C_out, C_in, 1); bias: (C_out,)
    or None. precision: "ieee" | "tf32" for float32 inputs (default: the run's policy).
    Returns y in x's layout, contiguous: (N, C_out, L_out) or (N, L_out, C_out).
    """
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return PointwiseConv1dFunction.apply(x, weight, bias, stride, padding, layout, precision)
    return _forward(x, weight, bias, stride, padding, layout, precision)  # no autograd overhead


def _supports(case: Case) -> str | None:
    if case.problem.K != 1:
        return f"the Triton GEMM covers kernel_size 1 only, not K={case.problem.K} (use torch)"
    return device_reason(case)


def _builder(layout):
    def build(p, inp):
        x, w, b = inp.x, inp.weight, inp.bias

        def run():
            return pointwise_conv1d(x, w, b, p.stride, p.padding, layout)

        def plan() -> str:
            sig = _signature(x, w, b, p.stride, p.padding, layout, triton_input_precision())
            return getattr(_PLANS.get(sig), "label", "")

        run.plan = plan
        return run

    return build


for _layout, _name in (("ncl", "triton"), ("nlc", "triton_nlc")):
    register(Impl(
        name=_name, op="pointwise", layout=_layout, build=_builder(_layout), modes=("fwd", "fwd_bwd"),
        requires=("triton",), supports=_supports, tf32="triton",
        description=f"Triton tiled GEMM, bias fused, on ({'N,C,L' if _layout == 'ncl' else 'N,L,C'}) storage",
    ))
