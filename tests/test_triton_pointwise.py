"""Pointwise Triton kernels vs the float64 reference, forward and grads, in the CPU interpreter."""

from pathlib import Path

import pytest
import torch

from convbench import registry
from convbench.impls.triton_pointwise import TileConfig, _forward, pointwise_conv1d
from convbench.problem import Pointwise
from convbench.reference import reference_ncl, rel_err, tolerance
from convbench.registry import Case
from convbench.runner import reference_outputs


def _run_and_check(problem, dtype, layout, precision="ieee", seed=0, forward=None):
    """Forward and (unless forward is given) grads of x, w, b against the runner's float64
    reference."""
    inp = problem.make_inputs(dtype, layout=layout, seed=seed, requires_grad=forward is None)
    tol = tolerance(dtype, tf32=precision == "tf32")
    if forward is not None:
        (ref,) = reference_outputs(Case(problem, dtype, layout, "cpu", "fwd"), inp, None)
        assert rel_err(forward(inp), ref) < tol
        return
    y = pointwise_conv1d(inp.x, inp.weight, inp.bias, problem.stride, problem.padding, layout, precision)
    assert y.is_contiguous() and y.dtype == inp.x.dtype
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    refs = reference_outputs(Case(problem, dtype, layout, "cpu", "fwd_bwd"), inp, g)
    y.backward(g.to(y.dtype))
    outs = [("forward", y), ("grad x", inp.x.grad), ("grad w", inp.weight.grad)]
    outs += [("grad b", inp.bias.grad)] if inp.bias is not None else []
    for (name, out), ref in zip(outs, refs, strict=True):
        assert rel_err(out, ref) < tol, name


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("layout", ["ncl", "nlc"])
@pytest.mark.parametrize("L", [1, 7, 129, 517])
@pytest.mark.parametrize("stride,padding,bias", [(1, 0, True), (2, 1, False), (1, 1, True)])
def test_matches_reference_fwd_bwd(dtype, layout, L, stride, padding, bias):
    p = Pointwise(N=2, C_in=24, C_out=40, L=L, stride=stride, padding=padding, bias=bias)
    _run_and_check(p, dtype, layout)


# Small tiles force many tiles per axis, ragged last tiles, a K tail (40 % 16), and the
# grouped program order with more row tiles than GROUP_M: what the big GPU tiles never hit here.
SMALL = TileConfig(16, 16, 16, 4, 1, group_m=2)


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_ncl_small_tiles_both_batch_foldings(fold, stride, padding):
    p = Pointwise(N=3, C_in=40, C_out=72, L=37, stride=stride, padding=padding, bias=True)
    _run_and_check(p, "float32", "ncl", forward=lambda i: _forward(
        i.x, i.weight, i.bias, stride, padding, "ncl", "ieee", config=SMALL, fold=fold))


@pytest.mark.parametrize("stride,padding,variant", [(1, 0, "nlc"), (2, 1, "nlc"), (1, 0, "nlc_t")])
def test_nlc_small_tiles(stride, padding, variant):
    """nlc_t: the (N,L,C) GEMM run transposed (y^T = W @ x^T) by the ncl kernel."""
    p = Pointwise(N=3, C_in=40, C_out=72, L=37, stride=stride, padding=padding, bias=True)
    _run_and_check(p, "bfloat16", "nlc", forward=lambda i: _forward(
        i.x, i.weight, i.bias, stride, padding, "nlc", None, config=SMALL, variant=variant))


# The persistent TMA kernel: 3 programs in the interpreter walk many small tiles each, with a
# ragged last row and column tile, a K tail in (N,L,C) (TMA pads it with zeros), and both epilogues.
TMA_TILES = (TileConfig(16, 32, 16, 4, 2, group_m=2, split_epilogue=True), TileConfig(16, 16, 16, 4, 2),
             TileConfig(16, 16, 16, 4, 2, programs_per_sm=2, warp_specialize=True))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("config", TMA_TILES, ids=lambda c: c.label())
