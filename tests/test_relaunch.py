"""Relaunch: the second and later launches hand every argument, in the kernel's parameter
order, to the compiled kernel's launcher, with the new tensors in their slots."""

import pytest

from convbench.impls import _triton_common as tc


class FakeCompiled:
    function, packed_metadata = "fn-handle", "meta"

    def __init__(self):
        self.calls = []

    def launch_metadata(self, grid, stream, *values):
        return None

    def run(self, g0, g1, g2, stream, function, packed, launch_meta, enter, exit_, *values):
        self.calls.append(((g0, g1, g2), stream, values))


class FakeJit:
    arg_names = ["x_ptr", "y_ptr", "n", "BLOCK"]

    def __init__(self):
        self.compiled = FakeCompiled()
        self.jit_calls = []

    def __getitem__(self, grid):
        def launch(**kwargs):
            self.jit_calls.append((grid, kwargs))
            return self.compiled
        return launch


class FakeDriver:
    def get_current_stream(self, device):
        return f"stream{device}"


@pytest.fixture
def fast_path(monkeypatch):
    monkeypatch.setattr(tc, "interpreting", lambda: False)
    monkeypatch.setattr(tc, "_cuda_device", lambda values: 3)
    monkeypatch.setattr(tc, "_driver", lambda: FakeDriver())


def test_first_call_jits_then_launcher_gets_all_args_in_order(fast_path):
    fn = FakeJit()
    run = tc.Relaunch(fn, (7,), dict(n=100, BLOCK=64), dict(num_warps=4))
    run(x_ptr="x0", y_ptr="y0")
    assert fn.jit_calls == [((7,), dict(n=100, BLOCK=64, x_ptr="x0", y_ptr="y0", num_warps=4))]
    run(x_ptr="x1", y_ptr="y1")
    run(y_ptr="y2", x_ptr="x2")
    assert len(fn.jit_calls) == 1
    assert fn.compiled.calls == [((7, 1, 1), "stream3", ("x1", "y1", 100, 64)),
                                 ((7, 1, 1), "stream3", ("x2", "y2", 100, 64))]


def test_without_a_launcher_interface_every_call_takes_the_jit_path(fast_path):
    fn = FakeJit()
    fn.compiled = None  # what the interpreter's launch returns
    run = tc.Relaunch(fn, (2,), dict(n=1, BLOCK=16), {})
    for i in range(3):
        run(x_ptr=i, y_ptr=i)
    assert len(fn.jit_calls) == 3


def test_unknown_parameters_keep_the_jit_path(fast_path):
    fn = FakeJit()
    fn.arg_names = ["x_ptr", "y_ptr", "n", "BLOCK", "HAS_DEFAULT"]
    run = tc.Relaunch(fn, (2,), dict(n=1, BLOCK=16), {})
    run(x_ptr=0, y_ptr=0)
    run(x_ptr=1, y_ptr=1)
    assert len(fn.jit_calls) == 2 and fn.compiled.calls == []


class FakeTensor:
    """Stands in for a tensor in the alignment check."""

    def __init__(self, ptr):
        self.ptr = ptr

    def data_ptr(self):
        return self.ptr


def test_a_tensor_of_other_alignment_takes_the_jit_path(fast_path, monkeypatch):
    monkeypatch.setattr(tc.torch, "Tensor", FakeTensor)
    fn = FakeJit()
    run = tc.Relaunch(fn, (1,), dict(n=4, BLOCK=16), {})
    run(x_ptr=FakeTensor(1024), y_ptr=FakeTensor(2048))
    run(x_ptr=FakeTensor(4096), y_ptr=FakeTensor(2048))  # aligned like the first: fast
    run(x_ptr=FakeTensor(4098), y_ptr=FakeTensor(2048))  # 2-byte offset view: re-specialised
    assert len(fn.jit_calls) == 2 and len(fn.compiled.calls) == 1


def test_positional_form_names_the_arguments(fast_path):
    fn = FakeJit()
    go = tc.Relaunch.positional(fn, (3,), ("x", "y", 10), 2, dict(BLOCK=32, num_warps=4))
    go("x0", "y0")
    go("x1", "y1")
    assert fn.jit_calls == [((3,), dict(n=10, BLOCK=32, x_ptr="x0", y_ptr="y0", num_warps=4))]
    assert fn.compiled.calls == [((3, 1, 1), "stream3", ("x1", "y1", 10, 32))]


def test_reused_descriptors_are_built_once_and_repointed():
    """ReusedDescriptors builds its descriptors on the first call only; later calls return the
    same objects with their bases set to the new tensors, and a slot built as None (a tensor the
    kernel takes as a plain pointer) stays None."""
    from types import SimpleNamespace

    from convbench.impls._triton_common import ReusedDescriptors

    built = []

    def make(a, b, y):
        built.append((a, b, y))
        return SimpleNamespace(base=a), SimpleNamespace(base=b), None

    descs = ReusedDescriptors(make)
    first = descs("a0", "b0", "y0")
    assert [d.base for d in first[:2]] == ["a0", "b0"] and first[2] is None
    second = descs("a1", "b1", "y1")
    assert len(built) == 1 and all(s is f for s, f in zip(second, first, strict=True))
    assert [d.base for d in second[:2]] == ["a1", "b1"] and second[2] is None


def test_precompile_runs_each_plan_once_in_threads(monkeypatch):
    """precompile runs every plan once from a pool of threads (so that their compiles overlap),
    on the caller's device, swallows their errors (the timing pass meets them again) and
    synchronizes; with one thread, in the interpreter or without CUDA it runs nothing."""
    import threading

    import torch

    calls, devices = [], []
    monkeypatch.setattr(tc, "interpreting", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device)))

    class FakeDevice:
        def __init__(self, index):
            devices.append(index)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "device", FakeDevice)

    def run(plan):
        calls.append((plan, threading.current_thread().name))
        if plan == "bad":
            raise RuntimeError("out of resources")

    monkeypatch.setenv("CONVBENCH_COMPILE_THREADS", "4")
    tc.precompile(run, ["a", "bad", "c"])
    ran = sorted(p for p, _ in calls if p != "sync")
    assert ran == ["a", "bad", "c"] and devices == [3, 3, 3] and calls[-1] == ("sync", 3)
    assert all(name.startswith("convbench-compile") for p, name in calls if p != "sync")
    calls.clear()
    monkeypatch.setenv("CONVBENCH_COMPILE_THREADS", "1")  # off
    tc.precompile(run, ["a", "c"])
    monkeypatch.setenv("CONVBENCH_COMPILE_THREADS", "4")
    monkeypatch.setattr(tc, "interpreting", lambda: True)
    tc.precompile(run, ["a", "c"])
    assert calls == []


def test_generated_source_loads_once_from_many_threads(tmp_path, monkeypatch):
    """Compile threads that load one new generated source at once (tuning candidates that differ
    only in constexprs share a source) all get its kernel: they once shared a temporary file
    and imported a half-written module (H200, session 14)."""
    import threading

    from convbench.impls import _dw_codegen as gen

    monkeypatch.setattr(gen, "_cache_dir", lambda: tmp_path)
    source = gen.HEADER + "".join(f"def f{i}():\n    return {i}\n\n" for i in range(400)) + "def kern():\n    return 7\n"
    got, start = [], threading.Barrier(8)

    def one():
        start.wait()
        got.append(gen.load(source, "kern")())

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [7] * 8 and len(list(tmp_path.glob("*.tmp"))) == 0
