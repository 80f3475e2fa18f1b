"""Which kernels an implementation really launched: one profiled call, classified by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# Substrings of device-kernel (CUDA) or operator (CPU) names -> what ran. First match wins.
KERNEL_CLASSES: tuple[tuple[str, str], ...] = (
    ("conv_depthwise", "aten-native-depthwise"),
    ("depthwise_fwd_kernel", "triton"),
    ("cudnn", "cudnn"),
    ("xmma_fprop", "cudnn"),
    ("implicit_convolve", "cudnn"),
    ("fprop", "cudnn"),
    ("conv2d_grouped", "cudnn"),
    ("nchwToNhwc", "cudnn"),
    ("nhwcToNchw", "cudnn"),
    ("gemm", "gemm"),
    ("nvjet", "gemm"),
    ("cutlass", "gemm"),
    ("copy", "copy"),
    ("unfold", "copy"),
)
CPU_OPS: tuple[tuple[str, str], ...] = (
    ("aten::mkldnn_convolution", "onednn"),
    ("aten::_slow_conv2d_forward", "aten-native"),
    ("aten::slow_conv_dilated2d", "aten-native"),
    ("aten::_convolution_depthwise", "aten-native"),
    ("aten::thnn_conv", "aten-native"),
    ("aten::cudnn_convolution", "cudnn"),
    ("aten::bmm", "gemm"),
    ("aten::baddbmm", "gemm"),
    ("aten::addmm", "gemm"),
    ("aten::mm", "gemm"),
    ("aten::copy_", "copy"),
)


@dataclass(frozen=True)
class Attribution:
    backend: str  # e.g. "cudnn", "aten-native-depthwise+copy", "triton:depthwise_fwd_kernel"
    kernels: list[tuple[str, float]] = field(default_factory=list)  # (name, device µs) per call
    kernel_time_ms: float | None = None


def classify(name: str, table=KERNEL_CLASSES) -> str | None:
    low = name.lower()
    for pat, cls in table:
        if pat.lower() in low:
            return cls
    return None


def _backend(classes: list[str], triton_names: list[str]) -> str:
    main = [c for c in dict.fromkeys(classes) if c != "copy"]
    label = "+".join(main) if main else ("copy" if "copy" in classes else "unknown")
    if triton_names:
        label = label.replace("triton", "triton:" + ",".join(dict.fromkeys(triton_names)))
    if "copy" in classes and main:
        label += "+copy"
    return label


def attribute(fn, device: str, triton_kernel_names: tuple[str, ...] = ()) -> Attribution:
    """Profile one call of fn (after warm-up) and name what ran."""
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
    kernels: list[tuple[str, float]] = []
    classes: list[str] = []
    triton_names: list[str] = []
    if dev.type == "cuda":
        for ev in prof.events():
            if ev.device_type == torch.autograd.DeviceType.CUDA:
                us = float(getattr(ev, "device_time", None) or ev.cuda_time or 0.0)
                kernels.append((ev.name, us))
                cls = classify(ev.name)
                if cls is None and any(t in ev.name for t in triton_kernel_names):
                    cls = "triton"
                if cls == "triton":
                    triton_names.append(ev.name)
                if cls:
                    classes.append(cls)
        total = sum(us for _, us in kernels) / 1e3
        return Attribution(_backend(classes, triton_names), kernels, total if kernels else None)
    for ev in prof.events():
        cls = classify(ev.name, CPU_OPS)
        if cls:
            classes.append(cls)
            kernels.append((ev.name, float(ev.cpu_time_total)))
    if not classes and triton_kernel_names:
        return Attribution("triton-interpreter", [], None)
    return Attribution(_backend(classes, []), kernels, None)
