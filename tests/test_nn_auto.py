"""backend="auto": the modules run what the selection table picks, and fall back cleanly."""

import json

import pytest
import torch

from convbench import nn as cnn
from convbench.env import device_name
from convbench.nn import DepthWiseConv1d, PointwiseConv1d
from convbench.problem import Depthwise
from convbench.report import Selection

HERE = device_name("cpu")


def entry(impl, op="depthwise", layout="ncl", device=HERE, mode="fwd", **shape):
    base = {"N": 2, "C_in": 16, "C_out": 16, "L": 64, "K": 5, "stride": 1, "padding": 2,
            "dilation": 1, "bias": True}
    base.update(shape)
    return {"op": op, "device_name": device, "dtype": "float32", "layout": layout, "mode": mode,
            "shape": base, "impl": impl, "baseline": "torch", "speedup_over_baseline": 1.5,
            "runner_up": "torch", "margin_over_runner_up": 1.5, "tie": False, "tied_with": []}


@pytest.fixture
def table(tmp_path):
    def write(*entries, name="sel.json"):
        p = tmp_path / name
        p.write_text(json.dumps({"convbench_selection": 1, "entries": list(entries)}))
        return p

    return write


@pytest.fixture(autouse=True)
def no_ambient_table(monkeypatch, tmp_path):
    monkeypatch.delenv(cnn.SELECTION_ENV, raising=False)
    monkeypatch.setattr(cnn, "DEFAULT_SELECTION", tmp_path / "no-default.json")


def _run(m, x):
    with torch.no_grad():
        return m(x)


def test_auto_picks_what_the_table_says_and_matches_torch(table):
    path = table(entry("native"), entry("unfold_einsum", L=1024))
    m = DepthWiseConv1d(16, 16, 5, padding=2, backend="auto", selection=path)
    ref = DepthWiseConv1d(16, 16, 5, padding=2)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(2, 16, 64)
    torch.testing.assert_close(_run(m, x), _run(ref, x))
    assert m.last_choice.impl == "native" and not m.last_choice.fallback
    assert m.explain().startswith("native: exact match")
    _run(m, torch.randn(2, 16, 80))  # nearer L=64 than L=1024
    assert m.last_choice.impl == "native" and "nearest measured case" in m.last_choice.why
    _run(m, torch.randn(2, 16, 900))
    assert m.last_choice.impl == "unfold_einsum"


def test_choice_is_cached_per_input_signature(table, monkeypatch):
    m = DepthWiseConv1d(16, 16, 5, padding=2, backend="auto", selection=table(entry("native")))
    calls = []
    real = m._choose
    monkeypatch.setattr(m, "_choose", lambda case: calls.append(case) or real(case))
    for _ in range(3):
        _run(m, torch.randn(2, 16, 64))
    _run(m, torch.randn(2, 16, 65))
    assert len(calls) == 2


@pytest.mark.parametrize("why, entries, expect", [
    ("no table", None, "no table"),
    ("other device", [entry("native", device="NVIDIA H100 80GB HBM3")], "no entries for device"),
    ("cannot run", [entry("cudnn")], "cannot run this input: cudnn runs on cuda, not cpu"),
    ("far away", [entry("native", C_in=1024, C_out=1024)], "log2 units away"),
    ("unknown impl", [entry("not_a_kernel")], "not registered here"),
])
def test_falls_back_to_the_layout_baseline(table, why, entries, expect):
    sel = table(*entries) if entries else None
    m = DepthWiseConv1d(16, 16, 5, padding=2, backend="auto", selection=sel)
    y = _run(m, torch.randn(2, 16, 64))
    assert y.shape == (2, 16, 64)
    assert m.last_choice.impl == "torch" and m.last_choice.fallback, why
    assert expect in m.last_choice.why and "using the ncl baseline 'torch'" in m.last_choice.why


