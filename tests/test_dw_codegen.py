"""The generated register-window depthwise kernels (``_dw_codegen``): every code path they have
(ncl rows aligned to y or to x, the window shift S = 0 and S > 0, interior and edge tiles,
grad_x with negative flipped padding, K up to the limit, nlc rows) against the float64 reference
in interpreter mode; and, where Triton's NVIDIA backend can compile here, that the ncl window
loads compile to vector loads (they once did not when S = 0)."""

from __future__ import annotations

import dataclasses

import pytest
from test_triton_depthwise import _case, _check

td = pytest.importorskip("convbench.impls.triton_depthwise")
gen = pytest.importorskip("convbench.impls._dw_codegen")

GEN_CASES = {
    # rows of odd length aligned to y; S = 3; tiles of 64 leave interior tiles in a 200-long row
    "anchor_y_S3": (_case(N=2, C=4, L=200, K=11), "float32"),
    # even padding: S = 0 (the case that lost its vector loads); rows 2 mod 4 long
    "anchor_y_S0": (_case(N=2, C=4, L=210, K=9), "bfloat16"),
    # L_out = L + 1: x and y rows shift apart, so rows align to x and stores are unaligned
    "anchor_x": (_case(N=2, C=4, L=256, K=4, padding=2), "bfloat16"),
    # padding > K - 1: grad_x runs the flipped forward with negative padding
    "flip_negative_padding": (_case(N=2, C=4, L=100, K=3, padding=5), "float32"),
    "K31": (_case(N=2, C=3, L=96, K=31), "float16"),
    "K31_fp32": (_case(N=2, C=6, L=100, K=31), "float32"),
    "K_at_limit": (_case(N=1, C=4, L=64, K=td.GEN_MAX_K, padding=16), "float32"),
    "no_bias_K1": (_case(N=1, C=4, L=160, K=1, bias=False), "float32"),
    # packed 16-bit word groups (8 elements): odd rows, so every row has partial first/last
    # groups for the edge program; fp16 unpacks differently from bf16
    "packed_bf16_odd_rows": (_case(N=2, C=4, L=209, K=9), "bfloat16"),
    "packed_fp16_odd_rows": (_case(N=2, C=4, L=517, K=11), "float16"),
    # rows shorter than a group: the first group is also the last
    "packed_rows_shorter_than_group": (_case(N=2, C=4, L=6, K=3), "bfloat16"),
    "packed_length_1_K7": (_case(N=8, C=1, L=1, K=7), "float16"),
    # whole 16-element groups (packed 16-bit: 8 words, two vectors a group): odd rows; rows of 1
    "packed16_bf16_odd_rows": (_case(N=2, C=8, L=209, K=9), "bfloat16"),
    "packed16_length_1_K7": (_case(N=16, C=1, L=1, K=7), "float16"),
    # N*C*L a multiple of 4 but not 8: 16-bit data stays on 4-element groups
    "unpacked_16bit": (_case(N=1, C=4, L=201, K=5), "bfloat16"),
    # K > L with "same" padding: every tap window of the flat kernel leaves the row
    "K_gt_L": (_case(N=4, C=6, L=20, K=31), "float32"),
    # rows exactly one 16-element group long: no flat group crosses a row
    "L16_K9": (_case(N=2, C=3, L=16, K=9), "float32"),
    # C not a power of two, rows of 129: flat groups cross rows and channels wrap
    "odd_C_L129": (_case(N=4, C=6, L=129, K=9), "float16"),
}

# which of GEN_CASES take the packed 16-bit kernels in (N, C, L)
PACKED_CASES = {"anchor_y_S0", "K31", "packed_bf16_odd_rows", "packed_fp16_odd_rows",
                "packed_rows_shorter_than_group", "packed_length_1_K7", "packed16_bf16_odd_rows",
                "packed16_length_1_K7", "odd_C_L129"}


# fp32 (N, C, L) in 8-element groups (two vectors a thread): S = 3, 1 and 0, K = 31, K = 1,
# negative flipped padding; every tensor a whole number of 8-element groups
FP32_V8_CASES = ["anchor_y_S3", "flip_negative_padding", "K31_fp32", "no_bias_K1"]

# 16-element groups (fp32: four vectors a group; packed 16-bit: two), where the first and last
# groups' vectors that no tap reads are not loaded: S = 11, 1, 0; K = 31, 9, 7, 1; rows of 1
V16_CASES = ["anchor_y_S3", "flip_negative_padding", "K31_fp32", "no_bias_K1", "anchor_y_S0", "K31",
             "packed16_bf16_odd_rows", "packed16_length_1_K7"]

