"""DepthWiseConv1d / PointwiseConv1d: drop-in modules of the reference API with a backend= switch."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .precision import current as current_precision
from .problem import Depthwise, Inputs, Pointwise, Problem
from .registry import Case, Impl, baseline, get, names

AUTO = "auto"
SELECTION_ENV = "CONVBENCH_SELECTION"
DEFAULT_SELECTION = Path(__file__).parent / "data" / "selection.json"
_MAX_CACHED = 256  # choices remembered per module (one per input signature)


@dataclass(frozen=True)
class Choice:
    """What backend="auto" ran for one input signature, and why."""

    impl: str
    why: str
    fallback: bool


_TABLES: dict[str, tuple[float, object]] = {}


def _load_table(path: Path):
    """A Selection, cached per file until the file changes."""
    from .report import Selection

    if not path.is_file():
        raise ValueError(f"selection table {str(path)!r} does not exist; write one with "
                         "`convbench select RUN -o selection.json`")
    mtime = path.stat().st_mtime
    hit = _TABLES.get(str(path))
    if hit is None or hit[0] != mtime:
        hit = (mtime, Selection.load(path))
        _TABLES[str(path)] = hit
    return hit[1]


def _selection(selection):
    """(Selection | None, where it came from): the selection= argument, else $CONVBENCH_SELECTION,
    else the table shipped in the package."""
    from .report import Selection

    if isinstance(selection, Selection):
        return selection, selection.source
    if selection is not None:
        return _load_table(Path(selection)), str(selection)
    env = os.environ.get(SELECTION_ENV)
    if env:
        if not Path(env).is_file():
            return None, f"${SELECTION_ENV}={env!r} is not a file"
        return _load_table(Path(env)), f"${SELECTION_ENV}={env}"
    if DEFAULT_SELECTION.is_file():
        return _load_table(DEFAULT_SELECTION), "the default table"
    return None, "no table ($CONVBENCH_SELECTION unset and no default table shipped)"


@functools.lru_cache(maxsize=16)
def _device_name(device: str) -> str:
    from .env import device_name

    return device_name(device)


@functools.lru_cache(maxsize=16)
def _capability(device: str) -> tuple[int, int] | None:
    """The CUDA compute capability (a table measured on another GPU of the same one stands in
    for this GPU); None off CUDA and on ROCm, whose GPUs report HIP versions there (an MI250 says
    (9, 0), as an H100 does)."""
    dev = torch.device(device)
    if dev.type != "cuda" or getattr(torch.version, "hip", None):
        return None
    return tuple(torch.cuda.get_device_capability(dev))


def _backend(op: str, backend: str, layout: str) -> Impl:
    if backend not in names(op):
        raise ValueError(f"backend={backend!r} is not a {op} implementation; choose one of "
                         f"{', '.join(names(op))}")
    impl = get(op, backend)
    if impl.layout != layout:
        raise ValueError(f"backend={backend!r} works on {impl.layout} tensors but layout={layout!r}; "
                         f"pick a backend of layout {layout!r} or pass layout={impl.layout!r}")
    return impl


class _Conv1dBase(nn.Module):
    op = ""

    def __init__(self, problem_kw: dict, weight_shape, bias: bool, backend: str, layout: str,
                 device=None, dtype=None, selection=None):
        super().__init__()
        if layout not in ("ncl", "nlc"):
            raise ValueError(f"layout={layout!r}: allowed 'ncl' (N, C, L) or 'nlc' (N, L, C)")
        self.layout = layout
        self._kw = problem_kw
        self.weight = nn.Parameter(torch.empty(weight_shape, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(weight_shape[0], device=device, dtype=dtype)) if bias else None
        self.backend = backend
        if backend == AUTO:
            if selection is not None and not isinstance(selection, (str, os.PathLike)):
                from .report import Selection

                if not isinstance(selection, Selection):
                    raise ValueError(f"selection={selection!r}: pass a path to a selection JSON "
                                     "(`convbench select`) or a convbench.report.Selection")
            if isinstance(selection, (str, os.PathLike)):
                _load_table(Path(selection))  # a missing or foreign file fails here, not mid-training
            base = baseline(self.op, layout)
            self.impl = base if base is not None else get(self.op, "torch")  # until the first call
        else:
            if selection is not None:
                raise ValueError(f"selection= applies only to backend='auto', not backend={backend!r}")
            self.impl = _backend(self.op, backend, layout)
        self.selection = selection
        self.last_choice: Choice | None = None
        self._choices: dict[tuple, Choice] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv1d's initialisation: kaiming-uniform weights, uniform bias in ±1/sqrt(fan_in)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2]
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def _problem(self, x: torch.Tensor) -> Problem:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, L) for layout ncl, (N, L, C_in) for nlc; returns y in the same layout."""
        if x.dim() != 3:
            raise ValueError(f"{type(self).__name__} expects a 3-D input, got shape {tuple(x.shape)}")
        p = self._problem(x)
        training = torch.is_grad_enabled() and (
            x.requires_grad or any(t.requires_grad for t in self.parameters())
        )
        case = Case(p, str(x.dtype).removeprefix("torch."), self.layout, str(x.device),
                    "fwd_bwd" if training else "fwd")
        if self.backend == AUTO:
            # the precision policy in force: float32 picks are measured per policy
            key = (tuple(x.shape), x.dtype, str(x.device), case.mode, current_precision())
            choice = self._choices.get(key)
            if choice is None:
                choice = self._choose(case)
                if len(self._choices) >= _MAX_CACHED:
                    self._choices.clear()
                self._choices[key] = choice
            self.last_choice = choice
            impl = get(self.op, choice.impl)
        else:
            impl = self.impl
            reason = impl.skip_reason(case)
            if reason:
                raise RuntimeError(f"{type(self).__name__}(backend={self.backend!r}) cannot run this "
                                   f"input: {reason}")
        return impl.build(p, Inputs(x, self.weight, self.bias, self.layout))()

    def _choose(self, case: Case) -> Choice:
        """backend="auto": the selection table's pick for this case, or the layout's baseline."""
        base = self.impl.name

        def fallback(why: str) -> Choice:
            return Choice(base, f"{why}; using the {self.layout} baseline {base!r}", True)

        try:
            table, source = _selection(self.selection)
        except (OSError, ValueError) as exc:
            return fallback(f"the selection table could not be read ({exc})")
        if table is None:
            return fallback(source)
        entry, why = table.match(self.op, _device_name(case.device), case.dtype, self.layout,
                                 case.problem, case.mode, _capability(case.device), current_precision())
        if entry is None:
            return fallback(f"{why} ({source})")
        name = entry["impl"]
        if name not in names(self.op):
            return fallback(f"{why} picks {name!r}, which is not registered here")
        impl = get(self.op, name)
        if impl.layout != self.layout:
            return fallback(f"{why} picks {name!r}, a {impl.layout} implementation")
        reason = impl.skip_reason(case)
        if reason:
            return fallback(f"{why} picks {name!r}, which cannot run this input: {reason}")
        from .report import describe_entry

        return Choice(name, f"{why} -> {name} ({describe_entry(entry)}; {source})", False)

    def explain(self) -> str:
        """Which implementation ran on the last call, and why."""
        if self.backend != AUTO:
            return f"backend={self.backend!r} was given explicitly"
        if self.last_choice is None:
            return "backend='auto' has not chosen yet: it chooses per input shape on the first call"
        return f"{self.last_choice.impl}: {self.last_choice.why}"

    def _c_in(self, x: torch.Tensor) -> tuple[int, int]:
        n, a, b = x.shape
        c, length = (a, b) if self.layout == "ncl" else (b, a)
        if c != self.in_channels:
            raise ValueError(f"input has {c} channels, the module expects in_channels={self.in_channels}")
        return n, length

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self._kw['stride']}, padding={self._kw['padding']}, "
                f"bias={self.bias is not None}, backend={self.backend!r}, layout={self.layout!r}")


