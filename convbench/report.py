"""Kernel-choice tables, the selection table, and the HTML/Markdown report built from run folders."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .results import ROW_KEY, load, load_meta, run_dir_of
from .timing import l2_label

SHAPE_COLS = ("N", "C_in", "C_out", "L", "K", "stride", "padding", "dilation", "bias")
# One winner table per group; a case is a group plus a shape.
# precision: a float32 row timed under TF32 is not compared with one timed in IEEE float32
GROUP_COLS = ("op", "device_name", "dtype", "layout", "mode", "precision")
CASE_COLS = (*GROUP_COLS, *SHAPE_COLS)
NOT_OK = ("skipped", "invalid", "wrong", "error", "oom", "timeout")

# Two medians within 2 % of each other are a tie even when their CIs do not overlap: run-to-run
# drift on a quiet GPU is about that large, so a smaller margin is not worth a more complex kernel.
NOISE_REL = 0.02
# In a tie the simplest implementation wins: the layout's baseline first, then the others in this
# order (plain PyTorch calls, then PyTorch compositions, then custom kernels), then any other
# registered name (plugins) alphabetically.
SIMPLICITY = ("torch", "torch_nlc", "linear_nlc", "native", "cudnn", "cudnn_nlc", "matmul",
              "matmul_add", "linear_add_nlc", "unfold_einsum", "triton", "triton_nlc")
# A selection entry applies to a shape at most this far away (Euclidean distance of log2 of
# N*L, C_in, C_out and K): 3.0 is a factor 8 along one axis, or about 5.5 along two at once.
MAX_LOG2_DISTANCE = 3.0
SELECTION_FORMAT = 1

TIE_RULE = (
    f"Only rows with status ok compete (wrong, error, oom, timeout, invalid and skipped rows never "
    f"win). The fastest median is found first; every implementation whose 95 % CI of the median "
    f"overlaps the fastest one's, or whose median is within {NOISE_REL:.0%} of it, ties with it. "
    f"Among the tied the simplest wins: the layout's baseline, then "
    f"{', '.join(SIMPLICITY)}, then other names alphabetically."
)
BETWEEN_RULE = (
    "A shape is looked up among entries of the same op, device name, dtype, layout and mode "
    "(a training call, mode fwd_bwd, uses fwd entries when the table has no fwd_bwd ones). An "
    "exact match of N, C_in, C_out, L, K, stride, padding, dilation and bias is used first; "
    "otherwise the nearest entry with the same stride and dilation in log2 space over "
    f"(N*L, C_in, C_out, K), if it lies within distance {MAX_LOG2_DISTANCE:g}; otherwise none "
    "applies and the module falls back to the layout's baseline."
)


def _baselines() -> dict[tuple[str, str], str]:
    from .registry import all_impls

    return {(i.op, i.layout): i.name for i in all_impls() if i.baseline}


def baseline_name(op: str, layout: str) -> str:
    """The layout's baseline (registry.baseline); `torch` when the registry has none."""
    from .registry import baseline

    b = baseline(op, layout)
    return b.name if b is not None else "torch"


def simplicity_key(op: str, layout: str, impl: str) -> tuple:
    """Sort key: smaller is simpler (see SIMPLICITY)."""
    is_base = impl == baseline_name(op, layout)
    rank = SIMPLICITY.index(impl) if impl in SIMPLICITY else len(SIMPLICITY)
    return (not is_base, rank, impl)


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class Runs:
    """Rows of one or more run folders, concatenated, with each folder's meta.json."""

    df: pd.DataFrame
    metas: dict[str, dict]
    duplicates: int = 0

    def timing_warning(self) -> str | None:
        """A sentence when the runs with GPU rows were timed differently (flush, events or
        graphs): their medians then measure different things, and winners across them mislead."""
        modes: dict[str, list[str]] = {}
        for path, meta in self.metas.items():
            if not any(str(dev).startswith("cuda") for dev in meta.get("devices") or {}):
                continue
            label = l2_label((meta.get("comparability") or {}).get("measure"))
            modes.setdefault(label, []).append(Path(path).name)
        if len(modes) < 2:
            return None
        return ("The GPU runs were timed differently, so medians from different runs measure "
                "different things and a winner across them may only reflect the timer: "
                + "; ".join(f"{label} ({', '.join(runs)})" for label, runs in modes.items()) + ".")