# the flat (N, C, L) kernel ("same" rows only): every case it takes, in each group width
FLAT_CASES = [n for n, (p, _) in GEN_CASES.items() if p.padding * 2 == p.K - 1]
FLAT_V_CASES = [("K31_fp32", 8), ("K31_fp32", 16), ("packed16_bf16_odd_rows", 16), ("anchor_y_S3", 8),
                ("K_gt_L", 8), ("K_gt_L", 16), ("L16_K9", 16), ("no_bias_K1", 16)]

# ncl with the edge program (out of the GPU tuning set unless CONVBENCH_DW_EDGE_PROGRAM=1): the
# cases where it differs most from edge tiles
SPLIT_CASES = ["anchor_y_S3", "anchor_y_S0", "K31", "packed_bf16_odd_rows", "packed_fp16_odd_rows",
               "packed_rows_shorter_than_group", "packed_length_1_K7", "unpacked_16bit"]


# cases added for the flat (N, C, L) kernel: the (N, L, C) kernels have their own odd sizes
NCL_ONLY = {"K_gt_L", "L16_K9", "odd_C_L129"}

# x and y rows of different lengths, d = L_out - L_in not a multiple of the group: row-class
# plans ("cls"), where each program holds rows of one class and anchors them to y
CLASS_CASES = {
    "cls_bf16_d1": (_case(N=2, C=8, L=129, K=4, padding=2), "bfloat16"),  # packed words, 8 classes
    "cls_fp16_shrink": (_case(N=3, C=16, L=100, K=4, padding=0), "float16"),  # d = -3
    "cls_bf16_d2": (_case(N=2, C=8, L=50, K=3, padding=2), "bfloat16"),  # d = 2: 4 classes
    "cls_fp32_d1": (_case(N=2, C=4, L=37, K=6, padding=3), "float32"),  # 4-element groups
    "cls_K_gt_L": (_case(N=2, C=8, L=1, K=4, padding=2), "float16"),  # rows of 1 and 2
    "anchor_x": GEN_CASES["anchor_x"],  # C = 4: too few channels for 8 classes; 4-element groups
}
CLASS_V8_CASES = ["cls_fp32_v8"]  # fp32 in 8-element groups (two vectors)
CLASS_CASES["cls_fp32_v8"] = (_case(N=2, C=8, L=61, K=4, padding=2), "float32")
# 16-element groups (two vectors a thread) on the 8-element grid: classes mod 8; rows shorter than
# a group, fp16 rows that shrink, d = 2, fp32 (four vectors a thread)
CLASS_V16_CASES = ["cls_bf16_d1", "cls_fp16_shrink", "cls_bf16_d2", "cls_K_gt_L", "cls_fp32_v8"]
ALL_CASES = {**GEN_CASES, **CLASS_CASES}


def _nlc_length(p):
    """An (N, L, C) program owns rows l0 .. l0 + R - 1 of one batch item (R and the rolling
    window's segments divide 64), so what a row's end meets depends on L mod 64, and a row of
    64 + L mod 64 has interior programs too. Rows longer than 128 are cut to that: the
    interpreter's time goes with L x K, and these cases were written for their (N, C, L) row ends
    (the nlc runs of 517- and 209-long rows took 20-39 s each; session 16). Full lengths in
    (N, L, C) stay covered by test_triton_depthwise (L = 517) and test_impls."""
    if p.L <= 128:
        return p
    return dataclasses.replace(p, L=64 + p.L % 64)


@pytest.mark.parametrize("name,layout", [(n, lay) for n in GEN_CASES for lay in ("ncl", "nlc", "nlc_roll")
                                         if lay == "ncl" or n not in NCL_ONLY]
                         + [(n, "ncl_split") for n in SPLIT_CASES]
                         + [(n, "ncl_fp32_v8") for n in FP32_V8_CASES]
                         + [(n, "ncl_fp32_v8_split") for n in FP32_V8_CASES]
                         + [(n, "ncl_v16") for n in V16_CASES]
                         + [(n, "ncl_v16_split") for n in ("anchor_y_S3", "K31", "packed16_bf16_odd_rows")]
                         + [(n, "ncl_flat") for n in FLAT_CASES]
                         + [(n, "ncl_flat_mix") for n in ("packed_bf16_odd_rows", "K31_fp32", "packed_length_1_K7")]
                         + [(n, f"ncl_flat_v{v}") for n, v in FLAT_V_CASES]
                         + [(n, "ncl_cls") for n in CLASS_CASES if n not in CLASS_V8_CASES]
                         + [(n, "ncl_cls_fp32_v8") for n in CLASS_V8_CASES]
                         + [(n, "ncl_cls_v16") for n in CLASS_V16_CASES]
                         + [("cls_K_gt_L", "ncl_cls_v32")])
