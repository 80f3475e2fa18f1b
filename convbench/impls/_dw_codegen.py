"""Generated Triton depthwise kernels that keep the tap window in registers.

Triton has no register arrays or register shifts, so a kernel that forms K taps from one load
has to name every window element. These kernels are written out as source for one (K, vector
width, ...) combination, saved under the cache folder and imported (Triton needs a real source
file). Each x element is loaded once per tile (the K-1 halo aside) and reused K times from
registers; the tile kernels in ``triton_depthwise`` instead load each tap from L1.

Two shapes of kernel, one per layout (stride 1, dilation 1, channel multiplier 1):

- ``nlc`` "rows": a program owns BLOCK_C channels (VPT contiguous per thread, a vector load)
  and R output rows. It loads the R+K-1 input rows once, then y_r = sum_k w_k * x_{r+k}.
  grad_w keeps K+1 per-channel accumulators across a loop over (n, row-tile) items, so the
  sum over N and L never leaves the thread until one final store of a partial row.
- ``ncl`` "split": L is contiguous. A tile is (BLOCK_C rows, G groups of V elements); each
  group is one aligned vector load, and ``reshape``/``split`` take it apart into V per-element
  tensors of shape (BLOCK_C, G). Tap k of output element u reads element (u+S+k) of the
  window, i.e. element (u+S+k) % V of group j + (u+S+k) // V: known at generation time, so
  every tap is a register operand. Rows of odd length L start at different alignments, so
  each row's tile starts at its own offset m_c < V before l_start (``anchor`` says whether
  that offset aligns y, for vector stores, or x).

grad_x of a stride-1 depthwise conv is the forward conv of gy with the flipped kernel and
padding K-1-padding, so the forward kernels are generated with ``flip`` for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import threading
from pathlib import Path

from ._triton_common import interpreting

_MODULES: dict[str, object] = {}
# load() runs from the tuners' compile threads (_triton_common.precompile), and candidates that
# differ only in constexprs share a source: two threads that loaded one source at once shared a
# temporary file and imported a half-written module (session 14: AttributeError on the kernel,
# H200)
_LOAD_LOCK = threading.Lock()

HEADER = "import triton\nimport triton.language as tl\n\n"


def _cache_dir() -> Path:
    root = os.environ.get("CONVBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "convbench")
    path = Path(root) / "triton_src"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _name(family: str, flip: bool) -> str:
    """The generated kernel's name, which is the CUDA kernel's name in profiler traces and in the
    rows' `backend`: depthwise_<family>_gen_{fwd,gx,gw}_kernel (gx: grad_x, the flipped forward)."""
    return f"depthwise_{family}_gen_{'gx' if flip else 'fwd'}_kernel"


def kernel_name(source: str) -> str:
    """The name of the one top-level function of generated source."""
    return re.search(r"^def (\w+)\(", source, re.M).group(1)


