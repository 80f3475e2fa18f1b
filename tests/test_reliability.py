"""A sweep survives crashes, OOM, hangs, wrong and NaN output, interrupts; resume loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from convbench.cli import main
from convbench.config import parse_config
from convbench.registry import unregister
from convbench.results import load, read_rows, row_key
from convbench.runner import execute_case, plan_jobs, run_sweep

TESTS = Path(__file__).parent
ROOT = TESTS.parent
FAST = {"min_samples": 3, "max_time_s": 0.02, "warmup_ms": 1}
SHAPES = {"N": [1], "C_in": [4], "L": [16, 100], "K": [3], "padding": ["same"]}


@pytest.fixture
def faulty(monkeypatch):
    """Register the faulty implementations here and, through CONVBENCH_PLUGINS, in workers."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("CONVBENCH_PLUGINS", "faulty_impls")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    from convbench.config import load_plugins

    load_plugins()
    import faulty_impls

    yield faulty_impls.NAMES
    for name in faulty_impls.NAMES:  # other tests' `impls: all` must not meet them
        unregister("depthwise", name)
    sys.modules.pop("faulty_impls", None)


def config(**kw):
    raw = {"ops": ["depthwise"], "devices": ["cpu"], "shapes": SHAPES, "measure": FAST}
    raw.update(kw)
    return parse_config(raw, "test.yaml")


def test_faults_are_isolated_and_recorded(tmp_path, faulty):
    """Every fault in one sweep, in worker processes: each recorded with its status, the good
    implementation of the same case still measured, and the sweep goes on to the next case."""
    cfg = config(impls=["torch", *faulty], timeout_s=2.5)
    run_sweep(cfg, tmp_path)
    df = load(tmp_path)
    assert len(df) == 2 * (1 + len(faulty))
    assert len({row_key(r) for r in read_rows(tmp_path / "results.jsonl")}) == len(df)
    short = df[df.L == 16].set_index("impl")
    expect = {"torch": "ok", "faulty_raise": "error", "faulty_wrong": "wrong", "faulty_nan": "wrong",
              "faulty_oom": "oom", "faulty_exit": "error", "faulty_hang": "timeout", "faulty_second": "wrong"}
    assert short.status.to_dict() == expect
    assert "faulty_raise: deliberate failure" in short.reason["faulty_raise"]
    assert "max_rel_err" in short.reason["faulty_wrong"]
    assert "non-finite output" in short.reason["faulty_nan"]
    assert "out of memory" in short.reason["faulty_oom"]
    assert "exit code 3" in short.reason["faulty_exit"] and "verify of faulty_exit" in short.reason["faulty_exit"]
    assert "no progress for 2.5 s" in short.reason["faulty_hang"]
    assert short.median_ms["torch"] > 0 and short.max_rel_err["torch"] < 1e-5
    assert short.max_rel_err.isna()["faulty_nan"]  # NaN output never passes as a number
    # the killed and the hung worker were replaced: three worker processes served this case
    assert short.worker.nunique() == 3
    long = df[df.L == 100].set_index("impl")
    assert long.status["torch"] == "ok"
    assert set(long.status.drop("torch")) == {"skipped"}
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["plugins"] == ["faulty_impls"] and meta["finished_at"]


def test_nan_and_wrong_inline(faulty):
    """The numerics guard in-process: NaN/Inf and wrong values are `wrong`, never timed."""
    cfg = config(impls=["torch", "faulty_wrong", "faulty_nan", "faulty_raise", "faulty_oom", "faulty_second"],
                 shapes={**SHAPES, "L": [16]})
    (job,), _ = plan_jobs(cfg, None, set(), None)
    rows = {r["impl"]: r for r in execute_case(job, "cpu")}
    assert {k: r["status"] for k, r in rows.items()} == {
        "torch": "ok", "faulty_wrong": "wrong", "faulty_nan": "wrong", "faulty_raise": "error",
        "faulty_oom": "oom", "faulty_second": "wrong"}  # the second call is verified too
    assert rows["faulty_nan"].get("median_ms") is None and rows["faulty_wrong"].get("median_ms") is None


def test_impl_unknown_to_the_worker_is_an_error_row(tmp_path):
    """A name the worker cannot find (plugin not passed on) is recorded, not silently dropped."""
    cfg = config(impls=["torch"], shapes={**SHAPES, "L": [16]})
    (job,), _ = plan_jobs(cfg, None, set(), None)
    rows = execute_case(replace(job, impls=("torch", "ghost")), "cpu")
    ghost = next(r for r in rows if r["impl"] == "ghost")
    assert ghost["status"] == "error" and "CONVBENCH_PLUGINS" in ghost["reason"]


def test_two_workers_share_the_cases(tmp_path):
    """`devices: all` on a 2-GPU host, faked with two CPU workers behind one label."""
    cfg = config(impls=["torch"], shapes={**SHAPES, "L": [8, 16, 24, 32, 40, 48]})
    cfg = replace(cfg, workers={"cpu": ("cpu", "cpu")})
    run_sweep(cfg, tmp_path)
    df = load(tmp_path)
    assert len(df) == 6 and set(df.status) == {"ok"}
    assert sorted(df.L) == [8, 16, 24, 32, 40, 48]
    assert df.worker.nunique() == 2, df.worker.tolist()


