"""convbench: choose, prove and guard Conv1d kernels for speech models."""

from .problem import Depthwise, Inputs, Pointwise, Problem, make_problem
from .reference import reference, rel_err, tolerance
from .registry import Case, Impl, all_impls, get, register
from .results import load

__version__ = "0.1.0"

__all__ = [
    "Case",
    "Depthwise",
    "Impl",
    "Inputs",
    "Pointwise",
    "Problem",
    "__version__",
    "all_impls",
    "get",
    "load",
    "make_problem",
    "reference",
    "register",
    "rel_err",
    "tolerance",
]