def load(source: str, name: str | None = None):
    """Import generated source (content-addressed file under the cache) and return ``name``, by
    default its one top-level function."""
    name = name or kernel_name(source)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    with _LOAD_LOCK:
        mod = _MODULES.get(digest)
        if mod is None:
            path = _cache_dir() / f"cb_dw_{digest}.py"
            if not path.exists() or path.read_text() != source:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")  # the lock orders threads; pid, processes
                tmp.write_text(source)
                os.replace(tmp, path)
            spec = importlib.util.spec_from_file_location(f"convbench_gen_{digest}", path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = mod
            spec.loader.exec_module(mod)
            _MODULES[digest] = mod
    return getattr(mod, name)


class _Src:
    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def text(self) -> str:
        return HEADER + "\n".join(self.lines) + "\n"


def _rowmask(vec: str, cond: str) -> str:
    """`vec & cond` for a mask tensor and a scalar condition. Triton's interpreter (3.9) gives
    that int32 data, which tl.load refuses; there the result is compared with 0 (CPU only)."""
    expr = f"{vec} & {cond}"
    return f"(({expr}) != 0)" if interpreting() else expr


def _wk(k: int, K: int, flip: bool) -> int:
    return K - 1 - k if flip else k


# ------------------------------------------------------------------------------------------
# (N, L, C): rows
# ------------------------------------------------------------------------------------------


def _nlc_x_rows(s: _Src, ind: int, rows: int) -> None:
    """x0 .. x{rows-1}: input rows p0 + i of this program's channels, zero outside [0, L_in)."""
    for i in range(rows):
        s(ind, f"x{i} = tl.load(xb + (p0 + {i}) * C, mask={_rowmask('cm', f'(p0 + {i} >= 0) & (p0 + {i} < L_in)')},"
               " other=0.0).to(tl.float32)")


def _nlc_fwd_prologue(s: _Src, K: int, flip: bool) -> None:
    """The program's channels, batch item, row bases, K weights and bias (grid axes 1 and 2)."""
    s(1, "offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)")
    s(1, "n = tl.program_id(2).to(tl.int64)")
    s(1, "cm = offs_c < C")
    s(1, "xb = x_ptr + n * L_in * C + offs_c")
    s(1, "yb = y_ptr + n * L_out * C + offs_c")
    for k in range(K):
        s(1, f"w{k} = tl.load(w_ptr + offs_c * {K} + {_wk(k, K, flip)}, mask=cm, other=0.0).to(tl.float32)")
    s(1, "if HAS_BIAS:")
    s(2, "bias = tl.load(b_ptr + offs_c, mask=cm, other=0.0).to(tl.float32)")
    s(1, "else:")
    s(2, "bias = tl.zeros((BLOCK_C,), dtype=tl.float32)")


def nlc_forward_source(K: int, R: int, flip: bool) -> str:
    """y[n, l0 + r, c] = sum_k w[c, k'] * x[n, l0 + r - padding + k, c] (+ b[c]), r < R."""
    s = _Src()
    s(0, "@triton.jit")
    s(0, f"def {_name('nlc', flip)}(x_ptr, w_ptr, b_ptr, y_ptr, C, L_in, L_out, padding,")
    s(0, "           HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr):")
    s(1, f"l0 = tl.program_id(0) * {R}")
    _nlc_fwd_prologue(s, K, flip)
    s(1, "p0 = l0 - padding")
    _nlc_x_rows(s, 1, R + K - 1)
    for r in range(R):
        terms = " + ".join(f"x{r + k} * w{k}" for k in range(K))
        s(1, f"a = bias + {terms}")
        s(1, f"tl.store(yb + (l0 + {r}) * C, a.to(y_ptr.dtype.element_ty), mask={_rowmask('cm', f'(l0 + {r} < L_out)')})")
    return s.text()


def nlc_forward_roll_source(K: int, R: int, flip: bool) -> str:
    """The same conv with a rolling window: a program owns BLOCK_C channels of one batch item and
    `seg` output rows, and steps along them R rows at a time. Each step loads only the R new
    input rows; the K-1 rows before them are the last step's, kept in registers. The tile kernel
    above reads R+K-1 rows for R outputs, which at K = 31 is up to twice the input."""
    s = _Src()
    s(0, "@triton.jit")
    s(0, f"def {_name('nlc_roll', flip)}(x_ptr, w_ptr, b_ptr, y_ptr, C, L_in, L_out, padding, seg,")
    s(0, "           HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr):")
    s(1, "l_begin = tl.program_id(0) * seg")
    s(1, "l_end = tl.minimum(l_begin + seg, L_out)")
    _nlc_fwd_prologue(s, K, flip)

    def row(name: str, ind: int, pos: str) -> None:
        s(ind, f"{name} = tl.load(xb + ({pos}) * C, mask={_rowmask('cm', f'({pos} >= 0) & ({pos} < L_in)')},"
               " other=0.0).to(tl.float32)")

    s(1, "p0 = l_begin - padding")
    for j in range(K - 1):  # the window before the first step
        row(f"h{j}", 1, f"p0 + {j}")
    s(1, f"for l0 in range(l_begin, l_end, {R}):")
    s(2, f"p = l0 - padding + {K - 1}")
    for r in range(R):
        row(f"x{r}", 2, f"p + {r}")
    win = [f"h{j}" for j in range(K - 1)] + [f"x{r}" for r in range(R)]
    for r in range(R):
        terms = " + ".join(f"{win[r + k]} * w{k}" for k in range(K))
        s(2, f"a = bias + {terms}")
        s(2, f"tl.store(yb + (l0 + {r}) * C, a.to(y_ptr.dtype.element_ty), mask={_rowmask('cm', f'(l0 + {r} < l_end)')})")
    for j in range(K - 1):  # ascending: h{j} takes win[R + j], never a name already moved
        s(2, f"h{j} = {win[R + j]}")
    return s.text()


def nlc_grad_w_source(K: int, R: int) -> str:
    """p[s, k, c] = sum over this program's (n, row-tile) items of gy[n, l, c] * x[n, l - padding + k, c];
    p[s, K, c] = the sum of gy (bias)."""
    s = _Src()
    s(0, "@triton.jit")
    s(0, "def depthwise_nlc_gen_gw_kernel(x_ptr, gy_ptr, p_ptr, C, L_in, L_out, padding, n_lt, n_items, n_split,")
    s(0, "           BLOCK_C: tl.constexpr):")
    s(1, "offs_c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)")
    s(1, "pid_s = tl.program_id(1)")
    s(1, "cm = offs_c < C")
    for k in range(K + 1):
        s(1, f"a{k} = tl.zeros((BLOCK_C,), dtype=tl.float32)")
    s(1, "for it in range(pid_s, n_items, n_split):")
    s(2, "n = (it // n_lt).to(tl.int64)")
    s(2, f"l0 = (it % n_lt) * {R}")
    s(2, "p0 = l0 - padding")
    s(2, "xb = x_ptr + n * L_in * C + offs_c")
    s(2, "gb = gy_ptr + n * L_out * C + offs_c")
    _nlc_x_rows(s, 2, R + K - 1)
    for r in range(R):
        s(2, f"g{r} = tl.load(gb + (l0 + {r}) * C, mask={_rowmask('cm', f'(l0 + {r} < L_out)')}, other=0.0).to(tl.float32)")
    for k in range(K):
        s(2, f"a{k} += " + " + ".join(f"g{r} * x{r + k}" for r in range(R)))
    s(2, f"a{K} += " + " + ".join(f"g{r}" for r in range(R)))
    s(1, f"pb = p_ptr + pid_s.to(tl.int64) * {K + 1} * C + offs_c")
    for k in range(K + 1):
        s(1, f"tl.store(pb + {k} * C, a{k}, mask=cm)")
    return s.text()


# ------------------------------------------------------------------------------------------
# (N, C, L): split groups
# ------------------------------------------------------------------------------------------


def _split_names(prefix: str, V: int) -> tuple[list[str], list[str]]:
    """Statements that split `prefix` (BLOCK_C, G, 2, ..., 2) into V names, and those names,
    element v in position v (v = 2 * v_sub + last bit)."""
    stmts: list[str] = []

    def rec(name: str, depth: int) -> list[str]:
        if depth == 0:
            return [name]
        stmts.append(f"{name}_0, {name}_1 = tl.split({name})")
        e0, e1 = rec(f"{name}_0", depth - 1), rec(f"{name}_1", depth - 1)
        out = [""] * (2 * len(e0))
        out[0::2], out[1::2] = e0, e1
        return out

    return stmts, rec(prefix, V.bit_length() - 1)


def _join_expr(names: list[str]) -> str:
    """Inverse of _split_names: one expression of shape (BLOCK_C, G, 2, ..., 2)."""
    if len(names) == 1:
        return names[0]
    return f"tl.join({_join_expr(names[0::2])}, {_join_expr(names[1::2])})"


def _unpack(word: str, packed: str) -> tuple[str, str]:
    """The two 16-bit elements of an int32 word as fp32 (low half = lower address)."""
    if packed == "bf16":  # bf16 -> fp32 is the 16 bits moved to the top
        return (f"({word} << 16).to(tl.float32, bitcast=True)",
                f"({word} & -65536).to(tl.float32, bitcast=True)")
    return (f"{word}.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)",
            f"({word} >> 16).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)")


def _pack(lo: str, hi: str, packed: str) -> str:
    """One int32 word of two fp32 values rounded to the 16-bit type (round to nearest even). On
    the GPU one `cvt.rn.{bf16,f16}x2.f32` (F2FP: ptxas made the arithmetic form two F2F and a
    PRMT); the interpreter runs no PTX, so there the same rounding in Triton arithmetic."""
    if interpreting():
        t = "tl.bfloat16" if packed == "bf16" else "tl.float16"
        return (f"(({lo}).to({t}).to(tl.int16, bitcast=True).to(tl.int32) & 65535) | "
                f"(({hi}).to({t}).to(tl.int16, bitcast=True).to(tl.int32) << 16)")
    cvt = "cvt.rn.bf16x2.f32" if packed == "bf16" else "cvt.rn.f16x2.f32"
    # the first source goes to the upper half: the higher address
    return (f"tl.inline_asm_elementwise('{cvt} $0, $2, $1;', '=r,r,r', [{lo}, {hi}], "
            "dtype=tl.int32, is_pure=True, pack=1)")


def _half(word: str, u: int, packed: str) -> str:
    """Element u % 2 of a packed word as the 16-bit type (for element stores)."""
    t = "tl.bfloat16" if packed == "bf16" else "tl.float16"
    return f"(({word}){' >> 16' if u % 2 else ''}).to(tl.int16).to({t}, bitcast=True)"


def _unit(V: int, packed: str | None) -> int:
    """Memory units per vector load or store: a group of 8 fp32 elements is two 16-byte vectors
    (splitting one 8-element load would go through shared memory: Triton gives a thread 4)."""
    return min(_words(V, packed), 4)


def ncl_window(K: int, V: int, S: int) -> int:
    """Groups of V loaded per tile column: q = 0 .. Q."""
    return (V - 1 + S + K - 1) // V + 1


def _words(V: int, packed: str | None) -> int:
    """Memory units (x_ptr elements) per group: V, or V / 2 int32 words for packed 16-bit."""
    return V // 2 if packed else V


def _ncl_prologue(s: _Src, ind: int, V: int, anchor_y: bool) -> None:
    """Per-row start offsets: m (row offset to the group grid, V its spacing: the grid unit,
    which is the group width unless groups span two vectors on a one-vector grid) and the row
    starts rs_x, rs_y."""
    s(ind, "r64 = (n * C + rows).to(tl.int64)  # n * C + rows < 2**31: rows of the tensor")
    s(ind, "rs_x = r64 * L_in")
    s(ind, "rs_y = r64 * L_out")
    if anchor_y:
        s(ind, f"m = (rs_y % {V}).to(tl.int32)")
    else:
        s(ind, f"m = (((rs_x - padding) % {V} + {V}) % {V}).to(tl.int32)")


def _ncl_tile_bases(s: _Src, ind: int, V: int, S: int, anchor_y: bool, packed: str | None,
                    A: int | None = None) -> None:
    """l0 (row position of tile element (j=0, u=0)), xa / ya (their flat indices, in x_ptr / yw_ptr
    units, multiples of the grid unit A, by default the group width) and goff (group offsets,
    same units)."""
    W = _words(V, packed)
    WA = _words(A or V, packed)
    div = " // 2" if packed else ""
    s(ind, "l0 = l_start - m  # int32: the edge masks below are row positions")
    s(ind, f"xa = tl.multiple_of((rs_x + l0 - padding{f' - {S}' if S else ''}){div}, {WA})")
    s(ind, "ya = rs_y + l0")
    if anchor_y:
        s(ind, f"ya = tl.multiple_of(ya{div}, {WA})")
    s(ind, f"goff = (jj * {W})[None, :, None]")


def _ncl_interior(V: int, S: int, Q1: int) -> str:
    """`interior`: the whole tile (for every row offset m < V) reads inside x and writes inside
    [0, L_out), so it needs no masks."""
    return (f"interior = (l_start - {V - 1} - padding - {S} >= 0) & "
            f"(l_start + (G + {Q1}) * {V} - 1 - padding - {S} < L_in) & "
            f"(l_start >= {V - 1}) & (l_start + G * {V} <= L_out)")


def _ncl_tile(s: _Src, ind: int, V: int, S: int, Q1: int, anchor_y: bool, packed: str | None,
              body, all_interior: bool = False, A: int | None = None) -> None:
    """A tile at l_start: its bases, then body(ind + 1, masked) once without masks (interior
    tiles) and once with them (edge tiles)."""
    _ncl_tile_bases(s, ind, V, S, anchor_y, packed, A)
    s(ind, "interior = True" if all_interior else _ncl_interior(V, S, Q1))
    s(ind, "if interior:")
    body(ind + 1, False)
    s(ind, "else:")
    body(ind + 1, True)


def _ncl_x_pos(V: int, S: int) -> str:
    """Row position of x window element 0 of each tile column, (BLOCK_C, G)."""
    return f"(l0 - padding - {S})[:, None] + (jj * {V})[None, :]"


def _ncl_load_window(s: _Src, ind: int, V: int, packed: str | None, groups: int, masked: bool,
                     gdim: str, ptr: str, gofs: str, total: str, limit: str, pbase: str,
                     prefix: str, aligned: bool | str, zero: bool | None = None,
                     scalar: bool = False, need: tuple[int, int] | None = None) -> list[list[str | None]]:
    """Load `groups` groups of V elements of `ptr` (window group 0 of output group (row, j) at
    `gofs`, shape (BLOCK_C, gdim, 1), in ptr units) and split them into names[q][r]: element
    t = q*V + r, at row position pbase + t ((BLOCK_C, gdim)). Packed 16-bit groups are V/2 int32
    words, split as words and unpacked with shifts: Triton would split 8 16-bit elements through
    shared memory. In masked (edge) tiles, groups outside the tensor are masked as a whole (`gofs`
    a multiple of the group, so a group is wholly in or out; vector masks where `aligned` is
    "vector": groups on a grid finer than their width; element masks where not `aligned`)
    and, unless `zero` is False, elements outside [0, limit) are zeroed. `scalar` loads each unit
    on its own (for tensors too small to give each thread whole groups, where the split would go
    through shared memory). `need` = (first, last) window elements the caller reads: a vector
    (or unit) with none of them is not loaded, and its element names are None."""
    zero = masked if zero is None else zero
    W, U = _words(V, packed), _unit(V, packed)
    epu = 2 if packed else 1  # elements per memory unit

    def used(t0: int, n: int) -> bool:  # any of window elements t0 .. t0 + n - 1 needed
        return need is None or (t0 <= need[1] and t0 + n - 1 >= need[0])

    shape = f"(BLOCK_C, {gdim}" + ", 2" * (U.bit_length() - 1) + ")"
    other = "0" if packed else "0.0"
    names = []
    if zero:
        s(ind, f"pb_{prefix} = {pbase}")
    for q in range(groups):
        if scalar:  # one load per unit, no split: `gofs` is (BLOCK_C, gdim)
            parts = []
            for v in range(W):
                unit = f"{prefix}{q}_{v}"
                if not used(q * V + v * epu, epu):
                    parts.append(None)
                    continue
                off = f"{gofs} + {q * W + v}"
                s(ind, f"{unit} = tl.load({ptr} + ({off}), mask=({off} >= 0) & ({off} < {total}), "
                       f"other={other})" + ("" if packed else ".to(tl.float32)"))
                parts.append(unit)
            elems = _unpack_all(s, ind, parts, packed)
            if zero:
                _zero_outside(s, ind, elems, q * V, prefix, limit)
            names.append(elems)
            continue
        parts = []
        for h in range(W // U):  # the group's vectors
            name = f"{prefix}{q}" + (f"h{h}" if W > U else "")
            if not used(q * V + h * U * epu, U * epu):
                parts += [None] * U
                continue
            off = f"{gofs} + vw + {q * W + h * U}"
            if masked:
                gs = f"{gofs} + {q * W}" + ("" if aligned is True else f" + {h * U}" if aligned == "vector"
                                             else f" + vw + {h * U}")
                s(ind, f"gm{prefix} = ({gs} >= 0) & ({gs} < {total})")
                s(ind, f"X{prefix} = tl.load({ptr} + ({off}), mask=gm{prefix}, other={other})")
            else:
                s(ind, f"X{prefix} = tl.load({ptr} + ({off}))")
            if not packed:
                s(ind, f"X{prefix} = X{prefix}.to(tl.float32)")
            s(ind, f"{name} = tl.reshape(X{prefix}, {shape})")
            stmts, unit_names = _split_names(name, U)
            for st in stmts:
                s(ind, st)
            parts += unit_names
        elems = _unpack_all(s, ind, parts, packed)
        if zero:
            _zero_outside(s, ind, elems, q * V, prefix, limit)
        names.append(elems)
    return names


def _unpack_all(s: _Src, ind: int, parts: list[str | None], packed: str | None) -> list[str | None]:
    """Element names of a group's units (the units themselves unless packed)."""
    if not packed:
        return parts
    elems: list[str | None] = []
    for wname in parts:
        if wname is None:
            elems += [None, None]
            continue
        lo, hi = _unpack(wname, packed)
        s(ind, f"{wname}l = {lo}")
        s(ind, f"{wname}h = {hi}")
        elems += [f"{wname}l", f"{wname}h"]
    return elems


def _zero_outside(s: _Src, ind: int, elems: list[str | None], t0: int, prefix: str, limit: str) -> None:
    """Zero window elements t0 + r whose row position pb_{prefix} + t0 + r is outside [0, limit)."""
    for r, e in enumerate(elems):
        if e is None:
            continue
        s(ind, f"{e} = tl.where((pb_{prefix} + {t0 + r}).to(tl.uint32, bitcast=True) < {limit}, {e}, 0.0)")


def _ncl_weights(s: _Src, ind: int, K: int, flip: bool, w: str = "w", bias: str = "bias") -> None:
    for k in range(K):
        s(ind, f"{w}{k} = tl.load(w_ptr + rows * {K} + {_wk(k, K, flip)}).to(tl.float32)[:, None]")
    s(ind, "if HAS_BIAS:")
    s(ind + 1, f"{bias} = tl.load(b_ptr + rows).to(tl.float32)[:, None]")
    s(ind, "else:")
    s(ind + 1, f"{bias} = tl.zeros((BLOCK_C, 1), dtype=tl.float32)")


def _ncl_outputs(s: _Src, ind: int, e: list[list[str]], K: int, V: int, S: int,
                 prefix: str = "o", w: str = "w", bias: str = "bias") -> list[str]:
    for u in range(V):
        terms = " + ".join(f"{e[(u + S + k) // V][(u + S + k) % V]} * {w}{k}" for k in range(K))
        s(ind, f"{prefix}{u} = {bias} + {terms}")
    return [f"{prefix}{u}" for u in range(V)]


def ncl_edge_groups(K: int, V: int, padding: int, L_in: int, L_out: int) -> int:
    """Groups at each end of a row whose outputs are partial or whose taps leave the row (the
    edge program's share), rounded up to a power of two: head groups start before
    max(padding, 0); tail groups end past L_out or read past L_in."""
    head = -(-(max(padding, 0) + V - 1) // V)
    tail = -(-max(L_out - L_in + V + K - 2 - padding, V - 1) // V)
    n = max(head, tail, 1)
    return 1 << (n - 1).bit_length()


def ncl_forward_source(K: int, V: int, S: int | None, flip: bool, anchor_y: bool,
                       packed: str | None = None, split: bool = True,
                       classes: tuple[int, ...] | None = None, prefetch: bool = False,
                       probe: str = "", align: int | None = None) -> str:
    """Forward (or, with `flip`, grad_x) of (N, C, L) rows in tiles of (BLOCK_C rows, G groups);
    each program loops over batch items n = pid, pid + num_programs(2), ... so the K weights it
    loads per row serve several tiles.

    x_ptr is read in units of the group (x itself, or its int32 words when `packed`); yw_ptr is
    y in the same units and y_ptr y itself. With `split` (rows aligned to y only), tiles store
    only "inner" groups: whole groups whose taps all stay inside the row, so their window needs
    no zeroing and their stores are whole vectors; the last program column (EDGE = 1) computes
    the EG first and EG last groups of each row, where the rest lie, with zeroed windows and
    element stores. Without it, edge tiles zero their windows and store with element masks
    (short rows, where the edge groups are a large share, can be faster so).

    `classes` (rows whose x and y lengths differ by d, not a multiple of V: even K with "same"
    padding gives d = 1): anchoring a row to y then shifts its x window by an S that depends on
    the row, S = (-row * d - padding) mod V, which repeats with period P = len(classes). Program
    column pc then holds only rows of class c = pc // n_blk (rows (pc mod n_blk) * BLOCK_C * P + c
    + P * j, n_blk = program columns / P), so every row of a program has the one shift
    classes[c], a constant in one of P branches of the kernel; rows anchor to y (vector stores,
    packed 16-bit words) and there is no edge program. The caller makes sure the class of row
    n * C + row is that of row (C * d a multiple of V, or N = 1) and that C >= P.

    `prefetch`: before a batch item's tile, each thread asks the L2 for its group of the next
    item's rows (`prefetch.global.L2`, a hint: no registers, no wait), so that the next
    iteration's window loads come from the L2 and not from DRAM. Not in the interpreter (inline
    PTX).

    `probe` (probes only, to time what edge handling costs; the results are wrong at row ends):
    "i" puts every tile on the unmasked path (which then reads and writes up to a few groups
    outside the tensors); "z" drops the edge tiles' zeroing of window elements outside the row;
    "s" drops their element stores of partial groups (every group stored as a vector).

    `align` (default V): the grid rows anchor to, when finer than the group: V = 16 groups (two
    vectors a thread) on an 8-element grid, so row offsets m, window shifts S and row classes
    are taken mod 8 (8 classes, not 16) and loads mask whole vectors. Not with `split`."""
    A = align or V
    assert V % A == 0 and (A == V or not split), "a grid finer than the group: a divisor of it, no split"
    if classes is not None:
        assert anchor_y and not split, "row classes anchor rows to y and have no edge program"
    if packed:
        assert anchor_y and V in (8, 16, 32), "packed 16-bit groups need rows aligned to y and V = 8, 16 or 32"
    split = split and anchor_y
    W = _words(V, packed)
    inner = (f"(gp >= lo) & (gp + {V + K - 2} - padding < L_in) & (gp + {V} <= L_out)")

    def body(ind: int, masked: bool, S: int) -> None:
        Q1 = ncl_window(K, V, S)
        need = (S, S + V + K - 2)  # the window elements output taps read
        e = _ncl_load_window(s, ind, V, packed, Q1, masked, "G", "x_ptr", "xa[:, None, None] + goff",
                             "total_x", "L_in", _ncl_x_pos(V, S), "e", True if A == V else "vector",
                             zero=masked and not split and "z" not in probe, need=need)
        outs = _ncl_outputs(s, ind, e, K, V, S)
        elems = outs
        if packed:
            for v in range(W):
                s(ind, f"p{v} = {_pack(outs[2 * v], outs[2 * v + 1], packed)}")
            outs = [f"p{v}" for v in range(W)]
            # element stores take the halves of the packed words: no second conversion
            elems = [_half(f"p{u // 2}", u, packed) for u in range(V)]
        if masked and not split and anchor_y and "s" not in probe:
            # groups wholly inside the row: one vector store each (below); the row's partial
            # first and last groups: element stores (a packed word there may span two rows).
            # Element stores for every group of an edge tile sent 2-4x y's sectors (session 4 ncu).
            s(ind, f"gp = l0[:, None] + (jj * {V})[None, :]")
            s(ind, f"whole = (gp >= 0) & (gp + {V} <= L_out)")
            s(ind, "yb = y_ptr + rs_y[:, None] + gp")
            for u, o in enumerate(elems):
                val = o if packed else f"{o}.to(y_ptr.dtype.element_ty)"
                s(ind, f"tl.store(yb + {u}, {val}, "
                       f"mask=rm2 & ~whole & ((gp + {u}).to(tl.uint32, bitcast=True) < L_out))")
        if masked and split:
            s(ind, f"gp = l0[:, None] + (jj * {V})[None, :]")
            s(ind, f"inner = {inner}")
        U = _unit(V, packed)
        for h in range(W // U):  # one vector store per U units
            s(ind, f"Y = tl.reshape({_join_expr(outs[h * U:(h + 1) * U])}, (BLOCK_C, G, {U}))")
            s(ind, "Y = Y.to(yw_ptr.dtype.element_ty)")
            s(ind, f"yoff = ya[:, None, None] + goff + vw + {h * U}")
            if not masked:
                s(ind, "tl.store(yw_ptr + yoff, Y, mask=rm3)")
            elif split:  # inner groups only: the edge program stores the others
                s(ind, "tl.store(yw_ptr + yoff, Y, mask=rm3 & inner[:, :, None])")
            elif anchor_y and "s" in probe:
                s(ind, "tl.store(yw_ptr + yoff, Y, mask=rm3)")
            elif anchor_y:  # whole groups; the element stores above took the partial ones
                s(ind, "tl.store(yw_ptr + yoff, Y, mask=rm3 & whole[:, :, None])")
            else:
                s(ind, f"lpos = l0[:, None, None] + goff + vw + {h * U}")
                s(ind, "tl.store(yw_ptr + yoff, Y, mask=rm3 & (lpos.to(tl.uint32, bitcast=True) < L_out))")

    def edge(ind: int) -> None:
        Q1 = ncl_window(K, V, S)
        need = (S, S + V + K - 2)
        # names differ from the tile branch's: Triton wants one type per name across branches
        s(ind, "je = tl.arange(0, 2 * EG)[None, :]")
        s(ind, "first = (-m)[:, None]")
        s(ind, f"last = (((L_out - 1 + m) // {V}) * {V} - m)[:, None]")
        s(ind, "head = je < EG")
        s(ind, f"gp = tl.where(head, first + je * {V}, last - (je - EG) * {V})")
        # not inner, holds outputs, and a tail group that is not also a head group
        s(ind, f"keep = ~({inner}) & (gp <= last) & (head | (gp >= first + EG * {V})) & rm2")
        s(ind, "xe = rs_x[:, None] + gp - padding" + (f" - {S}" if S else ""))
        if packed:
            s(ind, "xe = xe // 2  # a multiple of the group")
        e = _ncl_load_window(s, ind, V, packed, Q1, True, "2 * EG", "x_ptr", "xe", "total_x", "L_in",
                             f"gp - padding - {S}", "f", True, scalar=True, need=need)
        # weights loaded again in this branch's layout: converting the tile branch's copies
        # would go through shared memory
        _ncl_weights(s, ind, K, flip, "v", "bf")
        outs = _ncl_outputs(s, ind, e, K, V, S, "q", "v", "bf")
        s(ind, "yb = y_ptr + rs_y[:, None] + gp")
        for u, o in enumerate(outs):
            s(ind, f"tl.store(yb + {u}, {o}.to(y_ptr.dtype.element_ty), "
                   f"mask=keep & ((gp + {u}).to(tl.uint32, bitcast=True) < L_out))")

    s = _Src()
    s(0, "@triton.jit")
    s(0, f"def {_name('ncl', flip)}(x_ptr, w_ptr, b_ptr, y_ptr, yw_ptr, N, C, L_in, L_out, padding, total_x,")
    s(0, "           HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr, G: tl.constexpr,")
    s(0, "           EDGE: tl.constexpr, EG: tl.constexpr):")
    s(1, "pid_l = tl.program_id(0)")
    if classes is None:
        s(1, "rows = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)")
    else:
        P = len(classes)
        # class-major program columns: programs that run at the same time take the same branch
        # (interleaved classes ran every branch on every SM: 2x slower, session 13)
        s(1, f"n_blk = tl.num_programs(1) // {P}")
        s(1, "cls = tl.program_id(1) // n_blk  # the row class: every row here has shift classes[cls]")
        s(1, f"rows = (tl.program_id(1) % n_blk) * (BLOCK_C * {P}) + cls + {P} * tl.arange(0, BLOCK_C)")
    s(1, "rm2 = (rows < C)[:, None]")
    s(1, "rm3 = rm2[:, :, None]")
    if classes is None:
        s(1, "rows = tl.minimum(rows, C - 1)")
    else:  # rows past C read the class's last row: another class's row would misalign the window
        s(1, f"rows = tl.minimum(rows, cls + {P} * ((C - 1 - cls) // {P}))")
    s(1, "jj = tl.arange(0, G)")
    s(1, f"vw = tl.arange(0, {_unit(V, packed)})[None, None, :]")
    s(1, "lo = tl.maximum(padding, 0)")
    _ncl_weights(s, 1, K, flip)
    s(1, "for n in range(tl.program_id(2), N, tl.num_programs(2)):")
    _ncl_prologue(s, 2, A, anchor_y)
    if prefetch:
        s(2, "nn = n + tl.num_programs(2)")
        s(2, "if nn < N:  # the next item's rows, one address a group (a line serves 8 groups)")
        s(3, f"pfo = ((nn * C + rows).to(tl.int64) * L_in)[:, None] + (pid_l * (G * {V}) + jj * {V})[None, :]")
        s(3, f"pfo = tl.minimum(pfo{' // 2' if packed else ''}, total_x - 1)")
        s(3, "_pf = tl.inline_asm_elementwise('prefetch.global.L2 [$1]; mov.u32 $0, 0;', '=r,l', [x_ptr + pfo], "
             "dtype=tl.int32, is_pure=False, pack=1)")
    s(2, "if pid_l >= tl.num_programs(0) - EDGE:")
    if split:
        edge(3)
    else:
        s(3, "pass")
    s(2, "else:")
    s(3, f"l_start = pid_l * (G * {V})")
    if classes is None:
        _ncl_tile(s, 3, V, S, ncl_window(K, V, S), anchor_y, packed, lambda i, m: body(i, m, S), "i" in probe, A)
    else:
        for c, Sc in enumerate(classes):
            s(3, f"if cls == {c}:  # S = {Sc}")
            _ncl_tile(s, 4, V, Sc, ncl_window(K, V, Sc), anchor_y, packed,
                      lambda i, m, Sc=Sc: body(i, m, Sc), A=A)
    return s.text()


def ncl_grad_w_source(K: int, V: int, S: int, anchor_y: bool, packed: str | None = None) -> str:
    """Partial sums p[s, k, row] of gy * x over each program's share of (n, L-tile) items;
    p[s, K, row] = the sum of gy (bias). x_ptr and gy_ptr are read in group units (see
    ncl_forward_source)."""
    if packed:
        assert anchor_y and V in (8, 16), "packed 16-bit groups need rows aligned to y and V = 8 or 16"
    Q1 = ncl_window(K, V, S)
    need = (S, S + V + K - 2)

    def body(ind: int, masked: bool) -> None:
        e = _ncl_load_window(s, ind, V, packed, Q1, masked, "G", "x_ptr", "xa[:, None, None] + goff",
                             "total_x", "L_in", _ncl_x_pos(V, S), "e", True, need=need)
        g = _ncl_load_window(s, ind, V, packed, 1, masked, "G", "gy_ptr", "ya[:, None, None] + goff",
                             "total_y", "L_out", f"l0[:, None] + (jj * {V})[None, :]", "g",
                             anchor_y)[0]
        for k in range(K):
            terms = " + ".join(f"{g[u]} * {e[(u + S + k) // V][(u + S + k) % V]}" for u in range(V))
            s(ind, f"a{k} += {terms}")
        s(ind, f"a{K} += " + " + ".join(g))

    s = _Src()
    s(0, "@triton.jit")
    s(0, "def depthwise_ncl_gen_gw_kernel(x_ptr, gy_ptr, p_ptr, C, L_in, L_out, padding, total_x, total_y,")
    s(0, "           n_lt, n_items, n_split, BLOCK_C: tl.constexpr, G: tl.constexpr):")
    s(1, "rows = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)")
    s(1, "pid_s = tl.program_id(1)")
    s(1, "rmask = rows < C")
    s(1, "rows = tl.minimum(rows, C - 1)")
    s(1, "jj = tl.arange(0, G)")
    s(1, f"vw = tl.arange(0, {_unit(V, packed)})[None, None, :]")
    for k in range(K + 1):
        s(1, f"a{k} = tl.zeros((BLOCK_C, G), dtype=tl.float32)")
    s(1, "for it in range(pid_s, n_items, n_split):")
    s(2, "n = it // n_lt")
    s(2, f"l_start = (it % n_lt) * (G * {V})")
    _ncl_prologue(s, 2, V, anchor_y)
    _ncl_tile(s, 2, V, S, Q1, anchor_y, packed, body)
    s(1, f"pb = p_ptr + pid_s.to(tl.int64) * {K + 1} * C + rows")
    for k in range(K + 1):
        s(1, f"tl.store(pb + {k} * C, tl.sum(a{k}, axis=1), mask=rmask)")
    return s.text()


# ------------------------------------------------------------------------------------------
# (N, C, L): flat groups (rows of 512 or more: triton_depthwise.NCL_FLAT_MIN_L)
# ------------------------------------------------------------------------------------------


def ncl_flat_edge(K: int, V: int, padding: int) -> int:
    """Slots at each end of a row for the flat kernel's edge programs (a power of two): every
    element of a group that is not inner lies within them. A group (V elements from flat index
    f, row position l0) is inner when all its taps stay in its row: l0 >= padding and
    l0 + V - 1 + K - 1 - padding < L. So non-inner elements sit at row positions
    < padding + V - 1 (head; a group that starts in the row before ends before V - 1) or
    >= L - (V - 1) - (K - 1 - padding) (tail)."""
    n = max(padding + V - 1, V + K - 2 - padding, V - 1, 1)
    return 1 << (n - 1).bit_length()


def _floor_div_small(s: _Src, ind: int, q: str, num: str, den: str, inv: str) -> None:
    """q = num // den for non-negative int32 `num` < 2**24 and a positive runtime `den`, with
    `inv` = fp32(1 / den): one multiply, then a correction of +-1 (the product's rounding)."""
    s(ind, f"{q} = (({num}).to(tl.float32) * {inv}).to(tl.int32)")
    s(ind, f"{q} = {q} + (({num}) - {q} * {den} >= {den}).to(tl.int32) - (({num}) - {q} * {den} < 0).to(tl.int32)")


def _flat_inner(l0: str, V: int, K: int) -> str:
    """Whether a group of V starting at row position `l0` is inner: every tap of its outputs in
    its row (so it cannot cross into the next). Main programs store exactly these groups, edge
    programs every other element: the two must use this one test."""
    return f"({l0} >= padding) & ({l0} + {V + K - 2} - padding < L)"


def ncl_flat_source(K: int, V: int, S: int, flip: bool, packed: str | None = None) -> str:
    """Forward (or grad_x, `flip`) of (N, C, L) "same" convs (L_in = L_out = L) with the tensor
    read as one flat array of groups of V: the rows' own alignment no longer matters. A main
    program owns G consecutive groups: it reads the window of each (aligned vectors;
    S = (-padding) % V puts window group 0 on the grid), gathers each group's row weights
    (w[c, k], c = row % C) and stores only inner groups (_flat_inner). Edge programs (program ids from
    n_main on) compute, for EB rows each, the 2E slots at the rows' two ends (ncl_flat_edge)
    that are not in inner groups, one tap load per slot and tap. The flat index fits int32
    (callers check).

    Program order: with `mix` = 0, all main programs, then all edge programs; with mix = m > 0,
    blocks of m main programs and then the edge program of about their rows (m = n_main //
    n_edge), so the edge programs read rows that the main programs just read (in L2), and the
    main programs left over at the end."""
    W = _words(V, packed)
    U = _unit(V, packed)
    Q1 = ncl_window(K, V, S)
    need = (S, S + V + K - 2)
    span = (Q1 - 1) * V  # a group's window runs from its start - padding - S over (Q1) groups
    s = _Src()
    s(0, "@triton.jit")
    s(0, f"def {_name('ncl_flat', flip)}(x_ptr, xe_ptr, w_ptr, b_ptr, y_ptr, yw_ptr, C, L, padding, total,")
    s(0, "           n_main, n_edge, mix, rows_total, inv_L, inv_C,")
    s(0, "           HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr, G: tl.constexpr, E: tl.constexpr,")
    s(0, "           EB: tl.constexpr):")
    s(1, "tl.static_assert(BLOCK_C == 1)  # the window loader's tensors are (BLOCK_C, G, ...)")
    s(1, "pid = tl.program_id(0)")
    s(1, "q = pid // (mix + 1)")
    s(1, "rem = pid - q * (mix + 1)")
    s(1, "inter = (mix > 0) & (q < n_edge)  # in the interleaved blocks")
    s(1, "is_edge = tl.where(inter, rem == mix, (mix == 0) & (pid >= n_main))")
    s(1, "mi = tl.where(inter, q * mix + rem, tl.where(mix > 0, pid - n_edge, pid))")
    s(1, "ei = tl.where(inter, q, pid - n_main)")
    s(1, "if is_edge == 0:")
    s(2, f"F = mi * (G * {V})  # flat index of the program's first element")
    s(2, "r0 = F // L")
    s(2, "c0 = r0 % C")
    s(2, "jj = tl.arange(0, G)")
    s(2, f"vw = tl.arange(0, {U})[None, None, :]")
    s(2, f"off = F - r0 * L + jj * {V}  # row position of each group's first element, from row r0")
    _floor_div_small(s, 2, "qr", "off", "L", "inv_L")
    s(2, "l0 = off - qr * L")
    s(2, "cc = c0 + qr")
    _floor_div_small(s, 2, "qc", "cc", "C", "inv_C")
    s(2, "cc = cc - qc * C")
    s(2, f"inner = (F + jj * {V} < total) & {_flat_inner('l0', V, K)}")
    for k in range(K):
        s(2, f"w{k} = tl.load(w_ptr + cc * {K} + {_wk(k, K, flip)}).to(tl.float32)[None, :]")
    s(2, "if HAS_BIAS:")
    s(3, "bias = tl.load(b_ptr + cc).to(tl.float32)[None, :]")
    s(2, "else:")
    s(3, "bias = tl.zeros((1, G), dtype=tl.float32)")
    div = " // 2" if packed else ""
    sub = f" - {S}" if S else ""  # a literal "- 0" made Triton drop the multiple_of hint (session 3)
    s(2, f"xa = tl.multiple_of((F - padding{sub}){div}, {W})")
    s(2, f"ya = tl.multiple_of(F{div}, {W})")
    s(2, f"goff = (jj * {W})[None, :, None]")
    tot = "total // 2" if packed else "total"
    s(2, f"total_x = {tot}")
    s(2, f"interior = (F - padding{sub} >= 0) & (F + (G - 1) * {V} + {span + V - S} - padding <= total)")

    def body(ind: int, masked: bool) -> None:
        e = _ncl_load_window(s, ind, V, packed, Q1, masked, "G", "x_ptr", "xa + goff", "total_x", "L",
                             "", "e", True, zero=False, need=need)
        outs = _ncl_outputs(s, ind, e, K, V, S)
        if packed:
            for v in range(W):
                s(ind, f"p{v} = {_pack(outs[2 * v], outs[2 * v + 1], packed)}")
            outs = [f"p{v}" for v in range(W)]
        for h in range(W // U):
            s(ind, f"Y = tl.reshape({_join_expr(outs[h * U:(h + 1) * U])}, (BLOCK_C, G, {U}))")
            s(ind, "Y = Y.to(yw_ptr.dtype.element_ty)")
            s(ind, f"tl.store(yw_ptr + (ya + goff + vw + {h * U}), Y, mask=inner[None, :, None])")

    s(2, "if interior:")
    body(3, False)
    s(2, "else:")
    body(3, True)
    s(1, "else:")
    # edge programs: names differ from the main branch's (one type per name across branches)
    s(2, "rows = ei * EB + tl.arange(0, EB)")
    s(2, "rmask = (rows < rows_total)[:, None]")
    s(2, "rows = tl.minimum(rows, rows_total - 1)")
    s(2, "ce = (rows % C)[:, None]")
    s(2, "js = tl.arange(0, 2 * E)[None, :]")
    s(2, "ls = tl.where(js < E, js, L - 2 * E + js)  # head slots, then tail slots")
    # a tail slot inside the head slots (rows shorter than 2E) is left to the head slot
    s(2, "ok = rmask & (ls >= 0) & (ls < L) & ((js < E) | (ls >= E))")
    s(2, "fe = rows[:, None] * L + ls")
    s(2, f"ls0 = ls - fe % {V}  # row position of the slot's group start (< 0: the row before)")
    s(2, f"keep = ok & ~((ls0 >= 0) & {_flat_inner('ls0', V, K)})")
    s(2, "if HAS_BIAS:")
    s(3, "acc = tl.load(b_ptr + ce).to(tl.float32) + tl.zeros((EB, 2 * E), dtype=tl.float32)")
    s(2, "else:")
    s(3, "acc = tl.zeros((EB, 2 * E), dtype=tl.float32)")
    s(2, "xr = xe_ptr + rows[:, None] * L")
    for k in range(K):
        s(2, f"pk = ls - padding + {k}")
        s(2, f"acc += tl.load(xr + pk, mask=keep & (pk >= 0) & (pk < L), other=0.0).to(tl.float32) * "
             f"tl.load(w_ptr + ce * {K} + {_wk(k, K, flip)}).to(tl.float32)")
    s(2, "tl.store(y_ptr + fe, acc.to(y_ptr.dtype.element_ty), mask=keep)")
    return s.text()
