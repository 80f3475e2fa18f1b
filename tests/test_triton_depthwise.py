"""Triton depthwise forward and gradients against the float64 reference, in interpreter mode on CPU."""

from __future__ import annotations

import pytest
import torch

from convbench.problem import Depthwise, same_padding
from convbench.reference import rel_err, tolerance
from convbench.registry import Case, get
from convbench.runner import reference_outputs

triton_depthwise = pytest.importorskip("convbench.impls.triton_depthwise")


def _case(N=2, C=6, L=7, K=3, stride=1, padding=None, dilation=1, bias=True, mult=1):
    pad = same_padding(K, dilation) if padding is None else padding
    return Depthwise(N=N, C_in=C, C_out=mult * C, L=L, K=K, stride=stride, padding=pad,
                     dilation=dilation, bias=bias)


CASES = {
    "L1_K1": _case(L=1, K=1),
    "L7_K3": _case(L=7, K=3, C=12),
    "L129_K4": _case(N=1, L=129, K=4),
    "L517_K3": _case(N=1, C=6, L=517, K=3),
    "L129_K31": _case(N=1, C=3, L=129, K=31),
    "K_gt_L_pad": _case(L=4, K=31, padding=15),
    "stride2": _case(L=129, K=4, stride=2, padding=2),
    "dilation2": _case(L=129, K=3, dilation=2),
    "stride2_dil2_odd": _case(L=31, K=3, stride=2, dilation=2, padding=1),
    "nobias": _case(L=129, K=3, bias=False),
    "mult2": _case(L=129, K=3, mult=2),
    "mult2_stride2": _case(C=3, L=33, K=4, mult=2, stride=2, padding=1),
    "long_K": _case(N=1, C=3, L=60, K=40, padding=20),
}


def _check(problem: Depthwise, dtype: str, layout: str, grads: bool) -> None:
    """Forward (and input/weight/bias grads) against the runner's float64 reference."""
    inp = problem.make_inputs(dtype, layout=layout, seed=1, requires_grad=grads)
    p = problem
    y = triton_depthwise.depthwise_conv1d(inp.x, inp.weight, inp.bias, p.stride, p.padding,
                                          p.dilation, layout)
    assert y.dtype == inp.x.dtype and y.is_contiguous()
    tol = tolerance(dtype)
    case = Case(p, dtype, layout, "cpu", "fwd_bwd" if grads else "fwd")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(2)).to(y.dtype) if grads else None
    refs = reference_outputs(case, inp, gy)
    outs = [("forward", y)]
    if grads:
        y.backward(gy)
        outs += [("grad x", inp.x.grad), ("grad weight", inp.weight.grad)]
        outs += [("grad bias", inp.bias.grad)] if inp.bias is not None else []
    for (name, out), ref in zip(outs, refs, strict=True):
        assert out is not None and out.dtype == inp.x.dtype, name
        err = rel_err(out, ref)
        assert err <= tol, f"{name} rel_err {err:.3g} > {tol}"


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
@pytest.mark.parametrize("name", list(CASES))
def test_forward_and_grads_fp32(name, layout):
    _check(CASES[name], "float32", layout, grads=True)


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
@pytest.mark.parametrize("name", ["L7_K3", "L129_K4", "stride2", "mult2"])
def test_forward_and_grads_bf16(name, layout):
    _check(CASES[name], "bfloat16", layout, grads=True)


def test_no_grad_path_matches_autograd_path():
    p = CASES["L7_K3"]
    inp = p.make_inputs("float32", layout="nlc", seed=3)
    a = triton_depthwise.depthwise_conv1d(inp.x, inp.weight, inp.bias, 1, p.padding, 1, "nlc")
    w = inp.weight.clone().requires_grad_(True)
    b = triton_depthwise.depthwise_conv1d(inp.x, w, inp.bias, 1, p.padding, 1, "nlc")
    assert torch.equal(a, b.detach())


def test_bad_arguments_are_quoted():
    x = torch.zeros(1, 4, 8)
    with pytest.raises(ValueError, match="'nwc'"):
        triton_depthwise.depthwise_conv1d(x, torch.zeros(4, 1, 3), None, layout="nwc")
    with pytest.raises(ValueError, match="not depthwise"):
        triton_depthwise.depthwise_conv1d(x, torch.zeros(6, 1, 3), None)
    with pytest.raises(ValueError, match="L_out"):
        triton_depthwise.depthwise_conv1d(x, torch.zeros(4, 1, 20), None)


def test_registered_with_backward():
    from convbench.registry import get

    for name in ("triton", "triton_nlc"):
        assert get("depthwise", name).modes == ("fwd", "fwd_bwd")