def test_nlc_pointwise_falls_back_to_linear_nlc_and_env_var_is_read(table, monkeypatch):
    p = PointwiseConv1d(16, 32, backend="auto", layout="nlc")
    _run(p, torch.randn(2, 64, 16))
    assert p.last_choice.impl == "linear_nlc" and p.last_choice.fallback
    path = table(entry("linear_nlc", op="pointwise", layout="nlc", C_out=32, K=1, padding=0))
    monkeypatch.setenv(cnn.SELECTION_ENV, str(path))
    p = PointwiseConv1d(16, 32, backend="auto", layout="nlc")
    _run(p, torch.randn(2, 64, 16))
    assert not p.last_choice.fallback and "CONVBENCH_SELECTION" in p.last_choice.why


def test_training_uses_forward_entries_when_checked(table):
    m = DepthWiseConv1d(16, 16, 5, padding=2, backend="auto", selection=table(entry("native")))
    x = torch.randn(2, 16, 64, requires_grad=True)
    m(x).sum().backward()
    assert m.last_choice.impl == "native" and "forward-only" in m.last_choice.why
    assert x.grad is not None


def test_selection_object_and_bad_arguments(table, tmp_path):
    sel = Selection.load(table(entry("native")))
    m = DepthWiseConv1d(16, 16, 5, padding=2, backend="auto", selection=sel)
    _run(m, torch.randn(2, 16, 64))
    assert m.last_choice.impl == "native"
    assert "has not chosen yet" in DepthWiseConv1d(4, 4, 3, padding=1, backend="auto").explain()
    with pytest.raises(ValueError, match="does not exist"):
        DepthWiseConv1d(4, 4, 3, padding=1, backend="auto", selection=tmp_path / "missing.json")
    (tmp_path / "foreign.json").write_text("{}")
    with pytest.raises(ValueError, match="not a convbench selection table"):
        DepthWiseConv1d(4, 4, 3, padding=1, backend="auto", selection=tmp_path / "foreign.json")
    with pytest.raises(ValueError, match="only to backend='auto'"):
        DepthWiseConv1d(4, 4, 3, padding=1, selection=sel)


def test_shipped_default_table_loads():
    sel = Selection.load(cnn.Path(cnn.__file__).parent / "data" / "selection.json")
    assert sel.entries and {e["op"] for e in sel.entries} == {"depthwise", "pointwise"}


def test_shipped_table_names_registered_impls_and_committed_runs():
    """Every pick is an implementation of its op and layout, and every source run is in the
    repository (scripts/current_tables.sh rebuilds the table from them)."""
    from convbench import registry

    path = cnn.Path(cnn.__file__).parent / "data" / "selection.json"
    data = json.loads(path.read_text())
    for e in data["entries"]:
        impl = registry.get(e["op"], e["impl"])
        assert impl.layout == e["layout"], e
    root = path.parents[2]
    for s in data["sources"]:
        assert (root / s["run"] / "results.jsonl").is_file(), s["run"]
    assert data["unresolved_cases"] == 0


def test_a_gpu_without_entries_takes_those_of_the_same_compute_capability():
    """An H200 (no entries of its own) uses the picks measured on an H100 (both 9.0), and says so;
    another capability, an unknown one (CPU) or entries without one fall back to the baseline."""
    h100 = dict(entry("native", device="NVIDIA H100 80GB HBM3"), capability=[9, 0])
    a100 = dict(entry("unfold_einsum", device="NVIDIA A100-SXM4-80GB"), capability=[8, 0])
    sel = Selection([h100, a100])
    p = Depthwise(N=2, C_in=16, C_out=16, L=64, K=5, padding=2)
    name, why = sel.choose("depthwise", "NVIDIA H200", "float32", "ncl", p, capability=(9, 0))
    assert name == "native"
    assert why.startswith("no entries for 'NVIDIA H200'; measured on 'NVIDIA H100 80GB HBM3' instead "
                          "(same compute capability 9.0): exact match")
    assert sel.choose("depthwise", "NVIDIA A100 80GB PCIe", "float32", "ncl", p, capability=(8, 0))[0] \
        == "unfold_einsum"
    for cap in ((10, 0), None):
        name, why = sel.choose("depthwise", "NVIDIA H200", "float32", "ncl", p, capability=cap)
        assert name == "torch" and "no entries for device 'NVIDIA H200'" in why
    # the device's own entries come first, whatever other devices share its capability
    own = dict(entry("unfold_einsum", device="NVIDIA H200"), capability=[9, 0])
    assert Selection([h100, own]).choose("depthwise", "NVIDIA H200", "float32", "ncl", p,
                                         capability=(9, 0))[0] == "unfold_einsum"
    assert Selection([entry("native", device="NVIDIA H100 80GB HBM3")]).choose(
        "depthwise", "NVIDIA H200", "float32", "ncl", p, capability=(9, 0))[0] == "torch"
    # of two same-capability devices, the one with entries for this layout stands in
    gh = dict(entry("unfold_einsum", layout="nlc", device="NVIDIA GH200 480GB"), capability=[9, 0])
    name, why = Selection([h100, gh]).choose("depthwise", "NVIDIA H200", "float32", "ncl", p,
                                             capability=(9, 0))
    assert name == "native" and "'NVIDIA H100 80GB HBM3' instead" in why