def load_runs(paths) -> Runs:
    """Concatenate run folders (shards, devices). A row measured twice on the same device name
    keeps the later folder's row. Raises results.ResultsError for a missing or foreign folder."""
    frames, metas = [], {}
    for p in paths:
        d = run_dir_of(p)
        df = load(d)
        df["run"] = str(d)
        meta = load_meta(d)
        metas[str(d)] = meta
        names = {dev: (info or {}).get("device_name") for dev, info in (meta.get("devices") or {}).items()}
        names.update({dev: c.get("device_name") for dev, c in (meta.get("ceilings") or {}).items()
                      if isinstance(c, dict) and c.get("device_name")})
        missing = df["device_name"].isna()
        if missing.any():
            df.loc[missing, "device_name"] = df.loc[missing, "device"].map(
                lambda v, names=names: names.get(v) or v)
        frames.append(df)
    if not frames:
        raise ValueError("no run folders given")
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    df["device_type"] = df["device"].map(lambda v: str(v).split(":")[0])
    # rows of runs that did not record their precision policy (before it was a setting)
    df["precision"] = df["precision"].fillna("unrecorded")
    # the same case under two precision policies (e.g. --precision tf32 and ieee runs) is two rows
    key = [*ROW_KEY, "device_name", "precision"]
    before = len(df)
    df = df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)
    return Runs(df, metas, before - len(df))


def with_speedup(df: pd.DataFrame) -> pd.DataFrame:
    """Adds baseline, baseline_ms, speedup (baseline_ms / median_ms, ok rows only), ai
    (flops/bytes) and shape (a label) to every row."""
    df = df.copy()
    base = _baselines()
    df["baseline"] = [base.get((o, lay), "torch") for o, lay in zip(df["op"], df["layout"], strict=True)]
    ok = df[(df["status"] == "ok") & (df["impl"] == df["baseline"])]
    ref = ok.set_index(list(CASE_COLS))["median_ms"]
    ref = ref[~ref.index.duplicated(keep="last")]
    idx = pd.MultiIndex.from_frame(df[list(CASE_COLS)])
    df["baseline_ms"] = ref.reindex(idx).to_numpy()
    good = df["status"] == "ok"
    df["speedup"] = (df["baseline_ms"] / df["median_ms"]).where(good)
    df["ai"] = pd.to_numeric(df["flops"], errors="coerce") / pd.to_numeric(df["bytes"], errors="coerce")
    df["shape"] = [shape_label(r) for r in df[list(SHAPE_COLS)].to_dict("records")]
    return df


def shape_label(r: dict) -> str:
    c = f"C={r['C_in']}" if r["C_in"] == r["C_out"] else f"C={r['C_in']}->{r['C_out']}"
    s = f"N={r['N']} {c} L={r['L']} K={r['K']}"
    if r.get("stride") not in (1, None):
        s += f" s={r['stride']}"
    if r.get("dilation") not in (1, None):
        s += f" d={r['dilation']}"
    return s + ("" if r.get("bias") in (True, None) else " nobias")


# ---------------------------------------------------------------- winners


def _tied(a: pd.Series, b: pd.Series) -> bool:
    """CIs of the two medians overlap, or the medians are within NOISE_REL."""
    lo, hi = sorted((a["median_ms"], b["median_ms"]))
    if hi <= lo * (1 + NOISE_REL):
        return True
    vals = [a["ci_low_ms"], a["ci_high_ms"], b["ci_low_ms"], b["ci_high_ms"]]
    if any(v is None or pd.isna(v) for v in vals):
        return False
    return max(a["ci_low_ms"], b["ci_low_ms"]) <= min(a["ci_high_ms"], b["ci_high_ms"])


