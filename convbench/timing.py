"""Timers (CUDA events with cold/warm L2 and CUDA graphs; CPU perf_counter) and adaptive stopping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .stats import Summary, summarize

# How the L2 is prepared before each CUDA sample (the YAML `measure.l2`).
L2_MODES = {
    "cold": "cold L2: a buffer of twice the L2 is zeroed before each sample (as triton's do_bench and "
            "nvbench); the L2 is left full of dirty lines, which a case smaller than the L2 writes back "
            "inside its own timing",
    "clean": "cold L2 with clean lines: a buffer of twice the L2 is zeroed and then read before each "
             "sample, so earlier writes are written back before the timing starts. Under events the "
             "case's own output still in the L2 when it ends is not timed either; graph mode times it",
    "warm": "warm L2: no flush; inputs may sit in the L2 from the previous call",
}

# The timer's version, recorded (meta.json comparability.measure.timer) where it matters: for
# `clean` and for graphs with a flush. 2 (session 20): graph mode honours l2, and `clean` zeroes
# then reads. Before, graph mode ignored l2 (ran warm), and session 20's first `clean` only read.
TIMER_VERSION = 2


def timer_versioned(measure: dict) -> bool:
    """Whether these settings' meaning changed with the timer's version (see TIMER_VERSION)."""
    return measure.get("l2") == "clean" or bool(measure.get("graph")) and measure.get("l2") != "warm"


def l2_label(measure: dict | None) -> str:
    """A run's timing mode in a few words, from meta.json's comparability.measure."""
    if measure is None:
        return "not recorded"
    m, mode = measure, measure.get("l2", "cold")
    label = {"cold": "cold L2, dirty flush", "clean": "cold L2, clean flush", "warm": "warm L2"}.get(mode, str(mode))
    if m.get("graph"):
        label = f"CUDA-graph replays of {m.get('graph_reps', 10)} calls, {label}" + (
            " (less the flushes alone)" if mode != "warm" else "")
    else:
        label = f"CUDA events, {label}"
    if timer_versioned(m) and m.get("timer") != TIMER_VERSION:
        label += f" (timer version {m.get('timer', 'before 2')}: see convbench.timing.TIMER_VERSION)"
    return label


@dataclass(frozen=True)
class MeasureSettings:
    """How long and how precisely to measure; the YAML `measure:` block."""

    l2: str = "cold"  # cold | clean | warm (L2_MODES)
    graph: bool = False  # time CUDA-graph replays (with l2 cold or clean: the flushes inside, subtracted)
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
    host_ms: float | None = None  # host time to issue one call (launch overhead), CUDA only


class CpuTimer:
    """perf_counter_ns around one call; the clock is the host's, the thread count is recorded."""

    batch = 1

    def __init__(self, settings: MeasureSettings):
        self.settings = settings
        self.host_ms: list[float] = []

    def prepare(self, fn):
        return fn

    def sample(self, fn) -> float:
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6


