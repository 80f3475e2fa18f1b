"""scripts/gpu_evidence.sh's per-step time limit (CPU: its `selftest` step only sleeps): a step
past its limit is killed with everything it started (chained and background commands), and a step
that ends early does not hold the call open for the rest of its limit."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path, limit: int, sleep_s: str) -> tuple[float, str]:
    env = {**os.environ, "OUT": str(tmp_path), "SELFTEST_S": sleep_s}
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "scripts/gpu_evidence.sh", f"selftest:{limit}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return time.monotonic() - t0, proc.stdout


def _left(marker: str) -> str:
    return subprocess.run(["pgrep", "-af", f"sleep {marker}"], capture_output=True, text=True).stdout


def test_step_over_its_limit_is_killed_with_its_children(tmp_path):
    marker = f"{37 + uuid.uuid4().int % 1000}.5"  # a sleep length no other process uses
    took, out = _run(tmp_path, 2, marker)
    assert took < 20, out  # killed at 2 s (TERM, then KILL 5 s later), not after 3 x the sleep
    assert "selftest rc=143" in out, out
    time.sleep(0.5)
    assert _left(marker) == "", "a sleep of the killed step survived"
    assert (tmp_path / "evidence.tgz").exists()


def test_step_that_ends_early_does_not_wait_for_its_limit(tmp_path):
    took, out = _run(tmp_path, 60, "0.2")
    assert "selftest rc=0" in out, out
    assert took < 20, out