def pick(rows: pd.DataFrame) -> dict:
    """The winner of one case's rows (one per implementation) by TIE_RULE, with the runner-up,
    the speedup over the baseline and the tie set."""
    first = rows.iloc[0]
    op, layout = first["op"], first["layout"]
    base = baseline_name(op, layout)
    ok = rows[(rows["status"] == "ok") & rows["median_ms"].notna()].sort_values("median_ms")
    base_rows = ok[ok["impl"] == base]
    out: dict = {"baseline": base, "baseline_ms": base_rows["median_ms"].iloc[0] if len(base_rows) else math.nan,
                 "n_ok": len(ok), "n_not_ok": len(rows) - len(ok)}
    if ok.empty:
        return {**out, "winner": None, "winner_ms": math.nan, "ci_low_ms": math.nan,
                "ci_high_ms": math.nan, "backend": None, "precision": None, "tf32": None,
                "runner_up": None, "runner_up_ms": math.nan, "margin": math.nan,
                "speedup": math.nan, "tie": False, "tied_with": [], "fastest": None,
                "note": "no implementation ran correctly"}
    fastest = ok.iloc[0]
    tie_set = [r for _, r in ok.iterrows() if r["impl"] == fastest["impl"] or _tied(r, fastest)]
    win = min(tie_set, key=lambda r: simplicity_key(op, layout, r["impl"]))
    rest = ok[ok["impl"] != win["impl"]]
    ru = rest.iloc[0] if len(rest) else None
    note = ""
    if win["impl"] != fastest["impl"]:
        note = (f"{fastest['impl']} was fastest by {win['median_ms'] / fastest['median_ms'] - 1:.1%}, "
                f"within noise: the simpler {win['impl']} is preferred")
    return {
        **out,
        "winner": win["impl"], "winner_ms": win["median_ms"], "ci_low_ms": win["ci_low_ms"],
        "ci_high_ms": win["ci_high_ms"], "backend": win.get("backend"),
        "precision": win.get("precision"), "tf32": win.get("tf32"),
        "runner_up": None if ru is None else ru["impl"],
        "runner_up_ms": math.nan if ru is None else ru["median_ms"],
        "margin": math.nan if ru is None else ru["median_ms"] / win["median_ms"],
        "speedup": out["baseline_ms"] / win["median_ms"],
        "tie": len(tie_set) > 1,
        "tied_with": sorted(r["impl"] for r in tie_set if r["impl"] != win["impl"]),
        "fastest": fastest["impl"], "note": note,
    }


