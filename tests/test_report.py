"""Reports, winner tables and selection tables: synthetic runs (exact) and a tiny real CPU run."""

import base64
import json
import re

import pytest
from click.testing import CliRunner

from convbench import report as rp
from convbench.cli import main
from convbench.problem import make_problem
from convbench.results import RunWriter, write_meta

DEVICE = "Fake CPU 9000"


def row(op, impl, layout, status="ok", median=None, ci=None, *, L=128, C_in=64, C_out=None, K=None,
        reason=None, dtype="float32", device_name=DEVICE, device="cpu"):
    """A schema-valid results row; ci is the half-width of the median's CI in ms."""
    K = K if K is not None else (7 if op == "depthwise" else 1)
    pad = (K - 1) // 2
    p = make_problem(op, N=2, C_in=C_in, C_out=C_out, L=L, K=K, padding=pad)
    ok = status == "ok"
    flops, nbytes = p.flops, p.bytes(dtype)
    r = {"op": op, "impl": impl, "layout": layout, "device": device, "dtype": dtype, "mode": "fwd",
         **p.shape(), "L_out": p.L_out, "status": status, "reason": reason,
         "median_ms": median, "q1_ms": None, "q3_ms": None,
         "ci_low_ms": median - ci if median is not None and ci is not None else None,
         "ci_high_ms": median + ci if median is not None and ci is not None else None,
         "n_samples": 20 if median is not None else None, "flops": flops, "bytes": nbytes,
         "tflops": flops / (median * 1e-3) / 1e12 if ok else None,
         "gbps": nbytes / (median * 1e-3) / 1e9 if ok else None, "pct_peak_bw": None,
         "peak_mem_bytes": 3 * nbytes if ok else None, "max_rel_err": 1e-6 if median else None,
         "backend": "onednn" if ok else None, "device_name": device_name, "precision": "default",
         "tf32": False, "stop_reason": "target" if ok else None, "rel_ci": 0.01}
    if status == "wrong":
        r["max_rel_err"] = 0.5
        r["reason"] = reason or "max rel err 5.0e-01 > tolerance 1.0e-05"
    return r


SYNTHETIC = [
    # L=128: native wins clearly; unfold_einsum is fastest but wrong; triton skipped
    row("depthwise", "torch", "ncl", median=1.00, ci=0.02),
    row("depthwise", "native", "ncl", median=0.50, ci=0.01),
    row("depthwise", "unfold_einsum", "ncl", "wrong", median=0.40, ci=0.01),
    row("depthwise", "triton", "ncl", "skipped", reason="Triton kernels need a CUDA GPU"),
    # L=512: native is 1 % faster, inside the CIs: a tie, the baseline wins
    row("depthwise", "torch", "ncl", median=2.00, ci=0.05, L=512),
    row("depthwise", "native", "ncl", median=1.98, ci=0.06, L=512),
    row("depthwise", "unfold_einsum", "ncl", "error", L=512, reason="RuntimeError: boom"),
    # nlc: triton_nlc and cudnn_nlc tie; cudnn_nlc is simpler
    row("depthwise", "torch_nlc", "nlc", median=1.00, ci=0.01),
    row("depthwise", "triton_nlc", "nlc", median=0.500, ci=0.010),
    row("depthwise", "cudnn_nlc", "nlc", median=0.505, ci=0.012),
    # a case where nothing ran
    row("depthwise", "torch", "ncl", "oom", L=4096, reason="CUDA out of memory"),
    row("depthwise", "native", "ncl", "timeout", L=4096, reason="no result after 60 s"),
    # pointwise: unfold_einsum fastest, clear of matmul (the runner-up)
    row("pointwise", "torch", "ncl", median=1.000, ci=0.010, C_out=256),
    row("pointwise", "matmul", "ncl", median=0.995, ci=0.005, C_out=256),
    row("pointwise", "unfold_einsum", "ncl", median=0.900, ci=0.010, C_out=256),
]


