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
import sys
from pathlib import Path

_MODULES: dict[str, object] = {}

HEADER = "import triton\nimport triton.language as tl\n\n"


def _cache_dir() -> Path:
    root = os.environ.get("CONVBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "convbench")
    path = Path(root) / "triton_src"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load(source: str, name: str = "kernel"):
    """Import generated source (content-addressed file under the cache) and return ``name``."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    mod = _MODULES.get(digest)
    if mod is None:
        path = _cache_dir() / f"cb_dw_{digest}.py"
        if not path.exists() or path.read_text() != source:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
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
    return f"(({expr}) != 0)" if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") else expr


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


def nlc_forward_source(K: int, R: int, flip: bool) -> str:
    """y[n, l0 + r, c] = sum_k w[c, k'] * x[n, l0 + r - padding + k, c] (+ b[c]), r < R."""
    s = _Src()
    s(0, "@triton.jit")
    s(0, "def kernel(x_ptr, w_ptr, b_ptr, y_ptr, C, L_in, L_out, padding,")
    s(0, "           HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr):")
    s(1, f"l0 = tl.program_id(0) * {R}")
    s(1, "offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)")
    s(1, "n = tl.program_id(2).to(tl.int64)")
    s(1, "cm = offs_c < C")
    s(1, "xb = x_ptr + n * L_in * C + offs_c")
    s(1, "yb = y_ptr + n * L_out * C + offs_c")
    s(1, "p0 = l0 - padding")
    for k in range(K):
        s(1, f"w{k} = tl.load(w_ptr + offs_c * {K} + {_wk(k, K, flip)}, mask=cm, other=0.0).to(tl.float32)")
    s(1, "if HAS_BIAS:")
    s(2, "bias = tl.load(b_ptr + offs_c, mask=cm, other=0.0).to(tl.float32)")
    s(1, "else:")
    s(2, "bias = tl.zeros((BLOCK_C,), dtype=tl.float32)")
    _nlc_x_rows(s, 1, R + K - 1)
    for r in range(R):
        terms = " + ".join(f"x{r + k} * w{k}" for k in range(K))
        s(1, f"a = bias + {terms}")
        s(1, f"tl.store(yb + (l0 + {r}) * C, a.to(y_ptr.dtype.element_ty), mask={_rowmask('cm', f'(l0 + {r} < L_out)')})")
    return s.text()


def nlc_grad_w_source(K: int, R: int) -> str:
    """p[s, k, c] = sum over this program's (n, row-tile) items of gy[n, l, c] * x[n, l - padding + k, c];
    p[s, K, c] = the sum of gy (bias)."""
    s = _Src()
    s(0, "@triton.jit")
    s(0, "def kernel(x_ptr, gy_ptr, p_ptr, C, L_in, L_out, padding, n_lt, n_items, n_split,")
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


def ncl_window(K: int, V: int, S: int) -> int:
    """Groups of V loaded per tile column: q = 0 .. Q."""
    return (V - 1 + S + K - 1) // V + 1


def _ncl_prologue(s: _Src, ind: int, V: int, S: int, anchor_y: bool) -> None:
    """Per-row start offsets: l0 (output position of tile element (j=0, u=0)) and xa (x flat
    index of window group 0, a multiple of V)."""
    s(ind, "r64 = n * C + rows")
    s(ind, "rs_x = r64 * L_in")
    s(ind, "rs_y = r64 * L_out")
    if anchor_y:
        s(ind, f"m = (rs_y % {V}).to(tl.int32)")
    else:
        s(ind, f"m = (((rs_x - padding) % {V} + {V}) % {V}).to(tl.int32)")
    s(ind, "l0 = l_start - m  # int32: the edge masks below are row positions")
    s(ind, "xa = rs_x + l0 - padding" + (f" - {S}" if S else ""))
    s(ind, f"xa = tl.multiple_of(xa, {V})")
    s(ind, "ya = rs_y + l0")
    if anchor_y:
        s(ind, f"ya = tl.multiple_of(ya, {V})")
    s(ind, f"goff = (jj * {V})[None, :, None]")
    s(ind, "vv3 = vv[None, None, :]")


def _ncl_load_window(s: _Src, ind: int, V: int, groups: int, shift: int, masked: bool,
                     shape: str, ptr: str, base: str, total: str, limit: str, start: str,
                     prefix: str, aligned: bool) -> list[list[str]]:
    """Load `groups` groups of V elements of `ptr` at row offsets `base` and split them into
    names[q][r]. Element t = q*V + r is row position start - shift + j*V + t. In masked (edge)
    tiles, groups outside the tensor are masked as a whole (`base` a multiple of V, so a group is
    wholly in or out; element masks where not `aligned`) and elements outside [0, limit) are
    zeroed."""
    names = []
    if masked:
        s(ind, f"pb_{prefix} = ({start} - {shift})[:, None] + (jj * {V})[None, :]")
    for q in range(groups):
        off = f"{base}[:, None, None] + goff + vv3 + {q * V}"
        if masked:
            gs = f"{base}[:, None, None] + goff + {q * V}" + ("" if aligned else " + vv3")
            s(ind, f"gm = ({gs} >= 0) & ({gs} < {total})")
            s(ind, f"X = tl.load({ptr} + ({off}), mask=gm, other=0.0).to(tl.float32)")
        else:
            s(ind, f"X = tl.load({ptr} + ({off})).to(tl.float32)")
        s(ind, f"{prefix}{q} = tl.reshape(X, {shape})")
        stmts, elems = _split_names(f"{prefix}{q}", V)
        for st in stmts:
            s(ind, st)
        if masked:
            for r, e in enumerate(elems):
                t = q * V + r
                s(ind, f"{e} = tl.where((pb_{prefix} + {t}).to(tl.uint32, bitcast=True) < {limit}, {e}, 0.0)")
        names.append(elems)
    return names


def _ncl_x_window(s: _Src, ind: int, K: int, V: int, S: int, masked: bool, shape: str) -> list[list[str]]:
    """The x window of a tile: the groups every tap of every element reads (names e{q}_...)."""
    return _ncl_load_window(s, ind, V, ncl_window(K, V, S), S, masked, shape, "x_ptr", "xa",
                            "total_x", "L_in", "l0 - padding", "e", True)


def _shape(V: int) -> str:
    return "(BLOCK_C, G" + ", 2" * (V.bit_length() - 1) + ")"


def ncl_forward_source(K: int, V: int, S: int, flip: bool, anchor_y: bool) -> str:
    s = _Src()
    shape = _shape(V)
    Q1 = ncl_window(K, V, S)

    def body(ind: int, masked: bool) -> None:
        e = _ncl_x_window(s, ind, K, V, S, masked, shape)
        for u in range(V):
            terms = " + ".join(f"{e[(u + S + k) // V][(u + S + k) % V]} * w{k}" for k in range(K))
            s(ind, f"o{u} = bias + {terms}")
        s(ind, f"Y = tl.reshape({_join_expr([f'o{u}' for u in range(V)])}, (BLOCK_C, G, {V}))")
        s(ind, "Y = Y.to(y_ptr.dtype.element_ty)")
        s(ind, "yoff = ya[:, None, None] + goff + vv3")
        if masked:
            s(ind, "lpos = l0[:, None, None] + goff + vv3")
            s(ind, "tl.store(y_ptr + yoff, Y, mask=rm3 & (lpos.to(tl.uint32, bitcast=True) < L_out))")
        else:
            s(ind, "tl.store(y_ptr + yoff, Y, mask=rm3)")

    s(0, "@triton.jit")
    s(0, "def kernel(x_ptr, w_ptr, b_ptr, y_ptr, C, L_in, L_out, padding, total_x,")
    s(0, "           HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr, G: tl.constexpr):")
    s(1, f"l_start = tl.program_id(0) * (G * {V})")
    s(1, "rows = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)")
    s(1, "n = tl.program_id(2).to(tl.int64)")
    s(1, "rm3 = (rows < C)[:, None, None]")
    s(1, "rows = tl.minimum(rows, C - 1)")
    s(1, "jj = tl.arange(0, G)")
    s(1, f"vv = tl.arange(0, {V})")
    _ncl_prologue(s, 1, V, S, anchor_y)
    for k in range(K):
        s(1, f"w{k} = tl.load(w_ptr + rows * {K} + {_wk(k, K, flip)}).to(tl.float32)[:, None]")
    s(1, "if HAS_BIAS:")
    s(2, "bias = tl.load(b_ptr + rows).to(tl.float32)[:, None]")
    s(1, "else:")
    s(2, "bias = tl.zeros((BLOCK_C, 1), dtype=tl.float32)")
    # whole tile (every row offset m < V) inside x and inside [0, L_out): no masks
    s(1, f"interior = (l_start - {V - 1} - padding - {S} >= 0) & "
         f"(l_start + (G + {Q1}) * {V} - 1 - padding - {S} < L_in) & "
         f"(l_start >= {V - 1}) & (l_start + G * {V} <= L_out)")
    s(1, "if interior:")
    body(2, False)
    s(1, "else:")
    body(2, True)
    return s.text()


def ncl_grad_w_source(K: int, V: int, S: int, anchor_y: bool) -> str:
    s = _Src()
    shape = _shape(V)
    Q1 = ncl_window(K, V, S)

    def body(ind: int, masked: bool) -> None:
        e = _ncl_x_window(s, ind, K, V, S, masked, shape)
        g = _ncl_load_window(s, ind, V, 1, 0, masked, shape, "gy_ptr", "ya", "total_y", "L_out",
                             "l0", "g", anchor_y)[0]
        for k in range(K):
            terms = " + ".join(f"{g[u]} * {e[(u + S + k) // V][(u + S + k) % V]}" for u in range(V))
            s(ind, f"a{k} += {terms}")
        s(ind, f"a{K} += " + " + ".join(g))

    s(0, "@triton.jit")
    s(0, "def kernel(x_ptr, gy_ptr, p_ptr, C, L_in, L_out, padding, total_x, total_y,")
    s(0, "           n_lt, n_items, n_split, BLOCK_C: tl.constexpr, G: tl.constexpr):")
    s(1, "rows = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)")
    s(1, "pid_s = tl.program_id(1)")
    s(1, "rmask = rows < C")
    s(1, "rows = tl.minimum(rows, C - 1)")
    s(1, "jj = tl.arange(0, G)")
    s(1, f"vv = tl.arange(0, {V})")
    for k in range(K + 1):
        s(1, f"a{k} = tl.zeros((BLOCK_C, G), dtype=tl.float32)")
    s(1, "for it in range(pid_s, n_items, n_split):")
    s(2, "n = (it // n_lt).to(tl.int64)")
    s(2, f"l_start = (it % n_lt) * (G * {V})")
    _ncl_prologue(s, 2, V, S, anchor_y)
    s(2, f"interior = (l_start - {V - 1} - padding - {S} >= 0) & "
         f"(l_start + (G + {Q1}) * {V} - 1 - padding - {S} < L_in) & "
         f"(l_start >= {V - 1}) & (l_start + G * {V} <= L_out)")
    s(2, "if interior:")
    body(3, False)
    s(2, "else:")
    body(3, True)
    s(1, f"pb = p_ptr + pid_s.to(tl.int64) * {K + 1} * C + rows")
    for k in range(K + 1):
        s(1, f"tl.store(pb + {k} * C, tl.sum(a{k}, axis=1), mask=rmask)")
    return s.text()
