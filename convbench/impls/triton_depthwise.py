"""Depthwise Conv1d in Triton, forward and backward, for (N, C, L) and (N, L, C) storage via strides."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..registry import Impl, register
from . import _dw_codegen as gen
from ._triton_common import cdiv, device_reason, interpreting, split_layout, tuning_enabled

# Kernels up to this many taps are fully unrolled (K is a compile-time constant, so each tap's
# load is one instruction with an immediate offset); longer kernels run a runtime tap loop.
MAX_UNROLL_K = 16
LONG_K_UNROLL = 8


# --------------------------------------------------------------------------------------------
# Forward: y[n, c, l] = sum_k w[c, k] * x[n, c // MULT, l*stride - padding + k*dilation] + b[c]
# --------------------------------------------------------------------------------------------


@triton.jit
def _tap_mask(mask_c, k, K, CHECK_K: tl.constexpr):
    """Channel mask for tap k; on the long-K path taps past K are masked off (a tensor, also in
    the interpreter)."""
    if CHECK_K:
        mask_c = mask_c & ((mask_c.to(tl.int32) * 0 + k) < K)
    return mask_c


@triton.jit
def _tap_weight(w_rows, k, mask_c, CHECK_K: tl.constexpr, EVEN_C: tl.constexpr):
    """w[c, k] for the tile's channels (mask_c already through _tap_mask)."""
    if EVEN_C and not CHECK_K:
        wv = tl.load(w_rows + k)
    else:
        wv = tl.load(w_rows + k, mask=mask_c, other=0.0)
    return wv.to(tl.float32)


@triton.jit
def _tap_x(x_ptrs, pos0, mask_c, off, L_in, sxl,
           MASKED: tl.constexpr, CHECK_K: tl.constexpr, EVEN_C: tl.constexpr):
    """x at the tile's positions shifted by `off` (zero outside [0, L_in) in edge tiles)."""
    if MASKED:
        pos = pos0 + off
        m = mask_c[:, None] & ((pos >= 0) & (pos < L_in))[None, :]
        xv = tl.load(x_ptrs + off * sxl, mask=m, other=0.0)
    elif EVEN_C and not CHECK_K:
        xv = tl.load(x_ptrs + off * sxl)
    else:
        xv = tl.load(x_ptrs + off * sxl, mask=mask_c[:, None], other=0.0)
    return xv.to(tl.float32)


@triton.jit
def _fwd_tap(acc, x_ptrs, w_rows, pos0, mask_c, mask_l, k, K, L_in, sxl, dilation,
             MASKED: tl.constexpr, CHECK_K: tl.constexpr, EVEN_C: tl.constexpr):
    mask_c = _tap_mask(mask_c, k, K, CHECK_K)
    wv = _tap_weight(w_rows, k, mask_c, CHECK_K, EVEN_C)
    xv = _tap_x(x_ptrs, pos0, mask_c, k * dilation, L_in, sxl, MASKED, CHECK_K, EVEN_C)
    return acc + xv * wv[:, None]


@triton.jit
def _fwd_taps(x_ptrs, w_rows, pos0, mask_c, mask_l, K, L_in, sxl, dilation,
              KC: tl.constexpr, MASKED: tl.constexpr, EVEN_C: tl.constexpr,
              BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr, UNROLL: tl.constexpr):
    acc = tl.zeros((BLOCK_C, BLOCK_L), dtype=tl.float32)
    if KC > 0:
        for k in tl.static_range(KC):
            acc = _fwd_tap(acc, x_ptrs, w_rows, pos0, mask_c, mask_l, k, K, L_in, sxl, dilation,
                           MASKED, False, EVEN_C)
    else:
        for k0 in range(0, K, UNROLL):
            for kk in tl.static_range(UNROLL):
                acc = _fwd_tap(acc, x_ptrs, w_rows, pos0, mask_c, mask_l, k0 + kk, K, L_in, sxl,
                               dilation, MASKED, True, EVEN_C)
    return acc


@triton.jit
def depthwise_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C_out, L_in, L_out, K, MULT,
    sxn, sxc, sxl, syn, syc, syl,
    conv_stride, padding, dilation,
    HAS_BIAS: tl.constexpr, KC: tl.constexpr, EVEN_C: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr, UNROLL: tl.constexpr,
):
    """One (BLOCK_C, BLOCK_L) output tile; x: strides (sxn, sxc, sxl) so either layout works.

    Tiles whose whole receptive field lies inside x (and inside L_out) take a mask-free path.
    """
    pid_l = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    l_start = pid_l * BLOCK_L
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_l = l_start + tl.arange(0, BLOCK_L)
    mask_c = offs_c < C_out
    mask_l = offs_l < L_out
    pos0 = offs_l * conv_stride - padding
    x_ptrs = x_ptr + n * sxn + (offs_c // MULT)[:, None] * sxc + pos0[None, :] * sxl
    w_rows = w_ptr + offs_c * K
    first = l_start * conv_stride - padding
    last = (l_start + BLOCK_L - 1) * conv_stride - padding + (K - 1) * dilation
    interior = (first >= 0) & (last < L_in) & (l_start + BLOCK_L <= L_out)
    if interior:
        acc = _fwd_taps(x_ptrs, w_rows, pos0, mask_c, mask_l, K, L_in, sxl, dilation,
                        KC, False, EVEN_C, BLOCK_C, BLOCK_L, UNROLL)
    else:
        acc = _fwd_taps(x_ptrs, w_rows, pos0, mask_c, mask_l, K, L_in, sxl, dilation,
                        KC, True, EVEN_C, BLOCK_C, BLOCK_L, UNROLL)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)[:, None]
    y_ptrs = y_ptr + n * syn + offs_c[:, None] * syc + offs_l[None, :] * syl
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask_c[:, None] & mask_l[None, :])


# --------------------------------------------------------------------------------------------
# grad_x, a gather: gx[n, ci, j] = sum_m sum_k w[c, k] * gy[n, c, t / stride],
#   c = ci*MULT + m, t = j + padding - k*dilation, for t >= 0, t % stride == 0, t / stride < L_out
# --------------------------------------------------------------------------------------------