def winners(df: pd.DataFrame) -> pd.DataFrame:
    """One row per case (CASE_COLS): the winner, its median and CI, speedup over the baseline,
    runner-up and margin (runner-up median / winner median), tie flag and tie set."""
    recs = []
    for key, g in df.groupby(list(CASE_COLS), sort=False, dropna=False):
        # the case's own keys last: precision is one (the winner's row has the same)
        recs.append({**pick(g), **dict(zip(CASE_COLS, key, strict=True))})
    cols = [*CASE_COLS, "winner", "winner_ms", "ci_low_ms", "ci_high_ms", "speedup", "baseline",
            "baseline_ms", "runner_up", "runner_up_ms", "margin", "tie", "tied_with", "fastest",
            "backend", "tf32", "n_ok", "n_not_ok", "note"]
    w = pd.DataFrame(recs, columns=cols)
    for c in ("winner", "runner_up", "fastest", "backend", "tf32"):
        w[c] = w[c].astype(object).where(w[c].notna(), None)  # None, not NaN, for "no winner"
    return w


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Every row that is not ok, with its reason."""
    bad = df[df["status"] != "ok"].copy()
    bad["shape"] = [shape_label(r) for r in bad[list(SHAPE_COLS)].to_dict("records")]
    cols = ["status", "op", "impl", "layout", "dtype", "mode", "device_name", "shape", "reason"]
    order = {s: i for i, s in enumerate(("wrong", "error", "oom", "timeout", "invalid", "skipped"))}
    bad["_o"] = bad["status"].map(lambda s: order.get(s, 9))
    return bad.sort_values(["_o", "op", "impl"], kind="stable")[cols].reset_index(drop=True)


# ---------------------------------------------------------------- selection table


def selection_dict(runs: Runs) -> dict:
    """The selection table as a JSON-ready dict: the winner per case with its margins, the rules,
    and where the numbers came from."""
    w = winners(runs.df)
    entries = []
    dev_type = dict(zip(runs.df["device_name"], runs.df["device_type"], strict=True))
    capability = {info.get("device_name"): info.get("capability")
                  for meta in runs.metas.values() for info in (meta.get("devices") or {}).values()
                  if isinstance(info, dict) and info.get("capability")}
    for r in w[w["winner"].notna()].to_dict("records"):
        entries.append({
            "op": r["op"], "device_name": r["device_name"], "device_type": dev_type.get(r["device_name"]),
            "capability": capability.get(r["device_name"]),
            "dtype": r["dtype"], "layout": r["layout"], "mode": r["mode"],
            "shape": {k: _plain(r[k]) for k in SHAPE_COLS},
            "impl": r["winner"], "median_ms": _num(r["winner_ms"]),
            "ci_low_ms": _num(r["ci_low_ms"]), "ci_high_ms": _num(r["ci_high_ms"]),
            "backend": _plain(r["backend"]), "precision": _plain(r["precision"]), "tf32": _plain(r["tf32"]),
            "runner_up": _plain(r["runner_up"]), "runner_up_ms": _num(r["runner_up_ms"]),
            "margin_over_runner_up": _num(r["margin"]),
            "baseline": r["baseline"], "baseline_ms": _num(r["baseline_ms"]),
            "speedup_over_baseline": _num(r["speedup"]),
            "tie": bool(r["tie"]), "tied_with": list(r["tied_with"]),
        })
    sources = []
    for path, meta in runs.metas.items():
        sources.append({"run": path, "config": (meta.get("config") or {}).get("name"),
                        "config_hash": meta.get("config_hash"), "git_sha": meta.get("git_sha"),
                        "started_at": meta.get("started_at"), "libraries": meta.get("libraries"),
                        "precision_flags": meta.get("precision_flags")})
    return {
        "convbench_selection": SELECTION_FORMAT,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rules": {"tie": TIE_RULE, "between_shapes": BETWEEN_RULE, "noise_rel": NOISE_REL,
                  "simplicity": list(SIMPLICITY), "max_log2_distance": MAX_LOG2_DISTANCE},
        "sources": sources,
        "unresolved_cases": int(w["winner"].isna().sum()),
        "entries": entries,
    }


def write_selection(runs: Runs, out: str | Path) -> Path:
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    out.write_text(json.dumps(selection_dict(runs), indent=1) + "\n")
    return out


def _plain(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def _num(v) -> float | None:
    v = _plain(v)
    return None if v is None else float(v)


def _features(shape: dict) -> tuple[float, ...]:
    return tuple(math.log2(max(1, v)) for v in (shape["N"] * shape["L"], shape["C_in"],
                                                   shape["C_out"], shape["K"]))


def _shape_of(problem) -> dict:
    if isinstance(problem, dict):
        return {k: problem.get(k) for k in SHAPE_COLS}
    return {k: getattr(problem, k) for k in SHAPE_COLS}


@dataclass
class Selection:
    """A selection table (the JSON `convbench select` writes) and the lookup of BETWEEN_RULE."""

    entries: list[dict]
    source: str = "<memory>"
    max_log2_distance: float = MAX_LOG2_DISTANCE
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for e in self.entries:
            k = (e["op"], e["device_name"], e["dtype"], e["layout"], e["mode"])
            self._index.setdefault(k, []).append(e)

    @classmethod
    def load(cls, path: str | Path) -> Selection:
        """Read a selection JSON; ValueError names the file when it is not one."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read selection table {str(path)!r}: {exc}") from None
        if not isinstance(data, dict) or "entries" not in data:
            raise ValueError(f"{str(path)!r} is not a convbench selection table (no 'entries'); "
                             "write one with `convbench select RUN -o selection.json`")
        dist = (data.get("rules") or {}).get("max_log2_distance", MAX_LOG2_DISTANCE)
        return cls(list(data["entries"]), str(path), float(dist))

    def device_names(self) -> set[str]:
        return {e["device_name"] for e in self.entries}

    def _keyed(self, device_name: str, op: str, dtype: str, layout: str, mode: str) -> tuple[list, str]:
        """(entries, how): the entries of this device and key; for fwd_bwd without any, the
        forward ones, and `how` says so."""
        cands = self._index.get((op, device_name, dtype, layout, mode), [])
        if not cands and mode == "fwd_bwd":
            return self._index.get((op, device_name, dtype, layout, "fwd"), []), " (forward-only measurement)"
        return cands, ""

    @staticmethod
    def _under(cands: list, dtype: str, precision: str | None) -> list:
        """The entries that apply under the caller's precision policy: for float32, those
        measured under it (or that recorded none); other dtypes ignore it."""
        if dtype != "float32" or not precision:
            return cands
        return [e for e in cands if e.get("precision") in (None, "unrecorded", precision)]

    def _usable(self, device_name: str, op: str, dtype: str, layout: str, mode: str,
                precision: str | None) -> bool:
        """Whether match() would find entries of its own for this device and key."""
        return bool(self._under(self._keyed(device_name, op, dtype, layout, mode)[0], dtype, precision))

    def stand_in(self, device_name: str, capability, op: str, dtype: str, layout: str,
                 mode: str, precision: str | None = None) -> str | None:
        """For a device without usable entries for this op, dtype, layout and mode (or forward
        entries, for fwd_bwd; for float32, under the caller's precision policy): the table's
        device of the same compute capability (first by name) that has them, whose picks then
        apply; None if the device has its own, or no other device does (or the capability is
        unknown: a CPU, a ROCm GPU, or a table written before entries carried it)."""
        if not capability or self._usable(device_name, op, dtype, layout, mode, precision):
            return None
        same = sorted({e["device_name"] for e in self.entries if e["device_name"] != device_name
                       and e.get("capability") and list(e["capability"]) == list(capability)})
        return next((d for d in same if self._usable(d, op, dtype, layout, mode, precision)), None)

    def match(self, op: str, device_name: str, dtype: str, layout: str, problem,
              mode: str = "fwd", capability=None, precision: str | None = None) -> tuple[dict | None, str]:
        """The entry that applies to this call (BETWEEN_RULE), or None; and why, in words. A device
        without entries for this op, dtype, layout and mode takes the picks measured on a device
        of the same compute capability (`capability`, e.g. (9, 0)), and `why` says so. For
        float32, `precision` (the caller's policy, precision.current()) keeps only entries
        measured under that policy (entries that did not record one apply to any); other dtypes
        ignore it."""
        stand_in = self.stand_in(device_name, capability, op, dtype, layout, mode, precision)
        if stand_in is not None:
            e, why = self.match(op, stand_in, dtype, layout, problem, mode, precision=precision)
            cc = ".".join(map(str, capability))
            under = f" under precision {precision!r}" if dtype == "float32" and precision else ""
            what = ("no entries for" if device_name not in self.device_names()
                    else f"no {op} {dtype} {layout} {mode} entries{under} for")
            return e, (f"{what} {device_name!r}; measured on {stand_in!r} instead "
                       f"(same compute capability {cc}): {why}")
        shape = _shape_of(problem)
        where = f"{op} {dtype} {layout} {mode} on {device_name!r}"
        cands, how = self._keyed(device_name, op, dtype, layout, mode)
        if cands and dtype == "float32" and precision:
            kept = self._under(cands, dtype, precision)
            if not kept:
                measured = sorted({str(e.get("precision")) for e in cands})
                return None, (f"the table's {where} entries were measured under precision "
                              f"{', '.join(measured)}, not {precision!r}")
            cands = kept
            where += f" under precision {precision!r}"
        if not cands:
            known = sorted(self.device_names())
            if device_name not in known:
                return None, (f"the table has no entries for device {device_name!r} "
                              f"(it covers {', '.join(map(repr, known)) or 'nothing'})")
            return None, f"the table has no {where} entries"
        for e in cands:
            if all(e["shape"].get(k) == shape[k] for k in SHAPE_COLS):
                return e, f"exact match{how} for {where} {shape_label(shape)}"
        same = [e for e in cands if e["shape"]["stride"] == shape["stride"]
                and e["shape"]["dilation"] == shape["dilation"]]
        if not same:
            return None, (f"no {where} entry has stride={shape['stride']} and "
                          f"dilation={shape['dilation']}")
        f0 = _features(shape)

        def dist(e):
            return math.dist(f0, _features(e["shape"]))

        best = min(same, key=lambda e: (dist(e), simplicity_key(op, layout, e["impl"])))
        d = dist(best)
        if d > self.max_log2_distance:
            return None, (f"the nearest {where} entry ({shape_label(best['shape'])}) is "
                          f"{d:.2f} log2 units away, beyond {self.max_log2_distance:g}")
        return best, (f"nearest measured case{how} {shape_label(best['shape'])} "
                      f"(log2 distance {d:.2f}) for {where} {shape_label(shape)}")

    def choose(self, op: str, device_name: str, dtype: str, layout: str, problem,
               mode: str = "fwd", capability=None, precision: str | None = None) -> tuple[str, str]:
        """(implementation name, why). When no entry applies: the layout's baseline."""
        e, why = self.match(op, device_name, dtype, layout, problem, mode, capability, precision)
        if e is None:
            base = baseline_name(op, layout)
            return base, f"{why}; using the {layout} baseline {base!r}"
        return e["impl"], f"{why} -> {e['impl']} ({describe_entry(e)}; table {self.source})"


