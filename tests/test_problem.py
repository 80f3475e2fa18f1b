"""Problem specs: output length, analytic FLOPs and bytes, seeded inputs, invalid reasons."""

import pytest
import torch

from convbench.problem import Depthwise, Pointwise, make_problem, same_padding


@pytest.mark.parametrize("L,K,s,p,d", [(517, 11, 1, 5, 1), (7, 31, 1, 15, 1), (129, 4, 2, 2, 1),
                                       (129, 3, 1, 2, 2), (1, 1, 1, 0, 1), (10, 3, 3, 0, 2)])
def test_L_out_matches_torch(L, K, s, p, d):
    prob = make_problem("depthwise", N=1, C_in=2, L=L, K=K, stride=s, padding=p, dilation=d)
    y = torch.nn.functional.conv1d(torch.zeros(1, 2, L), torch.zeros(2, 1, K), stride=s, padding=p,
                                   dilation=d, groups=2)
    assert prob.L_out == y.shape[-1]


def test_flops_and_bytes():
    dw = Depthwise(N=19, C_in=1024, C_out=1024, L=517, K=11, padding=5)
    assert dw.flops == 2 * 19 * 1024 * 517 * 11
    assert dw.bytes("float32") == 4 * (2 * 19 * 1024 * 517 + 1024 * 11 + 1024)
    pw = Pointwise(N=19, C_in=512, C_out=2048, L=517)
    assert pw.flops == 2 * 19 * 2048 * 512 * 517
    assert pw.bytes("bfloat16") == 2 * (19 * 512 * 517 + 19 * 2048 * 517 + 2048 * 512 + 2048)


def test_invalid_reasons():
    assert "multiple of C_in" in Depthwise(N=1, C_in=16, C_out=33, L=50, K=3).invalid_reason()
    assert "L_out=" in Depthwise(N=1, C_in=4, C_out=4, L=3, K=7).invalid_reason()
    assert Depthwise(N=1, C_in=4, C_out=8, L=3, K=7, padding=3).invalid_reason() is None


def test_inputs_are_seeded_layouted_and_not_zero():
    p = make_problem("depthwise", N=2, C_in=3, L=5, K=3)
    a = p.make_inputs("float32", layout="nlc", seed=7)
    b = p.make_inputs("float32", layout="nlc", seed=7)
    c = p.make_inputs("float32", layout="nlc", seed=8)
    assert a.x.shape == (2, 5, 3) and a.weight.shape == (3, 1, 3)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.x.abs().min() > 0 or a.x.abs().sum() > 0


def test_same_padding():
    assert same_padding(11) == 5 and same_padding(4) == 1 and same_padding(3, dilation=2) == 2


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
@pytest.mark.parametrize("kw", [
    dict(N=2, C_in=3, L=17, K=5, padding=2),
    dict(N=1, C_in=2, C_out=6, L=20, K=4, padding=3, stride=2, dilation=2),
    dict(N=2, C_in=4, L=5, K=9, padding=4, bias=False),
    dict(N=1, C_in=3, L=1, K=1),
])
def test_depthwise_reference_grads_match_autograd(kw, layout):
    """The per-tap float64 gradients (used for depthwise fwd_bwd, where autograd through the
    reference would not fit at K = 768) equal autograd through reference_ncl."""
    from convbench.problem import Inputs
    from convbench.reference import reference
    from convbench.registry import Case
    from convbench.runner import reference_outputs

    p = make_problem("depthwise", **kw)
    inp = p.make_inputs("float32", "cpu", layout, seed=3)
    gy = p.make_grad_out("float32", "cpu", layout, seed=4)
    fast = reference_outputs(Case(p, "float32", layout, "cpu", "fwd_bwd"), inp, gy)
    leaves = [t.detach().double().requires_grad_(True) for t in inp.tensors()]
    y = reference(p, Inputs(leaves[0], leaves[1], leaves[2] if len(leaves) > 2 else None, layout))
    slow = (y.detach(), *torch.autograd.grad(y, leaves, gy.double()))
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-12, atol=1e-12)
