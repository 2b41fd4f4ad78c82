"""Notebook 04, probe part: per-layer probes on Pfam-family tasks (claim 3: the deeper layers
are a more faithful record of what BiGCARP learned than its token table).

The families, layers and runs are :class:`crossgran.analysis.layers.FamilyLayers`; every layer
of every run is probed on the same families and folds, so layers can be compared row by row
(:func:`layer_probes`, :func:`deeper_vs_embedder`). Probe fits hold BLAS to one thread (see
:mod:`crossgran.analysis.layers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from crossgran.analysis.comparisons import TEST_COLUMNS, claim_verdicts
from crossgran.analysis.controls import random_family_vectors
from crossgran.analysis.features import family_class_association, frequent_label_matrix
from crossgran.analysis.layers import INITS, FamilyLayers
from crossgran.analysis.probes import (
    ProbeResult,
    Task,
    bootstrap_ci,
    cross_validated_scores,
    paired_bootstrap,
)
from crossgran.analysis.rows import rows_of
from crossgran.data.split import association_label_bgcs
from crossgran.data.tables import load_table
from crossgran.profiles import Profile
from crossgran.threads import limit

if TYPE_CHECKING:
    from crossgran.models.bigcarp import Representations
    from crossgran.models.esm import EmbeddingResult

__all__ = [
    "RANDOM_MODEL",
    "UNTRAINED_LABEL",
    "LayerTasks",
    "claim3_runs",
    "claim3_tests",
    "disjoint_families",
    "layer_probes",
    "peaks",
    "probe_tasks",
    "probed_models",
    "umap_inputs",
]

UNTRAINED_LABEL = " (untrained)"  # model-name suffix of an untrained control (epoch 0)
RANDOM_MODEL = "random projection"
Fits = Mapping[tuple[str, str, int], ProbeResult]
ProbeTask = tuple[Task, np.ndarray, np.ndarray]  # (task kind, rows of the families, labels)


@dataclass(frozen=True)
class LayerTasks:
    """The two per-family labels probed at every layer, and what was left out."""

    family_class: pd.Series  # product-class association per family (NaN: none; 'mixed')
    class_sizes: pd.Series  # families per association class, 'mixed' excluded
    kept_classes: pd.Index  # classes with enough families to probe
    class_rows: np.ndarray  # families probed for their class
    go_rows: np.ndarray  # families with a GO molecular-function annotation
    go_matrix: pd.DataFrame  # 0/1 frequent GO terms of the annotated families
    tasks: dict[str, ProbeTask]  # task name -> (kind, family rows, labels); primary first


def probe_tasks(
    settings: Profile, families: list[str], *, min_class_families: int, min_term_families: int
) -> LayerTasks:
    """Product-class association (multiclass; computed from the MIBiG BGCs of
    :func:`~crossgran.data.split.association_label_bgcs` only, which the BiGCARP family vectors
    probed here are not averaged over; ``mixed`` and classes with fewer than
    ``min_class_families`` families excluded) and GO molecular function (multilabel over the
    terms held by at least ``min_term_families`` probed families; unannotated families left
    out, since they are unknown rather than known to lack every function)."""
    counts = load_table(settings, "mibig_domain_counts")
    label_bgcs = sorted(counts["bgc_id"].unique())
    held_out = np.asarray(label_bgcs)[association_label_bgcs(label_bgcs)]
    classes = load_table(settings, "mibig_classes")
    association = family_class_association(  # class sizes, too, from the label BGCs only
        counts[counts["bgc_id"].isin(held_out)], classes[classes["bgc_id"].isin(held_out)]
    )
    family_class = association.reindex(families)
    class_sizes = family_class[family_class != "mixed"].value_counts()
    kept_classes = class_sizes[class_sizes >= min_class_families].index
    class_rows = np.flatnonzero(family_class.isin(kept_classes).to_numpy())
    class_labels = family_class.to_numpy()[class_rows]

    go = load_table(settings, "pfam_families").set_index("pfam")["go_molecular_function"]
    go = go.reindex(families)
    go_rows = np.flatnonzero(go.notna().to_numpy())
    go_matrix = frequent_label_matrix(go.iloc[go_rows], min_term_families)
    tasks: dict[str, ProbeTask] = {
        "product-class association": ("multiclass", class_rows, class_labels),
        f"GO molecular function (≥{min_term_families} families)": (
            "multilabel",
            go_rows,
            go_matrix.to_numpy(),
        ),
    }
    return LayerTasks(
        family_class=family_class,
        class_sizes=class_sizes,
        kept_classes=kept_classes,
        class_rows=class_rows,
        go_rows=go_rows,
        go_matrix=go_matrix,
        tasks=tasks,
    )


def disjoint_families(space: FamilyLayers, exported: Mapping[str, Representations]) -> list[str]:
    """The families of ``space`` with a finite ``family_disjoint`` vector in every export: a
    family seen only in the BGCs that label the probe has none, and is left out of it."""
    finite = set(space.families)
    for export in exported.values():
        rows = rows_of(export.families, space.families)
        seen = np.isfinite(export.family_disjoint[0][rows]).all(axis=1)
        finite &= set(np.asarray(space.families)[seen])
    return [family for family in space.families if family in finite]


def probed_models(
    space: FamilyLayers,
    families: list[str],
    esm_untrained: EmbeddingResult,
    exported: Mapping[str, Representations],
    *,
    seed: int,
) -> dict[str, dict[int, np.ndarray]]:
    """Model name (as in ``layer_probes.csv``) -> layer -> representations of ``families``.

    BiGCARP's family vectors are ``family_disjoint`` (averaged without the BGCs that label the
    probe; ``families`` from :func:`disjoint_families`); beside each run stands its epoch-0
    checkpoint (``exported["<init>~untrained"]``), beside ESM its untrained architecture, and a
    width-matched random projection (one fixed random vector per family: chance by
    construction, the floor every curve is read against).
    """
    in_space = rows_of(space.families, families)
    esm_rows = rows_of(esm_untrained.ids, families)
    models = {
        f"ESM ({space.esm_model})": {k: v[in_space] for k, v in space.esm.items()},
        f"ESM ({space.esm_model}){UNTRAINED_LABEL}": {
            k: v[esm_rows] for k, v in esm_untrained.mean.items()
        },
    }
    for init, label in INITS.items():
        for suffix, tag in (("", ""), ("~untrained", UNTRAINED_LABEL)):
            export = exported[init + suffix]
            rows = rows_of(export.families, families)
            models[f"BiGCARP {label}{tag}"] = {
                k: v[rows] for k, v in export.family_disjoint.items()
            }
    width = space.bigcarp["random"][0].shape[1]
    models[RANDOM_MODEL] = {0: random_family_vectors(families, width, seed)}
    return models


def _check_probeable(
    settings: Profile, name: str, kind: Task, rows: np.ndarray, labels: np.ndarray
) -> None:
    """Refuse a task a probe cannot fit (a multiclass task with fewer than two classes, a
    multilabel one without a label) with what is missing and the fix; otherwise it fails as a
    scikit-learn error inside a worker process."""
    n_labels = (
        len(set(labels))
        if kind == "multiclass"
        else np.asarray(labels).reshape(len(rows), -1).shape[1]
    )
    if n_labels >= (2 if kind == "multiclass" else 1):
        return
    what = "classes" if kind == "multiclass" else "labels"
    raise ValueError(
        f"the family probe task {name!r} has {n_labels} {what} over {len(rows)} families, too "
        f"few to probe: the '{settings.name}' profile has too few MIBiG BGCs labelling Pfam "
        "families (a family's class is counted over half the BGCs, and it is probed only if it "
        "also occurs outside them). Fix: a profile with more BGCs (max_bgcs, or the whole "
        "release), or lower notebook 04's minimum families per class or term"
    )


def layer_probes(
    settings: Profile,
    models: Mapping[str, Mapping[int, np.ndarray]],
    tasks: Mapping[str, ProbeTask],
) -> tuple[pd.DataFrame, dict[tuple[str, str, int], ProbeResult]]:
    """(``layer_probes.csv``, the fits by (task, model, layer)): a probe on every layer of ESM
    and of both runs for every task, on the same families and folds, with the macro-F1 and its
    bootstrap interval over families (``models``: :func:`probed_models`). The probes are
    independent: one process each."""
    for name, (kind, rows, labels) in tasks.items():
        _check_probeable(settings, name, kind, rows, labels)
    seeds = tuple(range(settings.seed, settings.seed + settings.probe_seeds))
    jobs = [(task, model, layer) for task in tasks for model in models for layer in models[model]]
    with limit(blas_threads=1), Parallel(n_jobs=settings.probe_jobs) as parallel:
        results = parallel(
            delayed(cross_validated_scores)(
                models[model][layer][tasks[task][1]],
                tasks[task][2],
                task=tasks[task][0],
                folds=settings.probe_folds,
                seeds=seeds,
            )
            for task, model, layer in jobs
        )
        intervals = parallel(
            delayed(bootstrap_ci)(
                result.y_true, result.oof_scores, "f1", settings.n_bootstrap, settings.seed
            )
            for result in results
        )
    rows = [
        {
            "task": task,
            "model": model,
            "layer": layer,
            "relative_depth": layer / max(max(models[model]), 1),
            "metric": "macro-F1",
            "mean": point,
            "ci_low": low,
            "ci_high": high,
            "auc": result.mean()["auc"],
            "n_rows": len(tasks[task][1]),
            "n_seeds": len(seeds),
            "folds": settings.probe_folds,
        }
        for (task, model, layer), result, (point, low, high) in zip(
            jobs, results, intervals, strict=True
        )
    ]
    return pd.DataFrame.from_records(rows), dict(zip(jobs, results, strict=True))


def peaks(table: pd.DataFrame) -> pd.DataFrame:
    """The row of :func:`layer_probes`'s table where each (task, model) curve peaks."""
    return table.loc[table.groupby(["task", "model"], sort=False)["mean"].idxmax()]