def _rows(path: Path) -> list[dict]:
    lines = path.read_text().splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)  # no half-written line
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("sig,isolation", [(signal.SIGINT, "process"), (signal.SIGTERM, "none")])
def test_interrupt_then_resume(tmp_path, sig, isolation):
    """A signal to a real `convbench run` stops it with a valid file, exit 130 and the resume
    command; --resume then finishes without re-running (or duplicating) a finished row."""
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(json.dumps({
        "ops": ["depthwise"], "impls": ["torch", "native"], "devices": ["cpu"],
        "shapes": {"N": [1], "C_in": [4, 8], "L": list(range(16, 96, 8)), "K": [3],
                   "padding": ["same"]},
        # every row runs its whole 0.1 s (a CI target it cannot meet), so the 40 rows take ~4 s
        # and the signal lands mid-run; with FAST the sweep could finish before it (seen in CI)
        "measure": {**FAST, "max_time_s": 0.1, "target_rel_ci": 0.0001}}))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "convbench", "run", str(cfg), "--quiet", "--isolation", isolation]
    # a child inherits an ignored SIGINT (a background job of a non-interactive shell, as CI
    # scripts may start pytest); Python then never turns SIGINT into KeyboardInterrupt and
    # convbench keeps the inherited disposition (as nohup expects), so give the child the default
    proc = subprocess.Popen([*cmd, "--out", str(run)], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = run / "results.jsonl"
    deadline = time.monotonic() + 60
    while not (results.exists() and results.read_text().count("\n") >= 6):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(sig)
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    resume = f"convbench run {cfg} --resume {run}"
    assert resume in err
    before = _rows(results)
    assert 6 <= len(before) < 40
    meta = json.loads((run / "meta.json").read_text())
    assert meta["interrupted"] == sig.name

    res = subprocess.run([*cmd, "--resume", str(run)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    after = _rows(results)
    assert after[: len(before)] == before  # finished rows are kept as they were
    keys = [row_key(r) for r in after]
    assert len(keys) == len(set(keys)) == 2 * 2 * 10
    assert {r["status"] for r in after} == {"ok"}
    assert json.loads((run / "meta.json").read_text())["interrupted"] is None


def test_resume_refuses_incomparable_settings_and_skips_done_rows(tmp_path):
    base = {"ops": ["depthwise"], "impls": ["torch"], "devices": ["cpu"],
            "shapes": {**SHAPES, "L": [16]}, "measure": FAST}
    cfg = tmp_path / "a.yaml"
    cfg.write_text(json.dumps(base))
    run = tmp_path / "run"
    opts = ["--quiet", "--isolation", "none"]
    assert CliRunner().invoke(main, ["run", str(cfg), "--out", str(run), *opts]).exit_code == 0
    n = len(read_rows(run / "results.jsonl"))
    res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(run), *opts])
    assert res.exit_code == 2 and "already holds a run" in res.output
    res = CliRunner().invoke(main, ["run", str(cfg), "--resume", str(run), *opts])
    assert res.exit_code == 0 and len(read_rows(run / "results.jsonl")) == n  # nothing re-run
    assert f"0 new, {n} from before --resume" in res.output, res.output
    for change, needle in [({"measure": {**FAST, "max_time_s": 0.5}}, "measure.max_time_s: 0.02 then, 0.5 now"),
                           ({"seed": 7}, "seed: 0 then, 7 now"),
                           ({"precision": "ieee"}, "precision: 'default' then, 'ieee' now")]:
        other = tmp_path / "b.yaml"
        other.write_text(json.dumps({**base, **change}))
        res = CliRunner().invoke(main, ["run", str(other), "--resume", str(run), *opts])
        assert res.exit_code == 2, res.output
        assert needle in res.output and "would not be comparable" in res.output
    res = CliRunner().invoke(main, ["run", str(cfg), "--resume", str(run), "--shard", "1/2", *opts])
    assert res.exit_code == 2 and "--shard" in res.output


def test_shards_merge_into_the_whole_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"ops": ["depthwise"], "impls": ["torch", "native"], "devices": ["cpu"],
                               "shapes": {**SHAPES, "L": [8, 16, 24]}, "measure": FAST}))
    opts = ["--quiet", "--isolation", "none"]
    for i in (1, 2):
        res = CliRunner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / f"s{i}"),
                                        "--shard", f"{i}/2", *opts])
        assert res.exit_code == 0, res.output
    s1, s2 = (load(tmp_path / f"s{i}") for i in (1, 2))
    assert len(s1) == 4 and len(s2) == 2  # 3 cases x 2 impls, cases 1 and 3 / case 2
    assert not set(s1.L) & set(s2.L)
    res = CliRunner().invoke(main, ["merge", str(tmp_path / "s1"), str(tmp_path / "s2"),
                                    "-o", str(tmp_path / "all")])
    assert res.exit_code == 0, res.output
    merged = load(tmp_path / "all")
    assert len(merged) == 6 and sorted(set(merged.L)) == [8, 16, 24]
    meta = json.loads((tmp_path / "all" / "meta.json").read_text())
    assert meta["merged_from"] == [str(tmp_path / "s1"), str(tmp_path / "s2")]
    assert (tmp_path / "all" / "results.csv").exists()
    # overlapping runs and a taken output folder are refused
    res = CliRunner().invoke(main, ["merge", str(tmp_path / "s1"), str(tmp_path / "s1"),
                                    "-o", str(tmp_path / "dup")])
    assert res.exit_code == 2 and "is in both" in res.output
    res = CliRunner().invoke(main, ["merge", str(tmp_path / "s1"), "-o", str(tmp_path / "all")])
    assert res.exit_code == 2 and "already holds a run" in res.output