def describe_entry(e: dict) -> str:
    parts = []
    if e.get("speedup_over_baseline") is not None and e["impl"] != e.get("baseline"):
        parts.append(f"{e['speedup_over_baseline']:.2f}x over {e['baseline']}")
    if e.get("runner_up") and e.get("margin_over_runner_up") is not None:
        parts.append(f"{e['margin_over_runner_up']:.2f}x margin over {e['runner_up']}")
    if e.get("tie"):
        parts.append(f"tied with {', '.join(e['tied_with'])}, simpler preferred")
    return "; ".join(parts) or "only valid implementation"


# ---------------------------------------------------------------- report document


@dataclass
class Doc:
    """Blocks of a report, rendered to HTML or Markdown: ("h", level, text), ("p", text),
    ("table", DataFrame), ("fig", make_figure, caption), ("pre", text), ("open", summary)/("close",).
    A figure is made only when rendered (make_figure() -> Figure | None), so one is open at a time."""

    title: str
    blocks: list = field(default_factory=list)

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def table(self, df: pd.DataFrame):
        self.blocks.append(("table", df))

    def fig(self, make_figure, caption: str):
        self.blocks.append(("fig", make_figure, caption))

    def pre(self, text: str):
        self.blocks.append(("pre", text))

    def details(self, summary: str):
        self.blocks.append(("open", summary))

    def end_details(self):
        self.blocks.append(("close",))


