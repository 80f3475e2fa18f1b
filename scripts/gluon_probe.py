"""Probe (session 12): the Gluon ping-pong pointwise GEMM (convbench/impls/gluon_pointwise.py)
on the (N, L, C) pointwise shapes, each config checked against a float64 reference, timed
against F.linear and our tuned tl.dot kernel (triton_nlc) in CUDA graphs and with a cold L2.

Usage (GPU): OUT=dir python3 scripts/gluon_probe.py
"""

from __future__ import annotations

import traceback

import torch
import torch.nn.functional as F
import triton
import triton.testing
from probe_io import emit

from convbench.impls import triton_pointwise as tp
from convbench.impls.gluon_pointwise import pointwise_nlc_gluon
from convbench.problem import Pointwise

SHAPES = (  # label, N, C_in, C_out, L
    ("dtts_pw_1024_512", 19, 1024, 512, 517),
    ("dtts_pw_512_2048", 19, 512, 2048, 517),
    ("fastconf_L_pw", 128, 512, 1024, 209),
    ("anchor_384_768", 16, 384, 768, 1024),
)
CONFIGS = ((128, 128, 64, 4), (128, 64, 64, 6), (64, 256, 64, 4), (64, 128, 64, 6), (128, 128, 32, 8))


def times(fn) -> tuple[float, float]:
    graph = triton.testing.do_bench_cudagraph(fn, rep=40, return_mode="median") * 1e3
    cold = triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median") * 1e3
    return graph, cold


def case_lines(label: str, N: int, C_in: int, C_out: int, L: int, bias: bool) -> list[str]:
    """Every path on one case: F.linear first (the ratios' base), our tl.dot kernel, each Gluon config."""
    p = Pointwise(N=N, C_in=C_in, C_out=C_out, L=L, bias=bias)
    inp = p.make_inputs("bfloat16", device="cuda", layout="nlc", seed=0)
    x, w, b = inp.x, inp.weight, inp.bias
    ref = F.linear(x.double(), w.squeeze(-1).double(), None if b is None else b.double())

    def err(y):
        return ((y.double() - ref).norm() / ref.norm()).item()

    paths = {"F.linear": lambda: F.linear(x, w.squeeze(-1), b),
             "triton_nlc (tl.dot)": lambda: tp.pointwise_conv1d(x, w, b, layout="nlc")}
    for bm, bn, bk, st in CONFIGS:
        paths[f"gluon {bm}x{bn}x{bk} s{st}"] = (
            lambda bm=bm, bn=bn, bk=bk, st=st: pointwise_nlc_gluon(x, w, b, (bm, bn, bk), st))
    lines, base = [], None
    for name, fn in paths.items():
        try:
            e = err(fn())
            graph, cold = times(fn)
            e_after = err(fn())
        except Exception as exc:  # noqa: BLE001 - a config that does not compile or launch
            lines.append(f"| {label} | {bias} | {name} | failed: {type(exc).__name__}: {str(exc)[:120]} | | | |")
            traceback.print_exc()
            print(lines[-1], flush=True)
            continue
        if base is None:
            base = graph
        flag = "" if max(e, e_after) < 2e-2 else " WRONG"
        lines.append(f"| {label} | {bias} | {name} | {e:.1e}{flag} | {graph:.1f} | {cold:.1f} | {base / graph:.2f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    lines = [f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}", "",
             "| shape | bias | path | rel err vs fp64 | graph µs | cold-L2 µs | F.linear graph / this |",
             "|---|---|---|---:|---:|---:|---:|"]
    for case in SHAPES:
        for bias in (False, True):
            lines += case_lines(*case, bias)
    emit(lines, "gluon_probe.md")


if __name__ == "__main__":
    main()