@triton.jit
def _bwdx_tap(acc, g_ptrs, g0, w_rows, t0, mask_c, mask_j, k, K, L_out, sgl, conv_stride, dilation,
              MASKED: tl.constexpr, CHECK_K: tl.constexpr, EVEN_C: tl.constexpr):
    off = k * dilation
    mask_c = _tap_mask(mask_c, k, K, CHECK_K)
    wv = _tap_weight(w_rows, k, mask_c, CHECK_K, EVEN_C)
    if MASKED:
        t = t0 - off
        q = t // conv_stride
        m = mask_j & (t >= 0) & (t % conv_stride == 0) & (q < L_out)
        m = mask_c[:, None] & m[None, :]
        gv = tl.load(g_ptrs + q[None, :] * sgl, mask=m, other=0.0)
    elif EVEN_C and not CHECK_K:
        gv = tl.load(g0 - off * sgl)
    else:
        gv = tl.load(g0 - off * sgl, mask=mask_c[:, None], other=0.0)
    return acc + gv.to(tl.float32) * wv[:, None]


@triton.jit
def _bwdx_taps(acc, g_ptrs, g0, w_rows, t0, mask_c, mask_j, K, L_out, sgl, conv_stride, dilation,
               KC: tl.constexpr, MASKED: tl.constexpr, EVEN_C: tl.constexpr,
               UNROLL: tl.constexpr):
    if KC > 0:
        for k in tl.static_range(KC):
            acc = _bwdx_tap(acc, g_ptrs, g0, w_rows, t0, mask_c, mask_j, k, K, L_out, sgl,
                            conv_stride, dilation, MASKED, False, EVEN_C)
    else:
        for k0 in range(0, K, UNROLL):
            for kk in tl.static_range(UNROLL):
                acc = _bwdx_tap(acc, g_ptrs, g0, w_rows, t0, mask_c, mask_j, k0 + kk, K, L_out, sgl,
                                conv_stride, dilation, MASKED, True, EVEN_C)
    return acc


@triton.jit
def depthwise_bwd_x_kernel(
    gy_ptr, w_ptr, gx_ptr,
    C_in, L_in, L_out, K, MULT,
    sgn, sgc, sgl, sxn, sxc, sxl,
    conv_stride, padding, dilation,
    KC: tl.constexpr, EVEN_C: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr, UNROLL: tl.constexpr,
):
    """One (BLOCK_C, BLOCK_L) tile of grad_x over (input channel, input position)."""
    pid_j = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    j_start = pid_j * BLOCK_L
    offs_ci = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_j = j_start + tl.arange(0, BLOCK_L)
    mask_c = offs_ci < C_in
    mask_j = offs_j < L_in
    t0 = offs_j + padding
    # stride 1 only: every tap's gy position j + padding - k*dilation lies in [0, L_out)
    interior = (conv_stride == 1) & (j_start + padding - (K - 1) * dilation >= 0)
    interior = interior & (j_start + BLOCK_L - 1 + padding < L_out) & (j_start + BLOCK_L <= L_in)
    acc = tl.zeros((BLOCK_C, BLOCK_L), dtype=tl.float32)
    for m in range(0, MULT):
        c = offs_ci * MULT + m
        g_ptrs = gy_ptr + n * sgn + c[:, None] * sgc
        g0 = g_ptrs + t0[None, :] * sgl
        w_rows = w_ptr + c * K
        if interior:
            acc = _bwdx_taps(acc, g_ptrs, g0, w_rows, t0, mask_c, mask_j, K, L_out, sgl, conv_stride,
                             dilation, KC, False, EVEN_C, UNROLL)
        else:
            acc = _bwdx_taps(acc, g_ptrs, g0, w_rows, t0, mask_c, mask_j, K, L_out, sgl, conv_stride,
                             dilation, KC, True, EVEN_C, UNROLL)
    gx_ptrs = gx_ptr + n * sxn + offs_ci[:, None] * sxc + offs_j[None, :] * sxl
    tl.store(gx_ptrs, acc.to(gx_ptr.dtype.element_ty), mask=mask_c[:, None] & mask_j[None, :])


# --------------------------------------------------------------------------------------------
# grad_w / grad_b, stage 1: partial[row, k, c] = sum over one L tile of gy[n, c, l] * x[...],
# row = n * n_lblocks + l_block; partial[row, K, c] holds the bias partial (sum of gy).
# --------------------------------------------------------------------------------------------


@triton.jit
def _bwdw_tap(gy, x_ptrs, p_ptrs, pos0, mask_c, mask_l, k, K, L_in, sxl, dilation, C_out,
              MASKED: tl.constexpr, CHECK_K: tl.constexpr, EVEN_C: tl.constexpr):
    mask_c = _tap_mask(mask_c, k, K, CHECK_K)
    xv = _tap_x(x_ptrs, pos0, mask_c, k * dilation, L_in, sxl, MASKED, CHECK_K, EVEN_C)
    part = tl.sum(gy * xv, axis=1)
    tl.store(p_ptrs + k * C_out, part, mask=mask_c)


@triton.jit
def _bwdw_taps(gy, x_ptrs, p_ptrs, pos0, mask_c, mask_l, K, L_in, sxl, dilation, C_out,
               KC: tl.constexpr, MASKED: tl.constexpr, EVEN_C: tl.constexpr,
               UNROLL: tl.constexpr):
    if KC > 0:
        for k in tl.static_range(KC):
            _bwdw_tap(gy, x_ptrs, p_ptrs, pos0, mask_c, mask_l, k, K, L_in, sxl, dilation, C_out,
                      MASKED, False, EVEN_C)
    else:
        for k0 in range(0, K, UNROLL):
            for kk in tl.static_range(UNROLL):
                _bwdw_tap(gy, x_ptrs, p_ptrs, pos0, mask_c, mask_l, k0 + kk, K, L_in, sxl,
                          dilation, C_out, MASKED, True, EVEN_C)


