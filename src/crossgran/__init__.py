"""crossgran: ESM (amino acids) and BiGCARP (Pfam domains) representations, compared and fused.

Submodules load on first use (``import crossgran`` alone imports neither torch nor pandas), so
``crossgran.esm.embed(...)`` works after a bare ``import crossgran``. The layers of the
package, each depending only on those before it:

- ``profiles``, ``threads``, ``cache``, ``session``: settings and plumbing;
- ``data``: pinned sources, readers, Pfam annotation (pyhmmer), MIBiG, A-domains, corpus;
- ``models``: one masking module, ``models.esm`` and ``models.bigcarp``;
- ``analysis``: CKA, probes, task features, the paper's anchors and the report;
- ``plots``; ``cli``: one module per command.

``crossgran.esm``, ``crossgran.bigcarp``, ``crossgran.cka`` and ``crossgran.probes`` are short
names for ``crossgran.models.esm``, ``crossgran.models.bigcarp``, ``crossgran.analysis.cka``
and ``crossgran.analysis.probes``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

_SUBMODULES = {
    name: f"crossgran.{name}"
    for name in (
        "analysis",
        "cache",
        "cli",
        "data",
        "models",
        "plots",
        "predict",
        "profiles",
        "session",
        "threads",
    )
}
_SHORTCUTS = {
    "esm": "crossgran.models.esm",
    "bigcarp": "crossgran.models.bigcarp",
    "cka": "crossgran.analysis.cka",
    "probes": "crossgran.analysis.probes",
}

__all__ = ["__version__", *sorted(_SUBMODULES), *sorted(_SHORTCUTS)]


def __getattr__(name: str) -> ModuleType:
    target = _SUBMODULES.get(name) or _SHORTCUTS.get(name)
    if target is None:
        raise AttributeError(f"module 'crossgran' has no attribute {name!r}")
    module = importlib.import_module(target)
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted(__all__)
