"""YAML sweep config -> validated SweepConfig; axis expansion, zip, presets, exclude/where rules."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import yaml

from .precision import POLICIES
from .presets import PRESETS, preset
from .problem import DTYPES, LAYOUTS, MODES, OPS, SHAPE_KEYS, Problem, make_problem, same_padding
from .timing import L2_MODES, TIMER_VERSION, MeasureSettings, timer_versioned

TOP_KEYS = ("name", "ops", "impls", "devices", "dtypes", "layouts", "modes", "presets", "shapes",
            "zip", "exclude", "where", "measure", "precision", "seed", "timeout_s")
MEASURE_KEYS = tuple(f.name for f in fields(MeasureSettings))
RULE_KEYS = ("op", "dtype", "layout", "mode", "device", *SHAPE_KEYS)
WHERE_RE = re.compile(r"^\s*(\w+)\s*(<=|>=|==|!=|<|>)\s*(\w+)\s*$")
# Modules named here (comma-separated) are imported by the CLI, the sweep and every worker at
# start, so that implementations they register exist on both sides of the process boundary.
PLUGINS_ENV = "CONVBENCH_PLUGINS"


class ConfigError(ValueError):
    """A user error in a config or option: names the file, the key path and what is allowed."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


@dataclass(frozen=True)
class PlannedCase:
    """A case before it meets a worker: device is a label ('cpu', 'cuda', 'cuda:1')."""

    problem: Problem
    dtype: str
    layout: str
    device: str
    mode: str


@dataclass(frozen=True)
class SweepConfig:
    source: str
    name: str
    ops: tuple[str, ...]
    impls: tuple[str, ...] | None  # None = all
    devices: tuple[str, ...]
    workers: dict[str, tuple[str, ...]]  # device label -> the devices whose workers run it
    dtypes: tuple[str, ...]
    layouts: tuple[str, ...]
    modes: tuple[str, ...]
    precision: str
    seed: int
    timeout_s: float
    measure: MeasureSettings
    cases: tuple[PlannedCase, ...] = field(repr=False)
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def hash(self) -> str:
        return _hash(self.raw)

    @property
    def comparability(self) -> dict:
        """What must not change for rows of two runs to be compared or one run to be resumed."""
        measure = _asdict(self.measure)
        if timer_versioned(measure):  # only where the meaning changed, so older runs stay comparable
            measure["timer"] = TIMER_VERSION
        return {"measure": measure, "precision": self.precision, "seed": self.seed}


def _asdict(ms: MeasureSettings) -> dict:
    return {f.name: getattr(ms, f.name) for f in fields(ms)}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _did_you_mean(word: str, allowed) -> str:
    close = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class _V:
    """Validation helpers bound to a source file name."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str):
        raise ConfigError(self.source, key, msg)

    def keys(self, mapping, allowed, where: str):
        if not isinstance(mapping, dict):
            self.fail(where or "(top level)", f"expected a mapping of keys, got {_show(mapping)}")
        for k in mapping:
            if k not in allowed:
                path = f"{where}.{k}" if where else str(k)
                self.fail(path, f"unknown key {k!r}.{_did_you_mean(k, allowed)} "
                                f"Allowed: {', '.join(allowed)}.")

    def str_list(self, key, value, allowed, default=None) -> tuple[str, ...]:
        if value is None:
            if default is None:
                self.fail(key, f"is required; allowed values: {', '.join(allowed)}")
            value = default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(key, f"expected a non-empty list, got {_show(value)}; allowed values: "
                           f"{', '.join(allowed)}")
        for i, v in enumerate(value):
            if v not in allowed:
                self.fail(f"{key}[{i}]", f"{v!r} is not allowed.{_did_you_mean(v, allowed)} "
                                         f"Allowed: {', '.join(map(str, allowed))}.")
        return tuple(dict.fromkeys(value))


def _show(v) -> str:
    return f"{type(v).__name__} {v!r}" if not isinstance(v, (list, dict)) else repr(v)


def plugin_modules(value: str | None = None) -> tuple[str, ...]:
    """The module names listed in $CONVBENCH_PLUGINS (or in `value`)."""
    value = os.environ.get(PLUGINS_ENV, "") if value is None else value
    return tuple(dict.fromkeys(m.strip() for m in value.split(",") if m.strip()))


def load_plugins(value: str | None = None) -> tuple[str, ...]:
    """Import the plugin modules (explicit names, no directory scanning); each registers its
    implementations on import. Idempotent: an imported module is not imported again."""
    mods = plugin_modules(value)
    for m in mods:
        if m in sys.modules:
            continue
        try:
            importlib.import_module(m)
        except Exception as exc:
            raise ConfigError(
                f"${PLUGINS_ENV}", m,
                f"cannot import plugin module {m!r} ({type(exc).__name__}: {exc}); the variable "
                "lists importable module names separated by commas, e.g. mypkg.convs,faulty_impls "
                "(the module's folder must be on PYTHONPATH)") from None
    return mods


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping: valid YAML syntax, refused as a config mistake."""