@triton.jit
def depthwise_bwd_w_kernel(
    x_ptr, gy_ptr, p_ptr,
    C_out, L_in, L_out, K, MULT, n_lblocks,
    sxn, sxc, sxl, sgn, sgc, sgl,
    conv_stride, padding, dilation,
    HAS_BIAS: tl.constexpr, KC: tl.constexpr, EVEN_C: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_L: tl.constexpr, UNROLL: tl.constexpr,
):
    """Partial weight/bias gradients of one (BLOCK_C, BLOCK_L) tile of gy into p: (rows, K+1, C_out)."""
    pid_l = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2)
    l_start = pid_l * BLOCK_L
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_l = l_start + tl.arange(0, BLOCK_L)
    mask_c = offs_c < C_out
    mask_l = offs_l < L_out
    n64 = n.to(tl.int64)
    g_ptrs = gy_ptr + n64 * sgn + offs_c[:, None] * sgc + offs_l[None, :] * sgl
    gy = tl.load(g_ptrs, mask=mask_c[:, None] & mask_l[None, :], other=0.0).to(tl.float32)
    pos0 = offs_l * conv_stride - padding
    x_ptrs = x_ptr + n64 * sxn + (offs_c // MULT)[:, None] * sxc + pos0[None, :] * sxl
    row = (n * n_lblocks + pid_l).to(tl.int64)
    p_ptrs = p_ptr + row * (K + 1) * C_out + offs_c
    first = l_start * conv_stride - padding
    last = (l_start + BLOCK_L - 1) * conv_stride - padding + (K - 1) * dilation
    interior = (first >= 0) & (last < L_in) & (l_start + BLOCK_L <= L_out)
    if interior:
        _bwdw_taps(gy, x_ptrs, p_ptrs, pos0, mask_c, mask_l, K, L_in, sxl, dilation, C_out,
                   KC, False, EVEN_C, UNROLL)
    else:
        _bwdw_taps(gy, x_ptrs, p_ptrs, pos0, mask_c, mask_l, K, L_in, sxl, dilation, C_out,
                   KC, True, EVEN_C, UNROLL)
    if HAS_BIAS:
        tl.store(p_ptrs + K * C_out, tl.sum(gy, axis=1), mask=mask_c)


@triton.jit
def depthwise_bwd_w_reduce_kernel(
    p_ptr, gw_ptr, gb_ptr, rows, C_out, K,
    HAS_BIAS: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_COL: tl.constexpr,
):
    """Stage 2: sum p over rows; column col = k*C_out + c goes to gw[c, k] (k == K: gb[c])."""
    pid = tl.program_id(0)
    cols = (K + 1) * C_out
    offs = pid * BLOCK_COL + tl.arange(0, BLOCK_COL)
    mask = offs < cols
    acc = tl.zeros((BLOCK_R, BLOCK_COL), dtype=tl.float32)
    for r0 in range(0, rows, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        ptrs = p_ptr + r.to(tl.int64)[:, None] * cols + offs[None, :]
        acc += tl.load(ptrs, mask=(r < rows)[:, None] & mask[None, :], other=0.0)
    total = tl.sum(acc, axis=0)
    k = offs // C_out
    c = offs % C_out
    tl.store(gw_ptr + c * K + k, total.to(gw_ptr.dtype.element_ty), mask=mask & (k < K))
    if HAS_BIAS:
        tl.store(gb_ptr + c, total.to(gb_ptr.dtype.element_ty), mask=mask & (k == K))


# --------------------------------------------------------------------------------------------
# Launch plans: tile shapes picked once per shape (timed among a few candidates on the GPU),
# then cached with the grid, so later calls do no host sync and little Python.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    block_c: int
    block_l: int
    num_warps: int


@dataclass(frozen=True)
class Geometry:
    """Everything a launch depends on besides the tensors themselves."""

    layout: str
    dtype: torch.dtype
    N: int
    C_in: int
    C_out: int
    L_in: int
    L_out: int
    K: int
    stride: int
    padding: int
    dilation: int
    has_bias: bool

    @property
    def mult(self) -> int:
        return self.C_out // self.C_in

    @property
    def kc(self) -> int:
        return self.K if self.K <= MAX_UNROLL_K else 0

    def strides(self, C: int, L: int) -> tuple[int, int, int]:
        """(n, c, l) element strides of a contiguous tensor with C channels, L positions."""
        return (C * L, L, 1) if self.layout == "ncl" else (C * L, 1, C)


_PLANS: dict[tuple, tuple[Tile, tuple[int, int, int]]] = {}
_INTERPRET_TILES = {"ncl": Tile(4, 32, 4), "nlc": Tile(4, 8, 4)}


def _ncl_block_l(L: int, cap: int) -> list[int]:
    """The two L tile lengths that waste the fewest lanes on the ragged end (short tiles cost a bit)."""
    opts = [b for b in (512, 256, 128, 64, 32) if b <= cap and b <= max(32, triton.next_power_of_2(L))]
    score = {b: cdiv(L, b) * b / L - 1 + 0.03 * max(0, (128 // b).bit_length() - 1)
             for b in opts}
    return sorted(opts, key=lambda b: (score[b], -b))[:2]


def _candidates(layout: str, C: int, L: int, itemsize: int, kind: str) -> list[Tile]:
    """A few tile shapes of ~2-4K elements, long along the contiguous dimension."""
    if interpreting():
        return [_INTERPRET_TILES[layout]]
    if layout == "ncl":
        # grad_w sums each tap over L: tiles of <= 128 keep that sum inside one warp
        bls = _ncl_block_l(L, 128 if kind == "bwd_w" else 512)
        out = [Tile(max(1, 2048 // bl), bl, 4) for bl in bls]
        return out + [Tile(max(1, 4096 // bls[0]), bls[0], 8)]
    vec = 16 // itemsize  # elements per 16-byte access
    bc = min(32 * vec, triton.next_power_of_2(C))
    if kind == "bwd_w":  # long L tiles keep the partial buffer small; few warps keep sums in-warp
        bc = min(bc, 8 * vec)
        return [Tile(bc, 64, 1), Tile(bc, 128, 2), Tile(bc, max(8, 4096 // bc), 4)]
    out = [Tile(bc, max(1, 2048 // bc), 4), Tile(bc, max(1, 4096 // bc), 8)]
    if bc >= 64:
        out.append(Tile(bc // 2, 4096 // (bc // 2), 4))
    return out


_FLUSH: dict[int, tuple[torch.Tensor, float]] = {}


def _flush(device: torch.device) -> tuple[torch.Tensor, float]:
    """A buffer of twice the L2 (zeroing it evicts the L2) and the device ms one zeroing takes."""
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _FLUSH:
        from triton.testing import do_bench_cudagraph

        l2 = torch.cuda.get_device_properties(idx).L2_cache_size or 64 * 2**20
        buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device=device)
        _FLUSH[idx] = (buf, do_bench_cudagraph(buf.zero_, rep=20, return_mode="median"))
    return _FLUSH[idx]


def _device_ms(fn) -> float:
    """Median device time of fn with a cold L2, as convbench measures: CUDA-graph replays of
    (L2 flush, fn) less replays of the flush alone. Graphs keep the host's launch cost (50-100
    µs per Triton launch on the device VM) out of the choice; a warm L2 would favour plans that
    lose on data read from memory. Plain do_bench (events, L2 flushed) if capture fails."""
    from triton.testing import do_bench, do_bench_cudagraph

    try:
        buf, flush_ms = _flush(torch.device("cuda"))

        def cold():
            buf.zero_()
            fn()

        return do_bench_cudagraph(cold, rep=20, return_mode="median") - flush_ms
    except Exception:  # noqa: BLE001 - e.g. a capture already in progress; time without a graph
        torch.cuda.synchronize()
        return do_bench(fn, warmup=5, rep=20, return_mode="median")


# every candidate's tuning time, by key: what scripts/bench_depthwise_gen.py reports
TUNING_LOG: dict[tuple, list[tuple[tuple, float]]] = {}


def _timed_or_inf(launch, plan) -> float:
    """A candidate's time, or inf where it cannot run on this device (shared memory)."""
    try:
        return _device_ms(lambda: launch(*plan))
    except triton.runtime.errors.OutOfResources:
        return float("inf")


def _fastest(key, plans: list, launch):
    """Cached best of `plans` (each a tuple of launch() arguments), timed once per key."""
    hit = _PLANS.get(key)
    if hit is not None:
        return hit
    if callable(plans):  # built only on a miss: a cached call does no candidate arithmetic
        plans = plans()
    best = plans[0]
    if len(plans) > 1 and tuning_enabled():
        times = [_timed_or_inf(launch, p) for p in plans]
        best = plans[min(range(len(plans)), key=times.__getitem__)]
        TUNING_LOG[key] = list(zip(plans, times, strict=True))
    _PLANS[key] = best
    return best


def _tile_plans(kind: str, g: Geometry, C: int, L: int) -> list[tuple[Tile, tuple[int, int, int]]]:
    cands = _candidates(g.layout, C, L, g.dtype.itemsize, kind)
    return [(t, (cdiv(L, t.block_l), cdiv(C, t.block_c), g.N)) for t in cands]


def _plan(kind: str, g: Geometry, C: int, L: int, launch) -> tuple[Tile, tuple[int, int, int]]:
    """Cached (tile, grid) for this kernel and shape; on first use, time the candidates."""
    return _fastest((kind, g), _tile_plans(kind, g, C, L), launch)


# --------------------------------------------------------------------------------------------
# Long kernels on tensor cores (stride 1, K >= TOEPLITZ_MIN_K). Cut each row of one channel into
# blocks of B: output block a gets sum_t T_t x_{a-t}, where T_t is the (B, B) Toeplitz block
# T_t[b, b'] = w[b' - b - t*B + P] (zero off the taps). T_t depends on the channel and t only, so
# a program builds it once per t and applies it to BN columns (block a, batch item n) at once: a
# (B, B) x (B, BN) tensor-core product. The band costs (B + K - 1) / K of the direct conv's
# multiply-adds, which at K = 768 is compute-bound on CUDA cores (its FLOP floor is far above its
# byte floor). w is zero-padded by 2B on both sides so the T_t loads need no masks. fp32 runs as
# "tf32x3" (three TF32 products: float32 accuracy).
# --------------------------------------------------------------------------------------------

TOEPLITZ_MIN_K = 33  # K above the register-window kernels' limit (GEN_MAX_K)


@triton.jit
def depthwise_toeplitz_kernel(
    x_ptr, wp_ptr, b_ptr, y_ptr, N, L_in, L_out, Kp, P, n_cols, nb_in, t_min, t_max,
    sxn, sxc, syn, syc,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, B: tl.constexpr, BN: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """x, y: rows of unit stride along L; wp: (C, Kp) taps padded by 2B each side."""
    c = tl.program_id(1)
    col = tl.program_id(0) * BN + tl.arange(0, BN)  # column = a * N + n
    col_ok = col < n_cols
    col = tl.minimum(col, n_cols - 1)
    a = col // N
    n = col % N
    r = tl.arange(0, B)
    diag = r[None, :] - r[:, None] + P + 2 * B  # T_t[b, b'] = wp[diag - t * B]
    wb = wp_ptr + c.to(tl.int64) * Kp
    xb = x_ptr + c.to(tl.int64) * sxc + n.to(tl.int64)[None, :] * sxn
    # the diagonals t whose blocks hold taps and meet an input block a - t of this tile
    a_lo = (tl.program_id(0) * BN) // N
    a_hi = tl.minimum(tl.program_id(0) * BN + BN - 1, n_cols - 1) // N
    acc = tl.zeros((B, BN), dtype=tl.float32)
    for t in range(tl.maximum(t_min, a_lo - nb_in + 1), tl.minimum(t_max, a_hi) + 1):
        A = tl.load(wb + (diag - t * B))
        j = ((a - t) * B)[None, :] + r[:, None]
        X = tl.load(xb + j, mask=(j >= 0) & (j < L_in), other=0.0)
        if UPCAST:  # the interpreter (Triton 3.9 here) gets bfloat16 dots wrong
            A, X = A.to(tl.float32), X.to(tl.float32)
        else:
            A = A.to(X.dtype)
        acc = tl.dot(A, X, acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + c).to(tl.float32)
    lo = (a * B)[None, :] + r[:, None]
    yp = y_ptr + c.to(tl.int64) * syc + n.to(tl.int64)[None, :] * syn + lo
    tl.store(yp, acc.to(y_ptr.dtype.element_ty), mask=(lo < L_out) & col_ok[None, :])


def _uses_toeplitz(g: Geometry) -> bool:
    return (g.stride == 1 and g.dilation == 1 and g.mult == 1 and g.K >= TOEPLITZ_MIN_K)


def _toeplitz_plans(N: int) -> list[tuple]:
    """("toeplitz", B, BN, warps, stages): block length, columns (block, batch item) per program."""
    if interpreting():
        return [("toeplitz", 16, 16, 4, 1)]
    return [("toeplitz", b, bn, w, 3) for b, bn, w in
            ((64, 128, 4), (64, 128, 8), (64, 64, 4), (128, 64, 8), (32, 128, 4))]


def _toeplitz_launch(g: Geometry, src, w, bias, dst, L_in: int, L_out: int, P: int, flip: bool):
    """launch(plan) for dst = the long-K conv of src ((N, C, L) contiguous, or (N, L, C): then
    through (N, C, L) copies, which cost less than strided tensor-core operands)."""
    C, N, K = g.C_out, g.N, g.K
    prec = "tf32x3" if g.dtype == torch.float32 else "ieee"
    taps = w.flip(-1) if flip else w

    def launch(tag, B, bn, warps, stages):
        s, d = src, dst
        if g.layout != "ncl":
            s = src.permute(0, 2, 1).contiguous()
            d = torch.empty((N, C, L_out), device=dst.device, dtype=dst.dtype)
        wp = torch.nn.functional.pad(taps, (2 * B, 2 * B))
        nb_out, nb_in = cdiv(L_out, B), cdiv(L_in, B)
        t_min, t_max = -((K + B - 2 - P) // B), (B - 1 + P) // B
        depthwise_toeplitz_kernel[(cdiv(nb_out * N, bn), C)](
            s, wp, bias if bias is not None else w, d, N, L_in, L_out, K + 4 * B, P,
            nb_out * N, nb_in, t_min, t_max, C * L_in, L_in, C * L_out, L_out,
            HAS_BIAS=bias is not None, PRECISION="ieee" if interpreting() else prec,
            B=B, BN=bn, UPCAST=interpreting(), num_warps=warps, num_stages=stages,
        )
        if g.layout != "ncl":
            dst.copy_(d.permute(0, 2, 1))

    return launch


def _with_toeplitz(key, g: Geometry, tile_plans, tile_launch, toeplitz_launch):
    """Tuned launch over the tile kernels and the tensor-core (Toeplitz) kernel."""
    plans = _toeplitz_plans(g.N) + ([] if interpreting() else tile_plans)

    def run(*plan):
        return toeplitz_launch(*plan) if plan[0] == "toeplitz" else tile_launch(*plan)

    run(*_fastest(key, plans, run))


# --------------------------------------------------------------------------------------------
# Register-window kernels (``_dw_codegen``): stride 1, dilation 1, one output channel per input
# channel, K <= GEN_MAX_K. Everything else takes the tile kernels above.
# --------------------------------------------------------------------------------------------

GEN_MAX_K = 32
_SMS: dict[int, int] = {}


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 2
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _SMS:
        _SMS[idx] = torch.cuda.get_device_properties(idx).multi_processor_count
    return _SMS[idx]


@functools.cache
def _gen_kernel(kind: str, *params):
    """The generated kernel for (kind, params), built and imported once per process."""
    source = {"ncl_fwd": gen.ncl_forward_source, "nlc_fwd": gen.nlc_forward_source,
              "ncl_w": gen.ncl_grad_w_source, "nlc_w": gen.nlc_grad_w_source}[kind]
    return gen.load(source(*params))


# (N, C, L) group widths: 4 elements (16 bytes in fp32, 8 in 16-bit types), or for 16-bit types
# 8 elements loaded as four int32 words and unpacked with shifts ("packed"). Splitting 8 16-bit
# elements directly lost everywhere: Triton moves them through shared memory
# (notes/depthwise_kernel.md).
NCL_V = 4
PACKED = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def _ncl_fits(N: int, C: int, L_in: int, L_out: int, V: int = NCL_V) -> bool:
    """Both (N, C, L) tensors end on a group boundary (edge tiles mask whole groups)."""
    return (N * C * L_in) % V == 0 and (N * C * L_out) % V == 0


def _ncl_packed(dtype, N, C, L_in, L_out, padding, x) -> str | None:
    """The packed kind when 8-element word groups can run here: 16-bit data, rows aligned to y,
    both tensors a whole number of groups, x viewable as int32 words."""
    kind = PACKED.get(dtype)
    if kind is None or not _ncl_anchor(L_in, L_out, padding, 8)[0]:
        return None
    if not _ncl_fits(N, C, L_in, L_out, 8) or x.data_ptr() % 4:
        return None
    return kind


def _as_words(t):
    """A contiguous 16-bit tensor as flat int32 words (two elements each)."""
    return t.view(-1).view(torch.int32)


def _uses_gen(g: Geometry) -> bool:
    if not (g.stride == 1 and g.dilation == 1 and g.mult == 1 and g.K <= GEN_MAX_K):
        return False
    return g.layout == "nlc" or _ncl_fits(g.N, g.C_in, g.L_in, g.L_out)


def _ncl_anchor(L_in: int, L_out: int, padding: int, V: int = NCL_V) -> tuple[bool, int, int]:
    """(anchor_y, S, largest row offset m). Rows start on y's group grid when x and y rows
    shift alike (vector stores); else on x's. m is 0 when the row length is a multiple of V."""
    anchor_y = (L_in - L_out) % V == 0
    S = (-padding) % V if anchor_y else 0
    row = L_out if anchor_y else L_in
    m_max = (0 if anchor_y else (-padding) % V) if row % V == 0 else V - 1
    return anchor_y, S, m_max


def _nlc_vpt(itemsize: int, K: int, grad_w: bool) -> int:
    """Channels per thread: a 16-byte vector unless the K weights and window would spill."""
    vpt = 16 // itemsize
    budget = 64 if grad_w else 96  # fp32 registers for weights/accumulators + window
    while vpt > 1 and vpt * (2 * K + 8) > budget * 2:
        vpt //= 2
    return vpt


def _nlc_block(C: int, vpt: int, warps: int) -> tuple[int, int]:
    """(BLOCK_C, num_warps): vpt channels per thread, up to `warps` warps, no more than C needs."""
    block = min(triton.next_power_of_2(C), 32 * vpt * warps)
    return block, max(1, block // (32 * vpt))


def _ncl_tiles(L: int, V: int = NCL_V) -> list[tuple[int, int]]:
    """(BLOCK_C, G) candidates: G groups of V along L, 1 or 2 groups per thread (128 threads;
    adding 4 per thread left the forward times unchanged: notes/depthwise_kernel.md)."""
    Gs = [G for G in (32, 16, 8) if G * V <= max(8 * V, triton.next_power_of_2(L + V))][:2]
    return [(max(1, 128 * pt // G), G) for G in Gs for pt in (1, 2)]


def _gen_conv(layout: str, dtype: torch.dtype, N: int, C: int, L_in: int, L_out: int, K: int,
              padding: int, flip: bool, x, w, bias, y):
    """(candidate plans as a function, launch, prepare) for y = depthwise conv of x (stride 1)
    with w (C, K), taps flipped if `flip` (grad_x). launch(*plan) runs a plan on these tensors;
    prepare(*plan) does all the plan's arithmetic once and returns go(x, w, bias, y), a launch
    for any tensors of this geometry and alignment (what _READY caches)."""
    has_bias = bias is not None
    if layout == "ncl":
        packed = _ncl_packed(dtype, N, C, L_in, L_out, padding, x)

        def prepare(block_c, G, warps, V, nb, split):
            kind = packed if V == 8 else None
            if V == 8 and kind is None:  # tuned on packable data, called on data that is not
                V = NCL_V
            anchor_y, S, m_max = _ncl_anchor(L_in, L_out, padding, V)
            split = split and anchor_y
            kern = _gen_kernel("ncl_fwd", K, V, S, flip, anchor_y, kind, split)
            # split edges: one more program column for each row's edge groups
            grid = (cdiv(L_out + m_max, G * V) + split, cdiv(C, block_c), cdiv(N, nb))
            total_x = N * C * L_in // (2 if kind else 1)
            consts = dict(HAS_BIAS=has_bias, BLOCK_C=block_c, G=G, EDGE=int(split),
                          EG=gen.ncl_edge_groups(K, V, padding, L_in, L_out), num_warps=warps)
            launcher = kern[grid]

            def go(x, w, bias, y):
                xs, yw = (_as_words(x), _as_words(y)) if kind else (x, y)
                launcher(xs, w, bias if has_bias else w, y, yw, N, C, L_in, L_out, padding,
                         total_x, **consts)
            return go
    else:
        def prepare(vpt, R, warps):
            block_c, nw = _nlc_block(C, vpt, warps)
            launcher = _gen_kernel("nlc_fwd", K, R, flip)[(cdiv(L_out, R), cdiv(C, block_c), N)]

            def go(x, w, bias, y):
                launcher(x, w, bias if has_bias else w, y, C, L_in, L_out, padding,
                         HAS_BIAS=has_bias, BLOCK_C=block_c, num_warps=nw)
            return go

    def launch(*plan):
        prepare(*plan)(x, w, bias, y)

    Vs = _ncl_widths(packed) if layout == "ncl" else ()
    return lambda: _gen_conv_plans(layout, dtype, N, L_out, K, Vs), launch, prepare


def _ncl_widths(packed: str | None) -> tuple[int, ...]:
    """Group widths to tune over: packed 8-element word groups where the data allows, and 4."""
    return (8, NCL_V) if packed else (NCL_V,)


# The interpreter runs one candidate (nothing to time on the CPU): the tile kernel with the
# edge program ("split") or without it ("nosplit"), as the tests choose.
INTERPRETER_NCL = "split"


def _gen_conv_plans(layout, dtype, N, L_out, K, Vs) -> list[tuple]:
    if layout == "ncl":
        if interpreting():
            return [(4, 64 // Vs[0], 1, Vs[0], 2, INTERPRETER_NCL == "split")]
        # nb: batch items per program (each loads its rows' K weights once for all of them);
        # split: inner tiles + an edge program, or edge tiles with masks (short rows)
        cands = [(bc, G, 4, V, nb, split) for V in Vs for bc, G in _ncl_tiles(L_out, V)
                 for nb in ((1, 4) if N > 1 else (1,)) for split in (True, False)]
    elif interpreting():
        cands = [(2, 4, 1)]
    else:
        vpt = _nlc_vpt(dtype.itemsize, K, False)
        Rs = (4, 8, 16) if K <= 16 else (16, 32)
        cands = [(vpt, R, 4) for R in Rs] + [(max(1, vpt // 2), R, 4) for R in Rs[-1:] + (2 * Rs[-1],)]
    return cands


def _with_tiles(gen_plans, gen_launch, tile_plans, tile_launch, layout: str):
    """One candidate list over both kernel families. In (N, C, L) the tile kernels stay in the
    running: on rows shorter than two tiles every generated tile is an edge tile."""
    def plans():
        out = [("gen", *p) for p in gen_plans()]
        if layout == "ncl" and not interpreting():
            out += [("tile", *p) for p in tile_plans()]
        return out

    def launch(tag, *plan):
        return gen_launch(*plan) if tag == "gen" else tile_launch(*plan)

    return plans, launch


def _gen_grad_w(g: Geometry, x, gy, w_dtype):
    """Per-program partial sums over (n, L-tile) items in registers, then the row reduce.

    Programs = channel blocks x splits; each split loops over its share of the N x L-tile
    items. More splits mean more programs in flight (latency hiding) and a larger partial
    buffer for the reduce; the split factor is tuned with the tile."""
    key = ("w", g, _align(x), _align(gy))
    go = _READY.get(key)
    if go is not None:
        p, n_split = go(x, gy)
        return _reduce_partials(g, p, n_split, w_dtype, x.device)
    C, K = g.C_out, g.K
    sms = _sm_count(x.device)

    packed = (_ncl_packed(g.dtype, g.N, C, g.L_in, g.L_out, g.padding, x)
              if g.layout == "ncl" and gy.data_ptr() % 4 == 0 else None)

    def cands_fn():
        return _gen_grad_w_plans(g, _ncl_widths(packed))

    def split(n_items: int, n_cb: int, spf: int) -> int:
        return max(1, min(n_items, cdiv(spf * sms, n_cb)))

    def prepare(*plan):
        if g.layout == "ncl":
            block_c, G, warps, spf, V = plan
            kind = packed if V == 8 else None
            if V == 8 and kind is None:
                V = NCL_V
            anchor_y, S, m_max = _ncl_anchor(g.L_in, g.L_out, g.padding, V)
            kern = _gen_kernel("ncl_w", K, V, S, anchor_y, kind)
            n_lt = cdiv(g.L_out + m_max, G * V)
            n_cb = cdiv(C, block_c)
        else:
            vpt, R, warps, spf = plan
            block_c, warps = (2, 1) if interpreting() else _nlc_block(C, vpt, warps)
            kern = _gen_kernel("nlc_w", K, R)
            n_lt = cdiv(g.L_out, R)
            n_cb = cdiv(C, block_c)
        n_items = g.N * n_lt
        n_split = split(n_items, n_cb, spf)
        launcher = kern[(n_cb, n_split)]
        div = 2 if g.layout == "ncl" and kind else 1
        totals = (g.N * C * g.L_in // div, g.N * C * g.L_out // div)

        def go(x, gy):
            p = torch.empty((n_split, K + 1, C), device=x.device, dtype=torch.float32)
            if g.layout == "ncl":
                xs, gs = (_as_words(x), _as_words(gy)) if kind else (x, gy)
                launcher(xs, gs, p, C, g.L_in, g.L_out, g.padding, *totals, n_lt, n_items,
                         n_split, BLOCK_C=block_c, G=G, num_warps=warps)
            else:
                launcher(x, gy, p, C, g.L_in, g.L_out, g.padding, n_lt, n_items, n_split,
                         BLOCK_C=block_c, num_warps=warps)
            return p, n_split
        return go

    def launch(*plan):
        return prepare(*plan)(x, gy)

    plan = _fastest(("gen_w", g), cands_fn, launch)
    go = _READY[key] = prepare(*plan)
    p, n_split = go(x, gy)
    return _reduce_partials(g, p, n_split, w_dtype, x.device)


def _gen_grad_w_plans(g: Geometry, Vs: tuple[int, ...]) -> list[tuple]:
    K = g.K
    if g.layout == "ncl":
        if interpreting():
            return [(4, 64 // Vs[0], 1, 4, Vs[0])]
        # every tile shape, three split factors: dtts_dec_b19 fp32 grad_w took 43 us of a 121 us
        # fwd+bwd on the first two tiles (session 3)
        cands = [(bc, G, 4, spf, V) for V in Vs for bc, G in _ncl_tiles(g.L_out, V)
                 for spf in (4, 8, 16)]
    elif interpreting():
        cands = [(1, 4, 1, 4)]
    else:
        vpt = _nlc_vpt(g.dtype.itemsize, K, True)
        R = 8 if K <= 16 else 4
        cands = [(vpt, R, 2, spf) for spf in (4, 16)] + [(max(1, vpt // 2), R, 2, 8)]
    return cands


def _reduce_partials(g: Geometry, p, rows: int, w_dtype, device):
    gw = torch.empty((g.C_out, 1, g.K), device=device, dtype=w_dtype)
    gb = torch.empty((g.C_out,), device=device, dtype=w_dtype) if g.has_bias else None
    cols = (g.K + 1) * g.C_out
    block_r = 1 if interpreting() else min(32, triton.next_power_of_2(rows))
    block_col = 128
    depthwise_bwd_w_reduce_kernel[(cdiv(cols, block_col),)](
        p, gw, gb if gb is not None else gw, rows, g.C_out, g.K,
        HAS_BIAS=g.has_bias, BLOCK_R=block_r, BLOCK_COL=block_col, num_warps=4,
    )
    return gw, gb


def _geometry(x, weight, bias, stride, padding, dilation, layout) -> Geometry:
    N, C_in, L = split_layout(x, layout)
    C_out, one, K = weight.shape
    if one != 1 or C_out % C_in:
        raise ValueError(f"weight {tuple(weight.shape)} is not depthwise for C_in={C_in}")
    if stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(f"bad stride={stride!r}, dilation={dilation!r} or padding={padding!r}")
    L_out = (L + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    if L_out < 1:
        raise ValueError(f"L_out={L_out} < 1")
    return Geometry(layout, x.dtype, N, C_in, C_out, L, L_out, K, stride, padding, dilation,
                    bias is not None)


# (kernel, geometry, data alignment) -> go(...): the tuned generated-kernel launch with all its
# arithmetic done, so a repeated call costs a dict lookup, an allocation and the launch
_READY: dict[tuple, object] = {}


def reset_plans() -> None:
    """Forget every tuned plan and ready launch (benchmarks that re-tune, tests of variants)."""
    _PLANS.clear()
    _READY.clear()


def _align(t) -> int:
    """What of a tensor's address can change a launch: 16-byte alignment (and word alignment,
    which decides whether 16-bit data can be read as int32 words)."""
    return t.data_ptr() % 16


def _tuned_gen(kind: str, g: Geometry, conv: tuple, src, w, bias, dst, tile_launch,
               tile_CL: tuple[int, int]) -> None:
    """dst = the generated conv of src (conv = (C, L_in, L_out, padding, flip)) or, where the
    tuner prefers them, the tile kernels; the tuned generated launch is kept in _READY."""
    gen_plans, gen_launch, prepare = _gen_conv(g.layout, g.dtype, g.N, conv[0], conv[1], conv[2],
                                               g.K, conv[3], conv[4], src, w, bias, dst)
    plans, run = _with_tiles(gen_plans, gen_launch, lambda: _tile_plans(kind, g, *tile_CL),
                             tile_launch, g.layout)
    plan = _fastest((f"{kind}_any", g), plans, run)
    run(*plan)
    if plan[0] == "gen":
        _READY[(kind, g, _align(src))] = prepare(*plan[1:])


def _forward(g: Geometry, x, w, bias):
    """x contiguous in g.layout, w: (C_out, K) contiguous. Returns y contiguous in g.layout."""
    shape = (g.N, g.C_out, g.L_out) if g.layout == "ncl" else (g.N, g.L_out, g.C_out)
    y = torch.empty(shape, device=x.device, dtype=x.dtype)
    go = _READY.get(("fwd", g, _align(x)))
    if go is not None:
        go(x, w, bias, y)
        return y
    sx, sy = g.strides(g.C_in, g.L_in), g.strides(g.C_out, g.L_out)

    def launch(t: Tile, grid):
        depthwise_fwd_kernel[grid](
            x, w, bias if bias is not None else w, y,
            g.C_out, g.L_in, g.L_out, g.K, g.mult, *sx, *sy, g.stride, g.padding, g.dilation,
            HAS_BIAS=g.has_bias, KC=g.kc, EVEN_C=g.C_out % t.block_c == 0,
            BLOCK_C=t.block_c, BLOCK_L=t.block_l, UNROLL=LONG_K_UNROLL, num_warps=t.num_warps,
        )

    if _uses_gen(g):
        _tuned_gen("fwd", g, (g.C_out, g.L_in, g.L_out, g.padding, False), x, w, bias, y, launch,
                   (g.C_out, g.L_out))
        return y
    if _uses_toeplitz(g):
        _with_toeplitz(("fwd", g), g, _tile_plans("fwd", g, g.C_out, g.L_out), launch,
                       _toeplitz_launch(g, x, w, bias, y, g.L_in, g.L_out, g.padding, False))
        return y
    launch(*_plan("fwd", g, g.C_out, g.L_out, launch))
    return y


def _grad_x(g: Geometry, gy, w):
    shape = (g.N, g.C_in, g.L_in) if g.layout == "ncl" else (g.N, g.L_in, g.C_in)
    gx = torch.empty(shape, device=gy.device, dtype=g.dtype)
    go = _READY.get(("bwd_x", g, _align(gy)))
    if go is not None:
        go(gy, w, None, gx)
        return gx
    sg, sx = g.strides(g.C_out, g.L_out), g.strides(g.C_in, g.L_in)

    def launch(t: Tile, grid):
        depthwise_bwd_x_kernel[grid](
            gy, w, gx, g.C_in, g.L_in, g.L_out, g.K, g.mult, *sg, *sx,
            g.stride, g.padding, g.dilation,
            KC=g.kc, EVEN_C=g.C_in % t.block_c == 0,
            BLOCK_C=t.block_c, BLOCK_L=t.block_l, UNROLL=LONG_K_UNROLL, num_warps=t.num_warps,
        )

    if _uses_gen(g):  # stride 1: grad_x is the forward conv of gy with the taps flipped
        _tuned_gen("bwd_x", g, (g.C_in, g.L_out, g.L_in, g.K - 1 - g.padding, True), gy, w, None,
                   gx, launch, (g.C_in, g.L_in))
        return gx
    if _uses_toeplitz(g):  # the same flipped conv on tensor cores
        _with_toeplitz(("bwd_x", g), g, _tile_plans("bwd_x", g, g.C_in, g.L_in), launch,
                       _toeplitz_launch(g, gy, w, None, gx, g.L_out, g.L_in, g.K - 1 - g.padding, True))
        return gx
    launch(*_plan("bwd_x", g, g.C_in, g.L_in, launch))
    return gx


def _grad_w(g: Geometry, x, gy, w_dtype):
    """Two stages: per-(row, tap, channel) partial sums, then one reduce over rows."""
    if _uses_gen(g):
        return _gen_grad_w(g, x, gy, w_dtype)
    sx, sg = g.strides(g.C_in, g.L_in), g.strides(g.C_out, g.L_out)
    bufs = {}

    def launch(t: Tile, grid):
        rows = g.N * grid[0]
        p = bufs.get(rows)
        if p is None:
            p = bufs[rows] = torch.empty((rows, g.K + 1, g.C_out), device=x.device,
                                         dtype=torch.float32)
        depthwise_bwd_w_kernel[grid](
            x, gy, p, g.C_out, g.L_in, g.L_out, g.K, g.mult, grid[0], *sx, *sg,
            g.stride, g.padding, g.dilation,
            HAS_BIAS=g.has_bias, KC=g.kc, EVEN_C=g.C_out % t.block_c == 0,
            BLOCK_C=t.block_c, BLOCK_L=t.block_l, UNROLL=LONG_K_UNROLL, num_warps=t.num_warps,
        )
        return p, rows

    tile, grid = _plan("bwd_w", g, g.C_out, g.L_out, launch)
    p, rows = launch(tile, grid)
    return _reduce_partials(g, p, rows, w_dtype, x.device)


class DepthwiseConv1dFn(torch.autograd.Function):
    """Autograd wrapper: forward, grad_x (gather kernel) and grad_w/grad_b (two-stage reduce)."""

    @staticmethod
    def forward(ctx, x, weight, bias, g: Geometry):
        w = weight.reshape(g.C_out, g.K).contiguous()
        ctx.save_for_backward(x, w)
        ctx.geometry = g
        ctx.w_dtype = weight.dtype
        return _forward(g, x, w, bias)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        g = ctx.geometry
        gy = gy.contiguous()
        gx = _grad_x(g, gy, w) if ctx.needs_input_grad[0] else None
        gw = gb = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gw, gb = _grad_w(g, x, gy, ctx.w_dtype)
        return gx, gw, gb, None


def depthwise_conv1d(x, weight, bias, stride=1, padding=0, dilation=1, layout="ncl"):
    """Depthwise Conv1d, differentiable in x, weight and bias.

    x: (N, C_in, L) for layout "ncl" or (N, L, C_in) for "nlc"; weight: (C_out, 1, K) with
    C_out a multiple of C_in; bias: (C_out,) or None. Returns y in x's layout, contiguous.
    """
    g = _geometry(x, weight, bias, stride, padding, dilation, layout)
    x = x.contiguous()
    if torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return DepthwiseConv1dFn.apply(x, weight, bias, g)
    return _forward(g, x, weight.reshape(g.C_out, g.K).contiguous(), bias)


_PLAN_FIELDS = {  # the launch() arguments of each generated-kernel plan, by (layout, kind)
    ("ncl", "gen"): ("block_c", "G", "warps", "V", "nb", "split"),
    ("ncl", "toeplitz"): ("B", "BN", "warps", "stages"),
    ("nlc", "toeplitz"): ("B", "BN", "warps", "stages"),
    ("nlc", "gen"): ("vpt", "R", "warps"),
    ("ncl", "gen_w"): ("block_c", "G", "warps", "spf", "V"),
    ("nlc", "gen_w"): ("vpt", "R", "warps", "spf"),
}


def _describe(layout: str, kind: str, plan: tuple) -> str:
    if isinstance(plan[0], Tile):  # (Tile, grid)
        t = plan[0]
        return f"tile(block_c={t.block_c}, block_l={t.block_l}, warps={t.num_warps})"
    if plan[0] == "tile":
        return _describe(layout, kind, plan[1:])
    if plan[0] == "gen":
        kind, plan = "gen", plan[1:]
    if plan[0] == "toeplitz":
        kind, plan = "toeplitz", plan[1:]
    names = _PLAN_FIELDS[(layout, kind)]
    return f"{kind}(" + ", ".join(f"{n}={v}" for n, v in zip(names, plan, strict=True)) + ")"


def plan_of(g: Geometry) -> str:
    """The tuned launch plan of each kernel of geometry g, e.g. "fwd=gen(block_c=8, G=32, ...);
    gen_w=gen_w(...)": kernel family and tile (empty before the first call)."""
    return "; ".join(f"{kind.removesuffix('_any')}={_describe(g.layout, kind, plan)}"
                     for (kind, key), plan in _PLANS.items() if key == g)


def _builder(layout):
    def build(p, inp):
        x, w, b = inp.x, inp.weight, inp.bias
        g = _geometry(x, w, b, p.stride, p.padding, p.dilation, layout)

        def run():
            return depthwise_conv1d(x, w, b, p.stride, p.padding, p.dilation, layout)

        run.plan = lambda: plan_of(g)
        return run

    return build


for _layout, _name in (("ncl", "triton"), ("nlc", "triton_nlc")):
    register(Impl(
        name=_name, op="depthwise", layout=_layout, build=_builder(_layout),
        modes=("fwd", "fwd_bwd"), requires=("triton",), supports=device_reason,
        description=(
            f"Triton tiled depthwise kernels on ({'N,C,L' if _layout == 'ncl' else 'N,L,C'}) "
            "storage: forward, gather grad_x, two-stage grad_w"
        ),
    ))