@pytest.mark.parametrize("bias", [True, False])
def test_nlc_tma_kernel(dtype, config, bias):
    p = Pointwise(N=3, C_in=40, C_out=48, L=37, bias=bias)
    _run_and_check(p, dtype, "nlc", precision="tf32", forward=lambda i: _forward(
        i.x, i.weight, i.bias, 1, 0, "nlc", "tf32", config=config, variant="nlc_tma"))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("config", TMA_TILES, ids=lambda c: c.label())
@pytest.mark.parametrize("bias", [True, False])
def test_ncl_tma_kernel(dtype, config, bias):
    """C_in and C_out are multiples of the tile (required: tiles must not straddle batches);
    L = 40 leaves a ragged last column tile."""
    p = Pointwise(N=3, C_in=32, C_out=48, L=40, bias=bias)
    _run_and_check(p, dtype, "ncl", precision="tf32", forward=lambda i: _forward(
        i.x, i.weight, i.bias, 1, 0, "ncl", "tf32", config=config, variant="ncl_tma"))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("config", TMA_TILES[:2], ids=lambda c: c.label())
@pytest.mark.parametrize("L", [1, 37])
def test_ncl_tma_on_a_padded_copy_for_odd_L(dtype, config, L):
    """Odd L: x is copied into 16-byte aligned rows for TMA, y is stored element-wise; C_out = 40
    leaves a ragged row tile that must not spill into the next batch."""
    p = Pointwise(N=3, C_in=32, C_out=40, L=L, bias=True)
    _run_and_check(p, dtype, "ncl", precision="tf32", forward=lambda i: _forward(
        i.x, i.weight, i.bias, 1, 0, "ncl", "tf32", config=config, fold=False, variant="ncl_tma_pad"))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("config", TMA_TILES[:2], ids=lambda c: c.label())
@pytest.mark.parametrize("L,bias", [(1, True), (37, True), (37, False)])
@pytest.mark.parametrize("variant", ["ncl_t", "ncl_ts"])
def test_ncl_through_nlc_for_odd_L(dtype, config, L, bias, variant):
    """Odd L: x transposed to (N, L, C), the (N,L,C) TMA GEMM (its tiles cross batches), y
    transposed back (ncl_ts: stored (N, C, L) by the GEMM's epilogue); C_out = 40 and L = 37
    leave ragged transpose tiles on both axes, and GEMM tiles span batches."""
    p = Pointwise(N=3, C_in=32, C_out=40, L=L, bias=bias)
    _run_and_check(p, dtype, "ncl", precision="tf32", forward=lambda i: _forward(
        i.x, i.weight, i.bias, 1, 0, "ncl", "tf32", config=config, fold=False, variant=variant))


@pytest.mark.parametrize("shape", [(2, 5, 7), (1, 64, 65), (3, 70, 130)])
def test_transpose_kernel(shape):
    from convbench.impls.triton_pointwise import _transposer

    src = torch.randn(shape)
    dst = torch.empty(shape[0], shape[2], shape[1])
    _transposer(*shape)(src=src, dst=dst)
    assert torch.equal(dst, src.transpose(1, 2))


def test_ncl_through_nlc_for_even_L_under_tf32_only():
    """Even L: offered under tf32 (the direct kernel's x tile is N-major, which tf32 wgmma cannot
    take) and checked there; in 16 bits the direct TMA kernel reads x as it is."""
    p = Pointwise(N=2, C_in=32, C_out=48, L=40)
    for v in ("ncl_t", "ncl_ts"):
        _run_and_check(p, "float32", "ncl", precision="tf32", forward=lambda i, v=v: _forward(
            i.x, i.weight, i.bias, 1, 0, "ncl", "tf32", config=TMA_TILES[0], fold=False, variant=v))
    inp = p.make_inputs("bfloat16", layout="ncl")
    with pytest.raises(ValueError, match="'ncl_t' does not apply"):
        _forward(inp.x, inp.weight, None, 1, 0, "ncl", None, fold=False, variant="ncl_t")


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_nlc_on_a_transposed_weight_copy_under_ieee(stride, padding):
    """IEEE fp32 (N,L,C): the "nlc" kernel reading a contiguous W^T (strides passed, not the
    weight's own); odd channel counts leave ragged tiles; strided/padded reads included."""
    p = Pointwise(N=3, C_in=37, C_out=45, L=29, stride=stride, padding=padding)
    _run_and_check(p, "float32", "nlc", precision="ieee", forward=lambda i: _forward(
        i.x, i.weight, i.bias, stride, padding, "nlc", "ieee", fold=False, variant="nlc_wt"))
    inp = p.make_inputs("float32", layout="nlc")
    with pytest.raises(ValueError, match="'nlc_wt' does not apply"):
        _forward(inp.x, inp.weight, None, stride, padding, "nlc", "tf32", variant="nlc_wt")


