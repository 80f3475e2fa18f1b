"""Built-in implementation families, registered by explicit import (no directory scanning)."""

from . import torch_conv, unfold_einsum  # noqa: F401

try:  # Triton is a dependency, but a broken install must not take the torch families down
    from . import triton_depthwise, triton_pointwise  # noqa: F401
except ImportError as exc:  # pragma: no cover - reported by `convbench list`
    TRITON_IMPORT_ERROR: str | None = str(exc)
else:
    TRITON_IMPORT_ERROR = None
