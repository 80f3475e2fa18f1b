"""Power of the regression gate on this machine: false alarms over A/A runs, detection of a planted ~5 % slowdown.

Runs the CI-gate cases (ncl layout, `torch` only) R times in this process (isolation none), each
run beside a test-only implementation `gate_slow` that does ~5 % more work: the same F.conv1d on
an input zero-padded along L by a fraction f, sliced back (the zeros stand where the padding
was, so the output is exact and passes verification). f is calibrated per case so the measured
slowdown is ~5 %, and the slowdown actually measured in every run is reported.

Consecutive runs j, j+1 make the pairs: A/A = torch(j) vs torch(j+1); planted = torch(j) vs
gate_slow(j+1) renamed to torch. Each pair is judged by convbench.compare exactly as the CI gate
does (run folders on disk, compare_runs).

    python scripts/gate_power.py                 # GPU: configs/ci_gate.yaml, 21 runs -> 20 + 20 pairs
    python scripts/gate_power.py --quick         # CPU smoke test with tiny shapes
Writes $OUT/gate_power.md (or --out DIR) and gate_power.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convbench import env  # noqa: E402
from convbench.compare import Gate, compare_runs, parse_threshold  # noqa: E402
from convbench.config import load_config, parse_config  # noqa: E402
from convbench.registry import Impl, register  # noqa: E402
from convbench.results import RunWriter, read_rows, write_meta  # noqa: E402
from convbench.runner import run_sweep  # noqa: E402

SLOW = "gate_slow"
REF = "torch"
_EXTRA: dict[tuple, float] = {}  # case key -> fraction of L to add; calibrated per case
_DEFAULT_EXTRA = [0.05]


def _case_of(p, dtype: str) -> tuple:
    return (p.op, p.N, p.C_in, p.C_out, p.L, p.K, p.stride, p.padding, p.dilation, p.bias, dtype)


def _build_slow(p, inp):
    """F.conv1d on x zero-padded along L by a fraction f, sliced back to L_out: ~f more work."""
    f = _EXTRA.get(_case_of(p, str(inp.x.dtype).removeprefix("torch.")), _DEFAULT_EXTRA[0])
    extra = max(1, round(f * p.L))
    x = torch.cat([inp.x, inp.x.new_zeros(p.N, p.C_in, extra)], dim=-1)
    w, b, L_out = inp.weight, inp.bias, p.L_out
    kw = dict(stride=p.stride, padding=p.padding, dilation=p.dilation, groups=p.groups)
    return lambda: F.conv1d(x, w, b, **kw)[..., :L_out]


for _op in ("depthwise", "pointwise"):
    register(Impl(name=SLOW, op=_op, layout="ncl", build=_build_slow, modes=("fwd",), tf32="conv",
                  description="test-only: torch conv on a slightly longer input (gate_power.py)"))


def quick_config():
    raw = {
        "name": "gate_power_quick", "ops": ["depthwise", "pointwise"], "impls": [REF, SLOW],
        "devices": ["cpu"], "dtypes": ["float32"], "layouts": ["ncl"], "modes": ["fwd"],
        "shapes": {"depthwise": {"N": [2], "C_in": [64], "L": [512], "K": [7], "padding": ["same"]},
                   "pointwise": {"N": [2], "C_in": [64], "C_out": [64], "L": [512]}},
        "measure": {"l2": "warm", "target_rel_ci": 0.01, "min_samples": 10, "max_time_s": 0.1,
                    "warmup_ms": 5},
    }
    return parse_config(raw, "<gate_power --quick>")


@contextlib.contextmanager
def _quiet_fds(log: Path):
    """Library chatter (profiler, compilers) of an inline run goes to a log, as a worker's would."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)


def one_run(cfg, run_dir: Path) -> dict[tuple, dict[str, dict]]:
    """Run the sweep once; {case: {impl: row}}."""
    with _quiet_fds(run_dir.parent / "runs.log"):
        run_sweep(cfg, run_dir, isolation="none")
    out: dict[tuple, dict[str, dict]] = {}
    for r in read_rows(run_dir / "results.jsonl"):
        key = (r["op"], r["N"], r["C_in"], r["C_out"], r["L"], r["K"], r["stride"], r["padding"],
               r["dilation"], r["bias"], r["dtype"])
        out.setdefault(key, {})[r["impl"]] = r
    return out


def slowdowns(rows: dict[tuple, dict[str, dict]]) -> dict[tuple, float]:
    """Measured slowdown of gate_slow over torch in one run (interleaved rounds), per case."""
    out = {}
    for key, by_impl in rows.items():
        a, b = by_impl.get(REF), by_impl.get(SLOW)
        if a and b and a["status"] == b["status"] == "ok":
            out[key] = float(np.median(b["samples_ms"]) / np.median(a["samples_ms"]))
    return out


