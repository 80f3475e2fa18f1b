"""Statistics and verdicts of the regression gate: bootstrap CIs of time ratios between two runs."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .results import CASE_KEY, META_FILE, RESULTS_FILE, ResultsError, read_rows, row_key, run_dir_of

THRESHOLD = 0.05  # default: a slowdown must exceed 5 % to fail
ALPHA = 0.05  # default: two-sided 95 % confidence intervals
RESAMPLES = 2000  # bootstrap resamples per row
MIN_SAMPLES = 5  # fewer samples on either side: too few to call, the row is `noisy`
SEED = 0

FAIL_STATUSES = ("wrong", "error", "oom", "timeout")  # a row that ran and failed
# Verdicts in report order: failures first (a correctness loss is the worst), then the rest.
VERDICTS = ("broken", "missing", "added", "slower", "noisy", "faster", "fixed", "same", "unmeasured")
FAILING = frozenset({"broken", "missing", "added", "slower"})

_KEY_INDEX = {k: i for i, k in enumerate(("impl", *CASE_KEY, "device_type", "precision"))}


def compare_key(row: dict) -> tuple:
    """results.row_key plus, for a float32 row, the precision policy it ran under: a tf32 row
    and an ieee row of one case are two measurements, not a before and after (the policy
    changes only what float32 runs, so 16-bit rows still pair across it)."""
    return (*row_key(row), row.get("precision") if row.get("dtype") == "float32" else None)


# ---------------------------------------------------------------- parsing at the edge


def parse_threshold(value: str) -> float:
    """'5%' -> 0.05 and '0.05' -> 0.05; anything else (a bare '5', '5x%', '-1%') is an error
    that quotes the value."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(%?)", text)
    if not m:
        raise ValueError(f"could not parse threshold {value!r}; write a percentage like '5%' "
                         f"or a fraction like 0.05")
    num, pct = float(m.group(1)), bool(m.group(2))
    frac = num / 100 if pct else num
    if not pct and num >= 1:
        raise ValueError(f"threshold {value!r} is ambiguous; write '{m.group(1)}%' for a "
                         f"percentage or a fraction below 1 like 0.05")
    if not 0 < frac < 1:
        raise ValueError(f"threshold {value!r} is out of range; it must be above 0% and below 100%")
    return frac


def parse_alpha(value: float) -> float:
    if not (isinstance(value, (int, float)) and 0 < value < 0.5):
        raise ValueError(f"alpha {value!r} is out of range; it must be above 0 and below 0.5 "
                         f"(0.05 gives 95 % confidence intervals)")
    return float(value)


# ---------------------------------------------------------------- statistics


