"""`convbench profile`: traces on CPU that parse and hold the operators, and that TensorBoard serves."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from convbench.cli import main

CONFIG = """\
name: tiny
ops: [depthwise]
impls: [torch, unfold_einsum]
devices: [cpu]
dtypes: [float32]
layouts: [ncl]
shapes:
  N: [2]
  C_in: [8]
  L: [33, 64]
  K: [3]
  padding: [same]
"""
CASE = "depthwise-ncl-float32-N2-C8-L33-K3-cpu"
RUNS = {f"{CASE}__torch": "aten::conv1d", f"{CASE}__unfold_einsum": "aten::einsum"}


@pytest.fixture(scope="module")
def traced(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("profile")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(CONFIG)
    logdir = tmp / "tb"
    res = CliRunner().invoke(main, ["profile", str(cfg), "--limit", "1", "--logdir", str(logdir)])
    assert res.exit_code == 0, res.output
    return logdir, res.output


def _trace_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("*.pt.trace.json"))


def test_one_run_per_case_and_impl_with_operator_events(traced):
    logdir, output = traced
    assert sorted(p.name for p in logdir.iterdir()) == sorted(RUNS)
    for run, op in RUNS.items():
        files = _trace_files(logdir / run)
        assert len(files) == 1, files  # one schedule cycle -> one trace
        trace = json.loads(files[0].read_text())
        events = trace["traceEvents"]
        names = {e.get("name") for e in events}
        assert op in names
        steps = {e["name"] for e in events if str(e.get("name", "")).startswith("ProfilerStep#")}
        assert len(steps) == 3  # active=3 by default
        assert trace.get("record_shapes") == 1 and trace.get("profile_memory") == 1
        assert f"traced   {run}  backend=" in output
    assert "wrote 2 run(s)" in output


def test_rerun_replaces_old_traces_and_case_filter(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CONFIG)
    args = ["profile", str(cfg), "--impl", "torch", "--case", "L64", "--logdir", str(tmp_path / "tb"),
            "--wait", "0", "--warmup", "1", "--active", "1"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "replaced 1 old trace(s)" in second.output
    runs = [p.name for p in (tmp_path / "tb").iterdir()]
    assert runs == ["depthwise-ncl-float32-N2-C8-L64-K3-cpu__torch"]
    assert len(_trace_files(tmp_path / "tb" / runs[0])) == 1


@pytest.mark.parametrize("extra, needle", [
    (["--impl", "nope"], "--impl: no implementation named 'nope'"),
    (["--case", "K99"], "--case: no case of"),
    (["--limit", "0"], "--limit: 0 is not allowed"),
    (["--active", "0"], "--active: 0 is not allowed"),
])
def test_bad_input_exits_2_with_one_paragraph(tmp_path, extra, needle):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CONFIG)
    res = CliRunner().invoke(main, ["profile", str(cfg), "--logdir", str(tmp_path / "tb"), *extra])
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output and res.output.count("\n") == 1
    assert not (tmp_path / "tb").exists()


def test_missing_config_exits_2(tmp_path):
    res = CliRunner().invoke(main, ["profile", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2 and "config file not found" in res.output


# ------------------------------------------------------------ TensorBoard + torch-tb-profiler


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read().decode())


def test_tensorboard_serves_the_runs(traced, tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("torch_tb_profiler")
    logdir, _ = traced
    port = _free_port()
    log = open(tmp_path / "tensorboard.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast=false"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/data/plugin/pytorch_profiler"
    try:
        runs: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "tensorboard.log").read_text()
            try:
                runs = _get_json(f"{base}/runs")["runs"]
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                runs = []
            if set(RUNS) <= set(runs):
                break
            time.sleep(0.25)
        log.flush()
        assert set(RUNS) <= set(runs), f"runs seen: {runs}\n{(tmp_path / 'tensorboard.log').read_text()}"
        for run, op in RUNS.items():
            q = urllib.parse.quote(run)
            views = _get_json(f"{base}/views?run={q}")
            assert {"Overview", "Operator", "Trace"} <= set(views)
            impl = run.split("__")[1]
            assert _get_json(f"{base}/workers?run={q}&view=Operator") == [impl]
            spans = _get_json(f"{base}/spans?run={q}&worker={impl}")
            table = _get_json(f"{base}/operation?run={q}&worker={impl}&span={spans[0]}"
                              "&view=Operator&group_by=Operation")
            assert op in {row[0] for row in table["host_total_time"]["rows"]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