def write_run(path, rows, device_name=DEVICE):
    with RunWriter(path) as w:
        for r in rows:
            w.write(r)
    write_meta(path, {
        "libraries": {"torch": "2.x", "cuda": None, "cudnn": None, "triton": "3.x", "python": "3.11"},
        "precision_flags": {"cudnn_allow_tf32": True, "cuda_matmul_allow_tf32": False},
        "devices": {"cpu": {"device": "cpu", "device_name": device_name, "threads": 2}},
        "ceilings": {"cpu": {"copy_gbps": 20.0, "matmul_tflops": {"float32": 0.3},
                             "device_name": device_name}},
        "config": {"name": "synthetic"}, "config_hash": "abc", "git_sha": "deadbeef",
    })
    return path


@pytest.fixture
def synth(tmp_path):
    return write_run(tmp_path / "synth", SYNTHETIC)


def _winner(w, op, layout, L):
    hit = w[(w.op == op) & (w.layout == layout) & (w.L == L)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_winner_logic_wrong_never_wins_ties_prefer_baseline(synth):
    w = rp.winners(rp.load_runs([synth]).df)
    a = _winner(w, "depthwise", "ncl", 128)
    assert a.winner == "native" and a.fastest == "native"  # the faster unfold_einsum is wrong
    assert a.runner_up == "torch" and a.speedup == pytest.approx(2.0) and a.margin == pytest.approx(2.0)
    assert not a.tie and a.n_not_ok == 2
    b = _winner(w, "depthwise", "ncl", 512)
    assert b.winner == "torch" and b.tie and b.tied_with == ["native"] and b.fastest == "native"
    assert b.speedup == pytest.approx(1.0) and b.runner_up == "native"
    assert "within noise" in b.note
    c = _winner(w, "depthwise", "nlc", 128)
    assert c.winner == "cudnn_nlc" and c.fastest == "triton_nlc" and c.tie
    assert c.baseline == "torch_nlc" and c.speedup == pytest.approx(1 / 0.505)
    d = _winner(w, "depthwise", "ncl", 4096)
    assert d.winner is None and d.note == "no implementation ran correctly"
    e = _winner(w, "pointwise", "ncl", 128)
    assert e.winner == "unfold_einsum" and e.runner_up == "matmul" and not e.tie
    assert e.margin == pytest.approx(0.995 / 0.9)


def test_noise_floor_ties_even_without_overlapping_cis():
    import pandas as pd

    rows = [row("depthwise", "torch", "ncl", median=1.000, ci=0.001),
            row("depthwise", "native", "ncl", median=0.985, ci=0.001)]
    w = rp.winners(pd.DataFrame(rows))
    assert w.iloc[0].winner == "torch" and w.iloc[0].tie


def test_simplicity_order():
    keys = sorted(["triton", "native", "unfold_einsum", "torch", "zzz_plugin", "cudnn"],
                  key=lambda n: rp.simplicity_key("depthwise", "ncl", n))
    assert keys == ["torch", "native", "cudnn", "unfold_einsum", "triton", "zzz_plugin"]
    assert rp.simplicity_key("pointwise", "nlc", "linear_nlc") < rp.simplicity_key("pointwise", "nlc", "torch")


def test_failures_list_every_non_ok_row(synth):
    bad = rp.failures(rp.load_runs([synth]).df)
    assert sorted(bad.status) == ["error", "oom", "skipped", "timeout", "wrong"]
    assert bad.iloc[0].status == "wrong" and "tolerance" in bad.iloc[0].reason


def _images(html_text):
    return re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html_text)


def test_html_report_is_self_contained(synth, tmp_path):
    out = rp.write_report([synth], tmp_path / "r.html")
    text = out.read_text()
    imgs = _images(text)
    assert len(imgs) >= 7  # latency, heatmap, memory per group (some), roofline
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", text)
    for needle in ("Environment", "Fake CPU 9000", "copy GB/s", "cudnn_allow_tf32", "Roofline",
                   "Skips and failures", "tie: torch", "RuntimeError: boom", "precision / tf32",
                   "no implementation ran correctly", "onednn"):
        assert needle in text, needle


