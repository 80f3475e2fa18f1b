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

import os
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


def ncl_tma_source(K: int, V: int, flip: bool = False) -> str:
    """The kernel for K taps and V-element groups (flip: grad_x's flipped taps)."""
    name = "depthwise_ncl_tma_" + ("gx" if flip else "fwd") + "_kernel"
    nwin = 1 + _halo(K, V) // V
    s = gen._Src()
    s(0, "@gluon.jit")
    s(0, f"def {name}(x_desc, w_ptr, b_ptr, y_ptr, C, RS, n_lt,")
    s(0, "        L_in: gl.constexpr, L_out: gl.constexpr, PAD: gl.constexpr, HAS_BIAS: gl.constexpr,")
    s(0, "        SR: gl.constexpr, CR: gl.constexpr, TL: gl.constexpr, TR: gl.constexpr, TG: gl.constexpr,")
    s(0, "        W: gl.constexpr, CONVERT: gl.constexpr):")
    s(1, f"V: gl.constexpr = {V}")
    s(1, f"NWIN: gl.constexpr = {nwin}")
    s(1, "G: gl.constexpr = TL // V")
    s(1, "BL2: gl.constexpr = gl.BlockedLayout([1, V], [TR, TG], [W, 1], [1, 0])")
    s(1, "BLC: gl.constexpr = gl.BlockedLayout([1, 1], [TR, TG], [W, 1], [1, 0])")
    s(1, "BLS: gl.constexpr = gl.BlockedLayout([1, 1], [1, 32], [W, 1], [1, 0])")
    s(1, "PLAIN: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])")
    s(1, "pid = gl.program_id(0)")
    s(1, "pid_r = pid // n_lt")
    s(1, "pid_l = pid - pid_r * n_lt")
    s(1, "a0 = pid_r * CR")
    s(1, "l0 = pid_l * TL")
    # buf[m * SR + q][i][c] = x[row SR * (a0 + i) + q, l0 + m * V + c - PAD]
    s(1, "buf = gl.allocate_shared_memory(x_desc.dtype, [NWIN * SR, CR, TL], x_desc.layout)")
    s(1, "bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())")
    s(1, "mbarrier.init(bar, count=1)")
    s(1, "mbarrier.expect(bar, NWIN * SR * x_desc.block_type.nbytes)")
    if "rtloop" in os.environ.get("CONVBENCH_GDW_DEBUG", ""):
        s(1, "for q in range(SR):")
    else:
        s(1, "for q in gl.static_range(SR):")
    s(2, "for m in gl.static_range(NWIN):")
    s(3, "_tma_load(x_desc, [a0, q * L_in + l0 + m * V - PAD], bar, buf.index(m * SR + q))")
    # which window elements lie inside the row: the same for every row of the program
    s(1, "interior = (l0 >= PAD) & (l0 + TL + (NWIN - 1) * V - PAD <= L_in)")
    s(1, "gv = gl.expand_dims(gl.arange(0, G, layout=gl.SliceLayout(0, BLC)) * V + (l0 - PAD), 0)")
    for m in range(nwin):
        for i in range(V):
            s(1, f"ok{m}_{i} = interior | ((gv >= {-(m * V + i)}) & (gv < L_in - {m * V + i}))")
    s(1, "ai = a0 + gl.arange(0, CR, layout=gl.SliceLayout(1, BLC))")
    s(1, "amask = ai < RS")
    s(1, "if CONVERT:")
    s(2, "SL: gl.constexpr = BLS")
    s(1, "else:")
    s(2, "SL: gl.constexpr = BL2")
    s(1, "ais = a0 + gl.arange(0, CR, layout=gl.SliceLayout(1, SL))")
    s(1, "js = l0 + gl.arange(0, TL, layout=gl.SliceLayout(0, SL))")
    s(1, "ms = gl.expand_dims(ais < RS, 1) & gl.expand_dims(js < L_out, 0)")
    s(1, "yrow = y_ptr + ais * (SR * L_out)")
    s(1, "ch0 = (ai * SR) % C")
    s(1, "mbarrier.wait(bar, 0)")
    if "noinv" not in os.environ.get("CONVBENCH_GDW_DEBUG", ""):
        s(1, "mbarrier.invalidate(bar)")
    s(1, f"xs = buf.{_REINTERPRET}(x_desc.dtype, [NWIN * SR, CR, TL], PLAIN)")
    s(1, "for q in range(SR):")
    s(2, "ch = ch0 + q")
    s(2, "ch = gl.where(ch >= C, ch - C, ch)")
    for k in range(K):
        s(2, f"w{k} = gl.expand_dims(gl.load(w_ptr + ch * {K} + {gen._wk(k, K, flip)}, mask=amask, other=0.0)"
             ".to(gl.float32), 1)")
    s(2, "if HAS_BIAS:")
    s(3, "acc0 = gl.expand_dims(gl.load(b_ptr + ch, mask=amask, other=0.0).to(gl.float32), 1)"
         " + gl.zeros([CR, G], gl.float32, BLC)")
    s(2, "else:")
    s(3, "acc0 = gl.zeros([CR, G], gl.float32, BLC)")
    e = []
    for m in range(nwin):
        s(2, f"X{m} = xs.index({m} * SR + q).load(BL2).to(gl.float32)")
        names = _split(s, 2, f"X{m}", V)
        for i, n in enumerate(names):
            s(2, f"{n} = gl.convert_layout({n}, BLC, assert_trivial=True)")
            s(2, f"{n} = gl.where(ok{m}_{i}, {n}, 0.0)")
        e.append(names)
    outs = []
    for u in range(V):
        terms = " + ".join(f"{e[(u + k) // V][(u + k) % V]} * w{k}" for k in range(K))
        s(2, f"o{u} = acc0 + {terms}")
        outs.append(f"o{u}")
    s(2, f"out = gl.reshape({_join(outs)}, [CR, TL]).to(y_ptr.dtype.element_ty)")
    s(2, "out = gl.convert_layout(out, SL)")
    s(2, "gl.store(gl.expand_dims(yrow + q * L_out, 1) + gl.expand_dims(js, 0), out, mask=ms)")
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


def geometry(plan: TmaPlan, L_out: int) -> dict:
    """The layout constexprs of `plan`, and n_lt (row tiles a row)."""
    G = plan.TL // plan.V
    TG = min(G, 32)
    TR = 32 // TG
    return dict(SR=plan.SR, CR=plan.CR, TL=plan.TL, TR=TR, TG=TG, W=plan.warps, CONVERT=plan.convert,
                n_lt=-(-L_out // plan.TL))


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

    kernel = gen.load(ncl_tma_source(K, plan.V, flip))
    itemsize = torch.empty((), dtype=dtype).element_size()
    SR = plan.SR
    RS = N * C // SR
    geo = geometry(plan, L_out)
    n_lt = geo.pop("n_lt")
    layout = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=8 * itemsize, rank=2)
    run = Relaunch(kernel, (cdiv(RS, plan.CR) * n_lt,),
                   dict(C=C, RS=RS, n_lt=n_lt, L_in=L_in, L_out=L_out, PAD=padding, HAS_BIAS=has_bias, **geo),
                   dict(num_warps=plan.warps))
    descs = ReusedDescriptors(lambda x: (TensorDescriptor(x, [RS, SR * L_in], [SR * L_in, 1], [plan.CR, plan.TL], layout),))

    def go(x, w, b, y):
        (d,) = descs(x)
        run(x_desc=d, w_ptr=w, b_ptr=b, y_ptr=y)
    return go
