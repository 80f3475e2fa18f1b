"""Test-only depthwise/ncl implementations that fail in every way a kernel can (CONVBENCH_PLUGINS)."""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F

from convbench.registry import Impl, register

NAMES = ("faulty_raise", "faulty_wrong", "faulty_nan", "faulty_oom", "faulty_exit", "faulty_hang",
         "faulty_second")


def _conv(p, inputs):
    return lambda: F.conv1d(inputs.x, inputs.weight, inputs.bias, p.stride, p.padding, p.dilation,
                            groups=p.groups)


def _raise(p, inputs):
    def fn():
        raise RuntimeError("faulty_raise: deliberate failure")
    return fn


def _wrong(p, inputs):
    conv = _conv(p, inputs)
    return lambda: conv() + 1.0


def _nan(p, inputs):
    conv = _conv(p, inputs)

    def fn():
        y = conv().clone()
        y.view(-1)[0] = float("nan")
        return y
    return fn


def _oom(p, inputs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 TiB (faulty_oom)")


def _exit(p, inputs):
    def fn():
        os._exit(3)
    return fn


def _hang(p, inputs):
    def fn():
        time.sleep(3600)
    return fn


def _second(p, inputs):
    """Right on the first call only (like a cached launch that differs from the tuning call)."""
    conv = _conv(p, inputs)
    calls = []

    def fn():
        calls.append(1)
        return conv() if len(calls) == 1 else conv() * 0.5
    return fn


def _only_short(case):
    """Faults only on cases with L <= 64, so a sweep shows the good cases after them too."""
    return None if case.problem.L <= 64 else "faulty implementations run only on L <= 64"


for _name, _build in zip(NAMES, (_raise, _wrong, _nan, _oom, _exit, _hang, _second), strict=True):
    register(Impl(name=_name, op="depthwise", layout="ncl", build=_build, devices=("cpu", "cuda"),
                  modes=("fwd",), supports=_only_short, description=f"test-only: {_name}"))
