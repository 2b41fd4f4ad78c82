"""Notebook 05, claim 4: amino-acid-level (ESM) and domain-level (BiGCARP) representations are
complementary, so their concatenation beats either alone.

Three tasks, each probing every feature set on the same rows and folds so that every claim is
a paired bootstrap on the same out-of-fold predictions:

* MIBiG product class (BGC level, multilabel, 7 classes incl. Other): :func:`product_class_probes`;
* NRPS A-domain substrate properties (domain level, binary; folds *and* bootstrap grouped by
  parent protein): :func:`adomain_features`, :func:`adomain_probes`;
* halogenation (``crossgran.analysis.halogenation``; profiles that download MIBiG only):
  :func:`halogenation_probes`.

Beside every learned representation stand its controls, pooled exactly as it is: a
width-matched, domain-consistent random projection (``~random``: one fixed random vector per
Pfam family, or per amino acid for ESM's residue-level features) and the untrained model
(``~untrained``: BiGCARP's epoch-0 checkpoint, ESM's initial weights); a fusion's controls are
the concatenations of its parts' controls. The paper's baseline, Pfam2vec with a random forest,
stands beside Pfam counts. :func:`fusion_tests` gathers every comparison into
``fusion_tests.csv`` and :func:`claim4` reads the verdicts from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crossgran.analysis import halogenation
from crossgran.analysis.comparisons import (
    TEST_COLUMNS,
    Comparison,
    claim_verdicts,
    control_comparisons,
    run_comparisons,
)
from crossgran.analysis.controls import random_family_vectors, random_residue_features
from crossgran.analysis.features import (
    count_matrix,
    count_weighted_mean,
    one_hot_signatures,
    random_features,
)
from crossgran.analysis.labelled_rows import ProbeRows, product_class_rows
from crossgran.analysis.probes import ProbeResult, cross_validated_scores, summarise
from crossgran.analysis.rows import rows_of
from crossgran.data.adomains import PROPERTIES
from crossgran.data.pfam import AMP_BINDING
from crossgran.data.tables import load_table
from crossgran.profiles import Profile

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations
    from crossgran.models.esm import EmbeddingResult, LoadedEsm

__all__ = [
    "CLASS_FUSION",
    "CLASS_SINGLES",
    "CONTROLS",
    "FUSIONS",
    "HalogenationProbe",
    "adomain_features",
    "adomain_probes",
    "claim4",
    "fusion_tests",
    "halogenation_probes",
    "product_class_probes",
    "product_class_tables",
]

CONTROLS = ("random", "untrained")
CLASS_FUSION = "esm+bigcarp_last"
CLASS_SINGLES = ["esm", "bigcarp_embedder", "bigcarp_last"]
FUSIONS = {"bigcarp+esm_mean": ["bigcarp", "esm_mean"], "bigcarp+stachel": ["bigcarp", "stachel"]}
ADOMAIN_SINGLES = ["stachel", "esm_mean", "bigcarp"]
# The A-domain feature sets probed a second time with ungrouped folds, as the paper did, for
# the properties the paper reports.
UNGROUPED = [*ADOMAIN_SINGLES, *FUSIONS]
UNGROUPED_PROPERTIES = ("is_aromatic", "has_heterocycle")


def _cv(settings: Profile) -> dict:
    """The profile's cross-validation settings, shared by every probe of the notebook."""
    return {
        "folds": settings.probe_folds,
        "seeds": range(settings.probe_seeds),
        "n_jobs": settings.probe_jobs,
    }


def _fused(
    features: dict[str, np.ndarray],
    name: str,
    parts: Sequence[str],
    controls: Sequence[str] = CONTROLS,
) -> None:
    """Add the concatenation ``name`` of ``parts`` and, where every part has them, its
    ``controls``."""
    features[name] = np.hstack([features[p] for p in parts])
    for control in controls:
        if all(f"{p}~{control}" in features for p in parts):
            features[f"{name}~{control}"] = np.hstack([features[f"{p}~{control}"] for p in parts])


def _random_pooled(settings: Profile, bgc_ids: Sequence[str], width: int) -> np.ndarray:
    """One fixed random vector per Pfam family, pooled per BGC as family vectors are."""
    counts = load_table(settings, "mibig_domain_counts")
    families = sorted(counts["pfam"].unique())
    vectors = random_family_vectors(families, width, settings.seed)
    return count_weighted_mean(counts, bgc_ids, families, vectors)


