"""What the Triton families share: whether Triton can run here, and the skip reason when not."""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor

import torch

from ..registry import Case


def cdiv(a: int, b: int) -> int:
    """Host-side ceil division for grids. triton.cdiv is a jit function: calling it from Python
    costs ~6 µs (measured on the CPU VM), on every launch."""
    return -(-a // b)


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def device_reason(case: Case) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    if case.device_type == "cpu" and not interpreting():
        return "Triton kernels need a CUDA GPU (on CPU they run only under TRITON_INTERPRET=1, for correctness)"
    return None


def tuning_enabled() -> bool:
    """CONVBENCH_TUNE=0 takes the first workable tile instead of timing candidates: for
    correctness sweeps over many shapes, where tuning every shape costs minutes of compiles."""
    return os.environ.get("CONVBENCH_TUNE", "1") != "0"


def split_layout(x, layout: str) -> tuple[int, int, int]:
    """(N, C, L) of x held as (N, C, L) for layout "ncl" or (N, L, C) for "nlc"."""
    if layout == "ncl":
        n, c, length = x.shape
    elif layout == "nlc":
        n, length, c = x.shape
    else:
        raise ValueError(f"layout must be 'ncl' or 'nlc', got {layout!r}")
    return n, c, length


def compile_threads() -> int:
    """Threads that compile tuning candidates at once (precompile): CONVBENCH_COMPILE_THREADS, by
    default one a CPU core up to 8; 1 turns precompiling off."""
    value = os.environ.get("CONVBENCH_COMPILE_THREADS", "")
    if value:
        return max(1, int(value))
    return min(8, os.cpu_count() or 1)


def precompile(run, plans) -> None:
    """Run every tuning candidate once, from a pool of threads, so that all of them are compiled
    before the tuner times them one at a time. Triton releases the GIL for most of a compile:
    two (N, C, L) row-class kernels took 39.9 s one after the other and 22.6 s in two threads on
    the 2-core CPU machine (session 13), and a row-class kernel alone takes about 22 s on the
    H200 host. Only compiling is sped up: the launches go to the device's current stream, their
    outputs are thrown away (the tuner runs the chosen plan again), and their errors (a config
    the device cannot hold) are left to the timing pass, which meets them again. Nothing runs in
    the interpreter, on the CPU, or with one thread. The threads launch on the caller's current
    device, which is where Triton launches the caller's own calls. Plans that differ only in
    constexprs share one generated source, which the threads then load at once
    (_dw_codegen.load is thread-safe for this)."""
    threads = min(compile_threads(), len(plans))
    if threads < 2 or interpreting() or not torch.cuda.is_available():
        return
    device = torch.cuda.current_device()

    def one(plan):
        with torch.cuda.device(device):
            try:
                run(plan)
            except Exception:  # noqa: BLE001 - the timing pass reports it
                pass

    with ThreadPoolExecutor(threads, thread_name_prefix="convbench-compile") as pool:
        list(pool.map(one, plans))
    torch.cuda.synchronize(device)


class ReusedDescriptors:
    """Host-side TMA descriptors built (and validated) on the first call, their bases swapped on
    later calls: `descs = reused(x, w, y)` returns the same descriptor objects each time, pointed
    at the new tensors. Building three descriptors per call cost a Gluon launch 33-53 µs of
    host time, against 19-23 µs with reuse (H200, session 12,
    results/h200/session12/call4_pwlaunch and call7_desc_reuse).

    `make(*tensors)` builds them (None for a tensor passed as a plain pointer, whose base stays
    None). Valid because the launcher encodes each descriptor from its fields at every launch (a
    captured graph keeps the values of its own launch), and the plan holding this object is keyed
    on the shapes, strides and 16-byte alignment the first call's checks covered."""

    def __init__(self, make):
        self._make = make
        self._descs: tuple | None = None

    def __call__(self, *tensors) -> tuple:
        if self._descs is None:
            self._descs = tuple(self._make(*tensors))
        else:
            for d, t in zip(self._descs, tensors, strict=True):
                if d is not None:
                    d.base = t
        return self._descs


class Relaunch:
    """One Triton kernel with a fixed grid and fixed scalar/constexpr arguments, launched again
    and again with new tensors, without JITFunction.run's per-call work.

    `kernel[grid](...)` binds and specialises every argument and looks the compiled kernel up
    on every call. On the GPU machine's slow CPU, skipping that took a pointwise call from
    63-80 µs to 41-64 µs of host time (session 5, results/h100/session5/launch_cost/), where
    many pointwise kernels take 20-60 µs on the GPU.

    The first call goes through that path (it compiles and returns the compiled kernel); later
    calls hand the argument values straight to the compiled kernel's launcher, the way
    JITFunction.run itself ends. That is valid only while the specialisation is unchanged, so
    callers keep one Relaunch per call signature (shapes, strides and dtypes), and a call whose
    tensors differ in 16-byte alignment from the adopted one takes the normal path. If the
    compiled kernel lacks that launcher interface (the interpreter, another Triton version),
    every call takes the normal path.
    """

    def __init__(self, fn, grid: tuple, fixed: dict, options: dict):
        self.fn, self.grid, self.fixed, self.options = fn, grid, fixed, options
        self.kernel = None
        self.device = 0
        self.driver = self.hooks = None  # Triton's active driver and runtime knobs, once adopted
        self.alignment: tuple = ()
        self.values: list = []
        self.slots: dict[str, int] = {}

    def __call__(self, **per_call) -> None:
        k = self.kernel
        if k is None or _alignment(per_call.values()) != self.alignment:
            # first call, or a tensor whose 16-byte alignment (which Triton specialises on)
            # differs from the adopted launch's: the normal path, which specialises afresh
            compiled = self.fn[self.grid](**self.fixed, **per_call, **self.options)
            if k is None:
                self._adopt(compiled, per_call)
            return
        values = self.values.copy()
        for name, value in per_call.items():
            values[self.slots[name]] = value
        stream = self.driver.get_current_stream(self.device)
        g = self.grid
        k.run(g[0], g[1] if len(g) > 1 else 1, g[2] if len(g) > 2 else 1, stream, k.function,
              k.packed_metadata, k.launch_metadata(g, stream, *values),
              self.hooks.launch_enter_hook, self.hooks.launch_exit_hook, *values)

    def _adopt(self, compiled, per_call: dict) -> None:
        import triton

        if interpreting() or not hasattr(triton, "knobs") or not all(
                hasattr(compiled, a) for a in ("run", "function", "packed_metadata", "launch_metadata")):
            return
        device = _cuda_device(per_call.values())
        if device is None:
            return
        self.device = device
        # the launch hooks are read per call: a profiler may set them after this
        self.driver, self.hooks = _driver(), triton.knobs.runtime
        names = list(self.fn.arg_names)
        args = {**self.fixed, **per_call}
        if set(names) != set(args):
            return  # defaults or unknown parameters: keep the normal path
        self.values = [args[n] for n in names]
        self.slots = {n: names.index(n) for n in per_call}
        self.alignment = _alignment(per_call.values())
        self.kernel = compiled

    @classmethod
    def positional(cls, fn, grid: tuple, args: tuple, n_per_call: int, consts: dict):
        """For a kernel called as fn[grid](*args, **consts) whose first n_per_call arguments
        change from call to call: f(*those) launches it."""
        names = list(fn.arg_names)
        consts = dict(consts)
        options = {k: consts.pop(k) for k in ("num_warps", "num_stages") if k in consts}
        # args cover the leading parameters; the constexprs after them come in consts
        scalars = dict(zip(names[n_per_call:], args[n_per_call:], strict=False))
        run = cls(fn, grid, {**scalars, **consts}, options)
        per_names = names[:n_per_call]
        return lambda *per: run(**dict(zip(per_names, per, strict=True)))


def _alignment(values) -> tuple:
    return tuple(v.data_ptr() % 16 == 0 for v in values if isinstance(v, torch.Tensor))


def _cuda_device(values) -> int | None:
    """The one CUDA device index of the tensors (a TensorDescriptor counts as its base)."""
    tensors = [getattr(v, "base", v) for v in values]
    devices = {t.device.index for t in tensors if isinstance(t, torch.Tensor) and t.is_cuda}
    return devices.pop() if len(devices) == 1 else None


def _driver():
    import triton

    return triton.runtime.driver.active


_FLUSH: dict[int, tuple[torch.Tensor, float]] = {}


def _flush(device: torch.device) -> tuple[torch.Tensor, float]:
    """A buffer of twice the L2 (zeroing it evicts the L2) and the device ms one zeroing takes."""
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _FLUSH:
        from triton.testing import do_bench_cudagraph

        l2 = torch.cuda.get_device_properties(idx).L2_cache_size or 64 * 2**20
        buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device=device)
        _FLUSH[idx] = (buf, do_bench_cudagraph(buf.zero_, rep=20, return_mode="median"))
    return _FLUSH[idx]


def device_ms(fn) -> float:
    """Median device time of fn with a cold L2, as convbench measures: CUDA-graph replays of
    (L2 flush, fn) less replays of the flush alone. Graphs keep the host's launch cost (50-100
    µs per Triton launch on the device VM) out of the choice; a warm L2 would favour plans that
    lose on data read from memory. Plain do_bench (events, L2 flushed) if capture fails.
    Both Triton tuners time their candidates with it (pointwise since session 12: with
    triton.testing.do_bench its three-launch (N, C, L) plans lost picks to slower one-launch
    ones on the host's cost: session 12, results/h200/session12/call3, ncl_tma_pad at 61.9 µs
    over ncl_tg at about 44)."""
    from triton.testing import do_bench, do_bench_cudagraph

    try:
        buf, flush_ms = _flush(torch.device("cuda"))

        def cold():
            buf.zero_()
            fn()

        return do_bench_cudagraph(cold, rep=20, return_mode="median") - flush_ms
    except Exception:  # noqa: BLE001 - e.g. a capture already in progress; time without a graph
        torch.cuda.synchronize()
        return do_bench(fn, warmup=5, rep=20, return_mode="median")
