"""Case stream -> verify -> measure -> rows; worker processes isolate crashes and hangs."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path

import torch

from . import env, precision
from .attribution import attribute
from .config import PlannedCase, SweepConfig
from .memory import peak_bytes
from .problem import Inputs
from .reference import reference, rel_err, tolerance
from .registry import Case, Impl, all_impls
from .results import CASE_KEY, RunWriter, row_key, write_csv, write_meta
from .timing import MeasureSettings, make_timer, measure_interleaved


@dataclass(frozen=True)
class Job:
    """What a worker runs: one case and the implementations still to do for it."""

    index: int
    case: PlannedCase
    impls: tuple[str, ...]
    measure: MeasureSettings
    precision: str
    seed: int
    ceilings: dict


# ---------------------------------------------------------------- one case, in-process


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text[:500]


def base_row(case: Case, impl: str) -> dict:
    p = case.problem
    return {
        "op": case.op, "impl": impl, "layout": case.layout, "device": case.device,
        "dtype": case.dtype, "mode": case.mode, **{k: getattr(p, k) for k in CASE_KEY[4:]},
        "L_out": p.L_out, "flops": flops(case), "bytes": nbytes(case),
    }


def flops(case: Case) -> int:
    """Analytic FLOPs; a backward is two more convolutions (grad of input and of weight)."""
    return case.problem.flops * (3 if case.mode == "fwd_bwd" else 1)


def nbytes(case: Case) -> int:
    """Minimal bytes; fwd_bwd also reads dy, x, w and writes dx, dw, db once."""
    p = case.problem
    fwd = p.bytes(case.dtype)
    if case.mode == "fwd":
        return fwd
    item = torch.empty((), dtype=getattr(torch, case.dtype)).element_size()
    x = p.N * p.C_in * p.L
    y = p.N * p.C_out * p.L_out
    w = p.C_out * (p.C_in // p.groups) * p.K
    b = p.C_out if p.bias else 0
    return fwd + (y + x + w + x + w + b) * item


def _with_backward(fn, inputs: Inputs, grad_out: torch.Tensor):
    leaves = inputs.tensors()

    def step():
        y = fn()
        return (y, *torch.autograd.grad(y, leaves, grad_out))

    return step


def _reference_outputs(case: Case, inputs: Inputs, grad_out):
    """Float64 reference output (and input/weight/bias grads for fwd_bwd)."""
    p = case.problem
    if case.mode == "fwd":
        with torch.no_grad():
            return (reference(p, inputs),)
    leaves = [t.detach().double().requires_grad_(True) for t in inputs.tensors()]
    x, w = leaves[0], leaves[1]
    b = leaves[2] if len(leaves) > 2 else None
    y = reference(p, Inputs(x, w, b, inputs.layout))
    grads = torch.autograd.grad(y, leaves, grad_out.double())
    return (y.detach(), *grads)


def _max_err(outs, refs) -> float:
    outs = outs if isinstance(outs, tuple) else (outs,)
    if len(outs) != len(refs):
        raise ValueError(f"implementation returned {len(outs)} outputs, expected {len(refs)}")
    return max(rel_err(o, r) for o, r in zip(outs, refs))


def execute_case(job: Job, device: str, emit: Callable[[tuple], None] = lambda ev: None) -> list[dict]:
    """Verify, then measure in interleaved rounds, every implementation of one case on `device`."""
    pc = job.case
    case = Case(pc.problem, pc.dtype, pc.layout, device, pc.mode)
    impls = [i for i in all_impls(case.op) if i.layout == case.layout and i.name in job.impls]
    rows: dict[str, dict] = {i.name: base_row(case, i.name) for i in impls}
    info = {"device_name": env.device_name(device), "seed": job.seed, "precision": job.precision}
    for r in rows.values():
        r.update(info)

    def finish(name, status, reason=None, **extra):
        rows[name].update(status=status, reason=reason, **extra)

    invalid = case.problem.invalid_reason()
    if invalid:
        for i in impls:
            finish(i.name, "invalid", invalid)
        return list(rows.values())
    runnable: list[Impl] = []
    for i in impls:
        reason = i.skip_reason(case)
        if reason:
            finish(i.name, "skipped", reason)
        else:
            runnable.append(i)
    if not runnable:
        return list(rows.values())

    with precision.policy(job.precision):
        fns, errs = {}, {}
        try:
            inputs = case.problem.make_inputs(case.dtype, device, case.layout, job.seed,
                                              requires_grad=case.mode == "fwd_bwd")
            grad_out = None
            if case.mode == "fwd_bwd":
                shape = (pc.problem.N, pc.problem.C_out, pc.problem.L_out)
                if case.layout == "nlc":
                    shape = (shape[0], shape[2], shape[1])
                gen = torch.Generator(device=device).manual_seed(job.seed + 1)
                grad_out = torch.randn(shape, generator=gen, device=device).to(inputs.x.dtype)
            refs = _reference_outputs(case, inputs, grad_out)
        except Exception as exc:  # inputs or reference do not fit: every impl shares the fate
            status = "oom" if _is_oom(exc) else "error"
            for i in runnable:
                finish(i.name, status, f"inputs/reference: {_message(exc)}")
            return list(rows.values())

        for impl in runnable:
            emit(("impl", impl.name, "verify"))
            tf32 = impl.uses_tf32(case)
            rows[impl.name].update(tf32=tf32)
            try:
                fn = impl.build(case.problem, inputs)
                if case.mode == "fwd_bwd":
                    fn = _with_backward(fn, inputs, grad_out)
                out = fn()
                _sync(device)
                err = _max_err(out, refs)
                del out
            except Exception as exc:
                finish(impl.name, "oom" if _is_oom(exc) else "error", _message(exc))
                _release(device)
                continue
            tol = tolerance(case.dtype, tf32)
            rows[impl.name]["max_rel_err"] = err if math.isfinite(err) else None
            if not err <= tol:
                what = "non-finite output (NaN/Inf)" if not math.isfinite(err) else f"max_rel_err {err:.2e}"
                finish(impl.name, "wrong", f"{what} > tolerance {tol:.0e} vs float64 reference")
                continue
            fns[impl.name], errs[impl.name] = fn, err

        if fns:
            emit(("impl", ",".join(fns), "measure"))
            timer = make_timer(device, job.measure)
            try:
                measured = measure_interleaved(fns, timer, job.measure)
            except Exception as exc:  # one impl failing mid-measurement: measure alone to isolate
                measured = {}
                for name, fn in fns.items():
                    try:
                        measured.update(measure_interleaved({name: fn}, timer, job.measure))
                    except Exception as exc2:
                        finish(name, "oom" if _is_oom(exc2) else "error", _message(exc2))
                        _release(device)
                del exc
            clock = env.sm_clock(device)
            copy_gbps = (job.ceilings or {}).get("copy_gbps")
            for name, m in measured.items():
                s = m.summary
                r = rows[name]
                sec = s.median_ms / 1e3
                r.update(
                    status="ok", reason=None, median_ms=s.median_ms, q1_ms=s.q1_ms, q3_ms=s.q3_ms,
                    ci_low_ms=s.ci_low_ms, ci_high_ms=s.ci_high_ms, n_samples=s.n_samples,
                    rel_ci=s.rel_ci, stop_reason=m.stop_reason, samples_ms=m.samples_ms,
                    tflops=r["flops"] / sec / 1e12 if sec > 0 else None,
                    gbps=r["bytes"] / sec / 1e9 if sec > 0 else None,
                    sm_clock_mhz=clock.get("sm_clock_mhz"), throttled=clock.get("throttled"),
                )
                r["pct_peak_bw"] = 100 * r["gbps"] / copy_gbps if copy_gbps and r["gbps"] else None
                emit(("impl", name, "memory"))
                try:
                    r["peak_mem_bytes"] = peak_bytes(fns[name], device)
                    impl = next(i for i in runnable if i.name == name)
                    att = attribute(fns[name], device, ("kernel",) if "triton" in impl.requires else ())
                    r.update(backend=att.backend, kernel_time_ms=att.kernel_time_ms,
                             kernels=[[k, round(us, 3)] for k, us in att.kernels][:20])
                except Exception as exc:
                    r["reason"] = f"memory/attribution failed: {_message(exc)}"
    return list(rows.values())


def _release(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- worker processes


def _worker_main(device: str, conn, log_path: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C and stops us
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)  # library chatter (profiler, compilers) goes to the run's worker log
    try:
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(device)
        conn.send(("hello", env.device_info(device), env.ceilings(device)))
        while True:
            job = conn.recv()
            if job is None:
                return
            rows = execute_case(job, device, emit=lambda ev, i=job.index: conn.send(("event", i, ev)))
            conn.send(("rows", job.index, rows))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return


class Worker:
    """One process pinned to one device; replaced when it dies or hangs."""

    def __init__(self, device: str, log_path: Path):
        self.device = device
        self.log_path = log_path
        self.job: Job | None = None
        self.current_impl: str | None = None
        self.last_seen = time.monotonic()
        self.info: dict | None = None
        self.ceilings: dict | None = None
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(self.device, child, str(self.log_path)),
                                daemon=True)
        self.proc.start()
        child.close()
        self.last_seen = time.monotonic()

    def submit(self, job: Job) -> None:
        self.job, self.current_impl = job, None
        self.last_seen = time.monotonic()
        self.conn.send(job)

    def restart(self) -> None:
        self.kill()
        self.job = self.current_impl = None
        self._start()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(5)
        self.kill()


# ---------------------------------------------------------------- the sweep


class Interrupted(Exception):
    pass


def _sigterm(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def plan_jobs(cfg: SweepConfig, impl_filter, done: set, shard: tuple[int, int] | None):
    cases = list(cfg.cases)
    if shard:
        i, n = shard
        cases = cases[i - 1 :: n]
    jobs = []
    for idx, pc in enumerate(cases):
        names = [
            i.name for i in all_impls(pc.problem.op)
            if i.layout == pc.layout
            and (cfg.impls is None or i.name in cfg.impls)
            and (not impl_filter or i.name in impl_filter)
        ]
        todo = []
        for name in names:
            probe = base_row(Case(pc.problem, pc.dtype, pc.layout, pc.device, pc.mode), name)
            if row_key(probe) not in done:
                todo.append(name)
        if todo:
            jobs.append(Job(idx, pc, tuple(todo), cfg.measure, cfg.precision, cfg.seed, {}))
    return jobs, len(cases)


def run_sweep(cfg: SweepConfig, run_dir: Path, impl_filter=None, shard=None,
              isolation: str = "process", reporter=None, meta_extra: dict | None = None) -> Path:
    """Run every planned case; append rows as they finish; return the run folder."""
    from .progress import Reporter

    reporter = reporter or Reporter(enabled=False)
    run_dir = Path(run_dir)
    writer = RunWriter(run_dir)
    done = writer.done_keys()
    jobs, n_cases = plan_jobs(cfg, impl_filter, done, shard)
    meta = env.meta([], cfg.raw, cfg.hash, measure_ceiling=False)
    meta.update(comparability=cfg.comparability, shard=list(shard) if shard else None,
                isolation=isolation, **(meta_extra or {}))
    meta_path = run_dir / "meta.json"
    if meta_path.exists():  # a resumed run keeps its first start time and appends this session
        import json
        old = json.loads(meta_path.read_text())
        meta["started_at"] = old.get("started_at", meta["started_at"])
        meta["sessions"] = old.get("sessions", []) + [meta.get("git_sha")]
    write_meta(run_dir, meta)
    old_handler = signal.signal(signal.SIGTERM, _sigterm)
    reporter.start(total=len(jobs), skipped_done=len(done))
    try:
        if isolation == "none":
            _run_inline(cfg, jobs, writer, meta, run_dir, reporter)
        else:
            _run_workers(cfg, jobs, writer, meta, run_dir, reporter)
    except (KeyboardInterrupt, Interrupted) as exc:
        writer.close()
        meta["interrupted"] = str(exc) or "SIGINT"
        _finish_meta(run_dir, meta)
        reporter.stop()
        raise Interrupted(str(exc) or "SIGINT") from None
    finally:
        signal.signal(signal.SIGTERM, old_handler)
        writer.close()
        reporter.stop()
    _finish_meta(run_dir, meta)
    write_csv(run_dir)
    return run_dir


def _finish_meta(run_dir: Path, meta: dict) -> None:
    import datetime as dt

    meta["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_meta(run_dir, meta)


def _device_for(label: str, cfg: SweepConfig) -> list[str]:
    return list(cfg.workers[label])


def _run_inline(cfg, jobs, writer, meta, run_dir, reporter) -> None:
    ceil_cache: dict[str, dict] = {}
    for job in jobs:
        device = _device_for(job.case.device, cfg)[0]
        if device not in ceil_cache:
            ceil_cache[device] = env.ceilings(device)
            meta["devices"][device] = env.device_info(device)
            meta["ceilings"][device] = ceil_cache[device]
            write_meta(run_dir, meta)
        job = replace(job, ceilings=ceil_cache[device])
        reporter.case(job)
        for row in execute_case(job, device, emit=reporter.event):
            row["worker"] = f"inline:{device}"
            writer.write(row)
        reporter.advance(job)


def _run_workers(cfg, jobs, writer, meta, run_dir, reporter) -> None:
    pools: dict[str, list[Worker]] = {}
    for label in dict.fromkeys(j.case.device for j in jobs):
        pools[label] = [Worker(d, run_dir / "worker.log") for d in _device_for(label, cfg)]
    queues = {label: [j for j in jobs if j.case.device == label] for label in pools}
    workers = [w for ws in pools.values() for w in ws]
    label_of = {id(w): label for label, ws in pools.items() for w in ws}
    try:
        while any(queues.values()) or any(w.job for w in workers):
            for w in workers:
                q = queues[label_of[id(w)]]
                if w.job is None and q and w.ceilings is not None:
                    job = replace(q.pop(0), ceilings=w.ceilings)
                    reporter.case(job)
                    w.submit(job)
            ready = wait([w.conn for w in workers] + [w.proc.sentinel for w in workers], timeout=1.0)
            for w in workers:
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        _handle(msg, w, writer, meta, run_dir, reporter)
                        continue
                if not w.proc.is_alive():
                    _worker_lost(w, queues[label_of[id(w)]], writer, reporter,
                                 "error", f"worker process died (exit code {w.proc.exitcode})")
                elif w.job is not None and time.monotonic() - w.last_seen > cfg.timeout_s:
                    _worker_lost(w, queues[label_of[id(w)]], writer, reporter, "timeout",
                                 f"no progress for {cfg.timeout_s:g} s (timeout_s); worker killed")
    finally:
        for w in workers:
            w.kill() if sys.exc_info()[0] else w.close()


def _handle(msg, w: Worker, writer, meta, run_dir, reporter) -> None:
    kind = msg[0]
    w.last_seen = time.monotonic()
    if kind == "hello":
        w.info, w.ceilings = msg[1], msg[2]
        meta["devices"][w.device] = w.info
        meta["ceilings"][w.device] = w.ceilings
        write_meta(run_dir, meta)
    elif kind == "event":
        ev = msg[2]
        if ev[0] == "impl" and ev[2] == "verify":
            w.current_impl = ev[1]
        reporter.event(ev)
    elif kind == "rows":
        for row in msg[2]:
            row["worker"] = f"pid{w.proc.pid}:{w.device}"
            writer.write(row)
        reporter.advance(w.job)
        w.job = w.current_impl = None


def _worker_lost(w: Worker, queue: list, writer, reporter, status: str, reason: str) -> None:
    """Record the implementation that was running as error/timeout; retry the rest of its case."""
    job = w.job
    if job is None:  # died while idle or starting: nothing to record, start again
        if w.ceilings is None and not w.proc.is_alive():
            raise RuntimeError(f"worker for {w.device} failed to start; see {w.log_path}")
        w.restart()
        return
    culprit = w.current_impl or job.impls[0]
    pc = job.case
    row = base_row(Case(pc.problem, pc.dtype, pc.layout, w.device, pc.mode), culprit)
    row.update(status=status, reason=reason, worker=f"pid{w.proc.pid}:{w.device}",
               device_name=(w.info or {}).get("device_name"), seed=job.seed,
               precision=job.precision)
    writer.write(row)
    rest = tuple(n for n in job.impls if n != culprit)
    ceilings = w.ceilings
    w.restart()
    w.ceilings = ceilings
    if rest:
        queue.insert(0, replace(job, impls=rest))
    else:
        reporter.advance(job)