def test_generated_kernels_match_float64(name, layout, monkeypatch):
    """ncl: without the edge program (edge tiles store whole groups as vectors, partial groups
    element by element: what the tuner runs) and with it (inner tiles store whole groups, one
    more program column the row edges). nlc: the
    tile kernel and the rolling window (segments of 8 rows, 4 a step, so rows end inside a first
    step, a segment or a step; rows over 128 are cut to 64 + L mod 64, see _nlc_length). ncl_cls:
    rows anchored to y by class."""
    monkeypatch.setattr(td, "_PLANS", {})  # plans are cached by shape, not by variant
    monkeypatch.setattr(td, "_READY", {})
    if layout.startswith("ncl"):
        monkeypatch.setattr(td, "INTERPRETER_NCL", "split" if layout.endswith("_split") else
                            "flat" if "flat" in layout else "classes" if "cls" in layout else "nosplit")
        if "flat" in layout:  # the tuner offers it from L = 512; the code paths run at any L
            monkeypatch.setattr(td, "NCL_FLAT_MIN_L", 1)
            monkeypatch.setattr(td, "INTERPRETER_FLAT_MIX", int("mix" in layout))
        wide = (8 if ("fp32_v8" in layout or "flat_v8" in layout) else 16 if "v16" in layout
                else 32 if "v32" in layout else None)
        monkeypatch.setattr(td, "INTERPRETER_NCL_V", wide)
        if wide == 16:  # the tuner offers them from K = 17; the code paths run at any K
            monkeypatch.setattr(td, "NCL_V16_MIN_K", 1)
        if wide == 32:  # row classes in 32-element groups: the probe knob's width
            monkeypatch.setenv("CONVBENCH_DW_CLS_WIDE", "32")
        layout = "ncl"
    else:
        monkeypatch.setattr(td, "INTERPRETER_NLC", "roll" if layout == "nlc_roll" else "tile")
        layout = "nlc"
    p, dtype = ALL_CASES[name]
    if layout == "nlc":
        p = _nlc_length(p)
    inp = p.make_inputs(dtype, layout=layout, seed=1)
    g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, layout)
    assert td._uses_gen(g), f"{name} {layout} no longer takes the generated kernels"
    if layout == "ncl":
        packed = td._ncl_packed(inp.x.dtype, g.N, g.C_in, g.L_in, g.L_out, g.padding, inp.x)
        assert (packed is not None) == (name in PACKED_CASES), f"{name}: packed={packed}"
    _check(p, dtype, layout, grads=True)
    if layout == "ncl":  # the edge handling asked for is the one that ran (the edge program
        # runs only where rows anchor to y: prepare() takes split and anchor_y)
        plan = td._PLANS[("fwd_any", g)]
        if td.INTERPRETER_NCL in ("flat", "classes"):  # forward and grad_x both ran that family
            family = "flat" if td.INTERPRETER_NCL == "flat" else "cls"
            assert plan[0] == family and td._PLANS[("bwd_x_any", g)][0] == family, (plan, td._PLANS)
        else:
            V = td._ncl_group(plan[4], td._ncl_packed(inp.x.dtype, g.N, g.C_in, g.L_in, g.L_out, g.padding,
                                                      inp.x), inp.x.dtype.itemsize)[0]
            anchor_y = td._ncl_anchor(g.L_in, g.L_out, g.padding, V)[0]
            assert (plan[-1] and anchor_y) == (td.INTERPRETER_NCL == "split"), (plan, anchor_y)
    if layout == "ncl" and wide:  # the wide groups ran (forward, grad_x, grad_w)
        assert td._PLANS[("fwd_any", g)][4 if td.INTERPRETER_NCL != "flat" else 3] == wide, td._PLANS[("fwd_any", g)]
        if td.INTERPRETER_NCL != "classes":  # grad_w has no row classes: its rows anchor to x
            assert td._PLANS[("gen_w", g)][-1] == wide, td._PLANS[("gen_w", g)]
    if layout == "nlc":  # the variant asked for is the one that ran (forward and grad_x)
        seg = td._PLANS[("fwd_any", g)][-1]
        assert (seg > 0) == (td.INTERPRETER_NLC == "roll"), td._PLANS[("fwd_any", g)]


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
def test_ineligible_shapes_keep_the_tile_kernels(layout):
    for p in (_case(L=129, K=4, stride=2, padding=2), _case(L=129, K=3, dilation=2),
              _case(L=129, K=3, mult=2), _case(N=1, C=3, L=60, K=40, padding=20)):
        inp = p.make_inputs("float32", layout=layout, seed=1)
        g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, layout)
        assert not td._uses_gen(g)


