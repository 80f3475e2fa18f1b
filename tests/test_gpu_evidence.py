"""scripts/gpu_evidence.sh's per-step time limit (CPU: its `selftest` step only sleeps, with a
background child that ignores TERM): a step past its limit is killed with everything it started;
a step that ends early leaves no watchdog behind (an orphaned watchdog sleep once held every
device call open for the rest of its limit); a kill of the script itself takes the step along."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _unique() -> int:
    """A sleep length (s) that no other process here uses, to find leftovers by."""
    return random.randint(1000, 9000)


def _run(tmp_path, limit, sleep_s, outer_timeout=None) -> tuple[float, str, int]:
    env = {**os.environ, "OUT": str(tmp_path), "SELFTEST_S": str(sleep_s)}
    cmd = ["bash", "scripts/gpu_evidence.sh", f"selftest:{limit}"]
    if outer_timeout:
        cmd = ["timeout", str(outer_timeout), *cmd]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return time.monotonic() - t0, proc.stdout, proc.returncode


def _left(seconds) -> str:
    time.sleep(0.5)
    return subprocess.run(["pgrep", "-af", f"sleep {seconds}"], capture_output=True, text=True).stdout


def test_step_over_its_limit_is_killed_with_its_children(tmp_path):
    s = _unique()
    took, out, _ = _run(tmp_path, 2, s)
    assert took < 20, out  # killed at 2 s, not after 2 x the sleep
    assert "selftest rc=143" in out, out
    assert _left(s) == "", "a process of the killed step survived (one ignores TERM: KILL must follow)"
    assert (tmp_path / "evidence.tgz").exists()


def test_step_that_ends_early_leaves_no_watchdog(tmp_path):
    limit = _unique()
    took, out, _ = _run(tmp_path, limit, "0.2")
    assert "selftest rc=0" in out and took < 20, out
    assert _left(limit) == "", "the watchdog's sleep outlived its step"


def test_killing_the_script_kills_the_running_step(tmp_path):
    s, limit = _unique(), _unique()
    took, out, rc = _run(tmp_path, limit, s, outer_timeout=3)
    assert rc == 124 and took < 20, out
    assert _left(s) == "" and _left(limit) == "", "the step or its watchdog outlived the script"
