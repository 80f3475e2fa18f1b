"""(N, C, L) depthwise forward in Gluon, the rows staged in shared memory by TMA.

Why (session 15): on rows whose length is not a multiple of the 16-byte vector (FastConformer's
209, DelightfulTTS's 517) every row of x starts at its own alignment. The register-window kernels
of `_dw_codegen` anchor their vector loads to the global 16-byte grid, so each row needs its own
window shift, and every tile of a 209-long row takes the masked path: about 42 thread instructions
an output, instruction-bound (session 9's ncu, notes/depthwise_kernel.md).

Here the TMA unit copies row tiles into shared memory at a fixed, aligned place whatever their
alignment in global memory, and every program reads the same aligned 16-byte vectors back.
- x is viewed as (R / SR, SR * L_in) (R = N * C rows): SR rows make a "super-row" whose length is
  a multiple of 16 bytes, as a TMA stride must be. One box [CR, TL] at column q * L_in + col copies
  row q of CR consecutive super-rows. A program owns CR super-rows (SR * CR rows) and TL outputs of
  each row.
- Window group m (the V elements m * V after an output group's first tap) is the same tile shifted
  by m * V elements. Gluon cannot slice shared memory at an offset that is not a multiple of the
  slice, so the TMA copies the tile once for each of the NWIN window groups: DRAM reads it once,
  the other copies come from L2.
- Each thread loads its V-element group of every copy (one 16-byte vector each), splits them into
  per-element tensors and forms all K taps from registers, in float32.
- The copied columns outside a row hold the neighbouring rows (or the TMA's zeros past the
  tensor). Tiles that reach a row's end zero those window elements (a select; the same mask for
  every row of the program); interior tiles skip it.
- y's rows are as unaligned as x's: with CONVERT the tile is stored through a layout in which a
  warp stores consecutive elements (element stores that fill whole sectors); otherwise each thread
  stores its V outputs as one vector.

Stride 1, dilation 1, one channel per group; bias fused. Gluon has no CPU interpreter: the tests
compile the generated kernels for sm_90; correctness is checked on the GPU (scripts/dw_tma_probe.py
and the GPU correctness matrix)."""

from __future__ import annotations

from dataclasses import dataclass

from . import _dw_codegen as gen

HEADER = """import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma

# triton 3.9 renamed the TMA copies and made the old names raise; 3.6 has only the old ones
_tma_load = tma.async_load if hasattr(tma, "async_load") else tma.async_copy_global_to_shared


"""


def _reinterpret_name() -> str:
    """triton 3.6 names it `_reinterpret`; 3.9 `reinterpret` (and has no `_reinterpret`)."""
    try:
        from triton.experimental.gluon.language import shared_memory_descriptor
    except ImportError:
        return "_reinterpret"
    return "reinterpret" if hasattr(shared_memory_descriptor, "reinterpret") else "_reinterpret"


_REINTERPRET = _reinterpret_name()