def test_split_and_join_are_inverse_in_source():
    stmts, names = gen._split_names("X", 8)
    assert len(names) == 8 and len(stmts) == 7
    # element v sits at position v: join(names) must rebuild the order 0..7
    assert gen._join_expr([f"o{u}" for u in range(8)]).count("tl.join") == 7


_PTX_SCRIPT = r"""
import json, re, sys
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import triton
from convbench.impls import _dw_codegen as gen
out = {}
for kind, K, padding, packed, split, V in json.loads(sys.argv[1]):
    xt = "*i32" if packed else "*fp32"
    yt = {"bf16": "*bf16", "fp16": "*fp16"}.get(packed, "*fp32")
    if kind == "cls":  # row classes of rows one longer in y than in x (d = 1), on a grid of 8 at most
        A = min(V, 8)
        classes = tuple((-c - padding) % A for c in range(A))
        kern = gen.load(gen.ncl_forward_source(K, V, None, False, True, packed, False, classes, False, "",
                                               A if A < V else None))
        sig = {"x_ptr": xt, "w_ptr": "*fp32", "b_ptr": "*fp32", "y_ptr": yt, "yw_ptr": xt, "N": "i32",
               "C": "i32", "L_in": "i32", "L_out": "i32", "padding": "i32", "total_x": "i32",
               "HAS_BIAS": "constexpr", "BLOCK_C": "constexpr", "G": "constexpr", "EDGE": "constexpr",
               "EG": "constexpr"}
        aligned = (0, 1, 2, 3, 4, 10)
        consts = {"HAS_BIAS": True, "BLOCK_C": 4, "G": 32, "EDGE": 0, "EG": 1}
    elif kind == "flat":
        kern = gen.load(gen.ncl_flat_source(K, V, (-padding) % V, False, packed))
        sig = {"x_ptr": xt, "xe_ptr": yt, "w_ptr": "*fp32", "b_ptr": "*fp32", "y_ptr": yt, "yw_ptr": xt,
               "C": "i32", "L": "i32", "padding": "i32", "total": "i32", "n_main": "i32", "n_edge": "i32",
               "mix": "i32", "rows_total": "i32", "inv_L": "fp32", "inv_C": "fp32", "HAS_BIAS": "constexpr",
               "BLOCK_C": "constexpr", "G": "constexpr", "E": "constexpr", "EB": "constexpr"}
        aligned = (0, 1, 2, 3, 4, 5)
        E = gen.ncl_flat_edge(K, V, padding)
        consts = {"HAS_BIAS": True, "BLOCK_C": 1, "G": 128, "E": E, "EB": max(1, 128 // E)}
    else:
        kern = gen.load(gen.ncl_forward_source(K, V, (-padding) % V, False, True, packed, split))
        sig = {"x_ptr": xt, "w_ptr": "*fp32", "b_ptr": "*fp32", "y_ptr": yt, "yw_ptr": xt, "N": "i32",
               "C": "i32", "L_in": "i32", "L_out": "i32", "padding": "i32", "total_x": "i32",
               "HAS_BIAS": "constexpr", "BLOCK_C": "constexpr", "G": "constexpr", "EDGE": "constexpr",
               "EG": "constexpr"}
        aligned = (0, 1, 2, 3, 4, 10)
        consts = {"HAS_BIAS": True, "BLOCK_C": 4, "G": 32, "EDGE": 1,
                  "EG": gen.ncl_edge_groups(K, V, padding, 400, 400)}
    attrs = {(i,): [["tt.divisibility", 16]] for i in aligned}
    src = ASTSource(kern, sig, consts, attrs)
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    out[f"{kind},{K},{padding},{packed},{split},{V}"] = {
        "v4_loads": len(re.findall(r"ld\.global[.\w]*\.v4", ptx)),
        "v4_stores": len(re.findall(r"st\.global[.\w]*\.v4", ptx)),
        "barriers": len(re.findall(r"bar\.sync", ptx)),
        "cvt_pairs": len(re.findall(r"cvt\.rn\.(?:bf16|f16)x2\.f32", ptx)),
        "cvt_single": len(re.findall(r"cvt\.rn\.(?:bf16|f16)\.f32", ptx)),
    }
print(json.dumps(out))
"""