def calibrate(cfg, work: Path, slowdown: float, rounds: int) -> dict[tuple, list[float]]:
    """Set each case's extra fraction f so gate_slow measures ~`slowdown` slower than torch.

    Model: measured slowdown = c * f (c < 1 where launch overhead dilutes the extra work);
    c is the median of the per-round estimates and f is kept within [slowdown/2, 4*slowdown]."""
    history: dict[tuple, list[float]] = {}
    cs: dict[tuple, list[float]] = {}
    for i in range(rounds):
        for key, ratio in slowdowns(one_run(cfg, work / f"calib{i}")).items():
            f = _EXTRA.get(key, slowdown)
            history.setdefault(key, []).append(ratio)
            cs.setdefault(key, []).append((ratio - 1) / f)
            c = float(np.median(cs[key]))
            want = slowdown / c if c > 0 else 2 * f
            _EXTRA[key] = float(min(4 * slowdown, max(slowdown / 2, want)))
    return history


def write_variant(src: Path, dst: Path, impl_from: str) -> Path:
    """A copy of run src holding only implementation impl_from's rows, renamed to torch."""
    with RunWriter(dst) as w:
        for r in read_rows(src / "results.jsonl"):
            if r["impl"] == impl_from:
                w.write({**r, "impl": REF})
    write_meta(dst, json.loads((src / "meta.json").read_text()))
    return dst