def test_a_device_with_entries_takes_a_stand_in_for_the_keys_it_lacks():
    """An H200 with picks of its own for one layout (or one precision policy) still takes the
    H100's for what it lacks, and says which; where it has its own, they win."""
    h100 = dict(entry("native", device="NVIDIA H100 80GB HBM3"), capability=[9, 0], precision="default")
    h100_nlc = dict(entry("triton_nlc", layout="nlc", device="NVIDIA H100 80GB HBM3"), capability=[9, 0],
                    precision="default")
    h200_nlc = dict(entry("torch_nlc", layout="nlc", device="NVIDIA H200"), capability=[9, 0], precision="tf32")
    sel = Selection([h100, h100_nlc, h200_nlc])
    p = Depthwise(N=2, C_in=16, C_out=16, L=64, K=5, padding=2)
    name, why = sel.choose("depthwise", "NVIDIA H200", "float32", "ncl", p, capability=(9, 0))
    assert name == "native"
    assert why.startswith("no depthwise float32 ncl fwd entries for 'NVIDIA H200'; measured on "
                          "'NVIDIA H100 80GB HBM3' instead")
    # its own nlc entry was measured under tf32: a caller under the default policy takes the H100's
    assert sel.choose("depthwise", "NVIDIA H200", "float32", "nlc", p, capability=(9, 0),
                      precision="default")[0] == "triton_nlc"
    assert sel.choose("depthwise", "NVIDIA H200", "float32", "nlc", p, capability=(9, 0),
                      precision="tf32")[0] == "torch_nlc"


def test_no_stand_in_on_rocm(monkeypatch):
    """ROCm GPUs report HIP versions as the capability (an MI250: 9.0, like an H100)."""
    cnn._capability.cache_clear()
    monkeypatch.setattr(torch.version, "hip", "6.2", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: (9, 0))
    try:
        assert cnn._capability("cuda:0") is None
    finally:
        cnn._capability.cache_clear()


def test_float32_picks_apply_under_the_precision_policy_they_were_measured_in(table):
    """A float32 entry measured under one precision policy is picked only while that policy is in
    force (the choice is re-made when the policy changes); under another the module falls back
    and says why. Entries that did not record a policy apply under any."""
    from convbench.precision import current, policy

    path = table({**entry("native"), "precision": "default"})
    m = DepthWiseConv1d(16, 16, 5, padding=2, backend="auto", selection=path)
    x = torch.randn(2, 16, 64)
    with policy("default"):
        assert current() == "default"
        _run(m, x)
        assert m.last_choice.impl == "native" and "under precision 'default'" in m.last_choice.why
    with policy("ieee"):
        assert current() == "ieee"
        _run(m, x)
        assert m.last_choice.fallback and "measured under precision default, not 'ieee'" in m.last_choice.why
    m = DepthWiseConv1d(16, 16, 5, padding=2, backend="auto", selection=table(entry("native"), name="old.json"))
    with policy("tf32"):
        _run(m, x)
        assert m.last_choice.impl == "native"
