"""Python-side cost of one Triton depthwise call with the kernel launches stubbed out: what the
wrapper itself costs on the host (CPU only; no GPU, no Triton launch). Median of 15 loops of
200 calls, after 50 warm-up calls.

Usage: python3 scripts/host_cost_depthwise.py      (compare commits with PYTHONPATH=<checkout>)
"""

from __future__ import annotations

import os
import statistics
import time

os.environ["CONVBENCH_TUNE"] = "0"  # no timing of candidates: there is nothing to time

import torch  # noqa: E402

import convbench.impls.triton_depthwise as td  # noqa: E402


class _NoLaunch:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def _stub() -> None:
    td._gen_kernel = lambda *params: _NoLaunch()
    td._reduce_partials = lambda g, p, rows, w_dtype, device: (
        torch.empty(g.C_out, 1, g.K, dtype=w_dtype), torch.empty(g.C_out, dtype=w_dtype))


def host_us(layout: str, dtype, N: int, C: int, L: int, K: int, grad: bool) -> float:
    shape = (N, C, L) if layout == "ncl" else (N, L, C)
    x = torch.randn(shape, dtype=dtype, requires_grad=grad)
    w = torch.randn(C, 1, K, dtype=dtype, requires_grad=grad)
    b = torch.randn(C, dtype=dtype, requires_grad=grad)

    def call():
        y = td.depthwise_conv1d(x, w, b, 1, K // 2, 1, layout)
        if grad:
            y.backward(torch.ones_like(y))

    for _ in range(50):
        call()
    loops = []
    for _ in range(15):
        t0 = time.perf_counter()
        for _ in range(200):
            call()
        loops.append((time.perf_counter() - t0) / 200 * 1e6)
    return statistics.median(loops)


def main() -> None:
    _stub()
    for layout, dtype, K in (("ncl", torch.float32, 11), ("ncl", torch.bfloat16, 9),
                             ("nlc", torch.bfloat16, 9)):
        fwd = host_us(layout, dtype, 1, 64, 64, K, False)
        both = host_us(layout, dtype, 1, 64, 64, K, True)
        print(f"{layout} {dtype} (1, 64, 64) K={K}: fwd {fwd:.1f} us, fwd+bwd {both:.1f} us")


if __name__ == "__main__":
    main()