def _construct_mapping(loader, node, deep=False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # the base constructor reports unhashable keys
        if key in seen:
            m = key_node.start_mark
            raise _DuplicateKey(
                None, None, f"key {key!r} is given twice (first on line {seen[key] + 1})", m)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config(path: str | Path, overrides: dict | None = None) -> SweepConfig:
    """Read and validate a YAML file; overrides (CLI options) replace top-level keys."""
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(source, "", "config file not found" if not p.exists() else "not a file")
    try:
        raw = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        kind = "duplicate key" if isinstance(exc, _DuplicateKey) else "YAML syntax error"
        raise ConfigError(source, "", f"{kind} at {where}: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot parse YAML: {exc}") from None
    if raw is None:
        raise ConfigError(source, "", "the file is empty; a config needs at least `ops` and shapes")
    return parse_config(raw, source, overrides)


def resolve_devices(values, source: str, key: str) -> dict[str, tuple[str, ...]]:
    """Device labels -> worker devices. auto: cuda if visible else cpu; all: every GPU (or cpu)."""
    v = _V(source)
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        v.fail(key, f"expected a non-empty list of devices, got {_show(values)}; allowed: "
                    "auto, cpu, cuda, cuda:N, all")
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out: dict[str, tuple[str, ...]] = {}
    for i, d in enumerate(values):
        k = f"{key}[{i}]" if len(values) > 1 or key.startswith("devices") else key
        if not isinstance(d, str):
            v.fail(k, f"expected a device name, got {_show(d)}; allowed: auto, cpu, cuda, cuda:N, all")
        if d == "auto":
            out["cuda" if n_gpu else "cpu"] = ("cuda:0",) if n_gpu else ("cpu",)
        elif d == "all":
            out["cuda" if n_gpu else "cpu"] = tuple(f"cuda:{j}" for j in range(n_gpu)) or ("cpu",)
        elif d == "cpu":
            out["cpu"] = ("cpu",)
        elif re.fullmatch(r"cuda(:\d+)?", d):
            idx = int(d.split(":")[1]) if ":" in d else 0
            if idx >= n_gpu:
                seen = f"{n_gpu} CUDA device(s) are visible" if n_gpu else "no CUDA device is visible"
                allowed = ", ".join(["auto", "cpu", "all"] + [f"cuda:{j}" for j in range(n_gpu)])
                v.fail(k, f"device {d!r} does not exist here ({seen}); allowed here: {allowed}")
            out[d] = (f"cuda:{idx}",)
        else:
            hint = (" Did you mean 'cuda'?" if d.lower() in ("gpu", "nvidia", "cuda0")
                    else _did_you_mean(d, ['auto', 'cpu', 'cuda', 'all']))
            v.fail(k, f"unknown device {d!r}.{hint} "
                      "Allowed: auto, cpu, cuda, cuda:N, all.")
    cuda_labels = [label for label in out if label.startswith("cuda")]
    if len(cuda_labels) > 1:  # rows are keyed by device type: two CUDA labels would collide
        v.fail(key, f"{' and '.join(map(repr, cuda_labels))} are both CUDA devices; a run measures "
                    "each case once per device type. Give one of them, or `all` to spread the "
                    "cases over every GPU")
    return out


def parse_config(raw, source: str = "<config>", overrides: dict | None = None) -> SweepConfig:
    v = _V(source)
    load_plugins()
    v.keys(raw, TOP_KEYS, "")
    raw = dict(raw)
    for k, val in (overrides or {}).items():
        if val is None:
            continue
        if k in ("l2", "graph"):  # --l2 / --graph replace one key of the measure block
            measure = raw.get("measure")
            if measure is None or isinstance(measure, dict):  # else the block's own error stands
                raw["measure"] = {**(measure or {}), k: val}
        else:
            raw[k] = val
    name = raw.get("name") or Path(source).stem
    if not isinstance(name, str):
        v.fail("name", f"expected a string, got {_show(name)}")
    ops = v.str_list("ops", raw.get("ops"), OPS, default=list(OPS))
    dtypes = v.str_list("dtypes", raw.get("dtypes"), tuple(DTYPES), default=["float32"])
    layouts = v.str_list("layouts", raw.get("layouts"), LAYOUTS, default=["ncl"])
    modes = v.str_list("modes", raw.get("modes"), MODES, default=["fwd"])
    impls = _parse_impls(v, raw.get("impls", "all"), ops, layouts)
    dev_key = "--device" if overrides and overrides.get("devices") is not None else "devices"
    workers = resolve_devices(raw.get("devices", ["auto"]), source, dev_key)
    precision = raw.get("precision", "default")
    if precision not in POLICIES:
        v.fail("precision", f"{precision!r} is not allowed.{_did_you_mean(precision, POLICIES)} "
                            f"Allowed: {', '.join(POLICIES)}.")
    seed = _int(v, "seed", raw.get("seed", 0), minimum=0)
    timeout_s = _num(v, "timeout_s", raw.get("timeout_s", 300), minimum=0.5)
    measure = _parse_measure(v, raw.get("measure") or {})

    shapes = _expand_shapes(v, raw, ops)
    rules = _parse_exclude(v, raw.get("exclude") or [])
    wheres = _parse_where(v, raw.get("where") or [])
    cases = []
    for op, shape in shapes:
        prob = make_problem(op, **shape)
        for dtype, layout, device, mode in itertools.product(dtypes, layouts, workers, modes):
            attrs = {"op": op, "dtype": dtype, "layout": layout, "device": device, "mode": mode,
                     **prob.shape()}
            if any(_matches(rule, attrs) for rule in rules):
                continue
            if not all(_holds(w, attrs) for w in wheres):
                continue
            cases.append(PlannedCase(prob, dtype, layout, device, mode))
    if not cases:
        v.fail("", "the config expands to no cases (check `exclude`, `where` and the shape axes)")
    return SweepConfig(
        source=source, name=name, ops=ops, impls=impls, devices=tuple(workers), workers=workers,
        dtypes=dtypes, layouts=layouts, modes=modes, precision=precision, seed=seed,
        timeout_s=timeout_s, measure=measure, cases=tuple(dict.fromkeys(cases)),
        raw=json.loads(json.dumps(raw, default=str)),
    )


def _parse_impls(v: _V, value, ops, layouts) -> tuple[str, ...] | None:
    from .registry import all_impls, names

    if value == "all" or value == ["all"]:
        return None
    allowed = sorted({n for op in ops for n in names(op)})
    chosen = v.str_list("impls", value, allowed)
    for i, name in enumerate(chosen):
        kinds = sorted({f"{m.op}/{m.layout}" for m in all_impls() if m.name == name and m.op in ops})
        if not any(k.split("/")[1] in layouts for k in kinds):
            v.fail(f"impls[{i}]", f"{name!r} is a {' and '.join(kinds)} implementation, but "
                                  f"layouts are {', '.join(layouts)}: it would run no case. Add its "
                                  "layout to `layouts` or drop it")
    return chosen


def _int(v: _V, key, value, minimum=None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        v.fail(key, f"expected an integer, got {_show(value)}")
    if minimum is not None and value < minimum:
        v.fail(key, f"must be >= {minimum}, got {value}")
    return value


def _num(v: _V, key, value, minimum=None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        v.fail(key, f"expected a number, got {_show(value)}")
    if minimum is not None and value < minimum:
        v.fail(key, f"must be >= {minimum}, got {value}")
    return float(value)


def _parse_measure(v: _V, m) -> MeasureSettings:
    v.keys(m, MEASURE_KEYS, "measure")
    kw = {}
    for k, val in m.items():
        key = f"measure.{k}"
        if k == "l2":
            if val not in L2_MODES:
                v.fail(key, f"{val!r} is not allowed. Allowed: {', '.join(L2_MODES)}.")
            kw[k] = val
        elif k == "graph":
            if not isinstance(val, bool):
                v.fail(key, f"expected true or false, got {_show(val)}")
            kw[k] = val
        elif k in ("min_samples", "max_samples", "graph_reps"):
            kw[k] = _int(v, key, val, minimum=1)
        else:
            kw[k] = _num(v, key, val, minimum=0)
    ms = MeasureSettings(**kw)
    if ms.max_samples < ms.min_samples:
        v.fail("measure.max_samples", f"{ms.max_samples} is below measure.min_samples={ms.min_samples}")
    return ms


def _axis_values(v: _V, key: str, name: str, values) -> list:
    if not isinstance(values, list):
        values = [values]
    if not values:
        v.fail(key, "is an empty list; give at least one value")
    out = []
    for i, val in enumerate(values):
        k = f"{key}[{i}]"
        if name == "bias":
            if not isinstance(val, bool):
                v.fail(k, f"expected true or false, got {_show(val)}")
        elif name == "padding" and val == "same":
            pass
        elif isinstance(val, bool) or not isinstance(val, int):
            allowed = "an integer or 'same'" if name == "padding" else "an integer"
            v.fail(k, f"expected {allowed}, got {_show(val)}")
        out.append(val)
    return out


def _expand_shapes(v: _V, raw, ops) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    labels = raw.get("presets") or []
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list):
        v.fail("presets", f"expected a list of preset labels, got {_show(labels)}")
    for i, label in enumerate(labels):
        if label not in PRESETS:
            v.fail(f"presets[{i}]", f"unknown preset {label!r}.{_did_you_mean(label, PRESETS)} "
                                    f"Allowed: {', '.join(PRESETS)}.")
        op, shape = preset(label)
        if op in ops:
            out.append((op, _finish_shape(shape)))
    shapes = raw.get("shapes")
    if shapes is None:
        if not out:
            v.fail("shapes", "no shapes: give `shapes` axes or `presets` labels")
        return out
    if not isinstance(shapes, dict) or not shapes:
        v.fail("shapes", f"expected a mapping of axes, got {_show(shapes)}")
    per_op = set(shapes) <= set(OPS)
    if not per_op and set(shapes) & set(OPS):
        op_keys = sorted(set(shapes) & set(OPS))
        v.fail(f"shapes.{op_keys[0]}", "`shapes` mixes per-op blocks with axes; give either axes "
                                       f"(keys among {', '.join(SHAPE_KEYS)}) or one block per op "
                                       f"(keys among {', '.join(OPS)})")
    groups = shapes.items() if per_op else [(op, shapes) for op in ops]
    zips = raw.get("zip") or []
    for op, axes in groups:
        base = f"shapes.{op}" if per_op else "shapes"
        if op not in ops:
            continue
        v.keys(axes, SHAPE_KEYS, base)
        vals = {k: _axis_values(v, f"{base}.{k}", k, val) for k, val in axes.items()}
        if "N" not in vals or "C_in" not in vals or "L" not in vals:
            missing = [k for k in ("N", "C_in", "L") if k not in vals]
            v.fail(f"{base}.{missing[0]}", "is required (N, C_in and L must be given)")
        if op == "pointwise" and "C_out" not in vals:
            v.fail(f"{base}.C_out", "is required for pointwise (C_in -> C_out)")
        if op == "depthwise" and "K" not in vals:
            v.fail(f"{base}.K", "is required for depthwise")
        for shape in _product(v, vals, zips, base):
            out.append((op, _finish_shape(shape)))
    return out


def _product(v: _V, vals: dict[str, list], zips, base: str):
    if not isinstance(zips, list) or any(not isinstance(g, list) for g in zips):
        v.fail("zip", f"expected a list of lists of axis names, got {_show(zips)}")
    groups: list[list[str]] = []
    used: set[str] = set()
    for gi, group in enumerate(zips):
        present = [a for a in group if a in vals]
        for a in group:
            if a not in SHAPE_KEYS:
                v.fail(f"zip[{gi}]", f"unknown axis {a!r}.{_did_you_mean(a, SHAPE_KEYS)} "
                                     f"Allowed: {', '.join(SHAPE_KEYS)}.")
            if a in used:
                v.fail(f"zip[{gi}]", f"axis {a!r} is in two zip groups")
        lengths = {a: len(vals[a]) for a in present}
        if len(set(lengths.values())) > 1:
            v.fail(f"zip[{gi}]", f"axes that vary together need equal lengths; in {base}: {lengths}")
        if present:
            groups.append(present)
            used.update(present)
    singles = [[a] for a in vals if a not in used]
    all_groups = groups + singles
    for combo in itertools.product(*[range(len(vals[g[0]])) for g in all_groups]):
        shape = {}
        for g, idx in zip(all_groups, combo, strict=True):
            for a in g:
                shape[a] = vals[a][idx]
        yield shape


def _finish_shape(shape: dict) -> dict:
    s = dict(shape)
    s.setdefault("K", 1)
    s.setdefault("dilation", 1)
    if s.get("padding", 0) == "same":
        s["padding"] = same_padding(s["K"], s["dilation"])
    return s


def _parse_exclude(v: _V, rules) -> list[dict]:
    if not isinstance(rules, list):
        v.fail("exclude", f"expected a list of mappings, got {_show(rules)}")
    named = {"op": OPS, "dtype": tuple(DTYPES), "layout": LAYOUTS, "mode": MODES}
    out = []
    for i, rule in enumerate(rules):
        v.keys(rule, RULE_KEYS, f"exclude[{i}]")
        rule = {k: (val if isinstance(val, list) else [val]) for k, val in rule.items()}
        for k, vals in rule.items():
            allowed = named.get(k)
            for val in vals:
                if allowed is not None and val not in allowed:
                    v.fail(f"exclude[{i}].{k}", f"{val!r} is not allowed.{_did_you_mean(val, allowed)} "
                                                f"Allowed: {', '.join(allowed)}.")
                if k in SHAPE_KEYS and k != "bias" and (isinstance(val, bool) or not isinstance(val, int)):
                    v.fail(f"exclude[{i}].{k}", f"expected an integer, got {_show(val)}")
        out.append(rule)
    return out


def _matches(rule: dict, attrs: dict) -> bool:
    return all(attrs.get(k) in vals for k, vals in rule.items())


def _parse_where(v: _V, exprs) -> list[tuple[str, str, str]]:
    if isinstance(exprs, str):
        exprs = [exprs]
    if not isinstance(exprs, list):
        v.fail("where", f"expected a list of conditions like 'K <= L', got {_show(exprs)}")
    out = []
    names = (*SHAPE_KEYS, "L_out")
    for i, e in enumerate(exprs):
        m = WHERE_RE.match(str(e))
        if not m:
            v.fail(f"where[{i}]", f"cannot parse {e!r}; write '<axis> <op> <axis or integer>' "
                                  "with op one of < <= > >= == !=, e.g. 'K <= L'")
        for side in (m.group(1), m.group(3)):
            if not side.lstrip("-").isdigit() and side not in names:
                v.fail(f"where[{i}]", f"unknown axis {side!r} in {e!r}.{_did_you_mean(side, names)} "
                                      f"Allowed: {', '.join(names)}.")
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def _holds(cond, attrs) -> bool:
    a, op, b = cond
    attrs = dict(attrs)
    attrs["L_out"] = (attrs["L"] + 2 * attrs["padding"] - attrs["dilation"] * (attrs["K"] - 1) - 1) // attrs["stride"] + 1

    def val(s):
        return int(s) if s.lstrip("-").isdigit() else attrs[s]

    x, y = val(a), val(b)
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y, "==": x == y, "!=": x != y}[op]
