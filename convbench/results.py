"""The results schema, the append-only run writer, and load() into a tidy DataFrame."""

from __future__ import annotations

import fcntl
import json
import os
import signal
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
    "device_name precision tf32 stop_reason rel_ci host_ms kernel_time_ms copy_time_ms kernels plan sm_clock_mhz "
    "throttled worker seed same_size_copy_ms pct_same_size_copy"
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
    """Appends one JSON line per row as it finishes. Lines are written whole (one os.write, with
    SIGINT/SIGTERM held back until it returns) and fsynced, so an interrupted run leaves only
    complete rows. A torn last line (power loss mid-write) is cut off when the run is opened
    again. One writer per folder at a time: a second gets ResultsError instead of interleaving."""

    def __init__(self, run_dir: str | Path):
        self._fd = -1
        self.run_dir = Path(run_dir)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create the run folder {str(run_dir)!r}: {exc.strerror}") from None
        if not self.run_dir.is_dir():
            raise ResultsError(f"{str(run_dir)!r} is not a folder")
        self.path = self.run_dir / RESULTS_FILE
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise ResultsError(f"cannot write {str(self.path)!r}: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise ResultsError(f"{str(self.run_dir)!r} is being written by another convbench "
                               "process; wait for it to finish or stop it first") from None
        self._repair_tail()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _repair_tail(self) -> None:
        size = os.fstat(self._fd).st_size
        if not size:
            return
        tail = os.pread(self._fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        if cut < 0 and size > len(tail):  # a torn line longer than the window: find its start
            data = os.pread(self._fd, size, 0)
            keep = data.rfind(b"\n") + 1
        else:
            keep = size - len(tail) + cut + 1
        os.ftruncate(self._fd, keep)

    def done_keys(self) -> set[tuple]:
        return {row_key(r) for r in read_rows(self.path)}

    def write(self, row: dict) -> None:
        self.write_many([row])

    def write_many(self, rows: Iterable[dict]) -> None:
        """Append rows as one write: an interrupt lands before or after all of them."""
        data = "".join(json.dumps(r, default=_json_default, allow_nan=True) + "\n" for r in rows)
        if not data:
            return
        buf = memoryview(data.encode("utf-8"))
        with _signals_held():
            while buf:
                n = os.write(self._fd, buf)
                buf = buf[n:]
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock too
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class _signals_held:
    """Block SIGINT/SIGTERM for the duration; a signal that arrives meanwhile is delivered (and
    its Python handler runs) right after."""

    SIGNALS = {signal.SIGINT, signal.SIGTERM}

    def __enter__(self):
        self.old = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)

    def __exit__(self, *exc):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_rows(path: str | Path) -> list[dict]:
    """The complete rows of a results.jsonl (a torn last line is not a row yet)."""
    rows = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    with f:
        try:
            for n, line in enumerate(f, 1):
                if not (line.endswith("\n") and line.strip()):
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ResultsError(f"{str(path)!r} line {n} is not a JSON row ({exc.msg}); is "
                                       "this a convbench results file?") from None
                if not isinstance(row, dict):
                    raise ResultsError(f"{str(path)!r} line {n} is not a JSON object; is this a "
                                       "convbench results file?")
                rows.append(row)
        except UnicodeDecodeError:
            raise ResultsError(f"{str(path)!r} is not UTF-8 text; is this a convbench results "
                               "file?") from None
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
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"cannot read {str(p)!r} ({exc}); is this a convbench run folder?") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{str(p)!r} is not a JSON object; is this a convbench run folder?")
    return meta


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
