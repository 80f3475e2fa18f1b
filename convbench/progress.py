"""Progress bar while a sweep runs and the summary table after it (rich)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def stdout_console(**kw) -> Console:
    """A console for tables on stdout: the terminal's width, or 200 columns when piped (a file, a
    CI log), where rich would otherwise fold every row into 80."""
    out = Console(**kw)
    return out if out.is_terminal else Console(width=200, **kw)


class Reporter:
    """Shows case i of n, the implementation at work, and an ETA."""

    def __init__(self, enabled: bool = True, console: Console | None = None):
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self._progress = None
        self._task = None
        self._label = ""

    def start(self, total: int, skipped_done: int = 0) -> None:
        if not self.enabled:
            return
        if skipped_done:
            self.console.print(f"resuming: {skipped_done} rows already done are skipped")
        self._progress = Progress(
            TextColumn("[bold]case"), MofNCompleteColumn(), BarColumn(),
            TextColumn("{task.description}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("", total=total)

    def case(self, job) -> None:
        pc = job.case
        self._label = f"{pc.problem.label()} {pc.dtype} {pc.layout} {pc.mode}"
        self._update(self._label)

    def event(self, ev) -> None:
        if ev and ev[0] == "impl":
            self._update(f"{self._label} · {ev[2]} {ev[1]}")

    def advance(self, job) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def _update(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text[:90])

    def stop(self) -> None:
        if self._progress is not None:
            # the last render stays on screen (and is all a non-terminal stderr gets): say done,
            # not the last implementation at work
            task = self._progress.tasks[0]
            self._progress.update(self._task, description="done" if task.finished else "stopped")
            self._progress.stop()
            self._progress = None


def _fmt_ms(v) -> str:
    if v is None or pd.isna(v):
        return "-"
    return f"{v * 1e3:.1f} µs" if v < 1 else f"{v:.3f} ms"


def summary_table(df: pd.DataFrame, baselines: dict[tuple[str, str], str]) -> Table:
    """Per case, each implementation's median (±CI half-width) and speedup over the baseline."""
    t = Table(title="convbench summary (median, ±95 % CI of the median; speedup vs baseline)")
    for col in ("case", "impl", "status", "median", "±CI", "speedup", "%bw", "backend / reason"):
        t.add_column(col, overflow="fold")
    keys = ["op", "layout", "dtype", "mode", "device", "N", "C_in", "C_out", "L", "K", "stride",
            "padding", "dilation", "bias"]
    for _, g in df.groupby(keys, sort=False, dropna=False):
        first = g.iloc[0]
        label = (f"{first['op']} {first['layout']} {first['dtype']} {first['mode']}\n"
                 f"N={first['N']} C={first['C_in']}->{first['C_out']} L={first['L']} K={first['K']}")
        base_name = baselines.get((first.op, first.layout))
        base = g[(g.impl == base_name) & (g.status == "ok")]
        base_ms = base.median_ms.iloc[0] if len(base) else None
        for i, (_, r) in enumerate(g.sort_values("median_ms", na_position="last").iterrows()):
            ok = r.status == "ok"
            half = (r.ci_high_ms - r.ci_low_ms) / 2 if ok else None
            speed = f"{base_ms / r.median_ms:.2f}x" if ok and base_ms else "-"
            pct = f"{r.pct_peak_bw:.0f}" if ok and r.pct_peak_bw is not None and not pd.isna(r.pct_peak_bw) else "-"
            note = (r.backend or "") if ok else (r.reason or "")
            note = note if len(str(note)) <= 48 else str(note)[:47] + "…"
            style = None if ok else "dim"
            t.add_row(label if i == 0 else "", r.impl, r.status, _fmt_ms(r.median_ms) if ok else "-",
                      _fmt_ms(half) if ok else "-", speed, pct, str(note), style=style)
        t.add_section()
    return t
