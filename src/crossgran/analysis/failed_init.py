"""Notebook 03, claim 1: ESM initialisation of BiGCARP's token table does not change the
MIBiG product-class probe — neither better nor worse than random initialisation.

The probe reads each run's embedder output (layer 0) and last layer, per-BGC means exported
by notebook 02 (``Representations``), on the same labelled BGCs and folds for every run, so
ESM-init can be compared with random-init row by row. Beside every run and layer stand its
controls: the same run's untrained epoch-0 checkpoint (``~untrained``) and a width-matched,
domain-consistent random projection pooled the same way (``~random``); claim 1 is only
testable where both runs beat them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crossgran.analysis.comparisons import Comparison, run_comparisons
from crossgran.analysis.controls import random_family_vectors
from crossgran.analysis.features import count_weighted_mean
from crossgran.analysis.labelled_rows import ProbeRows, product_class_rows
from crossgran.analysis.probes import ProbeResult, cross_validated_scores, summarise
from crossgran.data.tables import load_table
from crossgran.profiles import Profile

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations

__all__ = ["BASELINE", "LAYERS", "comparisons", "probe_table", "product_class_probes"]

BASELINE = "random"  # the initialisation every other one is tested against
LAYERS = ("embedder", "last")
UNTRAINED = "~untrained"
# "<init>/<layer>", "<init>/<layer>~untrained" or "<layer>~random"
_NAME = r"^(?:(?P<init>[^/]+)/)?(?P<layer>[^~]+)(?:~(?P<control>\w+))?$"


def _blocks(settings: Profile, exports: Mapping[str, Representations]) -> dict[str, np.ndarray]:
    """Feature blocks over the exported BGCs: every ``<init>/<layer>``, its epoch-0 control
    and, per layer, the random projection (``<layer>~random``: the same for every init, as it
    has no weights)."""
    base = exports[BASELINE]
    layer_index = {"embedder": 0, "last": base.layers[-1]}
    inits = [init for init in exports if not init.endswith(UNTRAINED)]
    blocks = {}
    for init in inits:
        for layer, k in layer_index.items():
            blocks[f"{init}/{layer}"] = exports[init].bgc[k]
            blocks[f"{init}/{layer}{UNTRAINED}"] = exports[init + UNTRAINED].bgc[k]
    counts = load_table(settings, "mibig_domain_counts")
    families = sorted(counts["pfam"].unique())
    for layer, k in layer_index.items():
        vectors = random_family_vectors(families, base.bgc[k].shape[1], settings.seed)
        blocks[f"{layer}~random"] = count_weighted_mean(counts, base.bgc_ids, families, vectors)
    return blocks


def product_class_probes(
    settings: Profile, exports: Mapping[str, Representations]
) -> tuple[dict[str, ProbeResult], ProbeRows]:
    """(probe results by feature set, the probed rows): the multilabel product-class probe on
    every run and layer of ``exports`` (init -> final export, ``<init>~untrained`` -> its
    epoch-0 export) and on their controls. ``<init>/<layer>~random`` names the layer's random
    projection for every init (one probe, shared)."""
    if len({tuple(e.bgc_ids) for e in exports.values()}) != 1:
        raise ValueError("the runs' exports list different BGCs: rerun notebook 02")
    blocks = _blocks(settings, exports)
    rows = product_class_rows(settings, np.asarray(exports[BASELINE].bgc_ids), blocks.values())
    results = {
        name: cross_validated_scores(
            block[rows.rows],
            rows.targets,
            task="multilabel",
            folds=settings.probe_folds,
            seeds=range(settings.probe_seeds),
            n_jobs=settings.probe_jobs,
        )
        for name, block in blocks.items()
    }
    for name in [n for n in results if "/" in n and "~" not in n]:
        results[f"{name}~random"] = results[f"{name.split('/')[1]}~random"]
    return results, rows


def comparisons(inits: list[str]) -> list[Comparison]:
    """Claim 1 (each init against random-init, equivalence) and the controls of every run."""
    tests = [
        Comparison(f"{init}/{layer}", (f"{BASELINE}/{layer}",), "equivalent")
        for init in inits
        if init != BASELINE
        for layer in LAYERS
    ]
    tests += [
        Comparison(f"{init}/{layer}", (f"{init}/{layer}~{control}",))
        for init in inits
        for layer in LAYERS
        for control in ("untrained", "random")
    ]
    return tests


def probe_table(
    settings: Profile, results: Mapping[str, ProbeResult], inits: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``failed_init_probe.csv``: every feature set's scores with ``init``, ``layer`` and
    ``control`` columns (a layer's random projection listed under each init it controls); ``failed_init_tests.csv``: :func:`comparisons` as paired tests)."""
    probed = {name: result for name, result in results.items() if "/" in name}
    summary = summarise(probed, settings.n_bootstrap, seed=settings.seed)
    summary[["init", "layer", "control"]] = summary["feature_set"].str.extract(_NAME).fillna("")
    tests = run_comparisons(
        results,
        comparisons(inits),
        task="product_class",
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
    )
    return summary, tests


def claim1_lines(decided: pd.DataFrame) -> list[str]:
    """Claim 1 in words from :func:`probe_table`'s tests after ``comparisons.claim_verdicts``:
    per init and layer, whether both runs beat their controls (else claim 1 is not testable
    there) and the equivalence verdict on F1 and AUC."""
    lines = []
    equivalence = decided[decided["kind"] == "equivalent"]
    for row in equivalence.itertuples():
        needed = decided[
            (decided["kind"] == "above")
            & decided["candidate"].isin([row.candidate, row.rival])
            & (decided["metric"] == row.metric)
        ]
        missed = needed[needed["verdict"] != "holds"]
        verdict = "not testable here" if len(missed) else row.verdict
        beaten = (
            "all controls beaten"
            if missed.empty
            else "not beaten: "
            + ", ".join(f"{r.candidate} vs {r.rival}" for r in missed.itertuples())
        )
        lines.append(f"Claim 1: {row.candidate} vs {row.rival}, {row.metric}: {verdict} ({beaten})")
    return lines