def label(key: tuple) -> str:
    op, N, C_in, C_out, L, K = key[:6]
    ch = f"C{C_in}" + (f"->{C_out}" if op == "pointwise" else "")
    return f"{op} N{N} {ch} L{L}" + (f" K{K}" if op == "depthwise" else "")


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "0/0"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/ci_gate.yaml")
    ap.add_argument("--runs", type=int, default=21, help="runs; R runs give R-1 A/A and R-1 planted pairs")
    ap.add_argument("--slowdown", type=float, default=0.05, help="planted slowdown to calibrate to")
    ap.add_argument("--calibration-rounds", type=int, default=3, help="0: a fixed 5%% longer L")
    ap.add_argument("--threshold", default="5%")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--device", default=None, help="override the config's devices (e.g. cuda:0)")
    ap.add_argument("--quick", action="store_true", help="tiny CPU cases: prove the script works")
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for gate_power.md/json")
    ap.add_argument("--keep-runs", default=None, help="keep the run folders here")
    args = ap.parse_args(argv)

    gate = Gate(parse_threshold(args.threshold), args.alpha)
    _DEFAULT_EXTRA[0] = args.slowdown
    if args.quick:
        torch.set_num_threads(1)  # a small shared CPU: threads of one conv wait on each other
        cfg = quick_config()
    else:
        over = {"impls": [REF, SLOW], "layouts": ["ncl"], "devices": [args.device] if args.device else None}
        cfg = load_config(args.config, over)
    if args.runs < 2:
        ap.error("--runs must be >= 2")
    work = Path(args.keep_runs) if args.keep_runs else Path(tempfile.mkdtemp(prefix="gate_power-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        calib = calibrate(cfg, work, args.slowdown, args.calibration_rounds)
        runs, measured = [], []
        for i in range(args.runs):
            d = work / f"run{i:02d}"
            measured.append(slowdowns(one_run(cfg, d)))
            runs.append(d)
            print(f"run {i + 1}/{args.runs} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        aa, planted = [], []
        for j in range(args.runs - 1):
            base = write_variant(runs[j], work / f"pair{j:02d}_base", REF)
            new_aa = write_variant(runs[j + 1], work / f"pair{j:02d}_aa", REF)
            new_pl = write_variant(runs[j + 1], work / f"pair{j:02d}_planted", SLOW)
            aa.append(compare_runs(base, new_aa, gate))
            planted.append(compare_runs(base, new_pl, gate))
    finally:
        if not args.keep_runs:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - t0

    def case_key(c):
        g = c.get
        return (g("op"), g("N"), g("C_in"), g("C_out"), g("L"), g("K"), g("stride"), g("padding"),
                g("dilation"), g("bias"), g("dtype"))

    keys = sorted({case_key(c) for rep in aa for c in rep.comparisons}, key=repr)
    per: dict[tuple, dict] = {k: {"aa": [], "pl": []} for k in keys}
    for rep in aa:
        for c in rep.comparisons:
            per[case_key(c)]["aa"].append(c)
    for rep in planted:
        for c in rep.comparisons:
            per.setdefault(case_key(c), {"aa": [], "pl": []})["pl"].append(c)

    device = env.device_name(next(iter(cfg.workers.values()))[0])
    n_pairs = args.runs - 1
    lines = [
        f"## Gate power on {device}",
        "",
        f"`{'--quick' if args.quick else args.config}`, torch {torch.__version__}; threshold "
        f"{gate.threshold * 100:g}%, {(1 - gate.alpha) * 100:g}% bootstrap CI; {args.runs} runs in one "
        f"process -> {n_pairs} A/A and {n_pairs} planted comparisons; {elapsed:.0f} s.",
        f"Planted: `{SLOW}` = torch's conv on an input zero-padded along L by a per-case fraction "
        f"calibrated to {args.slowdown * 100:g}% (calibration slowdowns shown as measured).",
        "",
        "| case | dtype | extra L | slowdown in-run, median [min-max] | A/A ratio p5-p95 "
        "| A/A false alarms | planted: slower | planted: noisy | planted ratio median |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    tot = {"aa_fail": 0, "aa_n": 0, "pl_slow": 0, "pl_noisy": 0, "pl_n": 0}
    data_rows = []
    for k in keys:
        a, p = per[k]["aa"], per[k]["pl"]
        s = [m[k] for m in measured if k in m]
        aa_r = [c.ratio for c in a if c.ratio is not None]
        pl_r = [c.ratio for c in p if c.ratio is not None]
        aa_fail = sum(gate.failing(c.verdict) for c in a)
        pl_slow = sum(c.verdict == "slower" for c in p)
        pl_noisy = sum(c.verdict == "noisy" for c in p)
        tot["aa_fail"] += aa_fail
        tot["aa_n"] += len(a)
        tot["pl_slow"] += pl_slow
        tot["pl_noisy"] += pl_noisy
        tot["pl_n"] += len(p)
        sd = (f"{(np.median(s) - 1) * 100:+.1f}% [{(min(s) - 1) * 100:+.1f}..{(max(s) - 1) * 100:+.1f}]"
              if s else "n/a")
        spread = (f"{np.percentile(aa_r, 5):.3f}-{np.percentile(aa_r, 95):.3f}" if aa_r else "n/a")
        plm = f"{np.median(pl_r):.3f}" if pl_r else "n/a"
        extra = _EXTRA.get(k, args.slowdown)
        lines.append(f"| {label(k)} | {k[-1]} | {extra * 100:.1f}% | {sd} | {spread} | "
                     f"{pct(aa_fail, len(a))} | {pct(pl_slow, len(p))} | {pct(pl_noisy, len(p))} | {plm} |")
        data_rows.append({"case": label(k), "dtype": k[-1], "extra_fraction": extra,
                          "slowdown_in_run": s, "calibration": calib.get(k, []),
                          "aa_ratios": aa_r, "aa_verdicts": [c.verdict for c in a],
                          "planted_ratios": pl_r, "planted_verdicts": [c.verdict for c in p]})
    gate_aa = sum(bool(r.failures) for r in aa)
    gate_pl = sum(bool(r.failures) for r in planted)
    all_s = [v for m in measured for v in m.values()]
    lines += [
        f"| **all rows** | | | {(np.median(all_s) - 1) * 100:+.1f}% median | | "
        f"**{pct(tot['aa_fail'], tot['aa_n'])}** | **{pct(tot['pl_slow'], tot['pl_n'])}** | "
        f"{pct(tot['pl_noisy'], tot['pl_n'])} | |" if all_s else "| all rows | | | n/a | | | | | |",
        "",
        f"Whole gate (fails if any row fails): A/A false alarms {pct(gate_aa, len(aa))}; "
        f"planted runs caught {pct(gate_pl, len(planted))}.",
        "",
        "A/A ratio p5-p95 is the run-to-run spread of new/base between two identical runs: a "
        "threshold inside it raises false alarms.",
    ]
    md = "\n".join(lines) + "\n"
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate_power.md").write_text(md)
    summary = {"device": device, "threshold": gate.threshold, "alpha": gate.alpha, "runs": args.runs,
               "elapsed_s": elapsed, "aa_row_false_alarms": tot["aa_fail"], "aa_rows": tot["aa_n"],
               "planted_rows_slower": tot["pl_slow"], "planted_rows_noisy": tot["pl_noisy"],
               "planted_rows": tot["pl_n"], "gate_aa_failures": gate_aa, "gate_planted_caught": gate_pl,
               "pairs": n_pairs, "cases": data_rows}
    (out / "gate_power.json").write_text(
        json.dumps(summary, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o)))
    print(f"wrote {out / 'gate_power.md'} and gate_power.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