def bootstrap_medians(samples_ms: Sequence[float], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `resamples` bootstrap resamples (with replacement, same size) of the samples."""
    x = np.asarray(samples_ms, dtype=float)
    out = np.empty(resamples)
    chunk = max(1, 4_000_000 // max(1, len(x)))  # bound memory at ~32 MB per block
    for s in range(0, resamples, chunk):
        e = min(resamples, s + chunk)
        idx = rng.integers(0, len(x), size=(e - s, len(x)))
        out[s:e] = np.median(x[idx], axis=1)
    return out


def ratio_ci(
    base_ms: Sequence[float], new_ms: Sequence[float], alpha: float = ALPHA,
    resamples: int = RESAMPLES, seed: int = SEED,
) -> tuple[float, float, float]:
    """Ratio of medians new/base and its (1 - alpha) percentile-bootstrap CI: (ratio, lo, hi).

    The two runs are resampled independently (their samples are not paired)."""
    rng = np.random.default_rng(seed)
    point = float(np.median(new_ms) / np.median(base_ms))
    boot = bootstrap_medians(new_ms, resamples, rng) / bootstrap_medians(base_ms, resamples, rng)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


def normalized_ratio_ci(
    base_ms: Sequence[float], base_ref_ms: Sequence[float], new_ms: Sequence[float],
    new_ref_ms: Sequence[float], alpha: float = ALPHA, resamples: int = RESAMPLES, seed: int = SEED,
) -> tuple[float, float, float]:
    """Ratio of ratios (new/new_ref) / (base/base_ref) of medians and its bootstrap CI: how much
    ground an implementation lost relative to a reference measured in the same run and case.
    All four sample sets are resampled independently, which is conservative: an implementation
    and its reference are measured in interleaved rounds, so their drift is shared."""
    rng = np.random.default_rng(seed)
    med = np.median
    point = float((med(new_ms) / med(new_ref_ms)) / (med(base_ms) / med(base_ref_ms)))
    b = [bootstrap_medians(s, resamples, rng) for s in (base_ms, base_ref_ms, new_ms, new_ref_ms)]
    boot = (b[2] / b[3]) / (b[0] / b[1])
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


# ---------------------------------------------------------------- records and the verdict rule


@dataclass(frozen=True)
class Comparison:
    """One row of the gate: a case x implementation x device type in both runs."""

    key: tuple  # compare_key
    verdict: str
    base_status: str | None
    new_status: str | None
    base_ms: float | None = None  # median, absolute
    new_ms: float | None = None
    base_n: int = 0
    new_n: int = 0
    ratio: float | None = None  # new/base of medians (or ratio of ratios with normalized_to)
    ci_low: float | None = None
    ci_high: float | None = None
    normalized_to: str | None = None
    note: str = ""
    reason: str | None = None  # the new run's reason for a non-ok status

    def get(self, name: str):
        return self.key[_KEY_INDEX[name]]

    @property
    def impl(self) -> str:
        return self.get("impl")

    @property
    def op(self) -> str:
        return self.get("op")

    @property
    def shape_label(self) -> str:
        g = self.get
        s = f"N{g('N')} C{g('C_in')}"
        if g("op") == "pointwise" or g("C_out") != g("C_in"):
            s += f"->{g('C_out')}"
        s += f" L{g('L')}"
        if g("K") != 1 or g("op") == "depthwise":
            s += f" K{g('K')}"
        for name, short in (("stride", "s"), ("dilation", "d")):
            if g(name) not in (1, None):
                s += f" {short}{g(name)}"
        k, d = g("K"), g("dilation") or 1
        if isinstance(k, int) and g("padding") != (k - 1) * d // 2:
            s += f" p{g('padding')}"
        return s + ("" if g("bias") in (True, None) else " nobias")

    @property
    def label(self) -> str:
        g = self.get
        under = f" under {g('precision')}" if g("precision") else ""
        return (f"{g('op')}/{g('impl')} {g('dtype')} {g('layout')} {g('mode')} "
                f"{g('device_type')} {self.shape_label}{under}")

    def to_dict(self) -> dict:
        d = {k: self.get(k) for k in _KEY_INDEX}
        d.update(verdict=self.verdict, base_status=self.base_status, new_status=self.new_status,
                 base_ms=self.base_ms, new_ms=self.new_ms, base_n=self.base_n, new_n=self.new_n,
                 ratio=self.ratio, ci_low=self.ci_low, ci_high=self.ci_high,
                 normalized_to=self.normalized_to, note=self.note, reason=self.reason)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}


@dataclass(frozen=True)
class Gate:
    """The verdict rule and the pass/fail check, with r = new/base (ratio of medians), [lo, hi]
    its (1 - alpha) bootstrap CI, t the threshold, up = 1 + t and down = 1 / (1 + t):

    - slower: r > up and lo > 1   (beyond the threshold, and significantly slower at all)
    - faster: r < down and hi < 1 (the mirror image: a speed-up of more than t)
    - noisy:  r beyond up or down but not significant, or the CI reaches past both up and down
              (the data fit a threshold-sized slowdown and a threshold-sized speed-up alike),
              or fewer than MIN_SAMPLES samples on either side
    - same:   otherwise (a change within the threshold, or not significant and precise enough)
    """

    threshold: float = THRESHOLD
    alpha: float = ALPHA
    fail_on_noisy: bool = False

    @property
    def up(self) -> float:
        return 1 + self.threshold

    @property
    def down(self) -> float:
        return 1 / (1 + self.threshold)

    def classify(self, ratio: float, lo: float, hi: float) -> tuple[str, str]:
        """(verdict, note) for a ratio and its CI."""
        if ratio > self.up and lo > 1:
            return "slower", ""
        if ratio < self.down and hi < 1:
            return "faster", ""
        if ratio > self.up or ratio < self.down:
            return "noisy", "change beyond the threshold but the CI includes no change"
        if lo < self.down and hi > self.up:
            return "noisy", "CI wider than the threshold band on both sides"
        return "same", ""

    def failing(self, verdict: str) -> bool:
        return verdict in FAILING or (self.fail_on_noisy and verdict == "noisy")

    def fails(self, c: Comparison) -> str | None:
        """None if the row passes, else a one-line message naming the row and why it fails."""
        if not self.failing(c.verdict):
            return None
        pct = f"{self.threshold * 100:g}%"
        conf = f"{(1 - self.alpha) * 100:g}%"
        vs = f" relative to {c.normalized_to}" if c.normalized_to else ""
        if c.verdict == "broken":
            why = f": {c.reason}" if c.reason else ""
            return f"{c.label}: status {c.base_status} -> {c.new_status}{why}"
        if c.verdict == "missing":
            return f"{c.label}: in the baseline but not in the new run"
        if c.verdict == "added":
            return f"{c.label}: in the new run but not in the baseline (refresh the baseline)"
        ci = f"{conf} CI {_fmt(c.ci_low)}-{_fmt(c.ci_high)}"
        if c.verdict == "slower":
            return (f"{c.label}: {(c.ratio - 1) * 100:.1f}% slower{vs} (new/base {c.ratio:.3f}, "
                    f"{ci}), above the {pct} threshold")
        return f"{c.label}: too noisy to call{vs} (new/base {_fmt(c.ratio)}, {ci}){_sep(c.note)}"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _sep(note: str) -> str:
    return f"; {note}" if note else ""


# ---------------------------------------------------------------- matching two runs


def _median(row: dict) -> float | None:
    s = row.get("samples_ms")
    if s:
        return float(np.median(s))
    m = row.get("median_ms")
    return float(m) if isinstance(m, (int, float)) else None


def _seed_for(key: tuple, seed: int) -> int:
    return zlib.crc32(repr(key).encode()) ^ seed


def _samples(row: dict) -> list[float]:
    s = row.get("samples_ms") or []
    return [float(v) for v in s if isinstance(v, (int, float)) and math.isfinite(v)]


def _ref_key(key: tuple, ref: str, rows: dict[tuple, dict]) -> tuple | None:
    """The reference implementation's row of the same case: the same layout if it has one,
    else the same problem in the other layout (e.g. 'torch' for an (N, L, C) kernel)."""
    li = _KEY_INDEX["layout"]
    cand = (ref, *key[1:])
    if cand in rows:
        return cand
    for layout in ("ncl", "nlc"):
        alt = (ref, *key[1:li], layout, *key[li + 1:])
        if alt in rows:
            return alt
    return None


def compare_rows(
    base_rows: Iterable[dict], new_rows: Iterable[dict], gate: Gate, normalize_to: str | None = None,
    impls: Sequence[str] | None = None, ops: Sequence[str] | None = None,
    resamples: int = RESAMPLES, seed: int = SEED,
) -> list[Comparison]:
    """Match rows by compare_key and give each a verdict; failures sort first."""
    base = {compare_key(r): r for r in base_rows}  # a duplicate key (a re-run row): the last wins
    new = {compare_key(r): r for r in new_rows}

    def keep(key):
        return (not impls or key[0] in impls) and (not ops or key[1] in ops)

    out = []
    for key in sorted((k for k in base.keys() | new.keys() if keep(k)), key=repr):
        b, n = base.get(key), new.get(key)
        out.append(_compare_one(key, b, n, base, new, gate, normalize_to, resamples,
                                _seed_for(key, seed)))
    return sort_comparisons(out)


def sort_comparisons(cs: Iterable[Comparison]) -> list[Comparison]:
    def order(c: Comparison):
        wrong_first = 0 if c.new_status == "wrong" else 1
        worst = -(c.ratio or 0) if c.verdict == "slower" else 0
        return (VERDICTS.index(c.verdict), wrong_first, worst, c.label)

    return sorted(cs, key=order)


def _compare_one(key, b, n, base, new, gate: Gate, ref: str | None, resamples: int,
                 seed: int) -> Comparison:
    bs, ns = (b or {}).get("status"), (n or {}).get("status")
    common = dict(key=key, base_status=bs, new_status=ns, base_ms=_median(b) if b else None,
                  new_ms=_median(n) if n else None, base_n=len(_samples(b or {})),
                  new_n=len(_samples(n or {})), reason=(n or {}).get("reason"))
    if b is None:
        return Comparison(verdict="added", **common)
    if n is None:
        return Comparison(verdict="missing", **common)
    if bs == "ok" and ns != "ok":
        loss = "correctness loss" if ns == "wrong" else "no longer runs"
        return Comparison(verdict="broken", note=loss, **common)
    if bs != "ok" and ns == "ok":
        return Comparison(verdict="fixed", note=f"{bs} -> ok", **common)
    if bs != "ok":
        if ns in FAIL_STATUSES and bs not in FAIL_STATUSES:
            return Comparison(verdict="broken", note="correctness loss" if ns == "wrong" else "",
                              **common)
        return Comparison(verdict="unmeasured", note=f"{bs} -> {ns}", **common)

    notes = []
    if b.get("tf32") != n.get("tf32") and None not in (b.get("tf32"), n.get("tf32")):
        notes.append(f"tf32 {b.get('tf32')} -> {n.get('tf32')}")
    sb, sn = _samples(b), _samples(n)
    if not sb or not sn:
        return Comparison(verdict="noisy", note="; ".join(["no raw samples_ms"] + notes), **common)
    if ref is not None and key[0] == ref:
        r = float(np.median(sn) / np.median(sb))
        notes.insert(0, f"normalization reference; absolute new/base {r:.3f}")
        return Comparison(verdict="same", ratio=1.0, ci_low=1.0, ci_high=1.0, normalized_to=ref,
                          note="; ".join(notes), **common)
    too_few = min(len(sb), len(sn)) < MIN_SAMPLES
    if ref is not None:
        kb, kn = _ref_key(key, ref, base), _ref_key(key, ref, new)
        rb, rn = base.get(kb) if kb else None, new.get(kn) if kn else None
        if not (rb and rn and rb.get("status") == "ok" == rn.get("status")
                and _samples(rb) and _samples(rn)):
            notes.insert(0, f"cannot normalize: no ok {ref!r} row with samples for this case in both runs")
            return Comparison(verdict="noisy", normalized_to=ref, note="; ".join(notes), **common)
        srb, srn = _samples(rb), _samples(rn)
        too_few = too_few or min(len(srb), len(srn)) < MIN_SAMPLES
        r, lo, hi = normalized_ratio_ci(sb, srb, sn, srn, gate.alpha, resamples, seed)
    else:
        r, lo, hi = ratio_ci(sb, sn, gate.alpha, resamples, seed)
    if too_few:
        verdict, why = "noisy", f"fewer than {MIN_SAMPLES} samples"
    else:
        verdict, why = gate.classify(r, lo, hi)
    if why:
        notes.insert(0, why)
    return Comparison(verdict=verdict, ratio=r, ci_low=lo, ci_high=hi, normalized_to=ref,
                      note="; ".join(notes), **common)


# ---------------------------------------------------------------- environments


def env_summary(meta: dict) -> dict[str, object]:
    """The parts of meta.json that decide whether two runs' timings are comparable."""
    devs = (meta.get("devices") or {}).values()

    def joined(field_name):
        vals = sorted({str(d.get(field_name)) for d in devs if d.get(field_name) is not None})
        return ", ".join(vals) or None

    libs = meta.get("libraries") or {}
    out: dict[str, object] = {
        "device": joined("device_name"),
        "capability": joined("capability"),
        "driver": joined("driver"),
        **{lib: libs.get(lib) for lib in ("torch", "triton", "cuda", "cudnn")},
        "cpu threads": meta.get("threads"),
    }
    for k, v in sorted((meta.get("precision_flags") or {}).items()):
        out[f"precision_flags.{k}"] = v
    comp = meta.get("comparability") or {}
    out["precision policy"] = comp.get("precision")
    out["measure"] = json.dumps(comp.get("measure"), sort_keys=True) if comp.get("measure") else None
    return out


def env_diff(base_meta: dict, new_meta: dict) -> dict[str, tuple]:
    """{field: (base, new)} for every comparability field whose value differs."""
    a, b = env_summary(base_meta), env_summary(new_meta)
    return {k: (a.get(k), b.get(k)) for k in a if a.get(k) != b.get(k)}


# ---------------------------------------------------------------- two run folders


@dataclass(frozen=True)
class Report:
    """Everything compare decided; renderers read it and never re-compute."""

    base: str
    new: str
    gate: Gate
    comparisons: tuple[Comparison, ...]
    env_diff: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    normalize_to: str | None = None

    @property
    def failures(self) -> list[str]:
        return [m for c in self.comparisons if (m := self.gate.fails(c))]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.comparisons:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return {v: out[v] for v in VERDICTS if v in out}

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def summary(self) -> str:
        n_fail = len(self.failures)
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "no rows"
        head = f"FAIL: {n_fail} regression{'s' if n_fail != 1 else ''}" if n_fail else "PASS"
        vs = f", normalized to {self.normalize_to}" if self.normalize_to else ""
        return (f"{head} ({len(self.comparisons)} rows: {counts}; threshold "
                f"{self.gate.threshold * 100:g}%, {(1 - self.gate.alpha) * 100:g}% CI{vs})")

    def to_dict(self) -> dict:
        return {
            "base": self.base, "new": self.new, "threshold": self.gate.threshold,
            "alpha": self.gate.alpha, "fail_on_noisy": self.gate.fail_on_noisy,
            "normalize_to": self.normalize_to, "passed": not self.failures,
            "counts": self.counts, "failures": self.failures,
            "env_diff": {k: {"base": a, "new": b} for k, (a, b) in self.env_diff.items()},
            "warnings": list(self.warnings),
            "rows": [c.to_dict() for c in self.comparisons],
        }


def load_run(path: str | Path) -> tuple[list[dict], dict]:
    """(rows, meta) of a run folder; ResultsError if it is missing or not convbench's."""
    d = run_dir_of(path)
    try:
        rows = read_rows(d / RESULTS_FILE)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{str(path)!r}: {RESULTS_FILE} is not JSON lines ({exc})") from None
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not {"op", "impl", "status"} <= r.keys():
            raise ResultsError(f"{str(path)!r}: line {i} of {RESULTS_FILE} is not a convbench row "
                               f"(no op/impl/status); is this a convbench run folder?")
    meta_path = d / META_FILE
    meta = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as exc:
            raise ResultsError(f"{str(path)!r}: {META_FILE} is not JSON ({exc})") from None
    return rows, meta


def compare_runs(
    base: str | Path, new: str | Path, gate: Gate, normalize_to: str | None = None,
    impls: Sequence[str] | None = None, ops: Sequence[str] | None = None,
    resamples: int = RESAMPLES, seed: int = SEED, common_only: bool = False,
) -> Report:
    """Compare two run folders. ResultsError for a missing or foreign folder, ValueError for an
    implementation name (impls, normalize_to) that neither run holds. `common_only`: rows found
    in one run only are left out (a warning counts them) instead of failing as missing/added,
    for a focused run set against a wider one."""
    base_rows, base_meta = load_run(base)
    new_rows, new_meta = load_run(new)
    names = known_impls(base_rows, new_rows)
    for opt, name in [("--impl", i) for i in impls or ()] + [("--normalize-to", normalize_to)]:
        if name is not None and name not in names:
            raise ValueError(f"{opt}: no implementation named {name!r} in either run; the runs "
                             f"hold: {', '.join(sorted(names))}")
    warnings = [f"{str(p)!r} has no {META_FILE}; environments not checked"
                for p, m in ((base, base_meta), (new, new_meta)) if not m]
    diff = env_diff(base_meta, new_meta) if base_meta and new_meta else {}
    cs = compare_rows(base_rows, new_rows, gate, normalize_to, impls, ops, resamples, seed)
    if cs and all(c.verdict in ("missing", "added") for c in cs):
        def where(rows):
            names = sorted({str(r.get("device_name") or r.get("device")) for r in rows})
            return f"{len(rows)} row(s) on {', '.join(names) or 'no device'}"
        raise ValueError(f"no row of {str(new)!r} matches a row of {str(base)!r} (rows pair by case, "
                         f"implementation, device type and, for float32, precision policy): the base "
                         f"holds {where(base_rows)}, the new run {where(new_rows)}. Compare two runs "
                         "of the same config on the same kind of device.")
    if common_only:
        kept = [c for c in cs if c.verdict not in ("missing", "added")]
        if len(kept) < len(cs):
            warnings.append(f"--common-only: {len(cs) - len(kept)} row(s) found in one run only were left out")
        cs = kept
    return Report(str(base), str(new), gate, tuple(cs), diff, tuple(warnings), normalize_to)


def known_impls(*row_sets: Iterable[dict]) -> set[str]:
    return {r.get("impl") for rows in row_sets for r in rows}
