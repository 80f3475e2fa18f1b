"""Run one (N, C, L) depthwise forward twice for Nsight Compute (session 15): the Gluon TMA plan
given, or the tuned Triton pick. Profile the second launch:
  ncu -k regex:depthwise --launch-skip 1 --launch-count 1 python3 scripts/dw_tma_ncu.py LABEL DTYPE [SR,CR,TL,V]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import problem  # noqa: E402

from convbench.impls import gluon_depthwise as gd  # noqa: E402
from convbench.impls import triton_depthwise as td  # noqa: E402

label, dtype = sys.argv[1], sys.argv[2]
p = problem(label)
inp = p.make_inputs(dtype, device="cuda", layout="ncl", seed=5)
x, b = inp.x, inp.bias
g = td._geometry(x, inp.weight, b, p.stride, p.padding, p.dilation, "ncl")
w = inp.weight.reshape(g.C_out, g.K).contiguous()
if len(sys.argv) > 3:
    SR, CR, TL, V = (int(v) for v in sys.argv[3].split(","))
    plan = gd.TmaPlan(SR, CR, TL, V, 4, g.L_out * x.element_size() % 16 != 0)
    y = torch.empty((g.N, g.C_out, g.L_out), device="cuda", dtype=x.dtype)
    go = gd.launcher(g.N, g.C_out, g.L_in, g.L_out, g.K, g.padding, x.dtype, plan, b is not None)
    for _ in range(2):
        go(x, w, b if b is not None else w, y)
else:
    os.environ["CONVBENCH_TUNE"] = "1"
    for _ in range(2):
        td._forward(g, x, w, b)
torch.cuda.synchronize()
