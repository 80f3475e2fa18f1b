"""torch.profiler traces of sweep cases, one TensorBoard run per case x implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from . import precision
from .attribution import Attribution, summarize_events
from .config import PlannedCase, SweepConfig
from .problem import same_padding
from .registry import Case, Impl, all_impls

TRACE_SUFFIX = ".pt.trace.json"


@dataclass(frozen=True)
class ProfileSchedule:
    """torch.profiler.schedule steps: skipped, warmed up (traced, discarded), recorded."""

    wait: int = 1
    warmup: int = 2
    active: int = 3

    def __post_init__(self):
        if self.wait < 0 or self.warmup < 0 or self.active < 1:
            raise ValueError(f"schedule needs wait >= 0, warmup >= 0, active >= 1; got {self}")

    @property
    def steps(self) -> int:
        return self.wait + self.warmup + self.active


@dataclass(frozen=True)
class ProfileTarget:
    """One case x implementation to trace; device is the real device ('cpu', 'cuda:0')."""

    case: Case
    impl: Impl

    @property
    def run_name(self) -> str:
        return run_name(self.case, self.impl.name)


@dataclass(frozen=True)
class ProfileResult:
    run_name: str
    status: str  # ok | skipped | invalid | error
    reason: str | None = None
    run_dir: Path | None = None
    trace_files: tuple[Path, ...] = ()
    attribution: Attribution | None = None
    replaced: int = 0  # old trace files removed from the run folder


def case_name(case: Case) -> str:
    """A file-name-safe case label, e.g. 'depthwise-ncl-float32-N19-C1024-L517-K11'.

    Channels read C1024 (depthwise) or C512to2048 (pointwise C_in -> C_out); stride, dilation,
    padding other than "same", no bias, backward and a device other than the first GPU are
    appended only when present, so the common names stay short.
    """
    p = case.problem
    chans = f"C{p.C_in}" if p.C_out == p.C_in else f"C{p.C_in}to{p.C_out}"
    parts = [p.op, case.layout, case.dtype, f"N{p.N}", chans, f"L{p.L}", f"K{p.K}"]
    if p.stride != 1:
        parts.append(f"s{p.stride}")
    if p.dilation != 1:
        parts.append(f"d{p.dilation}")
    if p.padding != (same_padding(p.K, p.dilation) if p.op == "depthwise" else 0):
        parts.append(f"p{p.padding}")
    if not p.bias:
        parts.append("nobias")
    if case.mode != "fwd":
        parts.append(case.mode.replace("_", ""))
    if case.device not in ("cuda", "cuda:0"):
        parts.append(case.device.replace(":", ""))
    return "-".join(parts)


def run_name(case: Case, impl: str) -> str:
    return f"{case_name(case)}__{impl}"


def _real_case(pc: PlannedCase, cfg: SweepConfig) -> Case:
    device = cfg.workers.get(pc.device, (pc.device,))[0]
    return Case(pc.problem, pc.dtype, pc.layout, device, pc.mode)


def select_cases(cfg: SweepConfig, patterns: tuple[str, ...] = (), limit: int | None = None) -> list[Case]:
    """The config's cases on their real devices; with patterns, those whose name or label
    contains any of them; then the first `limit`."""
    cases = [_real_case(pc, cfg) for pc in cfg.cases]
    if patterns:
        cases = [c for c in cases if any(s in case_name(c) or s in c.label() for s in patterns)]
    return cases[:limit] if limit else cases


def select_targets(cases: list[Case], impl_names: tuple[str, ...] | None) -> list[ProfileTarget]:
    """Every registered implementation of each case's op and layout (or only impl_names)."""
    out = []
    for case in cases:
        for impl in all_impls(case.op):
            if impl.layout == case.layout and (impl_names is None or impl.name in impl_names):
                out.append(ProfileTarget(case, impl))
    return out


def build_closure(case: Case, impl: Impl, seed: int = 0) -> Callable[[], object]:
    """The closure the runner times: Impl.build on Problem.make_inputs (with backward for fwd_bwd)."""
    from .runner import with_backward

    p = case.problem
    inputs = p.make_inputs(case.dtype, case.device, case.layout, seed,
                           requires_grad=case.mode == "fwd_bwd")
    fn = impl.build(p, inputs)
    if case.mode == "fwd_bwd":
        grad_out = p.make_grad_out(case.dtype, case.device, case.layout, seed)
        fn = with_backward(fn, inputs, grad_out)
    return fn


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _clear_old_traces(run_dir: Path) -> int:
    old = [f for f in run_dir.glob(f"*{TRACE_SUFFIX}*") if f.is_file()]
    for f in old:
        f.unlink()
    return len(old)


def trace_one(target: ProfileTarget, logdir: Path, schedule: ProfileSchedule = ProfileSchedule(),
              seed: int = 0) -> ProfileResult:
    """Build the closure, run it once (compile, autotune), then trace schedule.steps calls into
    logdir/<run name>/ with torch.profiler.tensorboard_trace_handler."""
    from torch.profiler import ProfilerActivity, profile, tensorboard_trace_handler
    from torch.profiler import schedule as make_schedule

    case, impl, name = target.case, target.impl, target.run_name
    invalid = case.problem.invalid_reason()
    if invalid:
        return ProfileResult(name, "invalid", invalid)
    reason = impl.skip_reason(case)
    if reason:
        return ProfileResult(name, "skipped", reason)
    run_dir = logdir / name
    try:
        fn = build_closure(case, impl, seed)
        fn()
        _sync(case.device)
    except Exception as exc:  # a broken build is reported per target, the others still run
        return ProfileResult(name, "error", f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500])
    run_dir.mkdir(parents=True, exist_ok=True)
    replaced = _clear_old_traces(run_dir)
    acts = [ProfilerActivity.CPU]
    if case.device_type == "cuda":
        acts.append(ProfilerActivity.CUDA)
    with profile(
        activities=acts,
        schedule=make_schedule(wait=schedule.wait, warmup=schedule.warmup, active=schedule.active,
                               repeat=1),
        on_trace_ready=tensorboard_trace_handler(str(run_dir), worker_name=impl.name),
        record_shapes=True,
        profile_memory=True,
        with_stack=False,
    ) as prof:
        for _ in range(schedule.steps):
            fn()
            _sync(case.device)
            prof.step()
    triton_impl = "triton" in impl.requires
    att = summarize_events(prof.events(), case.device, calls=schedule.active, triton_impl=triton_impl)
    files = tuple(sorted(f for f in run_dir.glob(f"*{TRACE_SUFFIX}*") if f.is_file()))
    return ProfileResult(name, "ok", None, run_dir, files, att, replaced)


def profile_cases(cfg: SweepConfig, logdir: str | Path, impl_names: tuple[str, ...] | None = None,
                  patterns: tuple[str, ...] = (), limit: int | None = None,
                  schedule: ProfileSchedule = ProfileSchedule()) -> Iterator[ProfileResult]:
    """Trace the selected cases x implementations of cfg under its precision policy, yielding
    each result as it is written."""
    logdir = Path(logdir)
    targets = select_targets(select_cases(cfg, patterns, limit), impl_names or cfg.impls)
    with precision.policy(cfg.precision):
        for t in targets:
            yield trace_one(t, logdir, schedule, cfg.seed)
