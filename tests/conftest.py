"""Test set-up: Triton runs in interpreter mode on CPU, so kernels are checked without a GPU."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")


def compile_in_fresh_process(script: str, arg: str) -> str:
    """Run `python -c script arg` without TRITON_INTERPRET and return its last stdout line.

    Compiles for sm_90 (no GPU needed) must run in a fresh process: once the interpreter has run
    in a process, Triton's NVIDIA backend cannot load there and Gluon fails to compile. A failure
    of our source (CompilationError) fails the test; a machine that cannot compile skips it."""
    import subprocess
    import sys

    import pytest

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", script, arg], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        assert "CompilationError" not in proc.stderr, proc.stderr[-3000:]  # our source, not the machine
        pytest.skip(f"cannot compile for sm_90 here: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout.strip().splitlines()[-1]