def _fmt_ms(v) -> str:
    if v is None or pd.isna(v):
        return "-"
    return f"{v * 1e3:.1f} µs" if v < 1 else f"{v:.3f} ms"


def _fmt_x(v) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:.2f}x"


def _fmt(v, spec: str) -> str:
    return "-" if v is None or pd.isna(v) else format(v, spec)


def winner_display(w: pd.DataFrame) -> pd.DataFrame:
    """The winner table as strings, for the report."""
    out = pd.DataFrame({
        "shape": [shape_label(r) for r in w[list(SHAPE_COLS)].to_dict("records")],
        "best": [("tie: " if t else "") + (x or "none") for x, t in zip(w["winner"], w["tie"], strict=True)],
        "median": [_fmt_ms(v) for v in w["winner_ms"]],
        "95% CI": [f"{_fmt_ms(a)} – {_fmt_ms(b)}" if not pd.isna(a) else "-"
                   for a, b in zip(w["ci_low_ms"], w["ci_high_ms"], strict=True)],
        "vs baseline": [_fmt_x(v) + ("" if pd.isna(v) else f" ({b})") for v, b in zip(w["speedup"], w["baseline"], strict=True)],
        "runner-up": [f"{r} ({_fmt_ms(m)}, {_fmt_x(g)} the winner's time)" if isinstance(r, str) else "-"
                      for r, m, g in zip(w["runner_up"], w["runner_up_ms"], w["margin"], strict=True)],
        "tied with": [", ".join(t) or "-" for t in w["tied_with"]],
        "backend": w["backend"].fillna("-").astype(str),
        "precision / tf32": [f"{p} / {t}" for p, t in zip(w["precision"].fillna("-"), w["tf32"].fillna("-"), strict=True)],
        "not ok": w["n_not_ok"].astype(str),
        "note": w["note"],
    })
    return out


def measurements_display(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "shape": df["shape"], "impl": df["impl"], "status": df["status"],
        "median": [_fmt_ms(v) for v in df["median_ms"]],
        "CI low": [_fmt_ms(v) for v in df["ci_low_ms"]], "CI high": [_fmt_ms(v) for v in df["ci_high_ms"]],
        "n": [_fmt(v, ".0f") for v in df["n_samples"]],
        "speedup": [_fmt_x(v) for v in df["speedup"]],
        "TFLOP/s": [_fmt(v, ".3g") for v in df["tflops"]],
        "GB/s": [_fmt(v, ".4g") for v in df["gbps"]],
        "% peak bw": [_fmt(v, ".0f") for v in df["pct_peak_bw"]],
        "% same-size copy": [_fmt(v, ".0f") for v in df["pct_same_size_copy"]],
        "peak MiB": [_fmt(v / 2**20 if v is not None and not pd.isna(v) else v, ".1f") for v in df["peak_mem_bytes"]],
        "max rel err": [_fmt(v, ".1e") for v in df["max_rel_err"]],
        "backend": df["backend"].fillna("-").astype(str),
        "precision": df["precision"].fillna("-").astype(str), "tf32": df["tf32"].fillna("-").astype(str),
        "stop": df["stop_reason"].fillna("-").astype(str),
    })


