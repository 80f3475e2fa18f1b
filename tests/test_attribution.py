"""Kernel attribution: the name classifier on real kernel names, and what one call reports on CPU."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from convbench.attribution import (
    attribute,
    backend_label,
    classify_kernel,
    jit_kernel_names,
    short_name,
    summarize_events,
)
from convbench.problem import make_problem
from convbench.registry import Case, get

# Names as torch.profiler reports them on an H100 (CUDA 12, cuDNN 9, PyTorch 2.x).
NATIVE_DW = (
    "void at::native::(anonymous namespace)::conv_depthwise2d_forward_kernel<11, float, int>("
    "at::GenericPackedTensorAccessor<float const, 4ul, at::DefaultPtrTraits, int>, "
    "at::GenericPackedTensorAccessor<float, 4ul, at::DefaultPtrTraits, int>, "
    "at::GenericPackedTensorAccessor<float const, 4ul, at::DefaultPtrTraits, int>, "
    "at::GenericPackedTensorAccessor<float const, 1ul, at::DefaultPtrTraits, int>, bool, int, int, "
    "int, int, int, int, int, int, int, int, int, int, int, int)"
)
NATIVE_DW_BWD = (
    "void at::native::(anonymous namespace)::conv_depthwise2d_grad_weight_kernel<float, float, int>("
    "at::GenericPackedTensorAccessor<float const, 4ul, at::DefaultPtrTraits, int>, "
    "at::GenericPackedTensorAccessor<float const, 4ul, at::DefaultPtrTraits, int>, "
    "at::GenericPackedTensorAccessor<float, 4ul, at::DefaultPtrTraits, int>, int, int, int, int, "
    "int, int, int, int, int, int, int, int)"
)
CUDNN_FPROP = (
    "sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x64x64_"
    "warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cudnn"
)
CUDNN_GROUPED = (
    "void cudnn::cnn::conv2d_grouped_direct_kernel<false, true, false, false, 0, 0, int, __half, "
    "__half, __half, float, float, float, true>(cudnn::cnn::GroupedDirectFpropParams, __half const*, "
    "__half const*, __half*, float, float, float, float const*, float const*, float const*, "
    "cudnnActivationStruct)"
)
CUDNN_NCHW2NHWC = (
    "void cudnn::engines_precompiled::nchwToNhwcKernel<__half, __half, float, false, true, "
    "(cudnnKernelDataType_t)0>(cudnn::engines_precompiled::nchw2nhwc_params_t<float>, "
    "__half const*, __half*)"
)
NVJET = "nvjet_tst_192x192_64x4_2x1_v_bz_coopB_TNT"
CUBLAS_XMMA = (
    "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32_warpgroupsize1x1x1_"
    "execute_segment_k_off_kernel__5x_cublas"
)
CUTLASS = (
    "void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_128x128_16x4_nn_align4>("
    "cutlass_80_tensorop_s1688gemm_128x128_16x4_nn_align4::Params)"
)
SGEMM = "ampere_sgemm_128x64_nn"
DIRECT_COPY = (
    "void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<"
    "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() "
    "const::{lambda()#7}::operator()() const::{lambda(float)#1}>(at::TensorIteratorBase&, "
    "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() "
    "const::{lambda()#7}::operator()() const::{lambda(float)#1} const&)::{lambda(int)#1}>(int, "
    "at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda("
    "at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::operator()() "
    "const::{lambda(float)#1}>(at::TensorIteratorBase&, at::native::direct_copy_kernel_cuda("
    "at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::operator()() "
    "const::{lambda(float)#1} const&)::{lambda(int)#1})"
)
BIAS_ADD = (
    "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>, "
    "std::array<char*, 3ul> >(int, at::native::CUDAFunctor_add<float>, std::array<char*, 3ul>)"
)
MEMCPY = "Memcpy DtoD (Device -> Device)"
TRITON_NAMES = ("depthwise_fwd_kernel", "pointwise_ncl_kernel", "pointwise_nlc_kernel")


@pytest.mark.parametrize("name, expected", [
    (NATIVE_DW, "aten-native-depthwise"),
    (NATIVE_DW_BWD, "aten-native-depthwise"),
    (CUDNN_FPROP, "cudnn"),
    (CUDNN_GROUPED, "cudnn"),
    (CUDNN_NCHW2NHWC, "copy"),
    (NVJET, "gemm"),
    (CUBLAS_XMMA, "gemm"),
    (CUTLASS, "gemm"),
    (SGEMM, "gemm"),
    (DIRECT_COPY, "copy"),
    (MEMCPY, "copy"),
    (BIAS_ADD, None),
    ("depthwise_fwd_kernel", "triton"),
    ("pointwise_ncl_kernel", "triton"),
])
def test_classify_kernel_real_names(name, expected):
    assert classify_kernel(name, TRITON_NAMES) == expected


def test_triton_suffix_rule_only_for_triton_impls():
    assert classify_kernel("depthwise_fused_glu_kernel", TRITON_NAMES) is None
    assert classify_kernel("depthwise_fused_glu_kernel", TRITON_NAMES, triton_impl=True) == "triton"
    # C++ kernels never pass for Triton ones, even in a Triton implementation
    assert classify_kernel(BIAS_ADD, TRITON_NAMES, triton_impl=True) is None
    assert classify_kernel(DIRECT_COPY, TRITON_NAMES, triton_impl=True) == "copy"


def test_jit_kernel_names_come_from_the_triton_families():
    pytest.importorskip("convbench.impls.triton_depthwise")
    names = jit_kernel_names()
    assert {"depthwise_fwd_kernel", "pointwise_ncl_kernel", "pointwise_nlc_kernel"} <= set(names)
    assert not any(n.startswith("_") for n in names)


@pytest.mark.parametrize("classes, triton, expected", [
    (["aten-native-depthwise"], [], "aten-native-depthwise"),
    (["copy", "aten-native-depthwise", "copy"], [], "aten-native-depthwise+copy"),
    (["copy", "cudnn", "copy"], [], "cudnn+copy"),
    (["triton"], ["depthwise_fwd_kernel"], "triton:depthwise_fwd_kernel"),
    (["triton", "triton"], ["depthwise_fwd_kernel", "depthwise_fwd_kernel"], "triton:depthwise_fwd_kernel"),
    (["gemm"], [], "gemm"),
    (["copy"], [], "copy"),
    ([], [], "unknown"),
])
def test_backend_label(classes, triton, expected):
    assert backend_label(classes, triton) == expected


def test_short_name():
    assert short_name(NATIVE_DW) == "at::native::(anonymous namespace)::conv_depthwise2d_forward_kernel"
    assert short_name(DIRECT_COPY) == "at::native::elementwise_kernel[direct_copy_kernel_cuda]"
    assert short_name(BIAS_ADD) == "at::native::vectorized_elementwise_kernel[CUDAFunctor_add]"
    assert short_name(NVJET) == NVJET


# ------------------------------------------------------------ CUDA path on recorded-like events


@dataclass
class _Range:
    start: float
    end: float

    def elapsed_us(self) -> float:
        return self.end - self.start


@dataclass
class _Ev:
    """The fields of torch.autograd.profiler_util.FunctionEvent that attribution reads."""

    name: str
    device_type: torch.autograd.DeviceType
    us: float = 0.0
    id: int = 0
    linked_correlation_id: int = 0
    cpu_parent: object = None
    cpu_time_total: float = 0.0

    @property
    def time_range(self):
        return _Range(0.0, self.us)


CPU, CUDA = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA


def test_cuda_events_nlc_copy_and_native_kernel():
    events = [
        _Ev("aten::conv1d", CPU, id=1),
        _Ev(DIRECT_COPY, CUDA, 40.0, linked_correlation_id=2),
        _Ev(NATIVE_DW, CUDA, 100.0, linked_correlation_id=3),
        _Ev(DIRECT_COPY, CUDA, 40.0, linked_correlation_id=4),
    ] * 2  # two profiled calls
    att = summarize_events(events, "cuda:0", calls=2, triton_names=TRITON_NAMES)
    assert att.backend == "aten-native-depthwise+copy"
    assert att.kernel_time_ms == pytest.approx(0.18)
    assert att.copy_time_ms == pytest.approx(0.08)
    assert dict(att.kernels) == {DIRECT_COPY: 80.0, NATIVE_DW: 100.0}


def test_cuda_events_bias_broadcast_copy_is_not_a_layout_copy():
    baddbmm = _Ev("aten::baddbmm", CPU, id=7)
    copy = _Ev("aten::copy_", CPU, id=8, cpu_parent=baddbmm)
    events = [baddbmm, copy, _Ev(DIRECT_COPY, CUDA, 5.0, linked_correlation_id=8),
              _Ev(NVJET, CUDA, 50.0, linked_correlation_id=7)]
    att = summarize_events(events, "cuda:0", triton_names=TRITON_NAMES)
    assert att.backend == "gemm"
    assert att.kernel_time_ms == pytest.approx(0.055)


def test_cuda_events_triton_and_unknown():
    events = [_Ev("depthwise_fwd_kernel", CUDA, 30.0)]
    assert summarize_events(events, "cuda", triton_names=TRITON_NAMES).backend == \
        "triton:depthwise_fwd_kernel"
    other = summarize_events([_Ev(BIAS_ADD, CUDA, 3.0)], "cuda", triton_names=TRITON_NAMES)
    assert other.backend == "other:at::native::vectorized_elementwise_kernel[CUDAFunctor_add]"


# ------------------------------------------------------------ CPU: one real profiled call


def _attribute(op, impl, layout="ncl", dtype="float32"):
    shape = dict(N=2, C_in=16, L=40, K=5, padding=2) if op == "depthwise" else \
        dict(N=2, C_in=16, C_out=24, L=40, K=1)
    p = make_problem(op, **shape)
    i = get(op, impl)
    assert i.skip_reason(Case(p, dtype, layout, "cpu")) is None
    fn = i.build(p, p.make_inputs(dtype, "cpu", layout, 0))
    return attribute(fn, "cpu", ("kernel",) if "triton" in i.requires else ())


@pytest.mark.parametrize("op, impl, layout, expected", [
    ("depthwise", "unfold_einsum", "ncl", "gemm+copy"),
    ("depthwise", "torch_nlc", "nlc", "+copy"),
    ("pointwise", "matmul", "ncl", "gemm"),
    ("pointwise", "linear_nlc", "nlc", "gemm"),
])
def test_cpu_attribution(op, impl, layout, expected):
    att = _attribute(op, impl, layout)
    assert att.backend.endswith(expected) if expected.startswith("+") else att.backend == expected
    assert att.kernel_time_ms is None  # no device kernels on CPU
    assert att.kernels


def test_cpu_attribution_torch_names_a_cpu_backend():
    assert _attribute("depthwise", "torch").backend in ("onednn", "aten-native")


def test_cpu_attribution_triton_interpreter():
    pytest.importorskip("convbench.impls.triton_depthwise")
    assert _attribute("depthwise", "triton").backend == "triton-interpreter"
