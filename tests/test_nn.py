"""The drop-in modules: reference-doc examples, clear errors, gradients across backends."""

import pytest
import torch

from convbench.nn import DepthWiseConv1d, PointwiseConv1d
from convbench.registry import Case, all_impls


def test_reference_doc_examples_run():
    m = DepthWiseConv1d(16, 32, 3, padding=1)  # the docs show 33, which cannot work (next test)
    assert m(torch.randn(20, 16, 50)).shape == (20, 32, 50)
    assert m.weight.shape == (32, 1, 3) and m.bias.shape == (32,)
    p = PointwiseConv1d(16, 33, 1, padding=0, bias=True)
    assert p(torch.randn(20, 16, 50)).shape == (20, 33, 50)
    assert p.weight.shape == (33, 16, 1) and p.bias.shape == (33,)


def test_docs_example_with_33_channels_raises_clear_error():
    with pytest.raises(ValueError, match=r"out_channels=33 is not a multiple of in_channels=16.*32, 48"):
        DepthWiseConv1d(16, 33, 3, padding=1)


def test_unknown_backend_and_layout_mismatch():
    with pytest.raises(ValueError, match="not a depthwise implementation"):
        DepthWiseConv1d(4, 4, 3, padding=1, backend="nope")
    with pytest.raises(ValueError, match="works on nlc tensors"):
        DepthWiseConv1d(4, 4, 3, padding=1, backend="torch_nlc")


def _trainable(op, layout):
    for impl in all_impls(op):
        if impl.layout == layout and "fwd_bwd" in impl.modes and "cpu" in impl.devices:
            yield impl.name


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
def test_gradients_match_torch_backend(layout):
    torch.manual_seed(0)
    for cls, op, args in ((DepthWiseConv1d, "depthwise", (6, 12, 5)), (PointwiseConv1d, "pointwise", (6, 10))):
        kw = {"padding": 2} if op == "depthwise" else {}
        ref = cls(*args, **kw, backend="torch")
        x = torch.randn(2, 6, 33)
        gx_ref, *gp_ref = torch.autograd.grad(ref(x.requires_grad_()).square().sum(),
                                              [x, ref.weight, ref.bias])
        for name in _trainable(op, layout):
            m = cls(*args, **kw, backend=name, layout=layout)
            m.load_state_dict(ref.state_dict())
            xi = x.detach().clone() if layout == "ncl" else x.detach().transpose(1, 2).contiguous()
            xi.requires_grad_()
            from convbench.problem import make_problem

            probe = make_problem(op, N=2, C_in=6, C_out=args[1], L=33, K=args[2] if op == "depthwise" else 1)
            if m.impl.skip_reason(Case(probe, "float32", layout, "cpu", "fwd_bwd")):
                continue
            y = m(xi)
            if layout == "nlc":
                y = y.transpose(1, 2)
            gx, *gp = torch.autograd.grad(y.square().sum(), [xi, m.weight, m.bias])
            if layout == "nlc":
                gx = gx.transpose(1, 2)
            for a, b in zip([gx, *gp], [gx_ref, *gp_ref], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=f"{op}/{name}")


def test_backend_without_backward_refuses_to_train_clearly():
    for impl in all_impls():
        if "fwd_bwd" not in impl.modes and "cpu" in impl.devices:
            cls = DepthWiseConv1d if impl.op == "depthwise" else PointwiseConv1d
            args = (4, 4, 3) if impl.op == "depthwise" else (4, 4)
            kw = {"padding": 1} if impl.op == "depthwise" else {}
            m = cls(*args, **kw, backend=impl.name, layout=impl.layout)
            with pytest.raises(RuntimeError, match="cannot run this input"):
                m(torch.randn(1, 4, 8) if impl.layout == "ncl" else torch.randn(1, 8, 4))