def product_class_probes(
    settings: Profile,
    esm_pfam: Mapping[str, EmbeddingResult],
    bigcarp_runs: Mapping[str, Representations],
    pfam2vec: tuple[list[str], np.ndarray],
    *,
    esm_layer: int,
) -> tuple[dict[str, ProbeResult], ProbeRows]:
    """(probe results by feature set, the probed rows) of the MIBiG product-class task.

    ``esm_pfam`` and ``bigcarp_runs`` map ``""`` to the trained model and ``"~untrained"`` to
    its control; ``pfam2vec`` is (families, vectors). Feature sets: ``esm`` (the BGC's family
    vectors at ``esm_layer``, weighted by domain count), ``bigcarp_embedder`` and
    ``bigcarp_last`` (random-init BiGCARP's per-BGC means at layer 0 and its last layer), their
    controls, :data:`CLASS_FUSION` and its controls, ``pfam2vec`` (random forest),
    ``pfam_counts`` (``settings.count_probe_model``) and ``random`` (one vector per BGC).
    """
    counts = load_table(settings, "mibig_domain_counts")
    run = bigcarp_runs[""]
    bgc_ids = np.asarray(run.bgc_ids)
    last = run.layers[-1]
    blocks: dict[str, np.ndarray] = {}
    for suffix, result in esm_pfam.items():
        blocks[f"esm{suffix}"] = count_weighted_mean(
            counts, bgc_ids, result.ids, result.mean[esm_layer]
        )
    for suffix, export in bigcarp_runs.items():
        blocks[f"bigcarp_embedder{suffix}"] = export.bgc[0]
        blocks[f"bigcarp_last{suffix}"] = export.bgc[last]
    pooled = {}  # one random projection per width: the embedder and last layer share one
    for name in ["esm", "bigcarp_embedder", "bigcarp_last"]:
        width = blocks[name].shape[1]
        if width not in pooled:
            pooled[width] = _random_pooled(settings, bgc_ids, width)
        blocks[f"{name}~random"] = pooled[width]
    blocks["pfam2vec"] = count_weighted_mean(counts, bgc_ids, *pfam2vec)
    rows = product_class_rows(settings, bgc_ids, blocks.values())
    features = {name: block[rows.rows] for name, block in blocks.items()}
    _fused(features, CLASS_FUSION, ["esm", "bigcarp_last"])
    features["pfam_counts"], _ = count_matrix(counts, rows.bgc_ids)
    features["random"] = random_features(
        len(rows.rows), features[CLASS_FUSION].shape[1], settings.seed
    )
    models = {"pfam_counts": settings.count_probe_model, "pfam2vec": "rf"}
    results: dict[str, ProbeResult] = {}
    probed: dict[tuple[bytes, str], ProbeResult] = {}  # identical inputs are probed once
    for name, x in features.items():
        model = models.get(name, "logreg")
        key = (hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest(), model)
        if key not in probed:
            probed[key] = cross_validated_scores(
                x, rows.targets, task="multilabel", model=model, **_cv(settings)
            )
        results[name] = probed[key]
    return results, rows


