"""Which kernels an implementation really launched: one profiled call, classified by name."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

# Substrings (lower case) of CUDA kernel / memcpy names -> what ran. First match wins, so the
# specific patterns come before the generic ones ("cutlass__5x_cudnn" is cuDNN, not cuBLAS;
# "sm90_xmma_fprop_implicit_gemm" is a cuDNN convolution, not a GEMM).
KERNEL_CLASSES: tuple[tuple[str, str], ...] = (
    ("conv_depthwise", "aten-native-depthwise"),  # conv_depthwise2d_{forward,backward,grad_weight}
    ("nchwtonhwc", "copy"),  # cuDNN's own layout transposes: a layout copy all the same
    ("nhwctonchw", "copy"),
    ("cudnn", "cudnn"),
    ("xmma_fprop", "cudnn"),
    ("xmma_dgrad", "cudnn"),
    ("xmma_wgrad", "cudnn"),
    ("implicit_convolve", "cudnn"),
    ("conv2d_grouped", "cudnn"),
    ("conv1d_", "cudnn"),  # cuDNN 9's depthwise kernels: conv1D_NCHW(_general), conv1d_c1_k1_nhwc (seen on H100)
    ("fprop", "cudnn"),
    ("dgrad", "cudnn"),
    ("wgrad", "cudnn"),
    ("gemm", "gemm"),  # cuBLAS/cuBLASLt: *sgemm*, sm90_xmma_gemm_*, gemmSN, gemv2T...
    ("gemv", "gemm"),
    ("nvjet", "gemm"),
    ("cutlass", "gemm"),
    ("splitkreduce", "gemm"),
    ("direct_copy", "copy"),  # elementwise_kernel<..direct_copy_kernel_cuda..>: .contiguous()
    ("copy_kernel", "copy"),
    ("transpose", "copy"),
    ("memcpy dtod", "copy"),
    ("im2col", "copy"),
    ("unfold", "copy"),
)

# CPU operator names -> what ran. Only the operators that decide the backend are listed.
CPU_OPS: tuple[tuple[str, str], ...] = (
    ("aten::mkldnn_convolution", "onednn"),
    ("aten::_slow_conv2d_forward", "aten-native"),
    ("aten::slow_conv_dilated2d", "aten-native"),
    ("aten::_convolution_depthwise", "aten-native"),
    ("aten::thnn_conv", "aten-native"),
    ("aten::_conv_depthwise2d", "aten-native"),
    ("aten::cudnn_convolution", "cudnn"),
    ("aten::bmm", "gemm"),
    ("aten::baddbmm", "gemm"),
    ("aten::addmm", "gemm"),
    ("aten::mm", "gemm"),
    ("aten::copy_", "copy"),
)

_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_FUNCTOR = re.compile(r"(\w+_kernel_cuda|CUDAFunctor_\w+|\w+Functor\w*)")


@dataclass(frozen=True)
class Attribution:
    """What one call launched. kernels: (name, µs per call), device kernels on CUDA, the deciding
    operators (CPU µs) on CPU. kernel_time_ms: device time of all kernels of one call (CUDA only);
    copy_time_ms: the part of it spent in layout copies."""

    backend: str  # e.g. "cudnn", "aten-native-depthwise+copy", "triton:depthwise_fwd_kernel"
    kernels: tuple[tuple[str, float], ...] = ()
    kernel_time_ms: float | None = None
    copy_time_ms: float | None = None


def jit_kernel_names() -> tuple[str, ...]:
    """Names of the @triton.jit functions in the loaded convbench Triton families.

    Triton launches a kernel under its Python function name, so these are the CUDA kernel names.
    Modules are the ones convbench.impls imported explicitly; nothing is scanned on disk.
    """
    out: dict[str, None] = {}
    for modname, mod in list(sys.modules.items()):
        if not modname.startswith("convbench.impls.triton") or mod is None:
            continue
        for obj in vars(mod).values():
            if not any(c.__name__ == "KernelInterface" for c in type(obj).__mro__):
                continue
            name = getattr(obj, "__name__", None) or getattr(getattr(obj, "fn", None), "__name__", None)
            if name and not name.startswith("_"):  # leading-underscore jit helpers are inlined
                out[name] = None
    return tuple(out)


def short_name(name: str) -> str:
    """A kernel name without 'void', template arguments and the parameter list."""
    s = name.strip()
    if s.startswith("void "):
        s = s[5:]
    out, depth = [], 0
    for ch in s:
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    s = "".join(out).strip()
    if s.endswith(")"):  # drop the trailing (params), keep "(anonymous namespace)" inside
        depth = 0
        for i in range(len(s) - 1, -1, -1):
            depth += s[i] == ")"
            depth -= s[i] == "("
            if depth == 0:
                if i > 0 and s[i - 1] != ":":
                    s = s[:i].rstrip()
                break
    s = s or name
    if "elementwise_kernel" in s:  # name the functor, or every ATen elementwise kernel looks alike
        m = _FUNCTOR.search(name)
        if m:
            s += f"[{m.group(1)}]"
    return s


def classify(name: str, table=KERNEL_CLASSES) -> str | None:
    low = name.lower()
    for pat, cls in table:
        if pat.lower() in low:
            return cls
    return None


def classify_kernel(name: str, triton_names: Iterable[str] = (), triton_impl: bool = False) -> str | None:
    """Class of one CUDA kernel: 'triton' for our Triton kernels (a plain identifier that starts
    with a known @triton.jit name, or, for a Triton implementation, ends in '_kernel'), else the
    first KERNEL_CLASSES match, else None (bias adds and other elementwise work)."""
    if _IDENT.match(name):
        if any(name.startswith(t) for t in triton_names if t):
            return "triton"
        cls = classify(name)
        if cls is None and triton_impl and name.endswith("_kernel"):
            return "triton"
        return cls
    return classify(name)


def backend_label(classes: Iterable[str], triton_names: Iterable[str] = (), other: str | None = None) -> str:
    """'+'-joined distinct classes in launch order, layout copies last as '+copy';
    'triton' becomes 'triton:<kernel names>'."""
    classes = list(classes)
    main = [c for c in dict.fromkeys(classes) if c != "copy"]
    tnames = ",".join(dict.fromkeys(triton_names))
    main = [f"triton:{tnames}" if c == "triton" and tnames else c for c in main]
    if not main:
        if "copy" in classes:
            return "copy"
        return f"other:{other}" if other else "unknown"
    return "+".join(main) + ("+copy" if "copy" in classes else "")


# A copy launched inside these is the bias broadcast into the output (beta * C), not a layout copy.
_BIAS_GEMM_OPS = frozenset({"aten::addmm", "aten::baddbmm", "aten::addbmm"})


def _inside(ev, names) -> bool:
    while ev is not None:
        if ev.name in names:
            return True
        ev = getattr(ev, "cpu_parent", None)
    return False


def _device_us(ev) -> float:
    try:
        return float(ev.time_range.elapsed_us())
    except AttributeError:  # older FunctionEvent
        return float(getattr(ev, "device_time_total", 0.0) or 0.0)


def summarize_events(events, device: str, calls: int = 1, triton_names: Iterable[str] | None = None,
                     triton_impl: bool = False) -> Attribution:
    """Attribution from profiler events (prof.events()) covering `calls` calls of one closure."""
    calls = max(int(calls), 1)
    names = tuple(jit_kernel_names() if triton_names is None else triton_names)
    cpu_type = torch.autograd.DeviceType.CPU
    per_name: dict[str, float] = {}
    classes: list[str] = []
    launched_triton: list[str] = []
    if torch.device(device).type == "cuda":
        ops = {ev.id: ev for ev in events if ev.device_type == cpu_type}
        copy_us = 0.0
        for ev in events:
            if ev.device_type != torch.autograd.DeviceType.CUDA:
                continue
            us = _device_us(ev)
            per_name[ev.name] = per_name.get(ev.name, 0.0) + us
            cls = classify_kernel(ev.name, names, triton_impl)
            if cls == "copy" and _inside(ops.get(getattr(ev, "linked_correlation_id", 0)), _BIAS_GEMM_OPS):
                cls = None
            if cls == "triton":
                launched_triton.append(ev.name)
            if cls == "copy":
                copy_us += us
            if cls:
                classes.append(cls)
        kernels = tuple((n, us / calls) for n, us in per_name.items())
        total_ms = sum(per_name.values()) / calls / 1e3 if per_name else None
        other = short_name(max(per_name, key=per_name.__getitem__))[:60] if per_name else None
        return Attribution(backend_label(classes, launched_triton, other), kernels, total_ms,
                           copy_us / calls / 1e3 if per_name else None)
    for ev in events:
        if ev.device_type != cpu_type:
            continue
        cls = classify(ev.name, CPU_OPS)
        if cls == "copy" and _inside(ev.cpu_parent, _BIAS_GEMM_OPS):
            continue
        if cls:
            classes.append(cls)
            per_name[ev.name] = per_name.get(ev.name, 0.0) + float(ev.cpu_time_total)
    kernels = tuple((n, us / calls) for n, us in per_name.items())
    if triton_impl and _interpreting():
        return Attribution("triton-interpreter", kernels)
    return Attribution(backend_label(classes), kernels)


def _interpreting() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def attribute(fn: Callable[[], object], device: str, triton_kernel_names: tuple[str, ...] = ()) -> Attribution:
    """Profile one call of fn (after one warm-up call) and name what ran.

    triton_kernel_names: non-empty for a Triton implementation (extra name prefixes; the jit
    names of convbench's Triton families are always known). CPU and CUDA activities on CUDA.
    """
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    with profile(activities=acts) as prof:
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    triton_impl = bool(triton_kernel_names)
    hints = tuple(n for n in triton_kernel_names if n != "kernel")  # the runner's old catch-all
    return summarize_events(prof.events(), device, 1, triton_names=jit_kernel_names() + hints,
                            triton_impl=triton_impl)