def _halo(K: int, V: int) -> int:
    """Window columns past the tile: the last group's window reaches (K - 1) elements further,
    read as whole V-element groups."""
    return -(-(K - 1) // V) * V


def _split(s, ind: int, src: str, V: int) -> list[str]:
    """Split `src` (BR, TL) into V tensors (BR, TL // V): element i of each V-group."""
    levels = V.bit_length() - 1
    shape = ", ".join(["CR", "G"] + ["2"] * levels)
    s(ind, f"{src} = gl.reshape({src}, [{shape}])")
    names = [src]
    for _ in range(levels):
        nxt = []
        for n in names:
            s(ind, f"{n}_0, {n}_1 = gl.split({n})")
            nxt += [f"{n}_0", f"{n}_1"]
        names = nxt
    # after splitting the last axis first, name "src_b0_b1_b2" holds element b0 + 2 b1 + 4 b2
    # (the last axis is the lowest bit of the element index)
    out = [""] * V
    for n in names:
        bits = [int(b) for b in n[len(src) + 1:].split("_")]
        out[sum(b << j for j, b in enumerate(bits))] = n
    return out


def _join(names: list[str]) -> str:
    """Inverse of _split's naming: one expression of shape (BR, G, 2, ..., 2)."""
    if len(names) == 1:
        return names[0]
    return f"gl.join({_join(names[0::2])}, {_join(names[1::2])})"


def class_shift(q: int, L_in: int, padding: int, VA: int) -> int:
    """Row class q's window starts this many elements past a 16-byte boundary (VA elements):
    its TMA boxes start that much earlier, so that their coordinates are aligned (the TMA unit
    faults on others: illegal instruction, H200, session 15)."""
    return (q * L_in - padding) % VA


def _fixups(K: int, V: int, VA: int, SR: int, shifts: list[int], nw: int, L_in: int, PAD: int, PR: int, TL: int,
            n_lt: int) -> dict[int, list[tuple[int, int, int, int]]]:
    """Per row tile t, the shared-memory blocks (buffer, first column, ZW-wide block mask lo, hi)
    whose columns hold x positions outside the row that valid outputs read ([-PAD, 0) and
    [L_in, L_in + PR)): the TMA copied other rows (or zeros) there."""
    out: dict[int, list] = {}
    zones = [(-PAD, 0), (L_in, L_in + PR)]
    for t in range(n_lt):
        blocks = []
        for q in range(SR):
            for m in range(nw):
                p0 = t * TL - PAD - shifts[q] + m * V  # x position of column 0
                for lo, hi in zones:
                    c_lo, c_hi = max(lo - p0, 0), min(hi - p0, TL)
                    for b0 in range(c_lo - c_lo % VA, c_hi, VA):
                        if c_lo < c_hi:
                            blocks.append((m * SR + q, b0, max(c_lo, b0) - b0, min(c_hi, b0 + VA) - b0))
        if blocks:
            out[t] = blocks
    return out


def ncl_tma_source(K: int, V: int, VA: int, SR: int, L_in: int, L_out: int, PAD: int, TL: int,
                   flip: bool = False) -> str:
    """The kernel for one shape and plan geometry: K taps, V-element groups, VA elements in 16
    bytes, SR row classes, rows of L_in inputs and L_out outputs, row tiles of TL
    (flip: grad_x's flipped taps)."""
    name = "depthwise_ncl_tma_" + ("gx" if flip else "fwd") + "_kernel"
    PR = K - 1 - PAD
    shifts = [class_shift(q, L_in, PAD, VA) for q in range(SR)]
    nwq = [(V + K - 2 + sh) // V + 1 for sh in shifts]
    nw = max(nwq)
    n_lt = -(-L_out // TL)
    s = gen._Src()
    s(0, "@gluon.jit")
    s(0, f"def {name}(x_desc, w_ptr, b_ptr, y_ptr, C, RS, HAS_BIAS: gl.constexpr, CR: gl.constexpr,")
    s(0, "        TR: gl.constexpr, TG: gl.constexpr, W: gl.constexpr, CONVERT: gl.constexpr):")
    s(1, f"V: gl.constexpr = {V}")
    s(1, f"TL: gl.constexpr = {TL}")
    s(1, f"SR: gl.constexpr = {SR}")
    s(1, f"L_in: gl.constexpr = {L_in}")
    s(1, f"L_out: gl.constexpr = {L_out}")
    s(1, "G: gl.constexpr = TL // V")
    s(1, "BL2: gl.constexpr = gl.BlockedLayout([1, V], [TR, TG], [W, 1], [1, 0])")
    s(1, "BLC: gl.constexpr = gl.BlockedLayout([1, 1], [TR, TG], [W, 1], [1, 0])")
    s(1, "BLS: gl.constexpr = gl.BlockedLayout([1, 1], [1, 32], [W, 1], [1, 0])")
    s(1, f"BLZ: gl.constexpr = gl.BlockedLayout([1, {VA}], [32, 1], [W, 1], [1, 0])")
    s(1, "PLAIN: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])")
    s(1, "pid = gl.program_id(0)")
    s(1, f"pid_r = pid // {n_lt}")
    s(1, f"pid_l = pid - pid_r * {n_lt}")
    s(1, "a0 = pid_r * CR")
    s(1, "l0 = pid_l * TL")
    # x viewed as (RS, SR * L_in); buf[m * SR + q][i][c] = x[row SR * (a0 + i) + q,
    # l0 - PAD - shift_q + m * V + c]
    s(1, f"buf = gl.allocate_shared_memory(x_desc.dtype, [{nw * SR}, CR, TL], x_desc.layout)")
    s(1, "bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())")
    s(1, "mbarrier.init(bar, count=1)")
    s(1, f"mbarrier.expect(bar, {nw * SR} * x_desc.block_type.nbytes)")
    for q in range(SR):
        for m in range(nw):
            s(1, f"_tma_load(x_desc, [a0, l0 + {q * L_in - PAD - shifts[q] + m * V}], bar, buf.index({m * SR + q}))")
    s(1, "ai = a0 + gl.arange(0, CR, layout=gl.SliceLayout(1, BLC))")
    s(1, "amask = ai < RS")
    s(1, "ch0 = (ai * SR) % C")
    s(1, "if CONVERT:")
    s(2, "SL: gl.constexpr = BLS")
    s(1, "else:")
    s(2, "SL: gl.constexpr = BL2")
    s(1, "ais = a0 + gl.arange(0, CR, layout=gl.SliceLayout(1, SL))")
    s(1, "js = l0 + gl.arange(0, TL, layout=gl.SliceLayout(0, SL))")
    s(1, "ms = gl.expand_dims(ais < RS, 1) & gl.expand_dims(js < L_out, 0)")
    s(1, "yrow = y_ptr + ais * (SR * L_out)")
    s(1, "mbarrier.wait(bar, 0)")
    s(1, f"xs = buf.{_REINTERPRET}(x_desc.dtype, [{nw * SR}, CR, TL], PLAIN)")
    # zero the columns that hold other rows' elements, where valid outputs read them
    fix = _fixups(K, V, VA, SR, shifts, nw, L_in, PAD, PR, TL, n_lt)
    if fix:
        s(1, f"zc = gl.expand_dims(gl.arange(0, {VA}, layout=gl.SliceLayout(0, BLZ)), 0)")
        for t, blocks in fix.items():
            # every block loaded before any is stored: one barrier between, not one a block
            s(1, f"if pid_l == {t}:")
            for j, (buf_i, b0, lo, hi) in enumerate(blocks):
                s(2, f"z{j} = gl.where((zc >= {lo}) & (zc < {hi}), 0.0, "
                     f"xs.index({buf_i}).slice({b0}, {VA}, dim=1).load(BLZ).to(gl.float32)).to(x_desc.dtype)")
            for j, (buf_i, b0, _lo, _hi) in enumerate(blocks):
                s(2, f"xs.index({buf_i}).slice({b0}, {VA}, dim=1).store(z{j})")
        s(1, "gl.thread_barrier()")
    for q in range(SR):
        sh = shifts[q]
        s(1, f"# row class {q}: window shift {sh}")
        s(1, f"ch = ch0 + {q}")
        s(1, "ch = gl.where(ch >= C, ch - C, ch)")
        for k in range(K):
            s(1, f"w{k} = gl.expand_dims(gl.load(w_ptr + ch * {K} + {gen._wk(k, K, flip)}, mask=amask, other=0.0)"
                 ".to(gl.float32), 1)")
        s(1, "if HAS_BIAS:")
        s(2, "acc0 = gl.expand_dims(gl.load(b_ptr + ch, mask=amask, other=0.0).to(gl.float32), 1)"
             " + gl.zeros([CR, G], gl.float32, BLC)")
        s(1, "else:")
        s(2, "acc0 = gl.zeros([CR, G], gl.float32, BLC)")
        e = []
        used = {(u + k + sh) // V for u in range(V) for k in range(K)}
        for m in range(nwq[q]):
            if m not in used:
                e.append(None)
                continue
            s(1, f"X{m} = xs.index({m * SR + q}).load(BL2).to(gl.float32)")
            names = _split(s, 1, f"X{m}", V)
            for n in names:
                s(1, f"{n} = gl.convert_layout({n}, BLC, assert_trivial=True)")
            e.append(names)
        outs = []
        for u in range(V):
            terms = " + ".join(f"{e[(u + k + sh) // V][(u + k + sh) % V]} * w{k}" for k in range(K))
            s(1, f"o{u} = acc0 + {terms}")
            outs.append(f"o{u}")
        s(1, f"out = gl.reshape({_join(outs)}, [CR, TL]).to(y_ptr.dtype.element_ty)")
        s(1, "out = gl.convert_layout(out, SL)")
        s(1, f"gl.store(gl.expand_dims(yrow + {q * L_out}, 1) + gl.expand_dims(js, 0), out, mask=ms)")
    return s.text().replace(gen.HEADER, HEADER, 1)


@dataclass(frozen=True)
class TmaPlan:
    """A program: CR super-rows of SR rows (SR * CR rows) x TL outputs, in V-element groups, by
    `warps` warps; convert: store through the consecutive-element layout (for y rows that are
    not aligned to V elements)."""

    SR: int
    CR: int
    TL: int
    V: int
    warps: int
    convert: bool

    def label(self) -> str:
        return (f"tma(SR={self.SR}, CR={self.CR}, TL={self.TL}, V={self.V}, warps={self.warps}, "
                f"convert={int(self.convert)})")


def row_stride_multiple(L_in: int, itemsize: int) -> int:
    """The fewest rows whose total length is a multiple of 16 bytes (a TMA stride must be)."""
    import math

    return 16 // math.gcd(L_in * itemsize, 16)


def geometry(plan: TmaPlan) -> dict:
    """The layout constexprs of `plan`."""
    G = plan.TL // plan.V
    TG = min(G, 32)
    return dict(CR=plan.CR, TR=32 // TG, TG=TG, W=plan.warps, CONVERT=plan.convert)


def available(x) -> bool:
    """A Hopper GPU (TMA as Gluon 3.6 exposes it) and a Triton with Gluon's Hopper API."""
    import torch

    if not (x.is_cuda and torch.cuda.get_device_capability(x.device)[0] == 9):
        return False
    try:
        from triton.experimental.gluon.nvidia.hopper import TensorDescriptor  # noqa: F401
    except ImportError:
        return False
    return True


def fits(N: int, C: int, L_in: int, L_out: int, K: int, padding: int, itemsize: int, SR: int) -> bool:
    """The plan's shape conditions: whole super-rows, coordinates and offsets in int32, a window
    the kernel generator supports, and a padding that leaves every output a tap in the row."""
    rows = N * C
    return (rows % SR == 0 and SR % row_stride_multiple(L_in, itemsize) == 0 and SR <= C
            and rows * max(L_in, L_out) < 2**31 and 0 <= padding < K and L_out == L_in + 2 * padding - K + 1)


def launcher(N: int, C: int, L_in: int, L_out: int, K: int, padding: int, dtype, plan: TmaPlan,
             has_bias: bool, flip: bool = False):
    """go(x, w, b, y): the forward (flip: grad_x's form) of contiguous (N, C, L_in) x into (N, C,
    L_out) y with w (C, K) contiguous; b any tensor when there is no bias. One compile per (K, V,
    flip) source and per constexpr set (L is one: the tuner keys its plans on the shape)."""
    import torch
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    from ._triton_common import Relaunch, ReusedDescriptors, cdiv

    itemsize = torch.empty((), dtype=dtype).element_size()
    SR, TL = plan.SR, plan.TL
    kernel = gen.load(ncl_tma_source(K, plan.V, 16 // itemsize, SR, L_in, L_out, padding, TL, flip))
    RS = N * C // SR
    layout = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=8 * itemsize, rank=2)
    run = Relaunch(kernel, (cdiv(RS, plan.CR) * cdiv(L_out, TL),),
                   dict(C=C, RS=RS, HAS_BIAS=has_bias, **geometry(plan)), dict(num_warps=plan.warps))
    descs = ReusedDescriptors(lambda x: (TensorDescriptor(x, [RS, SR * L_in], [SR * L_in, 1], [plan.CR, TL], layout),))

    def go(x, w, b, y):
        (d,) = descs(x)
        run(x_desc=d, w_ptr=w, b_ptr=b, y_ptr=y)
    return go
