"""Every registered implementation matches the float64 reference on odd sizes (CPU; Triton interpreted)."""

import pytest
import torch

from convbench.problem import make_problem
from convbench.reference import reference, rel_err, tolerance
from convbench.registry import Case, all_impls

DEPTHWISE = [
    dict(N=2, C_in=6, L=1, K=1, padding=0),
    dict(N=2, C_in=6, L=7, K=3, padding=1),
    dict(N=1, C_in=5, L=129, K=4, padding=2, stride=2),
    dict(N=1, C_in=3, C_out=6, L=517, K=31, padding=15, bias=False),  # multiplier 2
    dict(N=1, C_in=6, L=7, K=31, padding=15),  # K > L with padding
    dict(N=2, C_in=7, L=129, K=3, padding=2, dilation=2),
    dict(N=1, C_in=4, L=1, K=4, padding=3, stride=2, dilation=2),
]
POINTWISE = [
    dict(N=2, C_in=6, C_out=10, L=1),
    dict(N=2, C_in=5, C_out=12, L=7, padding=1, stride=2),
    dict(N=1, C_in=12, C_out=6, L=129, bias=False),
    dict(N=1, C_in=3, C_out=5, L=517),
    dict(N=1, C_in=4, C_out=6, L=7, K=3, padding=1),  # kernel_size > 1 (reference API allows it)
]
CASES = [("depthwise", s) for s in DEPTHWISE] + [("pointwise", s) for s in POINTWISE]


def _id(case):
    op, s = case
    return op[:2] + "-" + "-".join(f"{k}{v}" for k, v in s.items())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("layout", ["ncl", "nlc"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_matches_float64_reference(case, layout, dtype):
    op, shape = case
    p = make_problem(op, **shape)
    assert p.invalid_reason() is None
    inputs = p.make_inputs(dtype, "cpu", layout, seed=hash(str(shape)) % 1000)
    ref = reference(p, inputs)
    ran = []
    for impl in all_impls(op):
        c = Case(p, dtype, layout, "cpu")
        if impl.skip_reason(c):
            continue
        out = impl.build(p, inputs)()
        assert out.dtype == inputs.x.dtype, impl.name
        assert out.is_contiguous(), f"{impl.name} must return {layout} storage"
        err = rel_err(out, ref)
        assert err <= tolerance(dtype), f"{impl.name}: max_rel_err {err:.3e} > {tolerance(dtype):.0e}"
        ran.append(impl.name)
    expected = {"ncl": {"torch", "unfold_einsum"}, "nlc": set()}[layout]
    if op == "depthwise" and layout == "nlc":
        expected = {"torch_nlc"}
    assert expected <= set(ran)
    if p.K == 1 or op == "depthwise":  # Triton covers every depthwise case and pointwise K=1
        assert any(n.startswith("triton") for n in ran), ran


def test_every_impl_is_exercised_somewhere():
    """Each registered implementation either runs on CPU in the grid above or has a reason."""
    p = make_problem("depthwise", N=1, C_in=4, L=8, K=3, padding=1)
    for impl in all_impls():
        q = p if impl.op == "depthwise" else make_problem("pointwise", N=1, C_in=4, C_out=4, L=8)
        reason = impl.skip_reason(Case(q, "float32", impl.layout, "cpu"))
        assert reason is None or impl.devices == ("cuda",), (impl.name, reason)


def test_reference_is_independent_of_torch_conv():
    """The oracle (a sum over taps) agrees with F.conv1d in float64 on a dilated, strided case."""
    p = make_problem("depthwise", N=2, C_in=3, C_out=6, L=20, K=5, stride=2, padding=4, dilation=2)
    inp = p.make_inputs("float64", "cpu", "ncl", seed=3)
    want = torch.nn.functional.conv1d(inp.x, inp.weight, inp.bias, stride=2, padding=4, dilation=2,
                                      groups=3)
    assert rel_err(reference(p, inp), want) < 1e-12


def test_rel_err_rejects_nan():
    ref = torch.ones(3, dtype=torch.float64)
    assert rel_err(torch.tensor([1.0, float("nan"), 1.0]), ref) == float("inf")


@pytest.mark.parametrize("interpret,expected", [("0", "no: Triton kernels need a CUDA GPU"), ("1", "yes")])
def test_list_says_what_runs_here(monkeypatch, interpret, expected):
    """`convbench list` on a CPU: Triton rows say they do not run (they once said yes, every dtype
    having the same skip reason), unless the interpreter is on."""
    from click.testing import CliRunner

    from convbench.cli import main

    monkeypatch.setenv("TRITON_INTERPRET", interpret)
    res = CliRunner().invoke(main, ["list", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in res.output.splitlines()
             if line.startswith("│")]
    here = {(c[0], c[1]): c[6] for c in cells}  # columns: op name layout dtypes modes baseline here
    triton = [v for (op, name), v in here.items() if name.startswith("triton")]
    assert len(triton) == 4 and all(v.startswith(expected) for v in triton), here
    assert here[("depthwise", "torch")] == "yes" and here[("pointwise", "torch")] == "yes"