def _assert_vector_ptx(cases) -> None:
    """Compile (N, C, L) kernels (kind, K, padding, packed, split, V) to sm_90 PTX in a fresh
    process (Triton's NVIDIA backend cannot load once the interpreter ran; no GPU needed) and
    check: window loads are 16-byte vectors, stores too (at least two), no shared memory."""
    import json

    from conftest import compile_in_fresh_process

    stats = json.loads(compile_in_fresh_process(_PTX_SCRIPT, json.dumps(cases)))
    assert len(stats) == len(cases)
    for case, st in stats.items():
        assert st["v4_loads"] > 0, f"{case}: scalar window loads: {st}"
        assert st["v4_stores"] >= 2, f"{case}: scalar stores: {st}"
        assert st["barriers"] == 0, f"{case}: shared-memory round trips: {st}"
        if (",bf16," in case or ",fp16," in case) and ",True," not in case and not case.startswith("flat"):
            # packed outputs: two per cvt (F2FP), and the edge tiles' element stores take halves
            # of those words (edge programs, of split row kernels and of the flat kernel, convert
            # their own elements)
            assert st["cvt_pairs"] > 0 and st["cvt_single"] == 0, f"{case}: one conversion an element: {st}"


def test_ncl_window_loads_and_stores_are_vectors():
    """PTX for sm_90 (no GPU needed). Each window group is one 16-byte load: in fp32 for a window
    shift S of 0 (even padding: this once compiled to scalar loads), 1 and 2, in 8-element fp32
    groups (two vectors), and in packed 16-bit words; tiles store whole groups as 16-byte stores (edge tiles too, with a mask per
    group, with and without the edge program); nothing goes through shared memory (8 16-bit elements split directly once did).
    Compiled in a fresh process: Triton's NVIDIA backend cannot load once the interpreter ran."""
    cases = [(9, 4, None, True, 4), (11, 5, None, True, 4), (5, 2, None, True, 4), (9, 4, "bf16", True, 8),
             (31, 15, "fp16", True, 8), (11, 5, None, False, 4), (9, 4, "bf16", False, 8),
             (11, 5, None, False, 8), (11, 5, None, True, 8), (11, 5, None, False, 16),
             (31, 15, None, False, 16), (9, 4, "bf16", False, 16), (11, 5, "fp16", True, 16)]
    _assert_vector_ptx([("rows", *c) for c in cases])


@pytest.mark.parametrize("K,padding,packed,V,vectors", [
    (11, 5, None, 4, 5), (11, 5, None, 8, 6), (11, 5, None, 16, 8), (31, 15, None, 8, 10),
    (31, 15, None, 16, 12), (11, 5, "fp16", 8, 3), (11, 5, "fp16", 16, 4), (9, 4, "bf16", 16, 4)])
def test_ncl_window_loads_only_the_vectors_taps_read(K, padding, packed, V, vectors):
    """A tile loads the 16-byte vectors of x that hold window elements S .. S + V + K - 2 and no
    others: at K = 11 a 16-element group's window starts S = 11 into its first group, whose first
    two fp32 vectors (and the last group's last two) no tap reads. Counted in the source: one load
    per vector in interior tiles and one in edge tiles."""
    src = gen.ncl_forward_source(K, V, (-padding) % V, False, True, packed, False)
    assert src.count("tl.load(x_ptr") == 2 * vectors


@pytest.mark.parametrize("name,V,family", [("packed_bf16_odd_rows", 8, "rows"), ("packed16_bf16_odd_rows", 16, "rows"),
                                           ("packed_bf16_odd_rows", 8, "flat")])
