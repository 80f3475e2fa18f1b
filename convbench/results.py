"""The results schema, the append-only run writer, and load() into a tidy DataFrame."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

STATUSES = ("ok", "skipped", "invalid", "wrong", "error", "oom", "timeout")

# The contract of DESIGN.md, in order; extra columns follow.
REQUIRED = (
    "op impl layout device dtype mode N C_in C_out L K stride padding dilation bias L_out status "
    "reason median_ms q1_ms q3_ms ci_low_ms ci_high_ms n_samples flops bytes tflops gbps "
    "pct_peak_bw peak_mem_bytes max_rel_err backend"
).split()
EXTRA = (
    "device_name precision tf32 stop_reason rel_ci kernel_time_ms kernels sm_clock_mhz throttled "
    "worker seed"
).split()
COLUMNS = REQUIRED + EXTRA
# What identifies a row across runs (the device index is not part of it: cuda:0 == cuda:1).
CASE_KEY = ("op", "layout", "dtype", "mode", "N", "C_in", "C_out", "L", "K", "stride", "padding",
            "dilation", "bias")
ROW_KEY = ("impl", *CASE_KEY)

RESULTS_FILE = "results.jsonl"
META_FILE = "meta.json"


class ResultsError(ValueError):
    """A results folder that is missing or not convbench's."""


def row_key(row: dict) -> tuple:
    return tuple(row.get(k) for k in ROW_KEY) + (_device_type(row.get("device")),)


def _device_type(device: str | None) -> str | None:
    return device.split(":")[0] if isinstance(device, str) else device


class RunWriter:
    """Appends one JSON line per row as it finishes; a line is written whole with one write and
    flushed to disk, so an interrupted run leaves only complete rows. A torn last line (power
    loss mid-write) is cut off when the run is opened again."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / RESULTS_FILE
        self._repair_tail()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(keep)

    def done_keys(self) -> set[tuple]:
        return {row_key(r) for r in read_rows(self.path)}

    def write(self, row: dict) -> None:
        line = json.dumps(row, default=_json_default, allow_nan=True) + "\n"
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_rows(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                rows.append(json.loads(line))
    return rows


def run_dir_of(path: str | Path) -> Path:
    """The run folder for a path to the folder or to its results.jsonl; a clear error if neither."""
    p = Path(path)
    if p.is_file() and p.name == RESULTS_FILE:
        p = p.parent
    if not p.exists():
        raise ResultsError(f"results folder {str(path)!r} does not exist")
    if not (p / RESULTS_FILE).is_file():
        raise ResultsError(
            f"{str(path)!r} is not a convbench run folder: it has no {RESULTS_FILE} "
            f"(a run folder is what `convbench run` writes, e.g. results/<run-id>/)"
        )
    return p


def load_meta(path: str | Path) -> dict:
    p = run_dir_of(path) / META_FILE
    if not p.exists():
        return {}
    return json.loads(p.read_text())


def load(path: str | Path, samples: bool = False) -> pd.DataFrame:
    """One tidy DataFrame of a run: a row per case x implementation, columns of COLUMNS
    (+ `samples_ms` if samples=True)."""
    rows = read_rows(run_dir_of(path) / RESULTS_FILE)
    return to_frame(rows, samples=samples)


def to_frame(rows: Iterable[dict], samples: bool = False) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    cols = COLUMNS + (["samples_ms"] if samples else [])
    for c in cols:
        if c not in df.columns:
            df[c] = None
    return df[cols + [c for c in df.columns if c not in cols and (samples or c != "samples_ms")]]


def write_csv(run_dir: str | Path) -> Path:
    df = load(run_dir)
    out = Path(run_dir) / "results.csv"
    df.to_csv(out, index=False)
    return out


def write_meta(run_dir: str | Path, meta: dict) -> None:
    path = Path(run_dir) / META_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp, path)
