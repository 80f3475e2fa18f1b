"""Config expansion: axes, zip, presets, per-op shapes, exclude, where, same padding, sharding."""

from __future__ import annotations

import pytest

from convbench.config import ConfigError, parse_config
from convbench.runner import plan_jobs


def cfg(**kw):
    raw = {"ops": ["depthwise"], "impls": ["torch"], "devices": ["cpu"],
           "shapes": {"N": [1], "C_in": [4], "L": [16], "K": [3]}}
    raw.update(kw)
    return parse_config(raw, "test.yaml")


def shapes(c):
    return [(pc.problem.op, pc.problem.L, pc.problem.K, pc.problem.padding) for pc in c.cases]


def test_cartesian_product_and_other_axes():
    c = cfg(shapes={"N": [1], "C_in": [4], "L": [16, 32], "K": [3, 5]}, dtypes=["float32", "bfloat16"])
    assert len(c.cases) == 2 * 2 * 2
    assert {(pc.problem.L, pc.problem.K, pc.dtype) for pc in c.cases} == {
        (L, K, d) for L in (16, 32) for K in (3, 5) for d in ("float32", "bfloat16")}


def test_zip_varies_axes_together():
    c = cfg(shapes={"N": [1], "C_in": [4], "L": [16, 32, 64], "K": [3, 5, 7]}, zip=[["L", "K"]])
    assert [(L, K) for _, L, K, _ in shapes(c)] == [(16, 3), (32, 5), (64, 7)]


def test_same_padding_follows_kernel_and_dilation():
    c = cfg(shapes={"N": [1], "C_in": [4], "L": [16], "K": [3, 4, 11], "dilation": [1, 2],
                    "padding": ["same"]})
    got = {(pc.problem.K, pc.problem.dilation): pc.problem.padding for pc in c.cases}
    assert got == {(3, 1): 1, (4, 1): 1, (11, 1): 5, (3, 2): 2, (4, 2): 3, (11, 2): 10}
    for pc in c.cases:  # odd K at stride 1 keeps the length
        if pc.problem.K % 2:
            assert pc.problem.L_out == pc.problem.L


def test_presets_add_to_the_grid_for_their_op_only():
    c = cfg(presets=["dtts_enc", "dtts_pw_up"])
    assert ("depthwise", 128, 7, 3) in shapes(c)  # dtts_enc, same padding
    assert all(op == "depthwise" for op, *_ in shapes(c))  # the pointwise preset is not in ops
    c = cfg(ops=["depthwise"], presets=["dtts_enc"], shapes=None)
    assert shapes(c) == [("depthwise", 128, 7, 3)]


def test_per_op_shapes_and_pointwise_defaults():
    c = cfg(ops=["depthwise", "pointwise"], impls="all", shapes={
        "depthwise": {"N": [1], "C_in": [4], "L": [16], "K": [3]},
        "pointwise": {"N": [1], "C_in": [4], "C_out": [8], "L": [16]},
    })
    by_op = {pc.problem.op: pc.problem for pc in c.cases}
    assert by_op["depthwise"].C_out == 4  # depthwise C_out defaults to C_in
    assert by_op["pointwise"].K == 1 and by_op["pointwise"].C_out == 8


def test_exclude_and_where_drop_cases():
    c = cfg(shapes={"N": [1], "C_in": [4], "L": [8, 16, 32], "K": [3, 9]},
            exclude=[{"L": 32, "K": [3]}], where=["K <= L", "L_out >= 8"])
    # (32, 3) excluded; (8, 9) fails K <= L; (8, 3) has L_out 6
    assert sorted((L, K) for _, L, K, _ in shapes(c)) == [(16, 3), (16, 9), (32, 9)]


def test_where_on_output_length():
    c = cfg(shapes={"N": [1], "C_in": [4], "L": [8, 16], "K": [3, 9]}, where=["L_out > 1"])
    assert sorted((L, K) for _, L, K, _ in shapes(c)) == [(8, 3), (16, 3), (16, 9)]


def test_expansion_is_deterministic_and_deduplicated():
    raw = dict(shapes={"N": [1, 1], "C_in": [4], "L": [16], "K": [3]})
    assert len(cfg(**raw).cases) == 1
    assert cfg(**raw).hash == cfg(**raw).hash


def test_comparability_names_what_makes_rows_incomparable():
    a = cfg(measure={"min_samples": 3})
    b = cfg(measure={"min_samples": 4})
    assert a.comparability != b.comparability
    assert cfg(seed=1).comparability["seed"] == 1
    assert cfg(name="other").comparability == cfg().comparability


def test_l2_override_replaces_one_measure_key():
    """`run --l2 clean` changes measure.l2 only; the rest of the block stays, and the run's
    comparability changes with it (so --resume refuses to mix the two)."""
    raw = {"ops": ["depthwise"], "impls": ["torch"], "devices": ["cpu"], "measure": {"min_samples": 4},
           "shapes": {"N": [1], "C_in": [4], "L": [16], "K": [3]}}
    clean = parse_config(raw, "test.yaml", {"l2": "clean"})
    assert (clean.measure.l2, clean.measure.min_samples) == ("clean", 4)
    assert parse_config({**raw, "measure": None}, "t.yaml", {"l2": "warm"}).measure.l2 == "warm"
    both = parse_config(raw, "test.yaml", {"l2": "clean", "graph": True}).measure
    assert (both.l2, both.graph, both.min_samples) == ("clean", True, 4)
    assert parse_config(raw, "test.yaml", {"graph": None}).measure.graph is False
    assert parse_config(raw, "test.yaml").comparability != clean.comparability
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "test.yaml", {"l2": "tepid"})
    assert e.value.key == "measure.l2"
    with pytest.raises(ConfigError) as e:  # an override does not hide a broken block
        parse_config({**raw, "measure": "fast"}, "test.yaml", {"l2": "clean"})
    assert e.value.key == "measure"
    # the timer's version is recorded only where the settings' meaning changed with it
    assert "timer" in clean.comparability["measure"]
    assert "timer" not in parse_config(raw, "test.yaml").comparability["measure"]
    assert "timer" not in parse_config(raw, "test.yaml", {"l2": "warm", "graph": True}).comparability["measure"]


def test_config_error_carries_the_key_path():
    with pytest.raises(ConfigError, match="cpu") as e:
        cfg(devices=["gpu"])
    assert e.value.key == "devices[0]"


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_are_disjoint_and_cover_all(n):
    c = cfg(shapes={"N": [1, 2], "C_in": [4], "L": [8, 16, 32], "K": [3]}, impls=["torch", "native"])
    every, _ = plan_jobs(c, None, set(), None)
    keys = [(j.case, j.impls) for j in every]
    parts = [[(j.case, j.impls) for j in plan_jobs(c, None, set(), (i, n))[0]] for i in range(1, n + 1)]
    flat = [k for p in parts for k in p]
    assert sorted(map(repr, flat)) == sorted(map(repr, keys))
    assert len(flat) == len(set(map(repr, flat)))


def test_plan_skips_done_rows_and_keeps_listed_order():
    c = cfg(impls=["native", "torch"])
    jobs, _ = plan_jobs(c, None, set(), None)
    assert jobs[0].impls == ("native", "torch")
    from convbench.registry import Case
    from convbench.results import row_key
    from convbench.runner import base_row

    pc = c.cases[0]
    done = {row_key(base_row(Case(pc.problem, pc.dtype, pc.layout, "cpu", pc.mode), "native"))}
    jobs, _ = plan_jobs(c, None, done, None)
    assert jobs[0].impls == ("torch",)
