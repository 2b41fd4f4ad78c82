"""What the paper's analyses compute from the models' representations: row alignment, CKA,
cross-validated probes and their statistics, the probes' task features and rows, the controls
every learned representation is shown beside, paired comparisons and their four-valued
verdicts, the paper's anchor figures and the paper-vs-reproduced report, the training-run
spread, and one module per notebook analysis (``failed_init``, ``occurrence_cka`` and
``evolution``: notebook 03; ``layers`` and ``layer_tasks``: 04; ``fusion``,
``halogenation`` and ``halogenation_probe``: 05; ``vector_geometry``: 02).

Submodules load on first access (``crossgran.analysis.cka`` or ``from crossgran.analysis
import cka``), so importing the package pulls in neither scikit-learn nor torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "cka",
    "comparisons",
    "controls",
    "evolution",
    "failed_init",
    "features",
    "fusion",
    "halogenation",
    "halogenation_probe",
    "labelled_rows",
    "layer_tasks",
    "layers",
    "occurrence_cka",
    "paper",
    "probes",
    "report",
    "rows",
    "spread",
    "vector_geometry",
    "verdicts",
]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