def test_ready_launch_is_reused_and_keyed_by_alignment(name, V, family, monkeypatch):
    """After the first call, a geometry's launch is cached (`_READY`): new tensors of the same
    shape take it and stay correct. A bf16 tensor at an odd element address cannot be read as
    int32 words, so it gets its own launch (4-element groups), also correct; for a plan tuned on
    8- and on 16-element word groups."""
    import torch

    from convbench.reference import rel_err, tolerance

    monkeypatch.setattr(td, "INTERPRETER_NCL_V", V)
    monkeypatch.setattr(td, "NCL_V16_MIN_K", 1)
    if family == "flat":
        monkeypatch.setattr(td, "INTERPRETER_NCL", "flat")
        monkeypatch.setattr(td, "NCL_FLAT_MIN_L", 1)
    p, dtype = GEN_CASES[name]
    td.reset_plans()

    def run_and_check(x, inp):
        y = td.depthwise_conv1d(x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, "ncl")
        ref = torch.nn.functional.conv1d(x.double(), inp.weight.double(), inp.bias.double(),
                                         padding=p.padding, groups=x.shape[1])
        assert rel_err(y, ref) <= tolerance(dtype, False)

    inp = p.make_inputs(dtype, layout="ncl", seed=1)
    run_and_check(inp.x, inp)
    g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, "ncl")
    assert set(td._READY) == {("fwd", g, td._align(inp.x))}
    plan = td._PLANS[("fwd_any", g)]
    assert plan[0] == ("flat" if family == "flat" else "gen") and plan[3 if family == "flat" else 4] == V
    inp2 = p.make_inputs(dtype, layout="ncl", seed=2)
    run_and_check(inp2.x, inp2)  # same geometry and alignment: the cached launch
    assert len(td._READY) == 1
    flat = torch.empty(inp.x.numel() + 1, dtype=inp.x.dtype)
    odd = flat[1:].view(inp.x.shape)  # contiguous, 2 bytes past a word boundary
    odd.copy_(inp.x)
    assert odd.data_ptr() % 4 == 2
    run_and_check(odd, inp)
    assert len(td._READY) == 2
    td.reset_plans()


def test_generated_kernels_are_named_for_traces_and_backend():
    """Each generated kernel has its own name (the CUDA kernel name in profiler traces): family,
    layout and pass, forward and grad_x apart; the attribution counts them as ours."""
    from convbench.attribution import backend_label, classify_kernel

    sources = {
        "depthwise_ncl_gen_fwd_kernel": gen.ncl_forward_source(11, 4, 3, False, True),
        "depthwise_ncl_gen_gx_kernel": gen.ncl_forward_source(11, 4, 3, True, True),
        "depthwise_ncl_flat_gen_fwd_kernel": gen.ncl_flat_source(11, 4, 3, False),
        "depthwise_ncl_flat_gen_gx_kernel": gen.ncl_flat_source(11, 4, 3, True),
        "depthwise_ncl_gen_gw_kernel": gen.ncl_grad_w_source(11, 4, 3, True),
        "depthwise_nlc_gen_fwd_kernel": gen.nlc_forward_source(11, 16, False),
        "depthwise_nlc_gen_gx_kernel": gen.nlc_forward_source(11, 16, True),
        "depthwise_nlc_roll_gen_fwd_kernel": gen.nlc_forward_roll_source(31, 4, False),
        "depthwise_nlc_gen_gw_kernel": gen.nlc_grad_w_source(11, 16),
    }
    for name, src in sources.items():
        kern = gen.load(src)
        assert (getattr(kern, "__name__", None) or kern.fn.__name__) == name
        assert classify_kernel(name, (), triton_impl=True) == "triton"
        assert backend_label(["triton"], [name]) == f"triton:{name}"


def test_ncl_flat_window_loads_and_stores_are_vectors():
    """The flat kernel's main programs load each window vector and store each output group as
    16-byte vectors (interior and boundary programs), with no shared-memory round trip, in fp32
    (4-, 8- and 16-element groups) and packed 16-bit. PTX for sm_90, in a fresh process (see
    test_ncl_window_loads_and_stores_are_vectors)."""
    cases = [(9, 4, None, 4), (11, 5, None, 8), (31, 15, None, 16), (9, 4, "bf16", 8), (5, 2, "fp16", 8),
             (31, 15, "fp16", 16)]
    _assert_vector_ptx([("flat", K, padding, packed, False, V) for K, padding, packed, V in cases])