def test_ncl_through_nlc_needs_a_contiguous_x():
    p = Pointwise(N=2, C_in=32, C_out=48, L=37)
    inp = p.make_inputs("bfloat16", layout="ncl")
    x = inp.x.transpose(1, 2).contiguous().transpose(1, 2)  # (N, C, L) values, (N, L, C) storage
    with pytest.raises(ValueError, match="'ncl_t' does not apply"):
        _forward(x, inp.weight, None, 1, 0, "ncl", None, fold=False, variant="ncl_t")


@pytest.mark.parametrize("layout,L,stride,padding,why", [
    ("ncl", 37, 1, 0, "odd L: rows of x are not 16-byte aligned"),
    ("ncl", 40, 2, 0, "strided reads are not a tile of a 2-D view"),
    ("nlc", 40, 1, 1, "padding: rows are not evenly spaced"),
])
def test_tma_variant_refused_where_it_cannot_apply(layout, L, stride, padding, why):
    p = Pointwise(N=2, C_in=32, C_out=48, L=L, stride=stride, padding=padding)
    inp = p.make_inputs("bfloat16", layout=layout)
    with pytest.raises(ValueError, match=f"'{layout}_tma' does not apply"):
        _forward(inp.x, inp.weight, None, stride, padding, layout, None, variant=f"{layout}_tma")


def test_each_variant_is_tuned_over_its_own_configs():
    from convbench.impls.triton_pointwise import CONFIGS, TMA_CONFIGS, _candidates

    cands = _candidates(["ncl_tma_pad", "ncl"], "16bit", 512, 2048)
    assert {c.config for c in cands if c.variant == "ncl_tma_pad"} == set(TMA_CONFIGS["16bit"])
    cands = _candidates(["ncl_t", "ncl_ts", "ncl_tma_pad", "ncl"], "16bit", 512, 2047)
    assert {c.config for c in cands if c.variant == "ncl_t"} == set(TMA_CONFIGS["16bit"])
    ts = [c.config for c in cands if c.variant == "ncl_ts"]  # element-wise stores: no split variants,
    # and no warp-specialized ones (one faults under Triton 3.6)
    assert ts and len(ts) == len(set(ts)) and not any(c.split_epilogue or c.warp_specialize for c in ts)
    assert any(c.warp_specialize for c in TMA_CONFIGS["16bit"])  # (so that the line above can fail)
    assert {c.config for c in cands if c.variant == "ncl"} == set(CONFIGS["16bit"])


def test_odd_L_ncl_offers_the_epilogue_store_next_to_the_transpose_back():
    """(N, C, L) rows of odd L in 16 bits: the tuner is offered x transposed with y stored
    (N, C, L) by the GEMM's epilogue (ncl_ts) as well as y transposed back (ncl_t)."""
    inp = Pointwise(N=2, C_in=32, C_out=48, L=37).make_inputs("bfloat16", layout="ncl")
    with pytest.raises(ValueError, match="allowed") as err:  # the message lists what is offered
        _forward(inp.x, inp.weight, None, 1, 0, "ncl", None, fold=False, variant="none")
    allowed = str(err.value).split("allowed: ")[1]
    assert "'ncl_t'" in allowed and "'ncl_ts'" in allowed, allowed


def test_tma_configs_keep_ncl_tiles_inside_one_batch():
    from convbench.impls.triton_pointwise import _tma_configs

    assert _tma_configs("ncl_tma", "16bit", 512, 2048)  # the model shapes keep every tile
    assert all(c.block_m == 64 for c in _tma_configs("ncl_tma", "16bit", 512, 192))
    assert _tma_configs("ncl_tma", "16bit", 520, 2048) == ()
    assert _tma_configs("nlc_tma", "16bit", 520, 2050)  # (N,L,C) has no batch boundary in a tile
    assert _tma_configs("nlc_tma", "ieee", 512, 512) == ()
    assert _tma_configs("ncl_tma_pad", "16bit", 512, 520)  # element-wise stores: any C_out


