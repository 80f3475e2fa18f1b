"""The regression gate on synthetic seeded runs: verdicts, exit codes, messages, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from convbench.cli import main
from convbench.compare import Comparison, Gate, parse_threshold, ratio_ci
from convbench.results import RunWriter, write_meta

META = {
    "devices": {"cuda:0": {"device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3",
                           "capability": [9, 0], "driver": "550.54"}},
    "libraries": {"torch": "2.5.0", "triton": "3.1.0", "cuda": "12.4", "cudnn": 90100},
    "threads": 16,
    "precision_flags": {"cudnn_allow_tf32": True, "cuda_matmul_allow_tf32": False},
    "comparability": {"precision": "default", "seed": 0, "measure": {"l2": "cold"}},
}
SHAPE = dict(N=5, C_in=1024, C_out=1024, L=517, K=11, stride=1, padding=5, dilation=1, bias=True)
LABEL = "depthwise/triton float32 ncl fwd cuda N5 C1024 L517 K11"


def samples(median_ms: float, seed: int, n: int = 60, sigma: float = 0.01) -> list[float]:
    """Lognormal timing noise around a median, seeded."""
    rng = np.random.default_rng(seed)
    return (median_ms * np.exp(rng.normal(0.0, sigma, n))).tolist()


def row(impl: str = "triton", ms: float | None = 1.0, seed: int = 0, status: str = "ok",
        layout: str = "ncl", sigma: float = 0.01, n: int = 60, **shape) -> dict:
    r = {"op": "depthwise", "impl": impl, "layout": layout, "device": "cuda:0",
         "dtype": "float32", "mode": "fwd", **SHAPE, **shape, "status": status,
         "reason": None if status == "ok" else f"{status}: planted"}
    if status == "ok" and ms is not None:
        s = samples(ms, seed, n, sigma)
        r.update(samples_ms=s, median_ms=float(np.median(s)), n_samples=n)
    return r


def make_run(path, rows, meta=None):
    with RunWriter(path) as w:
        for r in rows:
            w.write(r)
    write_meta(path, META if meta is None else meta)
    return str(path)


def runs(tmp_path, base_rows, new_rows, new_meta=None):
    return (make_run(tmp_path / "base", base_rows),
            make_run(tmp_path / "new", new_rows, new_meta))


def cli(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


# ---------------------------------------------------------------- the verdict rule


@pytest.mark.parametrize("ratio, lo, hi, verdict", [
    (1.10, 1.08, 1.12, "slower"),
    (1.10, 0.98, 1.25, "noisy"),    # beyond the threshold, not significant
    (1.02, 1.01, 1.03, "same"),     # significant, but within the threshold
    (1.02, 0.90, 1.15, "noisy"),    # the CI reaches past both edges of the band
    (1.02, 0.99, 1.08, "same"),
    (0.90, 0.88, 0.92, "faster"),
    (0.96, 0.95, 0.97, "same"),     # 4 % faster: inside 1 / 1.05
    (0.90, 0.80, 1.01, "noisy"),
])
def test_classify(ratio, lo, hi, verdict):
    assert Gate(0.05).classify(ratio, lo, hi)[0] == verdict


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("2.5 %", 0.025), ("0.05", 0.05), (".1", 0.1)])
def test_parse_threshold(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["5x%", "5", "-1%", "0%", "100%", "", "five"])
def test_parse_threshold_rejects(text):
    with pytest.raises(ValueError, match=repr(text)):
        parse_threshold(text)


def test_ratio_ci_is_seeded_and_covers_the_truth():
    base, new = samples(1.0, 1), samples(1.1, 2)
    assert ratio_ci(base, new, seed=3) == ratio_ci(base, new, seed=3)
    r, lo, hi = ratio_ci(base, new)
    assert lo < 1.1 < hi and lo < r < hi


def test_gate_fails_message_word_for_word():
    key = ("triton", "depthwise", "ncl", "float32", "fwd", 5, 1024, 1024, 517, 11, 1, 5, 1, True, "cuda", None)
    c = Comparison(key=key, verdict="slower", base_status="ok", new_status="ok", base_ms=1.0,
                   new_ms=1.1, ratio=1.1, ci_low=1.081, ci_high=1.125)
    assert Gate(0.05).fails(c) == (
        f"{LABEL}: 10.0% slower (new/base 1.100, 95% CI 1.081-1.125), above the 5% threshold")
    same = Comparison(key=key, verdict="same", base_status="ok", new_status="ok")
    assert Gate(0.05).fails(same) is None
    broken = Comparison(key=key, verdict="broken", base_status="ok", new_status="wrong",
                        reason="max_rel_err 3.1e-02 > tolerance 1e-05 vs float64 reference")
    assert Gate(0.05).fails(broken) == (
        f"{LABEL}: status ok -> wrong: max_rel_err 3.1e-02 > tolerance 1e-05 vs float64 reference")


# ---------------------------------------------------------------- the command


def test_aa_passes(tmp_path):
    base, new = runs(tmp_path, [row(seed=1), row("torch", 2.0, seed=2)],
                     [row(seed=3), row("torch", 2.0, seed=4)])
    res = cli(base, new)
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output


def test_planted_slowdown_fails_and_names_the_row(tmp_path):
    base, new = runs(tmp_path, [row(seed=1), row("torch", 2.0, seed=2)],
                     [row(ms=1.10, seed=3), row("torch", 2.0, seed=4)])
    res = cli(base, new)
    assert res.exit_code == 1, res.output
    assert f"regression: {LABEL}: 9.9% slower (new/base 1.099, 95% CI 1.096-1.104)" in res.stderr
    assert "depthwise/torch float32" not in res.stderr  # the unchanged row is not a regression


def test_small_change_under_threshold_passes(tmp_path):
    base, new = runs(tmp_path, [row(seed=1)], [row(ms=1.02, seed=2)])
    res = cli(base, new, "--threshold", "5%", "--format", "json")
    assert res.exit_code == 0, res.output
    [r] = json.loads(res.stdout)["rows"]
    assert r["verdict"] == "same" and r["ci_low"] > 1.0  # significant, but a 2 % change passes
    assert cli(base, new, "--threshold", "1%").exit_code == 1


def test_very_noisy_row_is_noisy_not_slower(tmp_path):
    base, new = runs(tmp_path, [row(seed=1, sigma=0.5, n=20)],
                     [row(ms=1.15, seed=2, sigma=0.5, n=20)])
    res = cli(base, new, "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows"][0]["verdict"] == "noisy"
    assert cli(base, new, "--fail-on-noisy").exit_code == 1


def test_too_few_samples_is_noisy(tmp_path):
    base, new = runs(tmp_path, [row(seed=1, n=3)], [row(ms=2.0, seed=2, n=3)])
    res = cli(base, new, "--format", "json")
    assert json.loads(res.stdout)["rows"][0]["note"].startswith("fewer than 5 samples")


def test_unnormalizable_row_is_noisy_and_can_fail(tmp_path):
    base, new = runs(tmp_path, [row(seed=1), row("torch", status="skipped")],
                     [row(seed=2), row("torch", status="skipped")])
    res = cli(base, new, "--normalize-to", "torch", "--fail-on-noisy")
    assert res.exit_code == 1
    assert (f"regression: {LABEL}: too noisy to call relative to torch (new/base n/a, 95% CI "
            f"n/a-n/a); cannot normalize: no ok 'torch' row with samples for this case in both "
            f"runs") in res.stderr


def test_correctness_loss_fails(tmp_path):
    base, new = runs(tmp_path, [row(seed=1), row("torch", 2.0, seed=2)],
                     [row(status="wrong", ms=None), row("torch", 2.0, seed=4)])
    res = cli(base, new)
    assert res.exit_code == 1, res.output
    assert f"regression: {LABEL}: status ok -> wrong: wrong: planted" in res.output
    assert cli(base, new, "--format", "md").stdout.index("broken") < \
        cli(base, new, "--format", "md").stdout.index("same")


@pytest.mark.parametrize("side", ["base", "new"])
def test_row_on_one_side_only_fails(tmp_path, side):
    both, extra = [row(seed=1)], [row("torch", 2.0, seed=2)]
    base, new = runs(tmp_path, both + (extra if side == "base" else []),
                     both + (extra if side == "new" else []))
    res = cli(base, new, "--format", "json")
    assert res.exit_code == 1
    verdicts = {r["impl"]: r["verdict"] for r in json.loads(res.stdout)["rows"]}
    assert verdicts == {"triton": "same", "torch": "missing" if side == "base" else "added"}


@pytest.mark.parametrize("side", ["base", "new"])
def test_common_only_leaves_one_sided_rows_out_but_still_gates_the_rest(tmp_path, side):
    """--common-only (a focused run against a wider one): rows on one side only are left out,
    counted in a warning, and do not fail; a common row that got slower still does."""
    both, extra = [row(seed=1)], [row("torch", 2.0, seed=2), row("cudnn", 2.0, seed=3)]
    base, new = runs(tmp_path, both + (extra if side == "base" else []),
                     both + (extra if side == "new" else []))
    res = cli(base, new, "--common-only", "--format", "json")
    assert res.exit_code == 0, res.output
    assert {r["impl"]: r["verdict"] for r in json.loads(res.stdout)["rows"]} == {"triton": "same"}
    assert "2 row(s) found in one run only were left out" in res.stderr
    slow = [row(ms=1.3, seed=1)]
    base, new = runs(tmp_path / "slow", both + extra, slow)
    res = cli(base, new, "--common-only")
    assert res.exit_code == 1 and "slower" in res.stdout


def test_skip_to_skip_is_unmeasured_and_fix_passes(tmp_path):
    base, new = runs(tmp_path, [row(status="skipped"), row("torch", status="error")],
                     [row(status="skipped"), row("torch", 2.0, seed=2)])
    res = cli(base, new, "--format", "json")
    assert res.exit_code == 0, res.output
    verdicts = {r["impl"]: r["verdict"] for r in json.loads(res.stdout)["rows"]}
    assert verdicts == {"triton": "unmeasured", "torch": "fixed"}


def test_normalize_to_forgives_a_machine_slowdown(tmp_path):
    base, new = runs(tmp_path,
                     [row("torch", 2.0, seed=1), row(ms=1.0, seed=2),
                      row("triton_nlc", 1.0, seed=3, layout="nlc")],
                     [row("torch", 2.4, seed=4), row(ms=1.2, seed=5),
                      row("triton_nlc", 1.2, seed=6, layout="nlc")])
    assert cli(base, new).exit_code == 1  # absolute: everything is 20 % slower
    res = cli(base, new, "--normalize-to", "torch", "--format", "json")
    assert res.exit_code == 0, res.output
    rows = {r["impl"]: r for r in json.loads(res.stdout)["rows"]}
    assert rows["torch"]["note"] == "normalization reference; absolute new/base 1.198"
    assert rows["triton_nlc"]["verdict"] == "same"  # (N, L, C) kernels normalize to ncl torch


def test_normalize_to_catches_a_kernel_that_lost_ground(tmp_path):
    base, new = runs(tmp_path, [row("torch", 2.0, seed=1), row(ms=1.0, seed=2)],
                     [row("torch", 2.0, seed=3), row(ms=1.1, seed=4)])
    res = cli(base, new, "--normalize-to", "torch")
    assert res.exit_code == 1, res.output
    assert f"regression: {LABEL}: " in res.stderr
    assert "% slower relative to torch (new/base 1.09" in res.stderr


def test_filters(tmp_path):
    base, new = runs(tmp_path, [row(seed=1), row("torch", 2.0, seed=2)],
                     [row(ms=1.2, seed=3), row("torch", 2.0, seed=4)])
    assert cli(base, new, "--impl", "torch").exit_code == 0
    assert cli(base, new, "--op", "pointwise", "--format", "json").exit_code == 0
    assert cli(base, new, "--impl", "triton").exit_code == 1


def test_environment_difference_warns_but_does_not_fail(tmp_path):
    meta = json.loads(json.dumps(META))
    meta["libraries"]["torch"] = "2.6.0"
    meta["precision_flags"]["cudnn_allow_tf32"] = False
    base, new = runs(tmp_path, [row(seed=1)], [row(seed=2)], new_meta=meta)
    res = cli(base, new)
    assert res.exit_code == 0, res.output
    assert "environments differ" in res.stderr
    assert "torch: 2.5.0 (base) -> 2.6.0 (new)" in res.stderr
    assert "precision_flags.cudnn_allow_tf32: True (base) -> False (new)" in res.stderr
    md = cli(base, new, "--format", "md").stdout
    assert "| torch | 2.5.0 | 2.6.0 |" in md


def test_float32_rows_pair_only_under_the_same_precision_policy(tmp_path):
    """A tf32 baseline against an ieee run: its float32 rows are other measurements (missing and
    added, named by policy), not a slowdown; the 16-bit row pairs whatever the policy."""
    bf16 = dict(dtype="bfloat16")
    base_rows = [{**row(ms=1.0, seed=1), "precision": "tf32"}, {**row(ms=1.0, seed=2, **bf16), "precision": "tf32"}]
    new_rows = [{**row(ms=3.0, seed=3), "precision": "ieee"}, {**row(ms=1.0, seed=4, **bf16), "precision": "ieee"}]
    base, new = runs(tmp_path, base_rows, new_rows)
    res = cli(base, new, "--format", "json")
    assert res.exit_code == 1, res.output
    got = {(r["dtype"], r["precision"]): r["verdict"] for r in json.loads(res.stdout)["rows"]}
    assert got == {("float32", "tf32"): "missing", ("float32", "ieee"): "added", ("bfloat16", None): "same"}
    assert f"{LABEL} under tf32: in the baseline but not in the new run" in res.stderr
    assert "slower" not in res.stderr
    # the same policy on both sides: the float32 row pairs, and its 3x is a slowdown
    (tmp_path / "b").mkdir()
    base, new = runs(tmp_path / "b", base_rows, [{**r, "precision": "tf32"} for r in new_rows])
    res = cli(base, new, "--format", "json")
    got = {(r["dtype"], r["precision"]): r["verdict"] for r in json.loads(res.stdout)["rows"]}
    assert got == {("float32", "tf32"): "slower", ("bfloat16", None): "same"}


def test_md_and_output_file(tmp_path):
    base, new = runs(tmp_path, [row(seed=1), row("torch", 2.0, seed=2)],
                     [row(ms=1.1, seed=3), row("torch", 2.0, seed=4)])
    out = tmp_path / "summary.md"
    res = cli(base, new, "--format", "md", "-o", out)
    assert res.exit_code == 1
    md = out.read_text()
    assert md.startswith("### convbench gate: **FAIL**: 1 regression")
    assert "| **slower** | depthwise/triton |" in md
    assert "<details><summary>1 unchanged or unmeasured rows</summary>" in md
    assert "slower" in res.stdout  # the terminal still gets the table


def test_bad_threshold_exits_2_quoting_the_value(tmp_path):
    base, new = runs(tmp_path, [row(seed=1)], [row(seed=2)])
    res = cli(base, new, "--threshold", "5x%")
    assert res.exit_code == 2
    assert "--threshold: could not parse threshold '5x%'" in res.stderr
    assert "Traceback" not in res.output


def test_foreign_or_missing_folder_exits_2(tmp_path):
    base = make_run(tmp_path / "base", [row(seed=1)])
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "data.csv").write_text("a,b\n1,2\n")
    res = cli(base, tmp_path / "foreign")
    assert res.exit_code == 2
    assert "is not a convbench run folder" in res.stderr
    res = cli(tmp_path / "nope", base)
    assert res.exit_code == 2 and "does not exist" in res.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.jsonl").write_text('{"name": "x"}\n')
    res = cli(base, tmp_path / "other")
    assert res.exit_code == 2 and "is not a convbench row" in res.stderr


def test_unknown_impl_exits_2(tmp_path):
    base, new = runs(tmp_path, [row(seed=1)], [row(seed=2)])
    res = cli(base, new, "--normalize-to", "torhc")
    assert res.exit_code == 2 and "'torhc'" in res.stderr


def test_runs_with_no_row_in_common_exit_2_naming_both(tmp_path):
    """A CPU run against a GPU baseline (or two unrelated configs): nothing pairs, so there is no
    verdict to give; exit 2 with what each run holds, not a wall of missing/added 'regressions'."""
    base, new = runs(tmp_path, [row(seed=1), row("torch", 2.0, seed=2)],
                     [{**row(seed=3), "device": "cpu"}, {**row("torch", 2.0, seed=4), "device": "cpu"}])
    res = cli(base, new)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "no row of" in res.output
    assert "the base holds 2 row(s)" in res.output and "the new run 2 row(s)" in res.output
