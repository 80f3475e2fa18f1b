"""What a cold-L2 flush leaves behind, measured with the simplest byte mover (GPU machine).

convbench (like triton.testing.do_bench and nvbench) makes the L2 cold by zeroing a buffer of
twice its size before each sample. That leaves the L2 full of *dirty* lines, so a timed kernel
that brings B bytes into the L2 also writes back up to B bytes of the flush buffer: a case moving
less than the L2 can pay up to twice its bytes. This script times copies of tensors of several
sizes (as `torch.neg(src, out=dst)`: an SM kernel; a `copy_` captured in a CUDA graph becomes a
memcpy node that can run on a copy engine at ~2/3 of the bandwidth, which the first run of this
script measured) as CUDA-graph replays (flush + copy, less the flush alone) after three flushes:

- dirty: zero a 2x-L2 buffer (convbench's cold L2);
- clean: the same, then read another 2x-L2 buffer (the L2 ends holding clean lines);
- warm: no flush (source and destination may already sit in the L2).

and writes $OUT/flush_check.md: each size's GB/s (bytes read + written / time) and its share of
the 1 GiB copy's bandwidth, the ceiling convbench's byte floor divides by.

A second table times the same copies with convbench's own timer (`convbench.timing`) under each
`measure.l2` mode, `cold`, `clean` and `warm`, with CUDA events and with `measure.graph: true`,
medians of at least 40 samples, so the modes can be checked against the graph-timed flushes above
(`clean` must stay cold: slower than `warm` on sizes that fit the L2; graph mode with a flush
should read as the first table's graph timing does)."""

from __future__ import annotations

import os

import torch
from triton.testing import do_bench_cudagraph

from convbench.timing import L2_MODES, MeasureSettings, make_timer, measure_interleaved


def graph_us(fn) -> float:
    return do_bench_cudagraph(fn, rep=50, return_mode="median") * 1e3


def main() -> None:
    dev = torch.device("cuda")
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    dirty_buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device=dev)
    read_buf = torch.ones(2 * l2 // 4, dtype=torch.int32, device=dev)

    def dirty():
        dirty_buf.zero_()

    def clean():
        dirty_buf.zero_()
        read_buf.sum()

    flushes = {"dirty": dirty, "clean": clean, "warm": None}
    base = {name: graph_us(f) for name, f in flushes.items() if f}

    def copy_us(n_bytes: int, name: str) -> float:
        flush = flushes[name]
        src = torch.randn(n_bytes // 8, device=dev)  # fp32: n_bytes moved = read + write
        dst = torch.empty_like(src)
        if flush is None:
            return graph_us(lambda: torch.neg(src, out=dst))

        def step():
            flush()
            torch.neg(src, out=dst)

        return graph_us(step) - base[name]

    big = 2**30
    ceiling = big / copy_us(big, "warm") / 1e3  # GB/s of a 1 GiB copy (the L2 plays no part)
    lines = [f"# L2 flush and small copies: {torch.cuda.get_device_name()}, L2 {l2 / 2**20:.0f} MiB",
             "", f"1 GiB copy (bytes read + written): {ceiling:.0f} GB/s (the byte floor's ceiling)", "",
             "| MB moved | dirty µs | GB/s (% of ceiling) | clean µs | GB/s (%) | warm µs | GB/s (%) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for mb in (5, 10, 20, 27, 40, 55, 80, 110, 220, 440):
        n = mb * 10**6
        row = [f"{mb}"]
        for name in flushes:
            us = copy_us(n, name)
            gbps = n / us / 1e3
            row += [f"{us:.1f}", f"{gbps:.0f} ({100 * gbps / ceiling:.0f} %)"]
        lines.append("| " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    lines += ["", "Flush kernels alone (µs, subtracted above): " +
              ", ".join(f"{k} {v:.1f}" for k, v in base.items())]
    lines += ["", "## convbench's timer under each measure.l2 mode (medians, at least 40 samples)", "",
              "Events: CUDA events around each call, the flush before it outside them. Graph: "
              "`measure.graph: true`, replays of 10 (flush, call) pairs less replays of the flushes alone "
              "(warm: 10 calls, no flush).", "",
              "| MB moved | " + " | ".join(f"{m} events µs (%) | {m} graph µs (%)" for m in L2_MODES) + " |",
              "|---:|" + "---:|---:|" * len(L2_MODES)]
    for mb in (10, 27, 55, 110, 220):
        n = mb * 10**6
        src = torch.randn(n // 8, device=dev)
        dst = torch.empty_like(src)
        row = [f"{mb}"]
        for mode in L2_MODES:
            for graph in (False, True):
                settings = MeasureSettings(l2=mode, graph=graph, target_rel_ci=0.005, min_samples=40,
                                           max_time_s=0.5)
                timer = make_timer("cuda", settings)
                m = measure_interleaved({"copy": lambda s=src, d=dst: torch.neg(s, out=d)}, timer, settings)["copy"]
                us = m.summary.median_ms * 1e3
                row.append(f"{us:.1f} ({100 * n / us / 1e3 / ceiling:.0f} %)")
        lines.append("| " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    out = os.environ.get("OUT", "/tmp")
    with open(os.path.join(out, "flush_check.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines[:3]))


if __name__ == "__main__":
    main()
