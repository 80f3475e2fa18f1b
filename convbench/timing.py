"""Timers (CUDA events with cold/warm L2 and CUDA graphs; CPU perf_counter) and adaptive stopping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .stats import Summary, summarize


@dataclass(frozen=True)
class MeasureSettings:
    """How long and how precisely to measure; the YAML `measure:` block."""

    l2: str = "cold"  # cold | warm
    graph: bool = False  # time CUDA-graph replays (implies warm L2)
    target_rel_ci: float = 0.01  # stop when the median's 95 % CI half-width is within this
    min_samples: int = 10
    max_samples: int = 2000
    max_time_s: float = 1.0  # per implementation per case, warm-up excluded
    warmup_ms: float = 25.0
    graph_reps: int = 10  # calls captured per graph replay


@dataclass(frozen=True)
class Measurement:
    summary: Summary
    samples_ms: list[float] = field(repr=False)
    stop_reason: str  # converged | time_cap | sample_cap


class CpuTimer:
    """perf_counter_ns around one call; the clock is the host's, the thread count is recorded."""

    def __init__(self, settings: MeasureSettings):
        self.settings = settings

    def prepare(self, fn):
        return fn

    def sample(self, fn) -> float:
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6


class CudaTimer:
    """CUDA events around one call. Cold L2: a buffer of 2x the L2 is overwritten before each
    sample, outside the events, while the host enqueues the call (as triton.testing.do_bench)."""

    def __init__(self, settings: MeasureSettings, device: torch.device):
        self.settings = settings
        self.device = device
        props = torch.cuda.get_device_properties(device)
        l2 = getattr(props, "L2_cache_size", 0) or 64 * 2**20
        self.flush_buf = None
        if settings.l2 == "cold" and not settings.graph:
            self.flush_buf = torch.empty(2 * l2 // 4 + 1, dtype=torch.int32, device=device)
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def prepare(self, fn):
        """In graph mode, capture graph_reps calls into one CUDA graph and return its replay."""
        if not self.settings.graph:
            return fn
        reps = self.settings.graph_reps
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            fn()  # warm-up on a side stream, as CUDA graph capture requires
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(reps):
                fn()
        replay = graph.replay
        replay.reps = reps  # type: ignore[attr-defined]
        replay.graph = graph  # keep alive
        return replay

    def sample(self, fn) -> float:
        if self.flush_buf is not None:
            self.flush_buf.zero_()
        self.start.record()
        fn()
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / getattr(fn, "reps", 1)


def make_timer(device: str, settings: MeasureSettings):
    dev = torch.device(device)
    if dev.type == "cuda":
        return CudaTimer(settings, dev)
    return CpuTimer(settings)


def warmup(fn, timer, ms: float) -> None:
    """Run fn until `ms` of wall time has passed (at least twice): compile, autotune, cache fill."""
    deadline = time.perf_counter() + ms / 1e3
    n = 0
    while n < 2 or time.perf_counter() < deadline:
        timer.sample(fn)
        n += 1


def measure_interleaved(
    fns: dict[str, Callable[[], object]], timer, settings: MeasureSettings,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Measurement]:
    """Measure several closures of one case in interleaved rounds (one sample each per round),
    so drift in clocks or load hits all alike; each stops on its own rule."""
    prepared = {name: timer.prepare(fn) for name, fn in fns.items()}
    for fn in prepared.values():
        warmup(fn, timer, settings.warmup_ms)
    samples: dict[str, list[float]] = {name: [] for name in prepared}
    spent: dict[str, float] = dict.fromkeys(prepared, 0.0)
    done: dict[str, str] = {}
    rnd = 0
    while len(done) < len(prepared):
        for name, fn in prepared.items():
            if name in done:
                continue
            t0 = time.perf_counter()
            samples[name].append(timer.sample(fn))
            spent[name] += time.perf_counter() - t0
            reason = stop_reason(samples[name], spent[name], settings)
            if reason:
                done[name] = reason
        rnd += 1
        if on_round:
            on_round(rnd)
    return {
        name: Measurement(summarize(s), s, done[name]) for name, s in samples.items()
    }


def stop_reason(samples: list[float], spent_s: float, settings: MeasureSettings) -> str | None:
    """The adaptive stopping rule: enough samples and a tight CI, or a cap reached."""
    n = len(samples)
    if n >= settings.max_samples:
        return "sample_cap"
    if n >= settings.min_samples and summarize(samples).rel_ci <= settings.target_rel_ci:
        return "converged"
    if spent_s >= settings.max_time_s and n >= min(settings.min_samples, 3):
        return "time_cap"
    return None