def claim3_tests(settings: Profile, fits: Fits, last: int) -> pd.DataFrame:
    """Claim 3's paired tests (macro-F1, bootstrap over families on the same folds), per task
    and run, in the shared tests format: the trained last layer against the run's embedder,
    against the same layer of its untrained epoch-0 checkpoint, and against the random
    projection. ``property`` holds the run's label."""
    tasks = list(dict.fromkeys(task for task, _, _ in fits))
    records = []
    with limit(blas_threads=1):
        for task in tasks:
            for label in INITS.values():
                model = f"BiGCARP {label}"
                deep = fits[task, model, last]
                rivals = {
                    f"{model} embedder": fits[task, model, 0],
                    f"{model}{UNTRAINED_LABEL} last layer": fits[
                        task, model + UNTRAINED_LABEL, last
                    ],
                    RANDOM_MODEL: fits[task, RANDOM_MODEL, 0],
                }
                for rival, fit in rivals.items():
                    test = paired_bootstrap(
                        deep.y_true,
                        deep.oof_scores,
                        fit.oof_scores,
                        "f1",
                        settings.n_bootstrap,
                        settings.seed,
                    )
                    records.append(
                        {
                            "task": task,
                            "property": label,
                            "candidate": f"{model} last layer",
                            "rival": rival,
                            "rivals": rival,
                            "metric": "f1",
                            "kind": "above",
                            "candidate_mean": deep.mean()["f1"],
                            "rival_mean": fit.mean()["f1"],
                            **test,
                        }
                    )
    return pd.DataFrame.from_records(records)[TEST_COLUMNS]


def claim3_runs(tests: pd.DataFrame, task: str) -> pd.Series:
    """Per run label: whether its last layer beat all three rivals on ``task`` (Holm over the
    notebook's claim-3 tests)."""
    decided = claim_verdicts(tests)
    held = decided[decided["task"] == task].groupby("property", sort=False)["verdict"]
    return held.agg(lambda verdicts: bool((verdicts == "holds").all()))


def umap_inputs(
    space: FamilyLayers, family_class: pd.Series
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(panels, labels) for the UMAP of the families with a product-class association
    (``family_class`` is indexed by accession): both
    embedders, both last layers and the ESM layer that initialised the ESM-init table."""
    labelled = family_class.dropna()
    rows = rows_of(space.families, list(labelled.index))
    reps, last = space.bigcarp, space.last
    panels = {
        "ESM-init embedder": reps["esm"][0][rows],
        "random-init embedder": reps["random"][0][rows],
        f"ESM-init layer {last}": reps["esm"][last][rows],
        f"random-init layer {last}": reps["random"][last][rows],
        f"ESM layer {space.esm_init_layer}": space.esm[space.esm_init_layer][rows],
    }
    return panels, labelled.to_numpy()