def test_flat_plans_offered_described_and_bounded(monkeypatch):
    """Where the tuner offers the flat kernel (same rows from NCL_FLAT_MIN_L on, int32 flat
    indices), which candidates (interleaving only where there are at least as many main programs
    as edge programs), and how a flat plan reads in rows and traces."""
    import torch

    assert td._ncl_flat_fits(19, 1024, 517, 517)
    assert not td._ncl_flat_fits(19, 1024, 511, 511)  # measured to lose at 418 and 209
    assert not td._ncl_flat_fits(19, 1024, 518, 517)  # rows of different lengths
    assert not td._ncl_flat_fits(4096, 1024, 512, 512)  # 2**31 elements: past int32
    monkeypatch.setattr(td, "interpreting", lambda: False)  # the GPU candidate list (no launch)
    plans = td._gen_conv_plans("ncl", torch.float32, 19, 1024, 517, 11, (8, 4), 132, flat=True)
    flat = [p for p in plans if p[0] == "flat"]
    assert len(flat) == 8 and {p[-1] for p in flat} == {0, 1}
    assert all(p[0] != "flat" for p in td._gen_conv_plans("ncl", torch.float32, 19, 1024, 517, 11, (8, 4), 132))
    # 16-element groups at K = 11 and G = 256: fewer main programs than edge programs, no mix
    few = td._gen_conv_plans("ncl", torch.float32, 19, 1024, 517, 11, (16,), 132, flat=True)
    assert ("flat", 256, 4, 16, 1) not in few and ("flat", 256, 4, 16, 0) in few
    tagged, _ = td._with_tiles(lambda: plans, None, lambda: [], None, "ncl")
    assert [p for p in tagged() if p[0] == "flat"] == flat  # kept as they are, not tagged "gen"
    assert td._describe("ncl", "fwd_any", ("flat", 256, 4, 8, 1)) == "flat(G=256, warps=4, V=8, mix=1)"


def test_row_classes_anchor_every_row_to_both_tensors():
    """_ncl_classes: for every row R (n * C + row) of shapes whose x and y rows differ in length,
    the class of its program column gives a shift S with which both the y tile (anchored to y's
    group grid: l0 = -(R * L_out mod V)) and the x window start (R * L_in + l0 - padding - S) fall
    on group boundaries; and where a class could not be one shift for all n, none is offered."""
    for N, C, L_in, L_out, padding, V in [(1, 4096, 8192, 8193, 2, 8), (1, 4096, 8193, 8192, 1, 8),
                                          (3, 16, 100, 97, 0, 8), (2, 8, 50, 52, 2, 8), (2, 4, 37, 38, 3, 4),
                                          (1, 6, 40, 41, 3, 4), (2, 12, 40, 41, 3, 4)]:
        classes = td._ncl_classes(N, C, L_in, L_out, padding, V)
        P = len(classes)
        assert P == V // __import__("math").gcd((L_out - L_in) % V, V)
        for n in range(N):
            for row in range(C):
                R = n * C + row
                l0 = -(R * L_out % V)
                assert (R * L_in + l0 - padding - classes[row % P]) % V == 0, (N, C, L_in, L_out, R)
    assert td._ncl_classes(1, 4096, 8192, 8192, 2, 8) is None  # same lengths: rows anchor to y as they are
    assert td._ncl_classes(2, 6, 40, 41, 3, 4) is None  # C * d = 6: row 0 of n = 1 is of class 2
    assert td._ncl_classes(1, 3, 40, 41, 3, 4) is None  # 4 classes, 3 rows: a class without rows


def test_row_class_plans_offered_and_described(monkeypatch):
    """The GPU tuner offers row-class plans where rows differ in length (long_seq: bf16, K = 4,
    L_out = L + 1), in packed 16-bit groups of 16 on the 8-element grid (fp32: 8), next to the
    row tiles (which anchor such rows to x); a class plan reads as cls(...) in rows and traces."""
    import torch

    long_seq = (1, 4096, 8192, 8193, 2)
    x = torch.empty(4, dtype=torch.bfloat16)
    assert td._ncl_packed(torch.bfloat16, *long_seq, x, classes=True) == "bf16"
    assert td._ncl_packed(torch.bfloat16, *long_seq, x) is None  # one S cannot anchor every row
    monkeypatch.setattr(td, "interpreting", lambda: False)
    Vc = td._ncl_class_widths("bf16", 2, *long_seq)
    assert Vc == (16,)  # one width only (compile time; V = 4 and, in 16-bit, V = 8 lost)
    assert td._ncl_class_widths(None, 4, *long_seq) == (8,)  # fp32: 16 lost (session 19)
    assert td._ncl_class_widths(None, 2, *long_seq) == (4,)  # data not readable as words
    monkeypatch.setenv("CONVBENCH_DW_CLS_WIDE", "32")  # the probe knob (session 19: 32 lost)
    assert td._ncl_class_widths("bf16", 2, *long_seq) == (32,)
    monkeypatch.delenv("CONVBENCH_DW_CLS_WIDE")
    plans = td._gen_conv_plans("ncl", torch.bfloat16, 1, 4096, 8193, 4, (4,), 132, Vc=Vc)
    cls = [p for p in plans if p[0] == "cls"]
    assert cls == [("cls", 4, 32, 4, 16, 1), ("cls", 8, 16, 4, 16, 1)] and len(plans) > len(cls)
    assert td._gen_conv_plans("ncl", torch.bfloat16, 1, 4096, 8193, 4, (4,), 132) == plans[:len(plans) - 2]
    assert td._describe("ncl", "fwd_any", ("cls", 4, 32, 4, 8, 1)) == "cls(block_c=4, G=32, warps=4, V=8, nb=1)"


