"""Notebook 03, claim 1: ESM initialisation of BiGCARP's token table does not improve the
MIBiG product-class probe.

The probe reads each run's embedder output (layer 0) and last layer, per-BGC means exported
by notebook 02 (``Representations``), on the same labelled BGCs and folds for every run, so
ESM-init can be compared with random-init row by row (:func:`probe_table`'s paired bootstrap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crossgran.analysis.features import complete_labelled_rows
from crossgran.analysis.paper import SIGNIFICANCE
from crossgran.analysis.probes import (
    ProbeResult,
    compare_to_best,
    cross_validated_scores,
    summarise,
)
from crossgran.data.mibig import PRODUCT_CLASSES
from crossgran.data.tables import load_table
from crossgran.profiles import Profile

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations

__all__ = ["BASELINE", "esm_gains", "probe_table", "product_class_probes"]

BASELINE = "random"  # the initialisation every other one is tested against


def product_class_probes(
    settings: Profile, exports: Mapping[str, Representations]
) -> tuple[dict[str, ProbeResult], list[str]]:
    """(probe results keyed ``"<init>/<layer>"``, the probed classes): the multilabel product-
    class probe on the ``embedder`` (layer 0) and ``last`` layer of every run in ``exports``
    (init mode -> its exported representations, ``exports[BASELINE]`` included), in that order.

    Rows: the labelled BGCs that have tokens (a finite mean) in every run and layer; classes
    with fewer positives than folds are left out.
    """
    layer_index = {"embedder": 0, "last": exports[BASELINE].layers[-1]}
    classes = load_table(settings, "mibig_classes")
    bgc_ids = np.asarray(exports[BASELINE].bgc_ids)
    blocks = {
        f"{init}/{layer}": exports[init].bgc[k]
        for init in exports
        for layer, k in layer_index.items()
    }
    if not all(exports[init].bgc_ids == exports[BASELINE].bgc_ids for init in exports):
        raise ValueError("the runs' exports list different BGCs: rerun notebook 02")
    rows, targets, class_names = complete_labelled_rows(
        classes, bgc_ids, list(blocks.values()), PRODUCT_CLASSES, settings.probe_folds
    )
    results = {
        name: cross_validated_scores(
            block[rows],
            targets,
            task="multilabel",
            folds=settings.probe_folds,
            seeds=range(settings.probe_seeds),
            n_jobs=settings.probe_jobs,
        )
        for name, block in blocks.items()
    }
    return results, class_names


def probe_table(settings: Profile, results: Mapping[str, ProbeResult]) -> pd.DataFrame:
    """``failed_init_probe.csv``: :func:`~crossgran.analysis.probes.summarise` of ``results``
    with ``init`` and ``layer`` columns, and, for every init but :data:`BASELINE`, the paired
    bootstrap against the baseline's same layer (``delta_vs_random``, its interval, p-value)."""
    summary = summarise(results, settings.n_bootstrap, seed=settings.seed)
    summary[["init", "layer"]] = summary["feature_set"].str.split("/", expand=True)
    names = [name.split("/") for name in results]
    inits = list(dict.fromkeys(init for init, _ in names))
    layers = list(dict.fromkeys(layer for _, layer in names))
    tests = pd.concat(
        [
            compare_to_best(
                results,
                f"{init}/{layer}",
                [f"{BASELINE}/{layer}"],
                settings.n_bootstrap,
                seed=settings.seed,
            )
            for init in inits
            if init != BASELINE
            for layer in layers
        ]
    )
    tests = tests.rename(
        columns={
            "candidate": "feature_set",
            "delta": "delta_vs_random",
            "low": "delta_low",
            "high": "delta_high",
        }
    )
    return summary.merge(
        tests[["feature_set", "metric", "delta_vs_random", "delta_low", "delta_high", "p_value"]],
        on=["feature_set", "metric"],
        how="left",
    )


def esm_gains(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ESM-init's F1 and AUC rows of :func:`probe_table`, those with a significant gain over
    random-init). Claim 1 is supported when the second is empty."""
    esm_vs_random = table[(table["init"] == "esm") & table["metric"].isin(["f1", "auc"])]
    return esm_vs_random, esm_vs_random[esm_vs_random["p_value"] < SIGNIFICANCE]