class CudaTimer:
    """CUDA events around one call. Cold L2: a buffer of 2x the L2 is overwritten before each
    sample, outside the events, while the host enqueues the call (as triton.testing.do_bench).
    Clean: the same buffer is zeroed and then read, so the L2 holds only clean lines when the call
    starts (see L2_MODES)."""

    batch = 8  # samples enqueued per round and implementation

    def __init__(self, settings: MeasureSettings, device: torch.device):
        self.settings = settings
        self.device = device
        props = torch.cuda.get_device_properties(device)
        l2 = getattr(props, "L2_cache_size", 0) or 64 * 2**20
        self.flush_buf = None
        if settings.l2 in ("cold", "clean"):
            self.flush_buf = torch.zeros(2 * l2 // 4 + 1, dtype=torch.int32, device=device)
        self._flush = self._flush_clean if settings.l2 == "clean" else self._flush_dirty
        self.host_ms: list[float] = []
        self._host_est_ms = 0.2
        self._cpm: float | None = None

    def prepare(self, fn):
        """In graph mode, capture graph_reps calls into one CUDA graph and return its replay.
        With a cold or clean L2, each call follows its own flush inside the graph (and one more
        flush ends it), and a second graph holds the flushes alone (`replay.base`): a sample is
        the difference of adjacent replays of the two, as the Triton tuners time candidates
        (`_triton_common.device_ms`). So a call is charged for writing back its own output (the
        flush after it does that), with no launch gaps and no foreign work in its time."""
        if not self.settings.graph:
            return fn
        reps = self.settings.graph_reps
        flush = self._flush if self.flush_buf is not None else None

        def calls():
            for _ in range(reps):
                if flush is not None:
                    flush()
                fn()
            if flush is not None:
                flush()  # the last call's output is written back here, as every other call's

        graph = self._capture(calls)

        def replay():
            graph.replay()

        replay.reps = reps  # type: ignore[attr-defined]  (samples divide by it)
        replay.graph = graph  # type: ignore[attr-defined]  (keeps the graph alive)
        if flush is not None:
            flushes = self._capture(lambda: [flush() for _ in range(reps + 1)])
            replay.base = flushes.replay  # type: ignore[attr-defined]  (subtracted per sample)
            replay.base_graph = flushes  # type: ignore[attr-defined]
        return replay

    def _capture(self, body) -> torch.cuda.CUDAGraph:
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            body()  # warm-up on a side stream, as CUDA graph capture requires
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
        return graph

    def sample(self, fn) -> float:
        return self.samples(fn, 1)[0]

    def samples(self, fn, n: int) -> list[float]:
        """n samples of device time. A sleep kernel first holds the GPU while the host enqueues
        all n (flush, start event, call, end event), so the host's launch cost of each call is
        hidden behind device work and the events bracket the call's kernels alone (as nvbench's
        blocking kernel). The host's own cost per call is kept in self.host_ms."""
        reps = getattr(fn, "reps", 1)
        base = getattr(fn, "base", None)  # graph mode, cold or clean: the flushes alone
        flush_outside = self.flush_buf is not None and not self.settings.graph
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        b_starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)] if base else []
        b_ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)] if base else []
        torch.cuda._sleep(int(self._cycles_per_ms * min(50.0, 0.2 + n * self._host_est_ms)))
        host = []
        for i in range(n):
            if flush_outside:
                self._flush()
            if base is not None:
                b_starts[i].record()
                base()
                b_ends[i].record()
            starts[i].record()
            t0 = time.perf_counter()
            fn()
            host.append((time.perf_counter() - t0) * 1e3 / reps)
            ends[i].record()
        ends[-1].synchronize()
        self.host_ms.extend(host)
        # next batch: sleep long enough for the host to enqueue it (with margin)
        self._host_est_ms = (4.0 if base else 2.0) * max(host) * reps + 0.05
        times = [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]
        if base is not None:
            times = [t - s.elapsed_time(e) for t, s, e in zip(times, b_starts, b_ends, strict=True)]
        return [t / reps for t in times]

    def _flush_dirty(self) -> None:
        self.flush_buf.zero_()

    def _flush_clean(self) -> None:
        # write, then read every line: dirty lines (the last call's output) are written back during
        # the write pass, before the start event, and the read pass leaves only clean lines. A read
        # pass alone (session 20, call 4) made graph mode charge a call for its output's
        # write-backs slowing the flush's read stream: 27 MB copies read 11.7 µs against 8.7 (cold)
        self.flush_buf.zero_()
        torch.amax(self.flush_buf)

    @property
    def _cycles_per_ms(self) -> float:
        if self._cpm is None:
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            torch.cuda._sleep(1000)  # load the kernel
            a.record()
            torch.cuda._sleep(2_000_000)
            b.record()
            b.synchronize()
            self._cpm = 2_000_000 / max(a.elapsed_time(b), 1e-3)
        return self._cpm


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
    host: dict[str, float | None] = {}
    spent: dict[str, float] = dict.fromkeys(prepared, 0.0)
    done: dict[str, str] = {}
    rnd = 0
    while len(done) < len(prepared):
        for name, fn in prepared.items():
            if name in done:
                continue
            t0 = time.perf_counter()
            batch = getattr(timer, "batch", 1)
            if batch > 1:
                samples[name].extend(timer.samples(fn, batch))
            else:
                samples[name].append(timer.sample(fn))
            spent[name] += time.perf_counter() - t0
            host_log = getattr(timer, "host_ms", None)
            if host_log:
                host[name] = float(np.median(host_log[-batch:]))
            reason = stop_reason(samples[name], spent[name], settings)
            if reason:
                done[name] = reason
        rnd += 1
        if on_round:
            on_round(rnd)
    return {
        name: Measurement(summarize(s), s, done[name], host.get(name)) for name, s in samples.items()
    }


def stop_reason(samples: list[float], spent_s: float, settings: MeasureSettings) -> str | None:
    """The adaptive stopping rule: at least min_samples, then a tight CI or a cap reached.
    min_samples is a true minimum, as pytest-benchmark's min_rounds: the time cap waits for it
    (a slow case takes min_samples x its time), so a row never has fewer samples than asked."""
    n = len(samples)
    if n >= settings.max_samples:
        return "sample_cap"
    if n < settings.min_samples:
        return None
    if summarize(samples).rel_ci <= settings.target_rel_ci:
        return "converged"
    if spent_s >= settings.max_time_s:
        return "time_cap"
    return None
