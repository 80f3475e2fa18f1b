"""Case stream -> verify -> measure -> rows; worker processes isolate crashes and hangs."""

from __future__ import annotations

import gc
import math
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path

import torch

from . import env, precision
from .attribution import attribute
from .config import PlannedCase, SweepConfig, load_plugins, plugin_modules
from .memory import peak_bytes
from .problem import Inputs
from .reference import depthwise_grads_ncl, reference, rel_err, tolerance
from .registry import Case, Impl, all_impls
from .results import (
    CASE_KEY,
    ResultsError,
    RunWriter,
    load_meta,
    row_key,
    run_dir_of,
    write_csv,
    write_meta,
)
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


class DeviceLost(RuntimeError):
    """The CUDA context is unusable after an implementation's fault (illegal address, device-side
    assert): every later call in this process would fail, so the worker must be replaced."""

    def __init__(self, impl: str | None, reason: str):
        super().__init__(reason)
        self.impl, self.reason = impl, reason


def _check_device(device: str, impl: str | None, exc: BaseException) -> None:
    """Raise DeviceLost if `exc` left the CUDA context broken (errors there are sticky)."""
    if torch.device(device).type != "cuda" or _is_oom(exc):
        return
    try:
        torch.cuda.synchronize(device)
        (torch.ones(1, device=device) + 1).item()
    except Exception as probe:
        raise DeviceLost(impl, f"{_message(exc)} (the CUDA context is now unusable: "
                               f"{_message(probe)[:200]})") from None


