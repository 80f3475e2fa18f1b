"""Time the compile (to a cubin for this GPU) of the (N, C, L) row-class forward kernels (8
classes, a branch each), one process per kernel, all at once, with a time limit. Written when
fp16 class plans seemed never to finish on the H200 (session 13); they compile as fast as bf16
(22-23 s each there, six at once): the runs had run out of time compiling. Prints one line per
kernel: dtype, d = L_out - L_in, padding, seconds (registers and spills on a GPU) or "not done"."""

from __future__ import annotations

import subprocess
import sys
import time

ONE = r"""
import sys, time, torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from convbench.impls import _dw_codegen as gen
packed, d, padding = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
classes = tuple((-c * d - padding) % 8 for c in range(8))
kern = gen.load(gen.ncl_forward_source(4, 8, None, False, True, packed, False, classes))
yt = {"bf16": "*bf16", "fp16": "*fp16"}[packed]
sig = {"x_ptr": "*i32", "w_ptr": "*fp32", "b_ptr": "*fp32", "y_ptr": yt, "yw_ptr": "*i32", "N": "i32",
       "C": "i32", "L_in": "i32", "L_out": "i32", "padding": "i32", "total_x": "i32", "HAS_BIAS": "constexpr",
       "BLOCK_C": "constexpr", "G": "constexpr", "EDGE": "constexpr", "EG": "constexpr"}
cap = torch.cuda.get_device_capability() if torch.cuda.is_available() else (9, 0)
t = time.time()
k = triton.compile(ASTSource(kern, sig, {"HAS_BIAS": True, "BLOCK_C": 4, "G": 32, "EDGE": 0, "EG": 1},
                             {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 3, 4, 10)}),
                   target=GPUTarget("cuda", cap[0] * 10 + cap[1], 32), options={"num_warps": 4})
if torch.cuda.is_available():
    k._init_handles()
    print(f"{time.time() - t:.1f} s, {k.n_regs} registers, {k.n_spills} spills", flush=True)
else:
    print(f"{time.time() - t:.1f} s (no GPU: cubin only)", flush=True)
"""


def main() -> int:
    """All kernels at once (one process each), then each result within LIMIT_S of the start."""
    limit, t0 = 150.0, time.time()
    cases = [(packed, d, padding) for packed in ("bf16", "fp16") for d, padding in ((1, 2), (-1, 1), (-3, 0))]
    procs = [subprocess.Popen([sys.executable, "-c", ONE, packed, str(d), str(padding)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for packed, d, padding in cases]
    for (packed, d, padding), proc in zip(cases, procs, strict=True):
        try:
            out, _ = proc.communicate(timeout=max(1.0, limit - (time.time() - t0)))
            res = out.strip().splitlines()[-1] if out.strip() else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.kill()
            res = f"not done after {time.time() - t0:.0f} s"
        print(f"{packed} d={d} padding={padding}: {res}", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
