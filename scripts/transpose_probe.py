"""Time the transpose kernel that ncl_t runs on each side of its GEMM, per tile, against a
same-size copy (x.clone()), on the odd-L (N, C, L) pointwise shapes; each result checked exactly.

Usage (GPU): OUT=dir python3 scripts/transpose_probe.py
"""

from __future__ import annotations

import torch
import triton
import triton.testing
from probe_io import emit

from convbench.impls import triton_pointwise as tp

CASES = (  # label, (n, a, b): src (n, a, b) -> dst (n, b, a)
    ("FastConformer-L x (N,C,L)->(N,L,C)", (128, 512, 209)),
    ("FastConformer-L y (N,L,C)->(N,C,L)", (128, 209, 1024)),
    ("DTTS 1024->512 x", (19, 1024, 517)),
    ("DTTS 1024->512 y", (19, 517, 512)),
    ("DTTS 512->2048 y", (19, 517, 2048)),
)
TILES = ((64, 64, 4), (32, 32, 4), (32, 64, 4), (64, 32, 4), (128, 32, 4), (32, 128, 4),
         (64, 128, 8), (128, 64, 8), (128, 128, 8), (64, 64, 8), (16, 128, 4), (128, 16, 4))


def us(fn) -> float:
    return triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median") * 1e3


def main() -> None:
    lines = [f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; triton {triton.__version__}",
             f"tiles (BLOCK_A, BLOCK_B, warps) in use: x {tp.TRANSPOSE_TILE}, y back {tp.TRANSPOSE_TILE_TO_NCL}; cold-L2 do_bench medians", "",
             "| case | MB moved | copy µs | " + " | ".join(f"{a}x{b} w{w}" for a, b, w in TILES) + " |",
             "|---|---:|---:|" + "---:|" * len(TILES)]
    for label, (n, a, b) in CASES:
        src = torch.randn(n, a, b, device="cuda").to(torch.bfloat16)
        dst = torch.empty(n, b, a, device="cuda", dtype=src.dtype)
        ref = src.transpose(1, 2).contiguous()
        cells = []
        for tile in TILES:
            run = tp._transposer(n, a, b, tile)
            dst.zero_()
            run(src=src, dst=dst)
            ok = torch.equal(dst, ref)
            cells.append(f"{us(lambda run=run, s=src, d=dst: run(src=s, dst=d)):.1f}" + ("" if ok else " WRONG"))
        mb = 2 * src.numel() * src.element_size() / 1e6
        lines.append(f"| {label} | {mb:.0f} | {us(lambda s=src: s.clone()):.1f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    emit(lines, "transpose_probe.md")


if __name__ == "__main__":
    main()