def _env_table(metas: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for path, m in metas.items():
        libs = m.get("libraries") or {}
        devs = m.get("devices") or {}
        ceil = m.get("ceilings") or {}
        names = sorted(set(devs) | set(ceil)) or ["-"]
        for dev in names:
            info, c = devs.get(dev) or {}, ceil.get(dev) or {}
            mm = c.get("matmul_tflops") or {}
            rows.append({
                "run": Path(path).name, "device": dev,
                "device name": info.get("device_name") or c.get("device_name") or "-",
                "capability": ".".join(map(str, info["capability"])) if info.get("capability") else "-",
                "driver": info.get("driver") or "-",
                "threads": str(info.get("threads") or m.get("threads") or "-"),
                "copy GB/s": _fmt(c.get("copy_gbps"), ".1f"),
                "matmul TFLOP/s": ", ".join(f"{k} {v:.3g}" for k, v in mm.items()) or "-",
                "torch": str(libs.get("torch")), "CUDA": str(libs.get("cuda")),
                "cuDNN": str(libs.get("cudnn")), "triton": str(libs.get("triton")),
                "python": str(libs.get("python")),
                "precision flags": ", ".join(f"{k}={v}" for k, v in (m.get("precision_flags") or {}).items()),
                "timing": l2_label((m.get("comparability") or {}).get("measure")) if dev.startswith("cuda") else "host clock",
                "git": str(m.get("git_sha") or "-")[:12],
                "config": f"{(m.get('config') or {}).get('name', '-')} ({str(m.get('config_hash') or '')[:10]})",
            })
    return pd.DataFrame(rows)


def build_doc(runs: Runs) -> Doc:
    from . import plots

    df = with_speedup(runs.df)
    doc = Doc("convbench kernel-choice report")
    doc.p(f"Generated {_dt.datetime.now().isoformat(timespec='seconds')} from "
          f"{len(runs.metas)} run folder(s): {', '.join(runs.metas)}. "
          f"{len(df)} rows: " + ", ".join(f"{k} {v}" for k, v in df["status"].value_counts().items()) + "."
          + (f" {runs.duplicates} duplicate rows were dropped (the later run's row is kept)."
             if runs.duplicates else ""))
    if (warning := runs.timing_warning()):
        doc.p("Warning: " + warning)
    doc.h(2, "Environment")
    doc.table(_env_table(runs.metas))
    for path, m in runs.metas.items():
        doc.details(f"config of {path}")
        doc.pre(json.dumps(m.get("config"), indent=1, default=str))
        doc.end_details()
    doc.h(2, "How the winner is chosen")
    doc.p(TIE_RULE + " Speedup is the baseline's median over the winner's (per layout: "
          + ", ".join(f"{o}/{lay}: {n}" for (o, lay), n in sorted(_baselines().items()))
          + "); the runner-up margin is the runner-up's median over the winner's. "
          "`backend` is what really ran; `precision`/`tf32` say whether float32 ran in TF32.")
    w_all = winners(df)
    for key, g in df.groupby(list(GROUP_COLS), sort=True, dropna=False):
        op, dev, dtype, layout, mode, prec = key
        doc.h(2, f"{op} · {dtype} · {layout} · {mode} · precision {prec} · {dev}")
        wg = w_all
        for c, v in zip(GROUP_COLS, key, strict=True):
            wg = wg[wg[c] == v]
        doc.table(winner_display(wg))
        doc.fig(lambda g=g: plots.latency(g), f"Latency of every implementation ({op} {dtype} {layout} {mode}); "
                "lower is better; missing points did not run (see skips and failures)")
        doc.fig(lambda g=g: plots.speedup_heatmap(g), "Speedup over the baseline per shape and implementation "
                "(green faster, red slower; grey cells did not run correctly)")
        doc.fig(lambda g=g: plots.memory_bars(g), "Peak memory of one call: bytes allocated above the inputs at the peak (the output counts)")
        doc.details(f"all measurements ({len(g)} rows)")
        doc.table(measurements_display(g))
        doc.end_details()
    doc.h(2, "Roofline")
    doc.p("Each ok measurement at its arithmetic intensity (analytic FLOPs / minimal bytes) against "
          "the copy bandwidth and matmul rate measured on the same device (meta.json ceilings).")
    for dev, g in df.groupby("device_name", sort=True):
        ceil = ceilings_for(runs.metas, dev)
        doc.fig(lambda g=g, c=ceil: plots.roofline(g, c), f"Roofline on {dev}")
    doc.h(2, "Skips and failures")
    bad = failures(df)
    if bad.empty:
        doc.p("Every row ran and matched the float64 reference.")
    else:
        doc.p(", ".join(f"{k}: {v}" for k, v in bad["status"].value_counts().items())
              + ". Wrong rows failed the float64 reference check and can never win.")
        doc.table(bad)
    return doc


def ceilings_for(metas: dict[str, dict], device_name: str) -> dict:
    """The measured ceilings of a device name from any run's meta.json ({} when none)."""
    for m in metas.values():
        for dev, c in (m.get("ceilings") or {}).items():
            name = (c or {}).get("device_name") or ((m.get("devices") or {}).get(dev) or {}).get("device_name")
            if name == device_name:
                return c
    return {}


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1360px}
h1{font-size:24px}h2{font-size:19px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:32px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}tr:nth-child(even) td{background:#fafafa}
figure{margin:12px 0}figcaption{font-size:12px;color:#555}img{max-width:100%}
pre{background:#f6f6f6;padding:8px;font-size:11px;overflow:auto}
details{margin:6px 0}summary{cursor:pointer;color:#225}
"""


def _fig_bytes(figure, fmt: str) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    figure.savefig(buf, format=fmt, bbox_inches="tight", dpi=100)
    plt.close(figure)
    return buf.getvalue()


def _cell(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def render_html(doc: Doc, image_format: str = "png") -> str:
    mime = {"png": "image/png", "svg": "image/svg+xml"}[image_format]
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(doc.title)}</h1>"]
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(b[1])}</p>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "open":
            out.append(f"<details><summary>{html.escape(b[1])}</summary>")
        elif kind == "close":
            out.append("</details>")
        elif kind == "table":
            t = b[1]
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.columns)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                           for row in t.itertuples(index=False))
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "fig":
            figure = b[1]()
            if figure is None:
                continue
            data = base64.b64encode(_fig_bytes(figure, image_format)).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(b[2], quote=True)}' src='data:{mime};base64,{data}'>"
                       f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _md_cell(v) -> str:
    return _cell(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Doc, out: Path, image_format: str = "png") -> str:
    """Markdown text; figures are written to `<stem>_files/` beside `out`."""
    fig_dir = out.parent / f"{out.stem}_files"
    lines = [f"# {doc.title}", ""]
    n = 0
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif kind == "p":
            lines += [b[1], ""]
        elif kind == "pre":
            lines += ["```", b[1], "```", ""]
        elif kind == "open":
            lines += [f"<details><summary>{html.escape(b[1])}</summary>", ""]
        elif kind == "close":
            lines += ["</details>", ""]
        elif kind == "table":
            t = b[1]
            lines.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
            lines.append("|" + "---|" * len(t.columns))
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in t.itertuples(index=False)]
            lines.append("")
        elif kind == "fig":
            figure = b[1]()
            if figure is None:
                continue
            n += 1
            fig_dir.mkdir(parents=True, exist_ok=True)
            name = f"fig{n:02d}.{image_format}"
            (fig_dir / name).write_bytes(_fig_bytes(figure, image_format))
            lines += [f"![{b[2]}]({fig_dir.name}/{name})", "", f"*{b[2]}*", ""]
    return "\n".join(lines)


def write_report(paths, out: str | Path, fmt: str | None = None, image_format: str = "png") -> Path:
    """Build the report of the run folders `paths` into `out` (html or md, from the suffix when
    fmt is None)."""
    out = Path(out)
    fmt = fmt or ("md" if out.suffix.lower() in (".md", ".markdown") else "html")
    doc = build_doc(load_runs(paths))
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    text = render_html(doc, image_format) if fmt == "html" else render_markdown(doc, out, image_format)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