def base_row(case: Case, impl: str) -> dict:
    p = case.problem
    valid = p.invalid_reason() is None  # an impossible shape has no FLOPs or bytes (C_in=0: no groups)
    return {
        "op": case.op, "impl": impl, "layout": case.layout, "device": case.device,
        "dtype": case.dtype, "mode": case.mode, **{k: getattr(p, k) for k in CASE_KEY[4:]},
        "L_out": p.L_out, "flops": flops(case) if valid else None,
        "bytes": nbytes(case) if valid else None,
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


def with_backward(fn, inputs: Inputs, grad_out: torch.Tensor):
    leaves = inputs.tensors()

    def step():
        y = fn()
        return (y, *torch.autograd.grad(y, leaves, grad_out))

    return step


def reference_outputs(case: Case, inputs: Inputs, grad_out):
    """Float64 reference output (and input/weight/bias grads for fwd_bwd)."""
    p = case.problem
    if case.mode == "fwd":
        with torch.no_grad():
            return (reference(p, inputs),)
    if p.op == "depthwise":  # written out per tap: autograd's graph would not fit at large K
        t = (lambda a: a) if inputs.layout == "ncl" else (lambda a: a.transpose(1, 2))
        bias = inputs.bias.detach() if inputs.bias is not None else None
        outs = depthwise_grads_ncl(p, t(inputs.x.detach()), inputs.weight.detach(), bias,
                                   t(grad_out))
        return (t(outs[0]), t(outs[1]), *outs[2:])
    leaves = [t.detach().double().requires_grad_(True) for t in inputs.tensors()]
    x, w = leaves[0], leaves[1]
    b = leaves[2] if len(leaves) > 2 else None
    y = reference(p, Inputs(x, w, b, inputs.layout))
    grads = torch.autograd.grad(y, leaves, grad_out.double())
    return (y.detach(), *grads)


def out_specs(outs) -> list[tuple]:
    """(shape, dtype, device) of each output tensor, for poison() once the outputs are freed."""
    outs = outs if isinstance(outs, tuple) else (outs,)
    return [(t.shape, t.dtype, t.device) for t in outs if isinstance(t, torch.Tensor)]


def poison(specs) -> None:
    """Fill blocks of these sizes with NaN and free them: called after the outputs themselves
    were freed, so the caching allocator hands those blocks to the next outputs of the same sizes."""
    junk = [torch.full(shape, float("nan"), dtype=dtype, device=dev) for shape, dtype, dev in specs]
    del junk


def verified_error(fn, refs, sync: Callable[[], None]) -> float:
    """max_rel_err of two calls of fn against refs. The first call of a tuned kernel runs the
    tuner, later calls a cached launch (a different code path), so both are checked; the second
    one's output likely lands in memory just filled with NaN, so an output that is not (fully)
    written does not pass. sync() after each call surfaces asynchronous faults there."""
    out = fn()
    sync()
    err = max_rel_err(out, refs)
    specs = out_specs(out)
    del out
    poison(specs)
    out = fn()
    sync()
    return max(err, max_rel_err(out, refs))


def max_rel_err(outs, refs) -> float:
    outs = outs if isinstance(outs, tuple) else (outs,)
    if len(outs) != len(refs):
        raise ValueError(f"implementation returned {len(outs)} outputs, expected {len(refs)}")
    return max(rel_err(o, r) for o, r in zip(outs, refs, strict=True))


def execute_case(job: Job, device: str, emit: Callable[[tuple], None] = lambda ev: None) -> list[dict]:
    """Verify, then measure in interleaved rounds, every implementation of one case on `device`."""
    pc = job.case
    case = Case(pc.problem, pc.dtype, pc.layout, device, pc.mode)
    known = {i.name: i for i in all_impls(case.op) if i.layout == case.layout}
    impls = [known[n] for n in job.impls if n in known]  # in the order the job lists them
    rows: dict[str, dict] = {n: base_row(case, n) for n in job.impls}
    info = {"device_name": env.device_name(device), "seed": job.seed, "precision": job.precision}
    for r in rows.values():
        r.update(info)

    def finish(name, status, reason=None, **extra):
        rows[name].update(status=status, reason=reason, **extra)

    for name in job.impls:
        if name not in known:  # planned by the parent, unknown here: never a silent omission
            finish(name, "error", f"no {case.op}/{case.layout} implementation {name!r} is registered "
                                  f"in the worker; is the module that registers it listed in "
                                  f"$CONVBENCH_PLUGINS (now {os.environ.get('CONVBENCH_PLUGINS', '')!r})?")

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
                grad_out = case.problem.make_grad_out(case.dtype, device, case.layout, job.seed)
            refs = reference_outputs(case, inputs, grad_out)
        except Exception as exc:  # inputs or reference do not fit: every impl shares the fate
            _check_device(device, None, exc)
            status = "oom" if _is_oom(exc) else "error"
            for i in runnable:
                finish(i.name, status, f"inputs/reference: {_message(exc)}")
            del exc
            _release(device)
            return list(rows.values())

        for impl in runnable:
            fn = None  # the last impl's buffers go before this one allocates
            emit(("impl", impl.name, "verify"))
            tf32 = impl.uses_tf32(case)
            rows[impl.name].update(tf32=tf32)
            try:
                fn = impl.build(case.problem, inputs)
                plan = getattr(fn, "plan", None)  # the tuned variant, known after the first call
                if case.mode == "fwd_bwd":
                    fn = with_backward(fn, inputs, grad_out)
                # an asynchronous fault surfaces at the sync, blamed on this impl
                err = verified_error(fn, refs, lambda: _sync(device))
                if plan is not None:
                    rows[impl.name]["plan"] = plan()
            except Exception as exc:
                _check_device(device, impl.name, exc)
                finish(impl.name, "oom" if _is_oom(exc) else "error", _message(exc))
                del exc
                fn = None  # noqa: F841 - free this impl's buffers before releasing the cache
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
            copies = {}  # the same-size copy floor, timed in the same rounds (not rows)
            if torch.device(device).type in SAME_SIZE_COPY_DEVICES:
                copies = {SAME_SIZE_COPY + how: same_size_copy(nbytes(case), device, how)
                          for how in SAME_SIZE_COPIES}
            try:
                measured = measure_interleaved({**fns, **copies}, timer, job.measure)
            except Exception as exc:  # one impl failing mid-measurement: measure alone to isolate
                _check_device(device, None if len(fns) > 1 else next(iter(fns)), exc)
                del exc
                measured = {}
                for name, fn in fns.items():
                    emit(("impl", name, "measure"))
                    try:
                        measured.update(measure_interleaved({name: fn}, timer, job.measure))
                    except Exception as exc2:
                        _check_device(device, name, exc2)
                        finish(name, "oom" if _is_oom(exc2) else "error", _message(exc2))
                        del exc2
                        _release(device)
                if copies:  # the same-size floor on its own, under the same timer
                    try:
                        measured.update(measure_interleaved(copies, timer, job.measure))
                    except Exception as exc3:  # no floor for this case; the rows stand
                        _check_device(device, None, exc3)
                        del exc3
                        _release(device)
            clock = env.sm_clock(device)
            copy_gbps = (job.ceilings or {}).get("copy_gbps")
            floors = [measured.pop(name).summary.median_ms for name in copies if name in measured]
            copy_ms = min(floors) if floors else None
            del copies  # their buffers go before the peak-memory measurements
            for name, m in measured.items():
                s = m.summary
                r = rows[name]
                sec = s.median_ms / 1e3
                r.update(
                    status="ok", reason=None, median_ms=s.median_ms, q1_ms=s.q1_ms, q3_ms=s.q3_ms,
                    ci_low_ms=s.ci_low_ms, ci_high_ms=s.ci_high_ms, n_samples=s.n_samples,
                    rel_ci=s.rel_ci, stop_reason=m.stop_reason, samples_ms=m.samples_ms, host_ms=m.host_ms,
                    tflops=r["flops"] / sec / 1e12 if sec > 0 else None,
                    gbps=r["bytes"] / sec / 1e9 if sec > 0 else None,
                    sm_clock_mhz=clock.get("sm_clock_mhz"), throttled=clock.get("throttled"),
                )
                r["pct_peak_bw"] = 100 * r["gbps"] / copy_gbps if copy_gbps and r["gbps"] else None
                if copy_ms is not None and sec > 0:
                    r.update(same_size_copy_ms=copy_ms, pct_same_size_copy=100 * copy_ms / s.median_ms)
                emit(("impl", name, "memory"))
                try:
                    r["peak_mem_bytes"] = peak_bytes(fns[name], device)
                    impl = next(i for i in runnable if i.name == name)
                    att = attribute(fns[name], device, ("kernel",) if "triton" in impl.requires else ())
                    r.update(backend=att.backend, kernel_time_ms=att.kernel_time_ms,
                             copy_time_ms=getattr(att, "copy_time_ms", None),
                             kernels=[[k, round(us, 3)] for k, us in att.kernels][:20])
                except Exception as exc:
                    _check_device(device, name, exc)
                    r["reason"] = f"memory/attribution failed: {_message(exc)}"
    return list(rows.values())


# The measured floor of a case at its own size: the faster of two device copies moving the case's
# bytes (half read, half written), measured in the same interleaved rounds and under the same
# timer (cold L2, event overhead, clocks) as the implementations. pct_peak_bw divides by the
# bandwidth of a 1 GiB copy, which a copy of a few MB does not reach under per-call event timing
# (results/h100/timer_check.md: events around a ~3 us kernel add ~3 us). Two copies because
# tensor.copy_ (a memcpy) ran slower than some depthwise kernels at 5-10 MB on the H100
# (session 6); an elementwise kernel is the other way to move bytes that torch has.
SAME_SIZE_COPY = "__same_size_copy__"
SAME_SIZE_COPIES = ("copy_", "add")
SAME_SIZE_COPY_DEVICES = ("cuda",)  # on a CPU the floor is not the product's question


def same_size_copy(n_bytes: int, device: str, how: str = "copy_"):
    src = torch.zeros(max(1, n_bytes // 8), dtype=torch.float32, device=device)
    dst = torch.empty_like(src)

    def copy():
        if how == "copy_":
            dst.copy_(src)
        else:  # an elementwise kernel: read src, write dst
            torch.add(src, 0.0, out=dst)
    copy.buffers = (src, dst)  # type: ignore[attr-defined]
    return copy


def _release(device: str) -> None:
    """Give back what a failed (often out-of-memory) implementation held before the next one runs."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- worker processes


def _worker_main(device: str, conn, log_path: str) -> None:
    # SIGINT/SIGTERM are already ignored (inherited from Worker._start): the parent owns the
    # sweep's lifetime and stops workers itself, so a Ctrl-C never counts as a crash.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)  # library chatter (profiler, compilers) goes to the run's worker log
    try:
        plugins = load_plugins()
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(device)
        conn.send(("hello", env.device_info(device), env.ceilings(device), plugins))
        while True:
            job = conn.recv()
            if job is None:
                return
            try:
                rows = execute_case(job, device, emit=lambda ev, i=job.index: conn.send(("event", i, ev)))
            except DeviceLost as exc:
                conn.send(("fatal", job.index, exc.impl, exc.reason))
                _die()
            except Exception as exc:  # a harness fault: report it, then let the parent replace us
                traceback.print_exc()
                conn.send(("fatal", job.index, None, f"worker failed: {_message(exc)}"))
                _die()
            conn.send(("rows", job.index, rows))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return


def _die() -> None:
    """Exit at once: a broken CUDA context can hang or fail in normal interpreter shutdown."""
    try:
        os.fsync(2)
    except OSError:
        pass
    os._exit(70)


# What a worker is doing, from its events: the implementations a death now would be blamed on.
START, INPUTS, VERIFY, MEASURE, MEMORY = "start", "inputs", "verify", "measure", "memory"


class Worker:
    """One process pinned to one device; replaced when it dies or hangs.

    The parent follows the worker's events (verify X, measure X,Y, memory X) so that a death or a
    hang is blamed on the implementation(s) at work, and knows the deadline of the current step.
    """

    START_TIMEOUT_S = 300.0  # import + CUDA context + ceilings; generous for a cold machine
    PROFILER_START_S = 60.0  # the first profiled call in a process starts the profiler (1-2 s)

    def __init__(self, device: str, log_path: Path):
        self.device = device
        self.log_path = log_path
        self.info: dict | None = None
        self.ceilings: dict | None = None
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(self.device, child, str(self.log_path)),
                                daemon=True)
        with _signals_ignored():  # the child inherits SIG_IGN for SIGINT/SIGTERM through exec
            self.proc.start()
        child.close()
        self.job: Job | None = None
        self.phase = START
        self.at_risk: tuple[str, ...] = ()
        self.fatal: tuple[str | None, str] | None = None
        self.profiled = False
        self.info = self.ceilings = None
        self.step(self.START_TIMEOUT_S)

    @property
    def ready(self) -> bool:
        return self.info is not None and self.job is None

    def submit(self, job: Job, timeout_s: float) -> None:
        self.job, self.phase, self.at_risk = job, INPUTS, job.impls
        self.conn.send(job)
        self.step(timeout_s)

    def step(self, allowance_s: float) -> None:
        self.allowance_s = allowance_s
        self.deadline = time.monotonic() + allowance_s

    def restart(self) -> None:
        self.kill()
        self._start()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError, ValueError):
            pass
        self.proc.join(5)
        self.kill()

    def label(self) -> str:
        return f"pid{self.proc.pid}:{self.device}"

    def death(self) -> str:
        code = self.proc.exitcode
        if code is None:
            return "worker process stopped answering (pipe closed)"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (the host's out-of-memory killer?)" if name == "SIGKILL" else ""
            return f"worker process killed by {name}{hint}"
        return f"worker process died (exit code {code})"


class _signals_ignored:
    """SIGINT and SIGTERM ignored for a moment (only possible in the main thread)."""

    def __enter__(self):
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc):
        for s, h in (self.old or {}).items():
            signal.signal(s, h)


class WorkerError(RuntimeError):
    """A worker could not start: the device or the installation is broken, not one case."""


# ---------------------------------------------------------------- the sweep


class Interrupted(BaseException):
    """SIGINT/SIGTERM: a BaseException like KeyboardInterrupt, so that no `except Exception` in
    the measuring code records it as an implementation's error."""


def _interrupt(signum, frame):
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
        if cfg.impls is not None:  # a listed order is the order of verification
            names.sort(key=cfg.impls.index)
        todo = []
        for name in names:
            probe = base_row(Case(pc.problem, pc.dtype, pc.layout, pc.device, pc.mode), name)
            if row_key(probe) not in done:
                todo.append(name)
        if todo:
            jobs.append(Job(idx, pc, tuple(todo), cfg.measure, cfg.precision, cfg.seed, {}))
    return jobs, len(cases)


class ResumeError(ValueError):
    """A run folder that cannot be continued with this config."""


def check_resume(cfg: SweepConfig, run_dir: str | Path,
                 shard: tuple[int, int] | None) -> tuple[int, int] | None:
    """The shard to continue `run_dir` with; ResumeError if it is not a convbench run or was run
    with settings that make its rows incomparable with new ones (SweepConfig.comparability)."""
    try:
        meta = load_meta(run_dir_of(run_dir))
    except ResultsError as exc:
        raise ResumeError(str(exc)) from None
    if not isinstance(meta.get("comparability"), dict):
        raise ResumeError(f"{str(run_dir)!r} has no meta.json with the settings of its run, so it "
                          "was not written by `convbench run` and cannot be resumed")
    old, new = _flat(meta["comparability"]), _flat(cfg.comparability)
    diff = [f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]
    if diff:
        raise ResumeError(f"{str(run_dir)!r} was run with other settings, so its rows would not be "
                          f"comparable with new ones ({'; '.join(diff)}). Resume with the config "
                          "and options it was started with, or start a new run with --out")
    old_shard = tuple(meta["shard"]) if meta.get("shard") else None
    if shard is not None and old_shard != tuple(shard):
        was = "/".join(map(str, old_shard)) if old_shard else "all cases (no --shard)"
        raise ResumeError(f"{str(run_dir)!r} ran --shard {was}, not {shard[0]}/{shard[1]}; leave "
                          "--shard out to continue its own shard")
    return old_shard if shard is None else tuple(shard)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_sweep(cfg: SweepConfig, run_dir: Path, impl_filter=None, shard=None,
              isolation: str = "process", reporter=None, meta_extra: dict | None = None) -> Path:
    """Run every planned case; append rows as they finish; return the run folder.

    SIGINT/SIGTERM stop the sweep at once with every finished row on disk and raise Interrupted;
    a second run over the same folder (--resume) skips the rows already there.
    """
    import datetime as dt
    import json

    from .progress import Reporter

    load_plugins()
    reporter = reporter or Reporter(enabled=False)
    run_dir = Path(run_dir)
    main_thread = threading.current_thread() is threading.main_thread()
    old_int = signal.getsignal(signal.SIGINT)
    old_term = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        writer = RunWriter(run_dir)
        done = writer.done_keys()
        jobs, n_cases = plan_jobs(cfg, impl_filter, done, shard)
        meta = env.meta([], cfg.raw, cfg.hash, measure_ceiling=False)
        meta.update(comparability=cfg.comparability, shard=list(shard) if shard else None,
                    isolation=isolation, plugins=list(plugin_modules()), **(meta_extra or {}))
        meta_path = run_dir / "meta.json"
        if meta_path.exists():  # a resumed run keeps its first start time and appends this session
            old = json.loads(meta_path.read_text())
            meta["started_at"] = old.get("started_at", meta["started_at"])
            meta["sessions"] = old.get("sessions", []) + [meta.get("git_sha")]
            meta["interrupted"] = None
        write_meta(run_dir, meta)
        reporter.start(total=len(jobs), skipped_done=len(done))
        try:
            if isolation == "none":
                _run_inline(cfg, jobs, writer, meta, run_dir, reporter)
            else:
                _run_workers(cfg, jobs, writer, meta, run_dir, reporter)
        except (KeyboardInterrupt, Interrupted) as exc:
            if main_thread:  # a second Ctrl-C must not tear the clean-up below
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            meta["interrupted"] = str(exc) or "SIGINT"
            raise Interrupted(str(exc) or "SIGINT") from None
        finally:
            writer.close()
            reporter.stop()
            meta["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            write_meta(run_dir, meta)
            write_csv(run_dir)
    except KeyboardInterrupt:  # before the sweep began (opening the folder, planning)
        raise Interrupted("SIGINT") from None
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
    return run_dir


def _device_for(label: str, cfg: SweepConfig) -> list[str]:
    return list(cfg.workers[label])


def _run_inline(cfg, jobs, writer, meta, run_dir, reporter) -> None:
    """No isolation: a crash takes the sweep down (rows so far are kept); for debugging."""
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
        try:
            rows = execute_case(job, device, emit=reporter.event)
        except DeviceLost as exc:
            row = _lost_row(job, exc.impl or job.impls[0], device, "error", exc.reason, None)
            row["worker"] = f"inline:{device}"
            writer.write(row)
            raise WorkerError(f"{device} is unusable after {exc.impl}: {exc.reason}; run with "
                              "--isolation process to replace the worker and go on") from None
        for row in rows:
            row["worker"] = f"inline:{device}"
        writer.write_many(rows)
        reporter.advance(job)


def _run_workers(cfg, jobs, writer, meta, run_dir, reporter) -> None:
    pools: dict[str, list[Worker]] = {}
    for label in dict.fromkeys(j.case.device for j in jobs):
        pools[label] = [Worker(d, run_dir / "worker.log") for d in _device_for(label, cfg)]
    queues = {label: [j for j in jobs if j.case.device == label] for label in pools}
    workers = [(label, w) for label, ws in pools.items() for w in ws]
    pending = {j.index: 1 for j in jobs}  # pieces of a case still out (a crash can split a case)
    sweep = _Sweep(cfg, writer, meta, run_dir, reporter, pending)
    try:
        while any(queues.values()) or any(w.job for _, w in workers):
            for label, w in workers:
                q = queues[label]
                if w.ready and q:
                    job = replace(q.pop(0), ceilings=w.ceilings)
                    reporter.case(job)
                    w.submit(job, cfg.timeout_s)
            ready = wait([w.conn for _, w in workers] + [w.proc.sentinel for _, w in workers],
                         timeout=1.0)
            for label, w in workers:
                if w.conn in ready and sweep.drain(w):
                    continue
                if not w.proc.is_alive() or w.conn.closed:
                    w.proc.join(5)
                    sweep.lost(w, queues[label], "error", w.death())
                elif time.monotonic() > w.deadline:
                    sweep.lost(w, queues[label], "timeout", None)
    except BaseException:
        for _, w in workers:
            w.kill()
        raise
    for _, w in workers:
        w.close()


@dataclass
class _Sweep:
    """The parent's side of the worker protocol: messages in, rows out, losses recorded."""

    cfg: SweepConfig
    writer: RunWriter
    meta: dict
    run_dir: Path
    reporter: object
    pending: dict

    def drain(self, w: Worker) -> bool:
        """Handle every message waiting from w; False once its pipe is closed (it died)."""
        try:
            while w.conn.poll():
                self.handle(w, w.conn.recv())
        except (EOFError, OSError):
            w.proc.join(5)  # the pipe closes as the process exits: let it finish exiting
            return False
        return w.proc.is_alive()

    def handle(self, w: Worker, msg) -> None:
        kind = msg[0]
        if kind == "hello":
            w.info, w.ceilings = msg[1], msg[2]
            self.meta["devices"][w.device] = w.info
            self.meta["ceilings"][w.device] = w.ceilings
            write_meta(self.run_dir, self.meta)
        elif kind == "event":
            ev = msg[2]
            if ev[0] == "impl" and w.job is not None:
                w.phase, w.at_risk = ev[2], tuple(ev[1].split(","))
                allowance = self.cfg.timeout_s
                if w.phase == MEASURE:  # the planned measuring time is not a hang
                    m = self.cfg.measure
                    allowance += len(w.at_risk) * (m.max_time_s + m.warmup_ms / 1e3)
                elif w.phase == MEMORY and not w.profiled:  # the profiler's one-time start-up
                    allowance += w.PROFILER_START_S
                    w.profiled = True
                w.step(allowance)
            self.reporter.event(ev)
        elif kind == "fatal":
            w.fatal = (msg[2], msg[3])
        elif kind == "rows":
            rows = msg[2]
            for row in rows:
                row["worker"] = w.label()
            self.writer.write_many(rows)
            self._done_piece(w.job)
            w.job, w.phase, w.at_risk = None, START, ()

    def _done_piece(self, job: Job) -> None:
        self.pending[job.index] -= 1
        if self.pending[job.index] == 0:
            self.reporter.advance(job)

    def lost(self, w: Worker, queue: list, status: str, reason: str | None) -> None:
        """w died or hung: record the implementation(s) at work, replace w, requeue the rest."""
        job = w.job
        if job is None:
            if w.info is None:  # never said hello: the device or the installation is broken
                why = reason or f"no answer within {w.START_TIMEOUT_S:g} s"
                raise WorkerError(f"the worker for {w.device} failed to start ({why}); its log is "
                                  f"{w.log_path}:\n{_tail(w.log_path)}")
            w.restart()
            return
        if status == "timeout":
            reason = (f"no progress for {w.allowance_s:.3g} s (timeout_s={self.cfg.timeout_s:g}) in "
                      f"{w.phase} of {', '.join(w.at_risk)}; worker killed and replaced")
        elif w.fatal:
            reason = f"{w.fatal[1]}; worker replaced"
            if w.fatal[0]:
                w.phase, w.at_risk = VERIFY, (w.fatal[0],)
        else:
            reason = f"{reason} in {w.phase} of {', '.join(w.at_risk)}; worker replaced"
        if w.phase == INPUTS:  # inputs or reference: the case's implementations share the fate
            culprits = job.impls
            reason = f"inputs/reference: {reason}"
        elif len(w.at_risk) == 1:
            culprits = w.at_risk
        else:  # died in an interleaved measurement: measure each alone to find which one
            culprits = ()
        for name in culprits:
            row = _lost_row(job, name, w.device, status, reason, w.info)
            row["worker"] = w.label()
            self.writer.write(row)
        w.restart()
        rest = tuple(n for n in job.impls if n not in culprits)
        if culprits:
            again = [replace(job, impls=rest)] if rest else []
        else:
            alone = [replace(job, impls=(n,)) for n in rest if n in w.at_risk]
            others = tuple(n for n in rest if n not in w.at_risk)
            again = alone + ([replace(job, impls=others)] if others else [])
        queue[0:0] = again
        self.pending[job.index] += len(again)
        self._done_piece(job)


def _lost_row(job: Job, name: str, device: str, status: str, reason: str, info: dict | None) -> dict:
    pc = job.case
    row = base_row(Case(pc.problem, pc.dtype, pc.layout, device, pc.mode), name)
    row.update(status=status, reason=reason[:1000], device_name=(info or {}).get("device_name"),
               seed=job.seed, precision=job.precision)
    return row


def _tail(path: Path, n: int = 20) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:]) or "(empty log)"