def test_environment_names_the_timing_mode(tmp_path):
    """The Environment table says how a GPU run was timed (dirty or clean cold-L2 flush, warm,
    graphs), from meta.json's comparability, and that a CPU run used the host clock."""
    run = write_run(tmp_path / "gpu", [row("depthwise", "torch", "ncl", median=1.0, ci=0.01, device="cuda:0")])
    meta = json.loads((run / "meta.json").read_text())
    meta["devices"] = {"cuda:0": {"device": "cuda:0", "device_name": DEVICE}}
    meta["ceilings"] = {}
    meta["comparability"] = {"measure": {"l2": "clean", "timer": 2}}
    (run / "meta.json").write_text(json.dumps(meta))
    env = rp._env_table(rp.load_runs([run]).metas)
    assert list(env["timing"]) == ["CUDA events, cold L2, clean flush"]
    cpu = rp._env_table(rp.load_runs([write_run(tmp_path / "cpu", SYNTHETIC)]).metas)
    assert set(cpu["timing"]) == {"host clock"}


def _gpu_run(path, measure):
    run = write_run(path, [row("depthwise", "torch", "ncl", median=1.0, ci=0.01, device="cuda:0"),
                           row("depthwise", "triton", "ncl", median=0.5, ci=0.01, device="cuda:0")])
    meta = json.loads((run / "meta.json").read_text())
    meta.update(devices={"cuda:0": {"device": "cuda:0", "device_name": DEVICE}}, ceilings={},
                comparability={"measure": measure})
    (run / "meta.json").write_text(json.dumps(meta))
    return run


def test_runs_timed_differently_are_flagged_in_report_and_select(tmp_path):
    """Winners across runs timed with different flushes or with graphs compare timers, not
    kernels: the report and `select` say so; runs timed alike (and CPU runs) raise nothing."""
    a = _gpu_run(tmp_path / "events_cold", {"l2": "cold"})
    b = _gpu_run(tmp_path / "graph_clean", {"l2": "clean", "graph": True})
    c = _gpu_run(tmp_path / "events_cold_2", {"l2": "cold"})
    warning = rp.load_runs([a, b]).timing_warning()
    assert warning and "events_cold" in warning and "graph_clean" in warning and "clean flush" in warning
    assert rp.load_runs([a, c]).timing_warning() is None
    assert rp.load_runs([a, write_run(tmp_path / "cpu", SYNTHETIC)]).timing_warning() is None
    assert "Warning: The GPU runs were timed differently" in rp.write_report([a, b], tmp_path / "r.md").read_text()
    res = CliRunner().invoke(main, ["select", str(a), str(b), "-o", str(tmp_path / "sel.json")])
    assert res.exit_code == 0 and "timed differently" in res.output


def test_markdown_report_writes_images_beside(synth, tmp_path):
    out = rp.write_report([synth], tmp_path / "r.md")
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\((r_files/fig\d+\.png)\)", text)
    assert links and all((tmp_path / link).is_file() for link in links)
    assert "| shape | best |" in text and "## Skips and failures" in text


def test_several_runs_concatenate(synth, tmp_path):
    other = write_run(tmp_path / "gpu", [row("depthwise", "torch", "ncl", median=0.1, ci=0.001,
                                             device_name="Fake GPU", device="cuda:0")],
                      device_name="Fake GPU")
    runs = rp.load_runs([synth, other])
    assert set(runs.df.device_name) == {DEVICE, "Fake GPU"}
    doc = rp.build_doc(runs)
    heads = [b[2] for b in doc.blocks if b[0] == "h"]
    assert any("Fake GPU" in h for h in heads) and any(DEVICE in h for h in heads)


