"""What the paper's analyses compute from the models' representations: row alignment, CKA,
cross-validated probes and their statistics, the probes' task features, the paper's anchor
figures and the paper-vs-reproduced report, the training-run spread, and one module per
notebook analysis (``failed_init`` and ``evolution``: notebook 03; ``layers`` and ``layer_tasks``: 04;
``fusion`` and ``halogenation``: 05).

Submodules load on first access (``crossgran.analysis.cka`` or ``from crossgran.analysis
import cka``), so importing the package pulls in neither scikit-learn nor torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "cka",
    "evolution",
    "failed_init",
    "features",
    "fusion",
    "halogenation",
    "layer_tasks",
    "layers",
    "paper",
    "probes",
    "report",
    "rows",
    "spread",
]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
