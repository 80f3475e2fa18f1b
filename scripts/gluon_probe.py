"""Probe (session 12): the Gluon ping-pong pointwise GEMM (convbench/impls/gluon_pointwise.py)
on the (N, L, C) pointwise shapes, each config checked against a float64 reference, timed
against F.linear and our tuned tl.dot kernel (triton_nlc) in CUDA graphs and with a cold L2.

Usage (GPU): OUT=dir python3 scripts/gluon_probe.py [--shapes dtts_pw_1024_512] [--configs "64,128,64,8;..."]
"""

from __future__ import annotations

import argparse
import traceback

import torch
import torch.nn.functional as F
import triton
import triton.testing
from probe_io import emit

from convbench.impls import triton_pointwise as tp
from convbench.impls._triton_common import device_ms
from convbench.impls.gluon_pointwise import pointwise_nlc_gluon
from convbench.problem import Pointwise

SHAPES = (  # label, N, C_in, C_out, L
    ("dtts_pw_1024_512", 19, 1024, 512, 517),
    ("dtts_pw_512_2048", 19, 512, 2048, 517),
    ("fastconf_L_pw", 128, 512, 1024, 209),
    ("anchor_384_768", 16, 384, 768, 1024),
    # DTTS 1024->512 cut to 8448 rows: exactly 528 tiles of 128x64, 4 whole rounds on 132 SMs
    # (session 16: what a round costs, against the 4.67 rounds of the full shape)
    ("dtts_4rounds", 16, 1024, 512, 528),
)
# the tuner's own set (BM, BN, BK, STAGES, COOP), so a default run times what convbench can pick
CONFIGS = tuple((c.block_m, c.block_n, c.block_k, c.num_stages, int(c.coop)) for c in tp.GLUON_CONFIGS)


def times(fn) -> tuple[float, float, float]:
    """CUDA graph (warm L2), do_bench (events, L2 cleared), and the tuners' timer (device_ms:
    graph replays of an L2 flush and the call, less the flush)."""
    graph = triton.testing.do_bench_cudagraph(fn, rep=40, return_mode="median") * 1e3
    cold = triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median") * 1e3
    return graph, cold, device_ms(fn) * 1e3


def case_lines(label: str, N: int, C_in: int, C_out: int, L: int, bias: bool, configs=CONFIGS,
               tldot: bool = True) -> list[str]:
    """Every path on one case: F.linear first (the ratios' base), our tl.dot kernel, each Gluon config."""
    p = Pointwise(N=N, C_in=C_in, C_out=C_out, L=L, bias=bias)
    inp = p.make_inputs("bfloat16", device="cuda", layout="nlc", seed=0)
    x, w, b = inp.x, inp.weight, inp.bias
    ref = F.linear(x.double(), w.squeeze(-1).double(), None if b is None else b.double())

    def err(y):
        return ((y.double() - ref).norm() / ref.norm()).item()

    paths = {"F.linear": lambda: F.linear(x, w.squeeze(-1), b)}
    if tldot:
        paths["triton_nlc (tl.dot)"] = lambda: tp.pointwise_conv1d(x, w, b, layout="nlc")
    for bm, bn, bk, st, *coop in configs:
        coop = bool(coop and coop[0])
        paths[f"gluon {bm}x{bn}x{bk} s{st}{' coop' if coop else ''}"] = (
            lambda bm=bm, bn=bn, bk=bk, st=st, coop=coop: pointwise_nlc_gluon(x, w, b, (bm, bn, bk), st, coop))
    lines, base, base_dev = [], None, None
    for name, fn in paths.items():
        try:
            e = err(fn())
            graph, cold, dev = times(fn)
            e_after = err(fn())
        except Exception as exc:  # noqa: BLE001 - a config that does not compile or launch
            lines.append(f"| {label} | {bias} | {name} | failed: {type(exc).__name__}: {str(exc)[:120]} | | | | | |")
            traceback.print_exc()
            print(lines[-1], flush=True)
            continue
        if base is None:
            base, base_dev = graph, dev
        flag = "" if max(e, e_after) < 2e-2 else " WRONG"
        lines.append(f"| {label} | {bias} | {name} | {e:.1e}{flag} | {graph:.1f} | {cold:.1f} | {dev:.1f} | {base / graph:.2f} | {base_dev / dev:.2f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", help="comma-separated labels of SHAPES (default: all)")
    ap.add_argument("--configs", help="BM,BN,BK,STAGES[,COOP 0/1];... (default: the tuner's GLUON_CONFIGS)")
    ap.add_argument("--bias", choices=("both", "no", "yes"), default="both")
    ap.add_argument("--no-tldot", action="store_true", help="skip triton_nlc (its first call tunes every candidate)")
    args = ap.parse_args()
    configs = tuple(tuple(int(v) for v in c.split(",")) for c in args.configs.split(";")) if args.configs else CONFIGS
    shapes = [c for c in SHAPES if not args.shapes or c[0] in args.shapes.split(",")]
    biases = {"both": (False, True), "no": (False,), "yes": (True,)}[args.bias]
    lines = [f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}", "",
             "Read device_ms (the tuners' timer). The do_bench column times events around each call, so",
             "it also counts host launch time wherever the host takes longer than the kernel.", "",
             "| shape | bias | path | rel err vs fp64 | graph µs | cold-L2 µs (do_bench) | device_ms µs | "
             "F.linear / this (graph) | F.linear / this (device_ms) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for case in shapes:
        for bias in biases:
            lines += case_lines(*case, bias, configs, not args.no_tldot)
    emit(lines, "gluon_probe.md")


if __name__ == "__main__":
    main()
