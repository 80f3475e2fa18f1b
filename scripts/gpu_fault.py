"""Run a small GPU sweep with a faulting Triton kernel in the middle; check the sweep survives.

    python scripts/gpu_fault.py [--out DIR]      (DIR defaults to $OUT, else ./gpu_fault_out)
    python scripts/gpu_fault.py --cpu-dry-run    (no GPU: the fault impls skip, the rest runs)

Three depthwise cases (L = 128, 517, 1024); on L = 517 the implementations run in the order
torch, fault_cuda_oom, native, fault_oob, triton, unfold_einsum. Expected: fault_cuda_oom `oom`,
fault_oob `error` naming the illegal memory access, its worker replaced, and every other row `ok`
(including triton and unfold_einsum of the faulting case, measured by the new worker).
Writes DIR/sweep.yaml, DIR/run/ (results.jsonl, meta.json, worker.log), DIR/log.txt and
DIR/verdict.json; exits 0 when the expectations hold, 1 when not, 2 when there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMPLS = ["torch", "fault_cuda_oom", "native", "fault_oob", "triton", "unfold_einsum"]
FAULT_L = 517


def config(device: str) -> dict:
    return {
        "name": "gpu_fault",
        "ops": ["depthwise"],
        "impls": IMPLS,
        "devices": [device],
        "dtypes": ["float32"],
        "layouts": ["ncl"],
        "shapes": {"N": [5], "C_in": [1024], "L": [128, FAULT_L, 1024], "K": [11],
                   "padding": ["same"]},
        "timeout_s": 120,
        "measure": {"min_samples": 5, "max_time_s": 0.2, "warmup_ms": 10},
    }


def expected(row: dict, cuda: bool) -> str:
    if not cuda and row["impl"] in ("fault_oob", "fault_cuda_oom", "triton"):
        return "skipped"
    if row["impl"].startswith("fault_") and row["L"] != FAULT_L:
        return "skipped"
    return {"fault_oob": "error", "fault_cuda_oom": "oom"}.get(row["impl"], "ok")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_fault_out")
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="run on CPU (fault implementations skip): checks the plumbing only")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    env = dict(os.environ)
    env["CONVBENCH_PLUGINS"] = ",".join(filter(None, [env.get("CONVBENCH_PLUGINS"), "fault_plugin"]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(ROOT), env.get("PYTHONPATH")]))

    import torch

    cuda = torch.cuda.is_available() and not args.cpu_dry_run
    if not cuda and not args.cpu_dry_run:
        print("gpu_fault: no CUDA device is visible; run on the GPU machine, or pass --cpu-dry-run "
              "to check the plumbing on CPU", file=sys.stderr)
        return 2
    cfg_path = out / "sweep.yaml"
    cfg_path.write_text(json.dumps(config("cuda" if cuda else "cpu"), indent=2))  # JSON is YAML
    run_dir = out / "run"
    cmd = [sys.executable, "-m", "convbench", "run", str(cfg_path), "--out", str(run_dir)]
    if run_dir.exists() and (run_dir / "results.jsonl").exists():
        cmd = [sys.executable, "-m", "convbench", "run", str(cfg_path), "--resume", str(run_dir)]
    print("$", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    with open(out / "log.txt", "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=540)
    wall_s = time.monotonic() - t0
    print((out / "log.txt").read_text()[-6000:])

    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    checks, ok = [], proc.returncode == 0
    for r in rows:
        want = expected(r, cuda)
        good = r["status"] == want
        if r["impl"] == "fault_oob" and want == "error":
            good = good and "illegal memory access" in (r["reason"] or "")
        ok &= good
        checks.append({"L": r["L"], "impl": r["impl"], "status": r["status"], "expected": want,
                       "pass": good, "worker": r.get("worker"), "median_ms": r.get("median_ms"),
                       "reason": r.get("reason")})
    n_expected = len(IMPLS) * 3
    ok &= len(rows) == n_expected
    workers = sorted({r.get("worker") for r in rows})
    if cuda:
        ok &= len(workers) >= 2  # the faulting worker was replaced
    verdict = {"pass": bool(ok), "exit_code": proc.returncode, "wall_s": round(wall_s, 1),
               "rows": len(rows), "rows_expected": n_expected, "workers": workers,
               "device": "cuda" if cuda else "cpu (dry run)", "checks": checks}
    (out / "verdict.json").write_text(json.dumps(verdict, indent=2))
    for c in checks:
        mark = "PASS" if c["pass"] else "FAIL"
        print(f"{mark} L={c['L']:<5} {c['impl']:<15} {c['status']:<8} (expected {c['expected']}) "
              f"{c['worker']}  {(c['reason'] or '')[:100]}")
    print(f"{'PASS' if ok else 'FAIL'}: {len(rows)}/{n_expected} rows, workers {workers}, "
          f"exit code {proc.returncode}, {wall_s:.1f} s; see {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