def test_nlc_transposed_variant_default_tiles_no_bias():
    p = Pointwise(N=2, C_in=24, C_out=40, L=129, bias=False)
    _run_and_check(p, "float32", "nlc", forward=lambda i: _forward(
        i.x, i.weight, None, 1, 0, "nlc", "ieee", variant="nlc_t"))


def test_repeated_call_uses_cached_plan_with_new_tensors():
    p = Pointwise(N=2, C_in=24, C_out=40, L=9, bias=True)
    for seed in (0, 1):  # same signature, different data: the cached launch must read the new tensors
        _run_and_check(p, "float32", "ncl", seed=seed, forward=lambda i: pointwise_conv1d(
            i.x, i.weight, i.bias, layout="ncl", precision="ieee"))


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
def test_tf32_precision_within_tf32_tolerance(layout):
    p = Pointwise(N=2, C_in=48, C_out=24, L=33, bias=True)
    _run_and_check(p, "float32", layout, precision="tf32")


def test_strided_views_are_read_through_their_strides():
    """(N,L,C) storage handed over as an (N,C,L) view, and an nlc view whose batch stride is
    not L*C (a slice): the ncl path and the unfolded nlc path must read them in place."""
    p = Pointwise(N=2, C_in=24, C_out=40, L=19, bias=False)
    inp = p.make_inputs("float32", layout="nlc")
    x_ncl = inp.x.transpose(1, 2)
    ref = reference_ncl(p, x_ncl, inp.weight, None)
    y = pointwise_conv1d(x_ncl, inp.weight, None, layout="ncl", precision="ieee")
    assert rel_err(y, ref) < tolerance("float32")
    big = torch.randn(2, 25, 24)
    xs = big[:, 3:22]  # batch stride 25*24, not 19*24
    ref2 = reference_ncl(p, xs.transpose(1, 2), inp.weight, None).transpose(1, 2)
    y2 = pointwise_conv1d(xs, inp.weight, None, layout="nlc", precision="ieee")
    assert rel_err(y2, ref2) < tolerance("float32")


def test_registered_for_training_and_k1_only():
    for name, layout in (("triton", "ncl"), ("triton_nlc", "nlc")):
        impl = registry.get("pointwise", name)
        assert impl.modes == ("fwd", "fwd_bwd")
        k3 = Case(Pointwise(N=1, C_in=8, C_out=8, L=9, K=3), "float32", layout, "cpu")
        assert "kernel_size 1 only, not K=3" in impl.skip_reason(k3)
        k1 = Case(Pointwise(N=1, C_in=8, C_out=8, L=9), "float32", layout, "cpu", "fwd_bwd")
        assert impl.skip_reason(k1) is None


def test_bad_arguments_quote_the_value():
    x, w = torch.randn(1, 8, 5), torch.randn(4, 8, 1)
    with pytest.raises(ValueError, match="'nhwc'"):
        pointwise_conv1d(x, w, None, layout="nhwc")
    with pytest.raises(ValueError, match="'fp64'"):
        pointwise_conv1d(x, w, None, precision="fp64")
    with pytest.raises(ValueError, match="not a 1x1 conv"):
        pointwise_conv1d(x, torch.randn(4, 8, 3), None)


def test_gpu_plan_check_forces_every_pointwise_variant():
    """scripts/gpu_correctness.py --pw-plans forces each variant in PW_VARIANTS on the GPU; a
    variant the launcher can offer but that list lacks is never checked there (ncl_ts was
    offered in session 14 before it was added)."""
    import ast
    import re

    from convbench.impls import triton_pointwise as tp

    script = (Path(__file__).resolve().parents[1] / "scripts" / "gpu_correctness.py").read_text()
    listed = next(ast.literal_eval(node.value) for node in ast.parse(script).body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PW_VARIANTS")
    source = Path(tp.__file__).read_text()
    named = set(re.findall(r'"(n(?:cl|lc)(?:_[a-z]+)*)"', source))  # quoted variant names
    assert named <= set(listed), sorted(named - set(listed))
