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