def test_sweep_rows_record_the_tuned_plan(tmp_path):
    """A run's `plan` column says which variant each Triton row ran (kernel family and tile of
    every kernel of the call), so a result can be traced to its kernel without re-running."""
    import json

    from click.testing import CliRunner

    from convbench.cli import main
    from convbench.results import read_rows

    cfg = tmp_path / "a.yaml"
    cfg.write_text(json.dumps({
        "ops": ["depthwise", "pointwise"], "impls": ["torch", "triton", "triton_nlc"],
        "devices": ["cpu"], "modes": ["fwd", "fwd_bwd"], "layouts": ["ncl", "nlc"],
        "shapes": {"N": [1], "C_in": [4], "C_out": [4], "L": [24], "K": [1, 3], "padding": ["same"]},
        "measure": {"min_samples": 3, "max_time_s": 0.02, "warmup_ms": 1}}))
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / "run"), "--quiet",
                                    "--isolation", "none"])
    assert res.exit_code == 0, res.output
    rows = [r for r in read_rows(tmp_path / "run" / "results.jsonl") if r["status"] == "ok"]
    triton = [r for r in rows if r["impl"].startswith("triton")]
    assert {(r["op"], r["mode"]) for r in triton} == {
        (op, mode) for op in ("depthwise", "pointwise") for mode in ("fwd", "fwd_bwd")}
    for r in triton:
        assert r["plan"], r
        if r["op"] == "depthwise":  # stride 1, K <= 32: the generated kernels
            assert r["plan"].startswith("fwd=gen("), r["plan"]
            if r["mode"] == "fwd_bwd":
                assert "bwd_x=" in r["plan"] and "gen_w=" in r["plan"], r["plan"]
    assert all(r.get("plan") is None for r in rows if r["impl"] == "torch")


def test_plan_names_the_tile_kernels_where_they_run():
    p = _case(N=1, C=4, L=24, K=3, stride=2, padding=1)
    inp = p.make_inputs("float32", layout="ncl", seed=1)
    fn = get("depthwise", "triton").build(p, inp)
    assert fn.plan() == ""  # nothing tuned before the first call
    fn()
    assert fn.plan().startswith("fwd=tile(block_c="), fn.plan()


# Long kernels (stride 1, K >= TOEPLITZ_MIN_K) run on tensor cores as Toeplitz-matrix products:
# the band's edges, batch sizes that do not fill a dot's 16 columns, K longer than L, no padding
# (L_out < L), padding beyond K - 1 (grad_x's flipped padding is negative), no bias.
TOEPLITZ_CASES = {
    "K33_L70_valid": _case(N=3, C=2, L=70, K=33, padding=0),
    "K65_gt_L7": _case(N=2, C=3, L=7, K=65, padding=32),
    "K40_L60_same": _case(N=1, C=3, L=60, K=40, padding=20),
    "K40_pad45": _case(N=2, C=2, L=50, K=40, padding=45, bias=False),
    "K48_L1": _case(N=17, C=2, L=1, K=48, padding=24),
    # grad_w on tensor cores too (K >= TOEPLITZ_W_MIN_K): odd L, N*blocks not a tile multiple
    "K64_L45": _case(N=3, C=2, L=45, K=64, padding=20),
}


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])  # 16-bit dots upcast here; fp16 on the GPU matrix
@pytest.mark.parametrize("name", list(TOEPLITZ_CASES))
def test_long_kernels_run_as_toeplitz_products(name, dtype, layout):
    p = TOEPLITZ_CASES[name]
    _check(p, dtype, layout, grads=True)
    inp = p.make_inputs(dtype, layout=layout, seed=1)
    g = triton_depthwise._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation,
                                   layout)
    plans = triton_depthwise.plan_of(g)
    assert "fwd=toeplitz(" in plans and "bwd_x=toeplitz(" in plans, plans
    if p.K >= triton_depthwise.TOEPLITZ_W_MIN_K:
        assert "bwd_w=toeplitz(" in plans, plans


@pytest.mark.parametrize("shape", [(2, 5, 37), (1, 16, 16), (3, 1, 70), (1, 33, 1)])
def test_transpose_last2_matches_torch(shape):
    src = torch.randn(shape)
    out = triton_depthwise._transpose_last2(src)
    assert out.is_contiguous() and torch.equal(out, src.transpose(1, 2))


def test_edge_program_stays_out_of_tuning_unless_asked(monkeypatch):
    """The (N, C, L) tuner compiles only edge-tile plans (split=False) by default; the edge
    program comes back with CONVBENCH_DW_EDGE_PROGRAM=1, doubling the candidates."""
    from convbench.impls import triton_depthwise as td

    monkeypatch.setattr(td, "interpreting", lambda: False)  # the GPU's candidate list
    monkeypatch.delenv("CONVBENCH_DW_EDGE_PROGRAM", raising=False)
    default = td._gen_conv_plans("ncl", torch.float32, 19, 1024, 517, 11, (8, 4), 132)
    assert default and not any(p[-1] for p in default)
    monkeypatch.setenv("CONVBENCH_DW_EDGE_PROGRAM", "1")
    both = td._gen_conv_plans("ncl", torch.float32, 19, 1024, 517, 11, (8, 4), 132)
    assert sorted(p for p in both if not p[-1]) == sorted(default)
    assert len(both) == 2 * len(default)