def product_class_tables(
    settings: Profile, results: Mapping[str, ProbeResult]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``product_class_probe.csv``, the task's paired tests): the fusion against the best
    single representation, its random-projection concatenation and Pfam2vec; every single
    representation against its controls and Pfam2vec."""
    table = summarise(results, settings.n_bootstrap, seed=settings.seed)
    comparisons = [
        Comparison(CLASS_FUSION, tuple(CLASS_SINGLES)),
        *control_comparisons([CLASS_FUSION, *CLASS_SINGLES], CONTROLS),
        *(Comparison(name, ("pfam2vec",)) for name in [CLASS_FUSION, *CLASS_SINGLES]),
    ]
    tests = run_comparisons(
        results,
        comparisons,
        task="product_class",
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
    )
    return table, tests


def _residue_controls(
    settings: Profile, domains: pd.DataFrame, width: int
) -> dict[str, np.ndarray]:
    """The random projection of the residues ESM reads, pooled as ``esm_mean`` and ``stachel``."""
    positions = [[int(p) for p in str(text).split()] for text in domains["stachelhaus_positions"]]
    mean, at_positions = random_residue_features(
        list(domains["sequence"]), width, settings.seed, positions
    )
    return {"esm_mean~random": mean, "stachel~random": at_positions}


def adomain_features(
    settings: Profile,
    esm_adomains: Mapping[str, EmbeddingResult],
    bigcarp_runs: Mapping[str, Representations],
    *,
    esm_layer: int,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(the ``adomains`` rows of the run's A-domains, feature sets on those rows).

    Rows: the A-domains located in their parent protein's sentence (so BiGCARP has a
    contextual token for them). Feature sets: ``esm_mean``, ``stachel`` (ESM at ``esm_layer``,
    mean over the domain / over its Stachelhaus positions), ``bigcarp`` (the AMP-binding token
    at random-init BiGCARP's last layer), each with its controls (``esm_adomains`` and
    ``bigcarp_runs`` map ``""`` to the trained model and ``"~untrained"`` to its control), the
    :data:`FUSIONS` and their random-projection controls, and ``stachelhaus_onehot``.
    """
    run = bigcarp_runs[""]
    domains = load_table(settings, "adomains").set_index("domain_id").loc[run.adomain_ids]
    features: dict[str, np.ndarray] = {}
    for suffix, result in esm_adomains.items():
        rows = rows_of(result.ids, run.adomain_ids)
        features[f"esm_mean{suffix}"] = result.mean[esm_layer][rows]
        features[f"stachel{suffix}"] = result.positions[esm_layer][rows]
    for suffix, export in bigcarp_runs.items():
        features[f"bigcarp{suffix}"] = export.adomain[export.layers[-1]]
    features |= _residue_controls(settings, domains, features["esm_mean"].shape[1])
    token = random_family_vectors([AMP_BINDING], features["bigcarp"].shape[1], settings.seed)
    features["bigcarp~random"] = np.repeat(token, len(domains), axis=0)
    for name, parts in FUSIONS.items():
        _fused(features, name, parts, controls=["random"])
    features["stachelhaus_onehot"] = one_hot_signatures(domains["stachelhaus"])
    return domains, features


def _adomain_comparisons() -> list[Comparison]:
    return [
        Comparison("stachel", ("esm_mean",)),
        Comparison("esm_mean", ("bigcarp",)),
        *control_comparisons(ADOMAIN_SINGLES, CONTROLS),
        *(Comparison(fused, tuple(parts)) for fused, parts in FUSIONS.items()),
        *control_comparisons(list(FUSIONS), ["random"]),
    ]


def adomain_probes(
    settings: Profile, domains: pd.DataFrame, features: Mapping[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(``adomain_probe.csv``, the paired tests, ``adomain_probe_ungrouped.csv``, the
    properties skipped and why).

    For each substrate property, the domains whose label leaves it undefined are dropped, and
    folds *and* bootstrap replicates are grouped by parent protein, so neither a probe nor an
    interval can lean on sibling modules of one protein; a property whose rarer class spans
    fewer parent proteins than folds is skipped. The :data:`UNGROUPED` feature sets are probed
    once more, for the :data:`UNGROUPED_PROPERTIES` the paper reports, with plain stratified
    folds and a row bootstrap, as the paper did: those numbers
    leak homologues between folds, so they are reported beside, never tested.
    """
    tables, ungrouped, tests, skipped = [], [], [], []
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
            summarise(results, settings.n_bootstrap, seed=settings.seed, groups=parents).assign(
                property=prop
            )
        )
        tests.append(
            run_comparisons(
                results,
                _adomain_comparisons(),
                task="adomain",
                prop=prop,
                metrics=("auc",),
                n_bootstrap=settings.n_bootstrap,
                seed=settings.seed,
                groups=parents,
            )
        )
        if prop not in UNGROUPED_PROPERTIES:
            continue
        leaky = {
            name: cross_validated_scores(
                features[name][defined], labels, task="binary", **_cv(settings)
            )
            for name in UNGROUPED
        }
        ungrouped.append(
            summarise(leaky, settings.n_bootstrap, seed=settings.seed).assign(property=prop)
        )
    if not tables:
        raise ValueError(f"no A-domain property could be probed: {'; '.join(skipped)}")
    table, leaky_table = (
        pd.concat(t or [tables[0].iloc[:0]], ignore_index=True) for t in (tables, ungrouped)
    )
    table = table[["property", *table.columns.drop("property")]]
    leaky_table = leaky_table[["property", *leaky_table.columns.drop("property")]]
    return table, pd.concat(tests, ignore_index=True), leaky_table, skipped


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
    table = summarise(results, settings.n_bootstrap, seed=settings.seed, groups=groups)
    tests = run_comparisons(
        results,
        [
            Comparison(halogenation.FUSED, tuple(halogenation.PARTS)),
            Comparison("esm", ("bigcarp_domain",)),
        ],
        task="halogenation",
        metrics=("auc",),
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
        groups=groups,
    )
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
    """``fusion_tests.csv``: every paired test of notebook 05, all tasks in one table."""
    return pd.concat([class_tests, domain_tests, *halogen_tests], ignore_index=True)[TEST_COLUMNS]


def claim4(tests: pd.DataFrame) -> pd.DataFrame:
    """Claim 4 per task, property, fusion and metric: the verdict (Holm over the notebook's
    tests) of the fusion against the best single representation, the same for the fusion
    against the concatenation of its parts' random projections, and the delta and adjusted p
    of the first. A fusion gain means little unless the random concatenation fails to match it."""
    decided = claim_verdicts(tests)
    fusions = decided[decided["candidate"].isin([CLASS_FUSION, *FUSIONS, halogenation.FUSED])]
    best = fusions[~fusions["rival"].str.contains("~") & (fusions["rival"] != "pfam2vec")]
    control = fusions[fusions["rival"].str.endswith("~random")]
    keys = ["task", "property", "candidate", "metric"]
    merged = best.merge(
        control[[*keys, "verdict"]], on=keys, how="left", suffixes=("", "_vs_random")
    )
    merged["verdict_vs_random"] = merged["verdict_vs_random"].fillna("not run")
    return merged[
        [*keys, "rival", "delta", "low", "high", "p_holm", "verdict", "verdict_vs_random"]
    ]
