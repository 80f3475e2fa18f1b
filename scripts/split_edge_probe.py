"""Probe (session 18): is the (N, C, L) row-tile kernel's split mode worth a dense edge pass?

On short rows (FastConformer's 209) every 256-wide row tile is an edge tile, so every group pays
the masked path (zeroing selects on the window, element stores). Split mode stores only inner
groups (no zeroing) and leaves each row's non-inner groups to an edge program column, which
measured slower (session 9: 35.8 against 26.5 us): its (BLOCK_C, 2 EG) edge tensor is 16 groups
spread over 128 threads. The flat kernel's edge programs (ncl_flat_source) are dense: EB rows x
2E slots a program, one tap load per slot and tap, and they store exactly the slots outside inner
groups, the same inner test the split tiles use (rows anchored to y's group grid).

For each case this times, with the tuners' timer (CUDA-graph replays of an L2 flush and the
call, less the flush), and checks against float64 where the result is complete:
- the row plans given (the tuner's kind, e.g. 4,32,4,8,4,0);
- "tiles": the same plan in split mode without its edge column (EDGE = 0; edges left unwritten,
  timing only);
- "edges": the flat kernel's edge programs alone (timing only);
- "tiles+edges": both launches, one after the other (complete: checked).

Usage (GPU): OUT=dir python3 scripts/split_edge_probe.py --case "nemo_fastconformer_L:bfloat16:4,32,4,8,4"
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import copy_gbps  # noqa: E402
from flat_probe import ncl_case  # noqa: E402
from probe_io import emit  # noqa: E402

from convbench.impls import _dw_codegen as gen  # noqa: E402
from convbench.impls import triton_depthwise as td  # noqa: E402
from convbench.impls._triton_common import Relaunch, cdiv, device_ms  # noqa: E402
from convbench.reference import rel_err, tolerance  # noqa: E402


def row_launch(g, x, w, bias, y, block_c, G, warps, V, nb, split=False, prefetch=False, probe="", maxnreg=None):
    """A row-tile plan of the generated (N, C, L) kernel, launched as triton_depthwise does, with
    the codegen's probe options: `split` tiles store inner groups only and get no edge column
    (EDGE = 0: the row ends are left unwritten); `prefetch` and `probe` as in
    ncl_forward_source; maxnreg: ptxas's register cap."""
    packed = td._ncl_packed(g.dtype, g.N, g.C_out, g.L_in, g.L_out, g.padding, x)
    V, kind = td._ncl_group(V, packed, g.dtype.itemsize)
    anchor_y, S, m_max = td._ncl_anchor(g.L_in, g.L_out, g.padding, V)
    assert anchor_y or not split, "split mode needs rows anchored to y"
    kern = td._gen_kernel("ncl_fwd", g.K, V, S, False, anchor_y, kind, split, None, prefetch, probe)
    grid = (cdiv(g.L_out + m_max, G * V), cdiv(g.C_out, block_c), cdiv(g.N, nb))
    total_x = g.N * g.C_out * g.L_in // (2 if kind else 1)
    run = Relaunch.positional(kern, grid, (None,) * 5 + (g.N, g.C_out, g.L_in, g.L_out, g.padding, total_x), 5,
                              dict(HAS_BIAS=bias is not None, BLOCK_C=block_c, G=G, EDGE=0,
                                   EG=gen.ncl_edge_groups(g.K, V, g.padding, g.L_in, g.L_out), num_warps=warps,
                                   **({} if maxnreg is None else {"maxnreg": maxnreg})))
    xs, yw = (td._as_words(x), td._as_words(y)) if kind else (x, y)
    return lambda: run(xs, w, bias if bias is not None else w, y, yw)