def test_torn_last_line_is_repaired_on_resume(tmp_path):
    from convbench.results import RunWriter

    with RunWriter(tmp_path) as w:
        w.write({"impl": "a", "op": "depthwise"})
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"impl": "b", "op": "dep')  # power loss mid-line
    assert [r["impl"] for r in read_rows(tmp_path / "results.jsonl")] == ["a"]
    with RunWriter(tmp_path) as w:
        w.write({"impl": "c"})
    assert [r["impl"] for r in _rows(tmp_path / "results.jsonl")] == ["a", "c"]


def test_one_writer_per_run_folder(tmp_path):
    from convbench.results import ResultsError, RunWriter

    with RunWriter(tmp_path), pytest.raises(ResultsError, match="another convbench process"):
        RunWriter(tmp_path)


def test_poison_fills_the_freed_output_blocks():
    """On the CPU the allocator may not hand the block back; the NaN fill itself is checked."""
    import torch

    from convbench.runner import out_specs, poison

    specs = out_specs((torch.zeros(3, 4), torch.ones(2, dtype=torch.bfloat16), None))
    assert specs == [(torch.Size([3, 4]), torch.float32, torch.device("cpu")),
                     (torch.Size([2]), torch.bfloat16, torch.device("cpu"))]
    poison(specs)  # allocates and frees NaN blocks of those sizes without error


def test_same_size_copy_is_timed_alongside_and_never_a_row(monkeypatch):
    """The same-size copy floor: measured in the same rounds as the implementations (on CUDA;
    here forced on the CPU), written into each ok row, never a row of its own."""
    import convbench.runner as runner
    monkeypatch.setattr(runner, "SAME_SIZE_COPY_DEVICES", ("cuda", "cpu"))
    cfg = config(impls=["torch", "unfold_einsum"], shapes={**SHAPES, "L": [64]})
    (job,), _ = plan_jobs(cfg, None, set(), None)
    rows = execute_case(job, "cpu")
    assert sorted(r["impl"] for r in rows) == ["torch", "unfold_einsum"]
    for r in rows:
        assert r["status"] == "ok" and r["same_size_copy_ms"] > 0
        assert abs(r["pct_same_size_copy"] - 100 * r["same_size_copy_ms"] / r["median_ms"]) < 1e-9
    monkeypatch.setattr(runner, "SAME_SIZE_COPY_DEVICES", ("cuda",))
    assert all("same_size_copy_ms" not in r for r in execute_case(job, "cpu"))


def test_same_size_copy_survives_an_impl_failing_mid_measurement(monkeypatch):
    """An implementation that passes verification and then raises while timed sends the case to
    one-at-a-time measurement; the others' rows keep their same-size floor."""
    import torch.nn.functional as F

    import convbench.runner as runner
    from convbench.registry import Impl, register

    def build(p, inputs):
        calls = []

        def fn():
            calls.append(1)
            if len(calls) > 2:  # the verified first and second calls, then a failure
                raise RuntimeError("flaky: fails once timed")
            return F.conv1d(inputs.x, inputs.weight, inputs.bias, p.stride, p.padding, p.dilation,
                            groups=p.groups)
        return fn

    register(Impl(name="flaky_timed", op="depthwise", layout="ncl", build=build,
                  devices=("cpu",), modes=("fwd",), description="test-only"))
    try:
        monkeypatch.setattr(runner, "SAME_SIZE_COPY_DEVICES", ("cuda", "cpu"))
        cfg = config(impls=["torch", "flaky_timed"], shapes={**SHAPES, "L": [64]})
        (job,), _ = plan_jobs(cfg, None, set(), None)
        rows = {r["impl"]: r for r in execute_case(job, "cpu")}
    finally:
        unregister("depthwise", "flaky_timed")
    assert rows["flaky_timed"]["status"] == "error" and "fails once timed" in rows["flaky_timed"]["reason"]
    assert rows["torch"]["status"] == "ok" and rows["torch"]["same_size_copy_ms"] > 0


def test_same_size_copy_moves_the_case_bytes():
    from convbench.runner import same_size_copy
    for how in ("copy_", "add"):
        copy = same_size_copy(8000, "cpu", how)
        src, dst = copy.buffers
        src.fill_(3.0)
        copy()
        assert {src.numel() * src.element_size(), dst.numel() * dst.element_size()} == {4000}
        assert bool((dst == 3.0).all())
