"""The run-wide float32 precision policy: which TF32 switches are on, for torch and Triton alike."""

from __future__ import annotations

import contextlib

import torch

POLICIES = ("default", "ieee", "tf32")


def flags() -> dict:
    """Every precision flag in force now, as recorded in meta.json and each row."""
    return {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "triton_input_precision": triton_input_precision(),
    }


def triton_input_precision() -> str:
    """Triton float32 dots follow the conv switch: our kernels stand in for nn.Conv1d."""
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


def current() -> str | None:
    """The named policy the switches are in now (None for a mix no policy sets: conv TF32 off
    with matmul TF32 on). backend="auto" matches float32 table entries measured under it."""
    conv, mm = bool(torch.backends.cudnn.allow_tf32), bool(torch.backends.cuda.matmul.allow_tf32)
    return {(True, False): "default", (True, True): "tf32", (False, False): "ieee"}.get((conv, mm))


@contextlib.contextmanager
def policy(name: str):
    """Apply a policy: default leaves PyTorch's own defaults (conv TF32 on, matmul TF32 off)."""
    if name not in POLICIES:
        raise ValueError(f"unknown precision {name!r}; allowed: {', '.join(POLICIES)}")
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        if name != "default":
            on = name == "tf32"
            torch.backends.cudnn.allow_tf32 = on
            torch.backends.cuda.matmul.allow_tf32 = on
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
