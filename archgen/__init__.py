"""archgen: design neural networks for a device and a latency budget.

Architectures are computation graphs (:class:`ArchGraph`); search spaces
(:mod:`archgen.spaces`) encode them, build them as torch modules and export ONNX
(:mod:`archgen.hardware`); benchmark tables come from :mod:`archgen.data`.
"""

from .api import ArchGen
from .errors import (
    ArchGenError,
    BudgetError,
    BundleError,
    DataError,
    GenerationWarning,
    InvalidArchError,
    InvalidGraphError,
    UnknownNameError,
)
from .generation import Candidate, Candidates, GuidanceSettings
from .graph import ArchGraph
from .spaces import SearchSpace, available_spaces, get_space

__version__ = "0.1.0"

__all__ = [
    "ArchGen", "ArchGenError", "ArchGraph", "BudgetError", "BundleError", "Candidate", "Candidates", "DataError",
    "GenerationWarning", "GuidanceSettings", "InvalidArchError", "InvalidGraphError",
    "SearchSpace", "UnknownNameError", "available_spaces", "get_space", "__version__",
]
