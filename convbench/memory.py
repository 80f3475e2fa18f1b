"""Peak memory of one call beyond its inputs: CUDA allocator peak, or CPU allocator events."""

from __future__ import annotations

import json
import os
import tempfile

import torch


def peak_bytes(fn, device: str) -> int | None:
    """Bytes allocated at the peak of one call of fn, above what was allocated before it
    (the output counts). None means not measurable here, never a fake zero."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        out = fn()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
        del out
        return int(peak)
    if dev.type == "cpu":
        return _cpu_peak_bytes(fn)
    return None


def _cpu_peak_bytes(fn) -> int | None:
    """The CPU allocator reports every allocation to the profiler with a running total
    ("Total Allocated"); the peak of that total over one call, minus its start, is the answer."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f).get("traceEvents", [])
    finally:
        os.unlink(path)
    cur = peak = 0
    seen = False
    for ev in sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"]):
        args = ev.get("args", {})
        if args.get("Device Type", 0) != 0:  # 0 = CPU
            continue
        cur += int(args.get("Bytes", 0))
        peak = max(peak, cur)
        seen = True
    return peak if seen else None
