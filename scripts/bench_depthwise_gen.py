"""Device time (CUDA-graph replay, so host launch cost is excluded) of the depthwise kernels:
generated register-window kernels vs the tile kernels vs torch/cuDNN, forward, each backward
kernel, and forward+backward; every case checked against float64 first (GPU machine)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

import torch
from triton.testing import do_bench, do_bench_cudagraph

sys.path.insert(0, os.path.dirname(__file__))
from bench_depthwise_kernels import BASELINES, check, copy_gbps, problem  # noqa: E402

from convbench.impls import triton_depthwise as td  # noqa: E402
from convbench.registry import get  # noqa: E402


def cg_us(fn, grads=None) -> float:
    try:
        return do_bench_cudagraph(fn, rep=30, grad_to_none=grads, return_mode="median") * 1e3
    except Exception as exc:  # noqa: BLE001 - a failed capture is reported, not fatal
        print(f"    capture failed ({str(exc).splitlines()[0][:100]}); do_bench instead", flush=True)
        return do_bench(fn, rep=30, grad_to_none=grads, return_mode="median") * 1e3


def timed(name, p, dtype, layout, mode) -> float:
    inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=3, requires_grad=mode == "fwd_bwd")
    fn = get("depthwise", name).build(p, inp)
    if mode == "fwd":
        fn()
        return cg_us(fn)
    gy = torch.randn_like(fn())

    def step():
        fn().backward(gy)

    step()
    return cg_us(step, inp.tensors())


def kernels(p, dtype, layout):
    inp = p.make_inputs(dtype, device="cuda", layout=layout, seed=5)
    g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, layout)
    w = inp.weight.reshape(g.C_out, g.K).contiguous()
    gy = td._forward(g, inp.x, w, inp.bias)
    td._grad_x(g, gy, w), td._grad_w(g, inp.x, gy, w.dtype)
    return (cg_us(lambda: td._grad_x(g, gy, w)), cg_us(lambda: td._grad_w(g, inp.x, gy, w.dtype)))


def compiled_stats(out):
    """Registers, spills, shared memory and vector loads of every generated kernel compiled."""
    from convbench.impls import _dw_codegen as gen

    for digest, mod in gen._MODULES.items():
        src = open(mod.__file__).read()
        kind = ("ncl_flat" if "ncl_flat" in src else "ncl" if "tl.split" in src else "nlc") + (
            "_gradw" if "n_split" in src else "_conv")
        K = len(re.findall(r"\bw\d+ = tl.load", src)) or len(re.findall(r"\ba\d+ = tl.zeros", src)) - 1
        # the group width: the row-tile kernels' row offset "m = (... % V)", the flat kernel's
        # program stride "(G * V)"; (N, L, C) kernels have none
        V = re.search(r"m = \(\(?rs_[xy].*?% (\d+)\)", src) or re.search(r"\(G \* (\d+)\)", src)
        V = V.group(1) if V else "-"
        kern = getattr(mod, gen.kernel_name(src))
        for dev_cache in getattr(kern, "device_caches", {}).values():
            cache = dev_cache[0] if isinstance(dev_cache, tuple) else dev_cache
            for ck in cache.values():
                ptx = ck.asm.get("ptx", "")
                out.write(f"{digest} {kind} K={K} V={V}"
                          f" regs={getattr(ck, 'n_regs', '?')} spills={getattr(ck, 'n_spills', '?')} "
                          f"shared={getattr(ck.metadata, 'shared', '?')} warps={getattr(ck.metadata, 'num_warps', '?')} "
                          f"ld.v4={len(re.findall(r'ld[.]global[.][.a-z0-9]*v4', ptx))} "
                          f"ld.v2={len(re.findall(r'ld[.]global[.][.a-z0-9]*v2', ptx))} "
                          f"ld={ptx.count('ld.global')} st={ptx.count('st.global')} "
                          f"ld.shared={ptx.count('ld.shared')} bar={ptx.count('bar.sync')}\n")


def write_tuning(out_dir: str) -> None:
    """tuning.txt: every tuned candidate's CUDA-graph median (µs), fastest first, by key."""
    with open(os.path.join(out_dir, "tuning.txt"), "w") as f:
        for key, rows in td.TUNING_LOG.items():
            g = key[1]
            f.write(f"{key[0]} {g.layout} {g.dtype} N={g.N} C={g.C_out} L={g.L_out} K={g.K}\n")
            for plan, ms in sorted(rows, key=lambda r: r[1]):
                f.write(f"    {ms * 1e3:8.1f}  {plan}\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="dtts_dec_b19:float32,nemo_fastconformer_L:bfloat16")
    ap.add_argument("--layouts", default="ncl,nlc")
    ap.add_argument("--old", action="store_true", help="also time the tile kernels")
    ap.add_argument("--budget-s", type=float, default=400)
    ap.add_argument("--fwd-only", action="store_true", help="forward only: tuning landscape")
    args = ap.parse_args()
    out_dir = os.environ.get("OUT", "/tmp")
    t0 = time.time()
    gbps = copy_gbps()
    head = f"device {torch.cuda.get_device_name()}, triton {td.triton.__version__}, copy {gbps:.0f} GB/s"
    print(head, flush=True)
    log = open(os.path.join(out_dir, "gen_bench.txt"), "w")
    log.write(head + "\n")
    for case in args.cases.split(","):
        label, dtype = case.split(":")
        p = problem(label)
        floor = p.bytes(dtype) / gbps / 1e3
        for layout in args.layouts.split(","):
            if time.time() - t0 > args.budget_s:
                print("budget spent", flush=True)
                break
            tri, base, cud = BASELINES[layout]
            if args.fwd_only:
                fwd = timed(tri, p, dtype, layout, "fwd")
                err = check(p, dtype, layout, grads=False)  # the tuned plan, against float64
                line = (f"{label} {dtype} {layout} floor {floor:.1f}us err {err:.1e} | fwd {fwd:.1f} "
                        f"({100 * floor / fwd:.0f}%)")
                print(line, flush=True)
                log.write(line + "\n")
                write_tuning(out_dir)
                continue
            err = check(p, dtype, layout, grads=True)
            r = {"fwd": timed(tri, p, dtype, layout, "fwd")}
            r["gx"], r["gw"] = kernels(p, dtype, layout)
            r["fb"] = timed(tri, p, dtype, layout, "fwd_bwd")
            r["torch"] = timed(base, p, dtype, layout, "fwd")
            r["cudnn"] = timed(cud, p, dtype, layout, "fwd")
            r["torch_fb"] = timed(base, p, dtype, layout, "fwd_bwd")
            if args.old:
                saved, td.GEN_MAX_K = td.GEN_MAX_K, -1
                td.reset_plans()  # ready launches of the generated kernels would bypass the switch
                r["old_fwd"] = timed(tri, p, dtype, layout, "fwd")
                r["old_gx"], r["old_gw"] = kernels(p, dtype, layout)
                td.GEN_MAX_K = saved
                td.reset_plans()
            line = (f"{label} {dtype} {layout} floor {floor:.1f}us err {err:.1e} | fwd {r['fwd']:.1f} "
                    f"({100 * floor / r['fwd']:.0f}%) torch {r['torch']:.1f} (x{r['torch'] / r['fwd']:.2f}) "
                    f"cudnn {r['cudnn']:.1f} | gx {r['gx']:.1f} gw {r['gw']:.1f} | fwd_bwd {r['fb']:.1f} "
                    f"torch {r['torch_fb']:.1f} (x{r['torch_fb'] / r['fb']:.2f})")
            if args.old:
                line += f" | old fwd {r['old_fwd']:.1f} gx {r['old_gx']:.1f} gw {r['old_gw']:.1f}"
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()
    log.write("\nplans:\n" + "\n".join(f"{k}: {v}" for k, v in td._PLANS.items()) + "\n")
    write_tuning(out_dir)
    with open(os.path.join(out_dir, "ptx_stats.txt"), "w") as f:
        try:
            compiled_stats(f)
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            f.write(f"compiled_stats failed: {exc!r}\n")
    print(f"total {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