def flat_edges(g, x, w, bias, y, V, warps):
    """The flat kernel's edge programs alone (n_main = 0)."""
    packed = td._ncl_packed(g.dtype, g.N, g.C_out, g.L_in, g.L_out, g.padding, x)
    V, kind = td._ncl_group(V, packed, g.dtype.itemsize)
    E, EB, _, n_edge = td._ncl_flat_grid(g.N, g.C_out, g.L_in, g.K, g.padding, 128, V)
    kern = td._gen_kernel("ncl_flat", g.K, V, (-g.padding) % V, False, kind)
    L, C = g.L_in, g.C_out
    run = Relaunch.positional(kern, (n_edge,),
                              (None,) * 6 + (C, L, g.padding, g.N * C * L, 0, n_edge, 0, g.N * C, 1.0 / L, 1.0 / C),
                              6, dict(HAS_BIAS=bias is not None, BLOCK_C=1, G=128, E=E, EB=EB, num_warps=warps))
    xs, yw = (td._as_words(x), td._as_words(y)) if kind else (x, y)
    return lambda: run(xs, x, w, bias if bias is not None else w, y, yw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--case", action="append", required=True,
                    help="label:dtype:plan;plan..., a plan as block_c,G,warps,V,nb")
    ap.add_argument("--edge-warps", type=int, default=4)
    ap.add_argument("--split", action="store_true", help="also the split tiles and the flat edge programs")
    ap.add_argument("--maxnreg", default="", help="comma-separated register caps: the row plan under each")
    ap.add_argument("--no-prefetch", action="store_true", help="leave out the row plan with L2 prefetch")
    ap.add_argument("--interior", action="store_true",
                    help="also the row plan with every tile on the unmasked path (timing only; x and y "
                         "padded so that its reads and writes past the ends stay in memory), and with the "
                         "edge tiles' zeroing, element stores, or both left out (ncl_forward_source's probe)")
    ap.add_argument("--ncu", action="store_true",
                    help="no timing: run each path twice in NVTX ranges prof > <case>.<what>, for "
                         "ncu --nvtx --nvtx-include 'prof/'")
    args = ap.parse_args()
    gbps = copy_gbps()
    lines = [f"device {torch.cuda.get_device_name()}, triton {td.triton.__version__}, copy {gbps:.0f} GB/s", "",
             "| case | plan | what | us | % of floor | rel err |", "|---|---|---|---:|---:|---|"]
    print("\n".join(lines), flush=True)
    bad = 0
    for spec in args.case:
        label, dtype, plans = spec.split(":")
        p, inp, g, w, y, _, launch, ref = ncl_case(label, dtype)
        floor = p.bytes(dtype) / gbps / 1e3
        for plan in plans.split(";"):
            bc, G, warps, V, nb = (int(t) for t in plan.split(","))
            plan_args = (g, inp.x, w, inp.bias, y, bc, G, warps, V, nb)
            paths = {"row plan (tuner's kind)": (lambda pl=(bc, G, warps, V, nb, False), launch=launch: launch(*pl), True)}
            if not args.no_prefetch:
                paths["row+prefetch (next item's rows into L2)"] = (row_launch(*plan_args, prefetch=True), True)
            for cap in (int(c) for c in args.maxnreg.split(",") if c):
                paths[f"row, maxnreg={cap}"] = (row_launch(*plan_args, maxnreg=cap), True)
                if args.split:
                    paths[f"tiles (split, no edge column), maxnreg={cap}"] = (
                        row_launch(*plan_args, split=True, maxnreg=cap), False)
            if args.interior:
                # padded copies: the unmasked path reads and writes a few groups past both ends
                pad = 4096
                xb = torch.zeros(inp.x.numel() + 2 * pad, device="cuda", dtype=inp.x.dtype)
                yb = torch.zeros(y.numel() + 2 * pad, device="cuda", dtype=y.dtype)
                xp = xb[pad:pad + inp.x.numel()].view(inp.x.shape)
                xp.copy_(inp.x)
                yp = yb[pad:pad + y.numel()].view(y.shape)
                for knob, what in (("i", "all tiles unmasked"), ("z", "edge tiles without zeroing"),
                                   ("s", "edge tiles without element stores"), ("zs", "edge tiles without both")):
                    paths[f"row plan, {what} (wrong at row ends)"] = (
                        row_launch(g, xp, w, inp.bias, yp, bc, G, warps, V, nb, probe=knob), False)
            if args.split:
                tiles = row_launch(*plan_args, split=True)
                edges = flat_edges(g, inp.x, w, inp.bias, y, V, args.edge_warps)

                def both(tiles=tiles, edges=edges):
                    tiles()
                    edges()
                paths.update({"tiles (split, no edge column)": (tiles, False),
                              "edges (flat edge programs)": (edges, False), "tiles+edges": (both, True)})
            for what, (fn, checked) in paths.items():
                y.fill_(float("nan"))
                fn()
                torch.cuda.synchronize()
                err = float(rel_err(y, ref)) if checked else float("nan")
                ok = not checked or err <= tolerance(dtype, False)
                bad += not ok
                if args.ncu:
                    # "prof/" in ncu's --nvtx-include is the push/pop range "prof"; the inner one
                    # names the path (ncu_summary.py reads the innermost)
                    with torch.cuda.nvtx.range("prof"), torch.cuda.nvtx.range(f"{label}.{dtype}.{plan}.{what.split(' ')[0]}"):
                        fn()
                        fn()
                    torch.cuda.synchronize()
                    continue
                us = device_ms(fn) * 1e3
                lines.append(f"| {label} {dtype} | {plan} | {what} | {us:.1f} | {100 * floor / us:.0f} % | "
                             f"{f'{err:.1e}' if checked else 'not checked'}{'' if ok else ' FAIL'} |")
                print(lines[-1], flush=True)
    emit(lines, "split_edge_probe.md")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
