"""The generated register-window depthwise kernels (``_dw_codegen``): every code path they have
(ncl rows aligned to y or to x, the window shift S = 0 and S > 0, interior and edge tiles,
grad_x with negative flipped padding, K up to the limit, nlc rows) against the float64 reference
in interpreter mode; and, where Triton's NVIDIA backend can compile here, that the ncl window
loads compile to vector loads (they once did not when S = 0)."""

from __future__ import annotations

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
    "K_at_limit": (_case(N=1, C=4, L=64, K=td.GEN_MAX_K, padding=16), "float32"),
    "no_bias_K1": (_case(N=1, C=4, L=160, K=1, bias=False), "float32"),
}


@pytest.mark.parametrize("layout", ["ncl", "nlc"])
@pytest.mark.parametrize("name", list(GEN_CASES))
def test_generated_kernels_match_float64(name, layout):
    p, dtype = GEN_CASES[name]
    inp = p.make_inputs(dtype, layout=layout, seed=1)
    g = td._geometry(inp.x, inp.weight, inp.bias, p.stride, p.padding, p.dilation, layout)
    assert td._uses_gen(g), f"{name} {layout} no longer takes the generated kernels"
    _check(p, dtype, layout, grads=True)


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
for K, padding in json.loads(sys.argv[1]):
    kern = gen.load(gen.ncl_forward_source(K, 4, (-padding) % 4, False, True))
    sig = {"x_ptr": "*fp32", "w_ptr": "*fp32", "b_ptr": "*fp32", "y_ptr": "*fp32", "C": "i32",
           "L_in": "i32", "L_out": "i32", "padding": "i32", "total_x": "i32",
           "HAS_BIAS": "constexpr", "BLOCK_C": "constexpr", "G": "constexpr"}
    attrs = {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 3, 4, 8)}
    src = ASTSource(kern, sig, {"HAS_BIAS": True, "BLOCK_C": 4, "G": 32}, attrs)
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    out[f"{K},{padding}"] = len(re.findall(r"ld\.global[.\w]*\.v4", ptx))
print(json.dumps(out))
"""


def test_ncl_window_loads_are_vector_loads():
    """PTX for sm_90 (no GPU needed): each fp32 window group is one 16-byte load, for a window
    shift S of 0 (even padding: this once compiled to scalar loads), 1 and 2. Compiled in a
    fresh process: Triton's NVIDIA backend cannot load once the interpreter has run."""
    import json
    import os
    import subprocess
    import sys

    cases = [(9, 4), (11, 5), (5, 2)]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", _PTX_SCRIPT, json.dumps(cases)], env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"cannot compile for sm_90 here: {proc.stderr.strip().splitlines()[-1:]}")
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(n > 0 for n in counts.values()), f"scalar window loads: {counts}"