class DepthWiseConv1d(_Conv1dBase):
    """Depthwise Conv1d (groups = in_channels), as the DelightfulTTS reference API.

    x: (batch, in_channels, length) -> (batch, out_channels, L_out), with out_channels a multiple
    of in_channels. backend names a registered depthwise implementation (`convbench list`), or
    "auto": per input signature, the implementation a selection table (selection=, else
    $CONVBENCH_SELECTION, else convbench/data/selection.json) picks, else the layout's baseline;
    `last_choice` / `explain()` say which ran and why.
    """

    op = "depthwise"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int,
                 bias: bool = True, stride: int = 1, dilation: int = 1, backend: str = "torch",
                 layout: str = "ncl", device=None, dtype=None, selection=None):
        if in_channels < 1 or out_channels < 1 or kernel_size < 1:
            raise ValueError(f"DepthWiseConv1d({in_channels}, {out_channels}, {kernel_size}): "
                             "channels and kernel_size must be >= 1")
        if out_channels % in_channels:
            lo = out_channels // in_channels * in_channels
            options = ", ".join(str(v) for v in (lo, lo + in_channels) if v >= in_channels)
            raise ValueError(
                f"DepthWiseConv1d({in_channels}, {out_channels}, {kernel_size}, padding={padding}): "
                f"out_channels={out_channels} is not a multiple of in_channels={in_channels}. A "
                f"depthwise conv (groups=in_channels) gives every input channel the same number of "
                f"filters, so out_channels must be k*{in_channels} (e.g. {options})."
            )
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        kw = dict(K=kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias)
        super().__init__(kw, (out_channels, 1, kernel_size), bias, backend, layout, device, dtype,
                         selection)

    def _problem(self, x):
        n, length = self._c_in(x)
        return Depthwise(N=n, C_in=self.in_channels, C_out=self.out_channels, L=length, **self._kw)


class PointwiseConv1d(_Conv1dBase):
    """Pointwise (1x1) Conv1d, as the DelightfulTTS reference API.

    x: (batch, in_channels, length) -> (batch, out_channels, L_out). backend names a registered
    pointwise implementation (`convbench list`), or "auto" (see DepthWiseConv1d).
    """

    op = "pointwise"

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, kernel_size: int = 1, backend: str = "torch",
                 layout: str = "ncl", device=None, dtype=None, selection=None):
        if min(in_channels, out_channels, kernel_size, stride) < 1 or padding < 0:
            raise ValueError(f"PointwiseConv1d({in_channels}, {out_channels}, stride={stride}, "
                             f"padding={padding}, kernel_size={kernel_size}): channels, stride and "
                             "kernel_size must be >= 1 and padding >= 0")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        kw = dict(K=kernel_size, stride=stride, padding=padding, dilation=1, bias=bias)
        super().__init__(kw, (out_channels, in_channels, kernel_size), bias, backend, layout,
                         device, dtype, selection)

    def _problem(self, x):
        n, length = self._c_in(x)
        return Pointwise(N=n, C_in=self.in_channels, C_out=self.out_channels, L=length, **self._kw)