def test_selection_json_and_choose(synth, tmp_path):
    path = rp.write_selection(rp.load_runs([synth]), tmp_path / "sel.json")
    data = json.loads(path.read_text())
    assert data["unresolved_cases"] == 1 and "between_shapes" in data["rules"]
    e = next(x for x in data["entries"] if x["layout"] == "ncl" and x["shape"]["L"] == 128
             and x["op"] == "depthwise")
    assert e["impl"] == "native" and e["margin_over_runner_up"] == pytest.approx(2.0)
    assert e["speedup_over_baseline"] == pytest.approx(2.0) and e["runner_up"] == "torch"
    sel = rp.Selection.load(path)
    p = make_problem("depthwise", N=2, C_in=64, L=128, K=7, padding=3)
    name, why = sel.choose("depthwise", DEVICE, "float32", "ncl", p)
    assert name == "native" and why.startswith("exact match")
    near = make_problem("depthwise", N=2, C_in=64, L=160, K=7, padding=3)  # nearer L=128 than 512
    name, why = sel.choose("depthwise", DEVICE, "float32", "ncl", near)
    assert name == "native" and "nearest measured case N=2 C=64 L=128 K=7" in why
    far = make_problem("depthwise", N=2, C_in=4096, L=128, K=7, padding=3)
    assert sel.choose("depthwise", DEVICE, "float32", "ncl", far)[0] == "torch"
    name, why = sel.choose("depthwise", "Other GPU", "float32", "nlc", p)
    assert name == "torch_nlc" and "no entries for device 'Other GPU'" in why
    strided = make_problem("depthwise", N=2, C_in=64, L=128, K=7, padding=3, stride=2)
    assert sel.choose("depthwise", DEVICE, "float32", "ncl", strided)[0] == "torch"


# ---------------------------------------------------------------- the CLI


