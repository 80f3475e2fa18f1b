"""Statistics and adaptive stopping, tested exactly with a deterministic fake timer."""

import numpy as np
import pytest

from convbench.stats import median_ci_ranks, summarize
from convbench.timing import MeasureSettings, measure_interleaved, stop_reason


class FakeTimer:
    """Returns seeded noisy samples around a per-closure mean; the closure returns its mean."""

    def __init__(self, rel_noise: float, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.rel_noise = rel_noise
        self.calls: list[float] = []

    def prepare(self, fn):
        return fn

    def sample(self, fn):
        mean = fn()
        self.calls.append(mean)
        return float(mean * (1 + self.rel_noise * self.rng.standard_normal()))


def test_summary_is_exact_on_known_samples():
    s = summarize([5, 1, 4, 2, 3])
    assert (s.median_ms, s.q1_ms, s.q3_ms, s.n_samples) == (3, 2, 4, 5)
    assert s.ci_low_ms <= s.median_ms <= s.ci_high_ms


@pytest.mark.parametrize("n", [5, 10, 20, 100, 1000])
def test_median_ci_ranks_cover_about_95_percent(n):
    lo, hi = median_ci_ranks(n)
    assert 0 <= lo <= n // 2 <= hi <= n - 1
    from math import comb

    coverage = sum(comb(n, k) for k in range(lo + 1, hi + 1)) / 2**n
    assert coverage >= 0.93 or (lo == 0 and hi == n - 1)


def test_ci_of_median_covers_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(400):
        s = summarize(rng.normal(1.0, 0.1, 50))
        hits += s.ci_low_ms <= 1.0 <= s.ci_high_ms
    assert 0.92 <= hits / 400 <= 0.99


def test_quiet_closure_converges_noisy_one_hits_the_cap():
    settings = MeasureSettings(target_rel_ci=0.01, min_samples=10, max_samples=300, max_time_s=100,
                               warmup_ms=0)
    timer = FakeTimer(rel_noise=0.002)
    quiet = measure_interleaved({"a": lambda: 1.0}, timer, settings)["a"]
    assert quiet.stop_reason == "converged" and quiet.summary.n_samples == 10
    assert quiet.summary.median_ms == pytest.approx(1.0, rel=0.01)
    noisy = measure_interleaved({"b": lambda: 1.0}, FakeTimer(rel_noise=2.0), settings)["b"]
    assert noisy.stop_reason == "sample_cap" and noisy.summary.n_samples == 300


def test_rounds_are_interleaved():
    settings = MeasureSettings(target_rel_ci=0.0, min_samples=3, max_samples=4, max_time_s=100,
                               warmup_ms=0)
    timer = FakeTimer(rel_noise=0.0)
    measure_interleaved({"a": lambda: 1.0, "b": lambda: 2.0}, timer, settings)
    measured = timer.calls[4:]  # after two warm-up calls each
    assert measured == [1.0, 2.0] * 3  # noise-free: both converge at min_samples


def test_stop_reason_time_cap():
    s = MeasureSettings(min_samples=10, target_rel_ci=0.0, max_time_s=0.5)
    assert stop_reason([1.0, 2.0, 3.0] * 4, 0.6, s) == "time_cap"
    # min_samples is a true minimum: the cap waits for it
    assert stop_reason([1.0, 2.0, 3.0] * 3, 0.6, s) is None
    assert stop_reason([1.0, 2.0, 3.0] * 3, 0.4, s) is None


@pytest.mark.parametrize("mode, reads", [("cold", False), ("clean", True)])
def test_l2_flush_modes_write_or_write_then_read_the_flush_buffer(monkeypatch, mode, reads):
    """`cold` zeroes a buffer of twice the L2 (dirty lines, as do_bench); `clean` zeroes it and then
    reads all of it, so the L2 is left holding clean lines. Run with a CPU tensor standing in for
    the GPU's."""
    import types

    import torch

    from convbench.timing import TIMER_VERSION, CudaTimer, l2_label

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(L2_cache_size=4096))
    timer = CudaTimer(MeasureSettings(l2=mode), torch.device("cpu"))
    assert timer.flush_buf.numel() == 2 * 4096 // 4 + 1
    timer.flush_buf.fill_(7)
    read = []
    real_amax = torch.amax
    monkeypatch.setattr(torch, "amax", lambda t, *a, **k: read.append(t.data_ptr()) or real_amax(t, *a, **k))
    timer._flush()
    assert bool((timer.flush_buf == 0).all())
    assert read == ([timer.flush_buf.data_ptr()] if reads else [])
    assert CudaTimer(MeasureSettings(l2="warm"), torch.device("cpu")).flush_buf is None
    assert CudaTimer(MeasureSettings(l2="warm", graph=True), torch.device("cpu")).flush_buf is None
    # graph mode keeps the flush (inside the graph, subtracted), unless the L2 is to stay warm
    assert CudaTimer(MeasureSettings(l2=mode, graph=True), torch.device("cpu")).flush_buf is not None
    kind = "clean" if reads else "dirty"
    v = {"timer": TIMER_VERSION}
    assert l2_label({"l2": mode, **v}) == f"CUDA events, cold L2, {kind} flush"
    assert l2_label({"l2": mode, "graph": True, "graph_reps": 4, **v}) == (
        f"CUDA-graph replays of 4 calls, cold L2, {kind} flush (less the flushes alone)")
    assert l2_label({"l2": "warm", "graph": True}) == "CUDA-graph replays of 10 calls, warm L2"
    # a run from before the timer was versioned, where the meaning has changed since
    assert "timer version before 2" in l2_label({"l2": mode, "graph": True})
    assert ("timer version" in l2_label({"l2": mode})) is reads  # events + cold never changed
    assert l2_label(None) == "not recorded"


@pytest.mark.parametrize("mode, graph", [("cold", False), ("clean", False), ("warm", False),
                                         ("cold", True), ("clean", True), ("warm", True)])
def test_cuda_timer_arithmetic_on_a_fake_device_clock(monkeypatch, mode, graph):
    """CudaTimer's sampling on a fake GPU timeline: a call takes 5 units and a flush 30. Every
    mode must read 5 a call: events with the flush outside them, graphs of (flush, call) pairs
    plus a trailing flush less a graph of the flushes alone, and graphs of calls alone (warm)."""
    import contextlib
    import types

    import torch

    from convbench.timing import CudaTimer

    clock = {"t": 0.0}

    def advance(dt):
        clock["t"] += dt

    class Event:
        def __init__(self, enable_timing=True):
            self.t = None

        def record(self):
            self.t = clock["t"]

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return end.t - self.t

    class Graph:  # capture runs the body once to learn its length, then rewinds: nothing executes
        def replay(self):
            advance(self.length)

    @contextlib.contextmanager
    def capture(g):
        t0 = clock["t"]
        yield
        g.length, clock["t"] = clock["t"] - t0, t0

    stream = types.SimpleNamespace(wait_stream=lambda s: None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(L2_cache_size=4096))
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "_sleep", lambda cycles: None)
    timer = CudaTimer(MeasureSettings(l2=mode, graph=graph, graph_reps=4), torch.device("cpu"))
    timer._cpm = 1.0
    flushes = []
    timer._flush = lambda: (flushes.append(1), advance(30.0))
    fn = timer.prepare(lambda: advance(5.0))
    assert hasattr(fn, "base") is (graph and mode != "warm")
    flushes.clear()
    samples = timer.samples(fn, 3)
    assert samples == pytest.approx([5.0] * 3)
    assert (len(flushes) > 0) is (mode != "warm" and not graph)  # graphs flush inside their replays
