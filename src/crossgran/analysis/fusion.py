"""Notebook 05, claim 4: amino-acid-level (ESM) and domain-level (BiGCARP) representations are
complementary, so their concatenation beats either alone.

Three tasks, each probing every feature set on the same rows and folds so that "fusion vs the
best single representation" is a paired bootstrap on the same out-of-fold predictions:

* MIBiG product class (BGC level, multilabel): :func:`product_class_probes`;
* NRPS A-domain substrate properties (domain level, binary, folds grouped by parent protein):
  :func:`adomain_features`, :func:`adomain_probes`;
* halogenation (``crossgran.analysis.halogenation``; profiles that download MIBiG only):
  :func:`halogenation_probes`.

:func:`fusion_tests` gathers the comparisons into ``fusion_tests.csv`` and :func:`claim4`
reads the verdicts from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crossgran.analysis import halogenation
from crossgran.analysis.features import (
    complete_labelled_rows,
    count_matrix,
    count_weighted_mean,
    one_hot_signatures,
    random_features,
)
from crossgran.analysis.paper import SIGNIFICANCE
from crossgran.analysis.probes import (
    ProbeResult,
    compare_to_best,
    cross_validated_scores,
    summarise,
)
from crossgran.analysis.rows import rows_of
from crossgran.data.adomains import PROPERTIES
from crossgran.data.mibig import PRODUCT_CLASSES
from crossgran.data.tables import load_table
from crossgran.profiles import Profile

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations
    from crossgran.models.esm import EmbeddingResult, LoadedEsm

__all__ = [
    "CLASS_FUSION",
    "CLASS_SINGLES",
    "FUSIONS",
    "FUSION_TEST_COLUMNS",
    "HalogenationProbe",
    "adomain_features",
    "adomain_probes",
    "claim4",
    "fusion_tests",
    "halogenation_probes",
    "product_class_probes",
    "product_class_tables",
]

CLASS_FUSION = "esm+bigcarp_last"
CLASS_SINGLES = ["esm", "bigcarp_embedder", "bigcarp_last"]
FUSIONS = {"bigcarp+esm_mean": ["bigcarp", "esm_mean"], "bigcarp+stachel": ["bigcarp", "stachel"]}
FUSION_TEST_COLUMNS = [
    "task",
    "property",
    "candidate",
    "rival",
    "metric",
    "candidate_mean",
    "rival_mean",
    "delta",
    "low",
    "high",
    "p_value",
]


def _cv(settings: Profile) -> dict:
    """The profile's cross-validation settings, shared by every probe of the notebook."""
    return {
        "folds": settings.probe_folds,
        "seeds": range(settings.probe_seeds),
        "n_jobs": settings.probe_jobs,
    }


def product_class_probes(
    settings: Profile,
    esm_pfam: EmbeddingResult,
    bigcarp_run: Representations,
    *,
    esm_layer: int,
    bigcarp_layer: int,
) -> tuple[dict[str, ProbeResult], list[str]]:
    """(probe results by feature set, the probed classes) of the MIBiG product-class task.

    Feature sets: ``esm`` (the BGC's family vectors at ``esm_layer``, weighted by domain
    count), ``bigcarp_embedder`` and ``bigcarp_last`` (the run's per-BGC means at layer 0 and
    ``bigcarp_layer``), their concatenation :data:`CLASS_FUSION`, ``pfam_counts`` (probed with
    ``settings.count_probe_model``) and ``random``. Rows: labelled BGCs with all three vectors.
    """
    classes = load_table(settings, "mibig_classes")
    counts = load_table(settings, "mibig_domain_counts")
    bgc_ids = np.asarray(bigcarp_run.bgc_ids)
    bgc_blocks = {
        "esm": count_weighted_mean(counts, bgc_ids, esm_pfam.ids, esm_pfam.mean[esm_layer]),
        "bigcarp_embedder": bigcarp_run.bgc[0],
        "bigcarp_last": bigcarp_run.bgc[bigcarp_layer],
    }
    rows, targets, class_names = complete_labelled_rows(
        classes, bgc_ids, list(bgc_blocks.values()), PRODUCT_CLASSES, settings.probe_folds
    )
    features = {name: block[rows] for name, block in bgc_blocks.items()}
    features[CLASS_FUSION] = np.hstack([features["esm"], features["bigcarp_last"]])
    features["pfam_counts"], _ = count_matrix(counts, bgc_ids[rows])
    features["random"] = random_features(len(rows), features[CLASS_FUSION].shape[1], settings.seed)
    results = {
        name: cross_validated_scores(
            x,
            targets,
            task="multilabel",
            model=settings.count_probe_model if name == "pfam_counts" else "logreg",
            **_cv(settings),
        )
        for name, x in features.items()
    }
    return results, class_names


