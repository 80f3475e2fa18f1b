"""Test set-up: Triton runs in interpreter mode on CPU, so kernels are checked without a GPU."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