def test_row_class_window_loads_and_stores_are_vectors():
    """Row-class kernels (one branch per class, each with its own window shift) keep 16-byte
    window loads and stores in packed 16-bit and fp32 groups, with no shared memory. PTX for
    sm_90, in a fresh process (see test_ncl_window_loads_and_stores_are_vectors)."""
    _assert_vector_ptx([("cls", 4, 2, "bf16", False, 8), ("cls", 4, 2, None, False, 4),
                        ("cls", 4, 2, None, False, 8), ("cls", 4, 2, "bf16", False, 16),
                        ("cls", 4, 2, None, False, 16)])


def test_ncl_probe_knobs_leave_out_what_they_name():
    """The timing-only knobs of ncl_forward_source (scripts/split_edge_probe.py, session 18) each
    remove one part of the edge handling and nothing else, and the default source has them all."""
    base = gen.ncl_forward_source(9, 8, 4, False, True, "bf16", False)
    knob = {k: gen.ncl_forward_source(9, 8, 4, False, True, "bf16", False, None, False, k)
            for k in ("i", "z", "s", "zs")}
    assert base == gen.ncl_forward_source(9, 8, 4, False, True, "bf16", False, None, False, "")
    zeroing = "tl.where((pb_e + "  # one a window element of the groups loaded (3 of 8 here)
    estores = "tl.store(yb + "
    assert base.count(zeroing) == 24 and base.count(estores) == 8 and "interior = True" not in base
    assert knob["i"].count("interior = True") == 1 and "interior = (" not in knob["i"]
    assert knob["z"].count(zeroing) == 0 and knob["z"].count(estores) == 8
    assert knob["s"].count(zeroing) == 24 and knob["s"].count(estores) == 0
    assert knob["zs"].count(zeroing) == 0 and knob["zs"].count(estores) == 0


_PREFETCH_PTX = r"""
import json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from convbench.impls import _dw_codegen as gen
out = {}
for prefetch in (False, True):
    kern = gen.load(gen.ncl_forward_source(9, 8, 4, False, True, "bf16", False, None, prefetch))
    sig = {"x_ptr": "*i32", "w_ptr": "*fp32", "b_ptr": "*fp32", "y_ptr": "*bf16", "yw_ptr": "*i32", "N": "i32",
           "C": "i32", "L_in": "i32", "L_out": "i32", "padding": "i32", "total_x": "i32",
           "HAS_BIAS": "constexpr", "BLOCK_C": "constexpr", "G": "constexpr", "EDGE": "constexpr", "EG": "constexpr"}
    attrs = {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 3, 4, 10)}
    src = ASTSource(kern, sig, {"HAS_BIAS": True, "BLOCK_C": 4, "G": 32, "EDGE": 0, "EG": 2}, attrs)
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    out[str(prefetch)] = ptx.count("prefetch.global.L2")
print(json.dumps(out))
"""


def test_ncl_prefetch_knob_asks_the_l2_for_the_next_item():
    """ncl_forward_source(prefetch=True) (a probe knob, session 18: no gain, no plan uses it)
    issues `prefetch.global.L2` for the next batch item's rows; without it there is none. PTX for
    sm_90 in a fresh process."""
    import json

    from conftest import compile_in_fresh_process

    counts = json.loads(compile_in_fresh_process(_PREFETCH_PTX, ""))
    assert counts["False"] == 0 and counts["True"] >= 1