def product_class_tables(
    settings: Profile, results: Mapping[str, ProbeResult]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``product_class_probe.csv``, the fusion's paired tests against the best single
    representation, with a ``task`` column)."""
    table = summarise(results, settings.n_bootstrap, seed=settings.seed)
    tests = compare_to_best(
        results, CLASS_FUSION, CLASS_SINGLES, settings.n_bootstrap, seed=settings.seed
    )
    tests.insert(0, "task", "product_class")
    return table, tests


def adomain_features(
    settings: Profile,
    esm_adomains: EmbeddingResult,
    bigcarp_run: Representations,
    *,
    esm_layer: int,
    bigcarp_layer: int,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(the ``adomains`` rows of the run's A-domains, feature sets on those rows).

    Rows: the A-domains located in their parent protein's sentence (so BiGCARP has a
    contextual token for them). Feature sets: ``esm_mean``, ``stachel`` (ESM at ``esm_layer``,
    mean over the domain / over its Stachelhaus positions), ``bigcarp`` (the AMP-binding token
    at ``bigcarp_layer``), the :data:`FUSIONS`, ``random`` and ``stachelhaus_onehot``.
    """
    adomains = load_table(settings, "adomains").set_index("domain_id")
    domain_ids = bigcarp_run.adomain_ids
    domains = adomains.loc[domain_ids]
    esm_rows = rows_of(esm_adomains.ids, domain_ids)
    features = {
        "esm_mean": esm_adomains.mean[esm_layer][esm_rows],
        "stachel": esm_adomains.positions[esm_layer][esm_rows],
        "bigcarp": bigcarp_run.adomain[bigcarp_layer],
    }
    features["bigcarp+esm_mean"] = np.hstack([features["bigcarp"], features["esm_mean"]])
    features["bigcarp+stachel"] = np.hstack([features["bigcarp"], features["stachel"]])
    features["random"] = random_features(
        len(domain_ids), features["bigcarp+esm_mean"].shape[1], settings.seed
    )
    features["stachelhaus_onehot"] = one_hot_signatures(domains["stachelhaus"])
    return domains, features


def adomain_probes(
    settings: Profile, domains: pd.DataFrame, features: Mapping[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(``adomain_probe.csv``, the fusions' paired tests, the properties skipped and why).

    For each substrate property, the domains whose label leaves it undefined are dropped and
    folds are grouped by parent protein, so a probe cannot score by recognising a sibling
    module; a property whose rarer class spans fewer parent proteins than folds is skipped.
    """
    tables, tests, skipped = [], [], []
    for prop in PROPERTIES:
        defined = domains[prop].notna().to_numpy()
        labels = domains[prop].to_numpy()[defined].astype(int)
        parents = domains["parent_protein"].to_numpy()[defined]
        minority = min(np.unique(parents[labels == value]).size for value in (0, 1))
        if minority < settings.probe_folds:
            skipped.append(f"{prop} (only {minority} parent proteins in its rarer class)")
            continue
        results = {
            name: cross_validated_scores(
                x[defined], labels, task="binary", groups=parents, **_cv(settings)
            )
            for name, x in features.items()
        }
        tables.append(
            summarise(results, settings.n_bootstrap, seed=settings.seed).assign(property=prop)
        )
        tests += [
            compare_to_best(
                results, fused, singles, settings.n_bootstrap, seed=settings.seed
            ).assign(property=prop)
            for fused, singles in FUSIONS.items()
        ]
    table = pd.concat(tables, ignore_index=True)
    table = table[["property", *table.columns.drop("property")]]
    return table, pd.concat(tests), skipped


@dataclass(frozen=True)
class HalogenationProbe:
    """The halogenation task's summary table, its fusion test and its size."""

    table: pd.DataFrame  # halogenation_probe.csv
    tests: pd.DataFrame  # the fusion against the best of its parts, task "halogenation"
    n_domains: int
    n_bgcs: int
    n_halogenated: int


def halogenation_probes(
    settings: Profile, esm_model: LoadedEsm, run_dir: Path | str
) -> HalogenationProbe:
    """The halogenation task (``crossgran.analysis.halogenation``) with the paper's MLP probe,
    folds grouped by BGC; ``run_dir`` is the BiGCARP run whose representations are probed."""
    features, labels, groups = halogenation.task_features(settings, esm_model, run_dir)
    results = {
        name: cross_validated_scores(
            x,
            labels,
            task="binary",
            groups=groups,
            model="mlp",
            mlp_hidden=halogenation.MLP_HIDDEN,
            **_cv(settings),
        )
        for name, x in features.items()
    }
    table = summarise(results, settings.n_bootstrap, seed=settings.seed)
    tests = compare_to_best(
        results,
        halogenation.FUSED,
        list(halogenation.PARTS),
        settings.n_bootstrap,
        seed=settings.seed,
    ).assign(task="halogenation", property="")
    return HalogenationProbe(
        table=table,
        tests=tests,
        n_domains=len(labels),
        n_bgcs=len(set(groups)),
        n_halogenated=int(labels.sum()),
    )


def fusion_tests(
    class_tests: pd.DataFrame,
    domain_tests: pd.DataFrame,
    halogen_tests: Sequence[pd.DataFrame] = (),
) -> pd.DataFrame:
    """``fusion_tests.csv``: every task's fusion-vs-best-single tests in one table."""
    tests = pd.concat(
        [class_tests.assign(property=""), domain_tests.assign(task="adomain"), *halogen_tests],
        ignore_index=True,
    )
    return tests[FUSION_TEST_COLUMNS]


def claim4(tests: pd.DataFrame) -> pd.DataFrame:
    """Claim 4 per (task, fusion), on AUC: in how many comparisons the fusion has a
    significant gain (delta > 0 and p < ``SIGNIFICANCE``) over the best single representation,
    each comparison's delta and p-value as text (``deltas``), and the verdict: ``SUPPORTED`` (all),
    ``partly supported`` (some) or ``NOT supported`` (none)."""
    records = []
    for (task, candidate), group in tests.groupby(["task", "candidate"], sort=False):
        auc = group[group["metric"] == "auc"]
        wins = auc[(auc["delta"] > 0) & (auc["p_value"] < SIGNIFICANCE)]
        deltas = ", ".join(
            f"{r.property or 'product class'} {r.delta:+.3f} (p={r.p_value:.3f})"
            for r in auc.itertuples()
        )
        records.append(
            {
                "task": task,
                "candidate": candidate,
                "deltas": deltas,
                "n_wins": len(wins),
                "n_tests": len(auc),
                "verdict": "SUPPORTED"
                if len(wins) == len(auc)
                else "partly supported"
                if len(wins)
                else "NOT supported",
            }
        )
    return pd.DataFrame.from_records(records)
