import sys, os, torch
sys.path.insert(0, "scripts")
from convbench.impls import gluon_depthwise as gd
N, C, L, K, pad = [int(v) for v in os.environ.get("DBG_SHAPE", "2,16,129,5,2").split(",")]
SR, CR, TL, V = [int(v) for v in (sys.argv[1:5] if len(sys.argv) > 4 else (8, 4, 128, 8))]
dt = getattr(torch, sys.argv[5]) if len(sys.argv) > 5 else torch.bfloat16
x = torch.randn(N, C, L, device="cuda", dtype=dt)
w = torch.randn(C, K, device="cuda", dtype=dt)
b = torch.randn(C, device="cuda", dtype=dt)
y = torch.full((N, C, L), float("nan"), device="cuda", dtype=dt)
plan = gd.TmaPlan(SR, CR, TL, V, 4, True)
go = gd.launcher(N, C, L, L, K, pad, dt, plan, True)
go(x, w, b, y)
torch.cuda.synchronize()
ref = torch.nn.functional.conv1d(x.double(), w.double().unsqueeze(1), b.double(), padding=pad, groups=C)
print("max err", (y.double() - ref).abs().max().item(), "nan", y.isnan().sum().item())