def test_cli_report_select_plot(synth, tmp_path):
    cli = CliRunner()
    r = cli.invoke(main, ["report", str(synth), "-o", str(tmp_path / "a.html")])
    assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["report", str(synth), "-o", str(tmp_path / "b.md")])
    assert r.exit_code == 0 and (tmp_path / "b_files").is_dir()
    r = cli.invoke(main, ["select", str(synth), "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 0 and "wrote 4 entries" in r.output
    r = cli.invoke(main, ["plot", str(synth), "--x", "L", "--y", "tflops", "--filter", "op=depthwise",
                          "--filter", "layout=ncl", "-o", str(tmp_path / "f.svg")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    r = cli.invoke(main, ["plot", str(synth), "--x", "impl", "--y", "speedup", "--hue", "",
                          "-o", str(tmp_path / "f.png")])
    assert r.exit_code == 0, r.output


def test_cli_bad_input_exits_2(synth, tmp_path):
    cli = CliRunner()
    (tmp_path / "empty").mkdir()
    cases = [
        (["report", str(tmp_path / "nope"), "-o", str(tmp_path / "x.html")], "does not exist"),
        (["select", str(tmp_path / "empty"), "-o", str(tmp_path / "x.json")], "not a convbench run folder"),
        (["plot", str(synth), "--y", "speed"], "no column named 'speed'"),
        (["plot", str(synth), "--filter", "colour=red"], "no column named 'colour'"),
        (["plot", str(synth), "--filter", "op"], "could not parse 'op'"),
        (["plot", str(synth), "--filter", "op=conv2d"], "nothing to plot"),
        (["report", str(synth), "-o", str(tmp_path / "r.pdf")], "name the file .html"),
        (["list", "--device", "cuda:7"], "--device: device 'cuda:7' does not exist here"),
        (["list", "--device", "gpu"], "Did you mean 'cuda'?"),
    ]
    for args, msg in cases:
        r = cli.invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.output and "Traceback" not in r.output, r.output
        assert "--device: --device" not in r.output, r.output


# ---------------------------------------------------------------- a real CPU run

TINY = """
name: tiny
ops: [depthwise, pointwise]
impls: [torch, native, cudnn, torch_nlc, matmul, linear_nlc]
devices: [cpu]
dtypes: [float32]
layouts: [ncl, nlc]
modes: [fwd]
shapes:
  depthwise: {N: [1], C_in: [8], L: [16, 32], K: [3], padding: [same]}
  pointwise: {N: [1], C_in: [8], C_out: [16], L: [16]}
measure: {l2: warm, target_rel_ci: 0.5, min_samples: 3, max_samples: 5, max_time_s: 0.02, warmup_ms: 1}
"""


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    from convbench.config import load_config
    from convbench.runner import run_sweep

    d = tmp_path_factory.mktemp("cpu")
    (d / "tiny.yaml").write_text(TINY)
    return run_sweep(load_config(d / "tiny.yaml"), d / "run", isolation="none")


def test_report_and_selection_from_a_real_cpu_run(cpu_run, tmp_path):
    runs = rp.load_runs([cpu_run])
    assert set(runs.df.status) == {"ok", "skipped"}
    w = rp.winners(runs.df)
    assert w.winner.notna().all() and len(w) == 6
    out = rp.write_report([cpu_run], tmp_path / "cpu.html")
    text = out.read_text()
    assert len(_images(text)) >= 5 and "cudnn runs on cuda, not cpu" in text
    assert rp.write_report([cpu_run], tmp_path / "cpu.md").is_file()
    sel = json.loads(rp.write_selection(runs, tmp_path / "sel.json").read_text())
    assert len(sel["entries"]) == 6
    assert {e["impl"] for e in sel["entries"]} <= {"torch", "native", "torch_nlc", "matmul", "linear_nlc"}


def _precision_rows(precision, triton_ms, torch_ms, dtype="float32"):
    rows = [row("pointwise", "torch", "ncl", median=torch_ms, ci=0.005, C_out=256, dtype=dtype),
            row("pointwise", "triton", "ncl", median=triton_ms, ci=0.005, C_out=256, dtype=dtype)]
    for r in rows:
        r["precision"] = precision
    return rows


def test_runs_under_two_precision_policies_keep_both_and_pick_per_policy(tmp_path):
    """The same float32 case measured under --precision tf32 and --precision ieee is two cases:
    loading both runs keeps every row (one was once dropped as a duplicate), winners are chosen
    within a policy, the report says which, and the selection table's float32 picks apply only to
    a caller under the policy they were measured in (16-bit picks to any)."""
    tf32 = write_run(tmp_path / "tf32", _precision_rows("tf32", 0.5, 1.0)
                     + _precision_rows("tf32", 0.5, 1.0, dtype="bfloat16"))
    ieee = write_run(tmp_path / "ieee", _precision_rows("ieee", 2.0, 1.0))
    runs = rp.load_runs([tf32, ieee])
    assert len(runs.df) == 6 and runs.duplicates == 0
    w = rp.winners(runs.df)
    picks = {(r.dtype, r.precision): r.winner for r in w.itertuples()}
    assert picks == {("float32", "tf32"): "triton", ("float32", "ieee"): "torch", ("bfloat16", "tf32"): "triton"}
    text = rp.write_report([tf32, ieee], tmp_path / "r.md").read_text()
    assert "precision tf32" in text and "precision ieee" in text
    sel = rp.Selection(rp.selection_dict(runs)["entries"])
    p = make_problem("pointwise", N=2, C_in=64, C_out=256, L=128)
    assert sel.choose("pointwise", DEVICE, "float32", "ncl", p, precision="tf32")[0] == "triton"
    assert sel.choose("pointwise", DEVICE, "float32", "ncl", p, precision="ieee")[0] == "torch"
    impl, why = sel.choose("pointwise", DEVICE, "float32", "ncl", p, precision="default")
    assert impl == "torch" and "measured under precision ieee, tf32, not 'default'" in why
    assert sel.choose("pointwise", DEVICE, "bfloat16", "ncl", p, precision="ieee")[0] == "triton"
