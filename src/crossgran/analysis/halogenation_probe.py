"""The halogenation task's probes and tests: what notebook 05 writes for it in one call.

The paper probes halogenation with an MLP (512, 128) (``halogenation.MLP_HIDDEN``), run here
where the profile runs the paper's probes (``profile.paper_probes``); the linear probe runs
beside it on every profile. Tables and tests carry each row's ``probe``
(:func:`crossgran.analysis.probes.probe_label`), and comparisons never pit one probe against
another (:func:`crossgran.analysis.comparisons.run_probe_comparisons`), as for every task of
notebook 05.

Why these folds: the rows are few and unbalanced (offline 58 halogenated BGCs against 8 that are
not), so the folds are stratified by label and grouped by BGC, their number is the profile's
(5 for ``mini``): each test fold then holds one or two of the rarer label, enough for the
pooled out-of-fold AUC (computed over all rows at once, never per fold), and a training fold
keeps six or seven. More folds would leave test folds with none; fewer would train on fewer.
When fewer BGCs than folds hold the rarer label the task is skipped with a note, not crashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.analysis.comparisons import (
    PROBE_TEST_COLUMNS,
    Comparison,
    control_comparisons,
    run_probe_comparisons,
)
from crossgran.analysis.halogenation import (
    BIGCARP_PARTS,
    CONTROLS,
    FUSED,
    MLP_HIDDEN,
    OFFLINE_TABLE,
    PARTS,
    TABLE,
    TaskData,
    halogenation_features,
)
from crossgran.analysis.probes import (
    ModelName,
    ProbeResult,
    cross_validated_scores,
    probe_label,
    summarise_sets,
)
from crossgran.data.pfam import TRP_HALOGENASE
from crossgran.data.tables import load_table
from crossgran.models.bigcarp import Representations
from crossgran.models.esm import LoadedEsm
from crossgran.profiles import Profile

__all__ = ["TASK", "halogenation_tables"]

TASK = "halogenation"  # the tests' ``task``


def _comparisons(names: Sequence[str]) -> list[Comparison]:
    """The fusion against the best of its parts and ESM against BiGCARP's domain token (where
    ESM was probed), every learned feature set against its controls, and the BiGCARP ones
    against the Pfam counts they are read from."""
    learned = [name for name in (FUSED, *PARTS) if name in names]
    paper = [Comparison(FUSED, PARTS), Comparison("esm", ("bigcarp_domain",))]
    return [
        *(paper if FUSED in names else []),
        *control_comparisons(learned, CONTROLS),
        *(Comparison(name, ("pfam_counts",)) for name in BIGCARP_PARTS),
    ]


def _probes(settings: Profile) -> list[tuple[ModelName, tuple[int, ...]]]:
    """(model, hidden sizes) of each probe: the linear probe, and the paper's MLP where the
    profile runs the paper's probes."""
    paper: list[tuple[ModelName, tuple[int, ...]]] = [("mlp", MLP_HIDDEN)]
    return [("logreg", ()), *(paper if settings.paper_probes else [])]


def _probe_all(
    settings: Profile, data: TaskData, model: ModelName, hidden: tuple[int, ...]
) -> dict[str, ProbeResult]:
    return {
        name: cross_validated_scores(
            x,
            data.labels,
            task="binary",
            groups=data.groups,
            model=model,
            mlp_hidden=hidden,
            folds=settings.probe_folds,
            seeds=range(settings.probe_seeds),
            n_jobs=settings.probe_jobs,
        )
        for name, x in data.features.items()
    }


def _notes(settings: Profile, data: TaskData) -> list[str]:
    """What the task's numbers rest on: its rows, labels and SMILES, and what is not testable."""
    table = load_table(settings, TABLE if settings.downloads else OFFLINE_TABLE)
    compounds = load_table(settings, "compounds")
    smiles = compounds.loc[compounds["bgc_id"].isin(set(table["bgc_id"])), "has_halogen"]
    bgcs = table.drop_duplicates("bgc_id")
    positives = int(data.labels.sum())
    n_bgcs = len(set(data.groups))
    rows = f"{len(data.labels)} halogenase domains of {n_bgcs}" if settings.downloads else n_bgcs
    notes = [
        f"{len(bgcs)} BGCs with a {TRP_HALOGENASE} (Trp_halogenase) domain, "
        f"{int(bgcs['has_halogen'].isna().sum())} of them without a parsable structure (left "
        f"out); {int(smiles.isna().sum())} of their {len(smiles)} SMILES unparsable by RDKit",
        f"probed: {rows} BGCs, {positives} "
        f"halogenated and {len(data.labels) - positives} not; {data.n_duplicates} BGCs dropped "
        "as repeats of an identical Pfam bag",
    ]
    if not settings.downloads:
        notes.append(
            "ESM and the fusion (esm+bigcarp_domain+bigcarp_mean): not testable here. Offline "
            "there are no protein sequences for these BGCs (GECCO keeps Pfam counts only), so "
            "the only ESM input would be the Trp_halogenase consensus: one constant vector."
        )
        notes.append(
            f"bigcarp_domain: the {TRP_HALOGENASE} token of the BGC's unordered bag, averaged "
            f"over its {TRP_HALOGENASE} tokens and {settings.bigcarp.n_orders} random orders"
        )
    return notes


def _no_tests() -> pd.DataFrame:
    """An empty tests table whose numeric columns are numeric, so that concatenating it with
    other tasks' tests keeps theirs so."""
    numeric = ("candidate_mean", "rival_mean", "delta", "low", "high", "p_value")
    return pd.DataFrame(columns=PROBE_TEST_COLUMNS).astype(dict.fromkeys(numeric, float))


def _rarer_groups(data: TaskData) -> int:
    """BGCs holding the rarer label: grouped folds can give each test fold at most this many."""
    return min(np.unique(data.groups[data.labels == value]).size for value in (0, 1))


def halogenation_tables(
    settings: Profile,
    exported: Mapping[str, Representations],
    run_dir: Path | str,
    *,
    esm_model: LoadedEsm | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(``halogenation_probe.csv``: every feature set under each probe, ``probe`` first; the
    paired AUC tests, task :data:`TASK`, in ``comparisons.PROBE_TEST_COLUMNS``; notes on the
    rows and on what is not testable).

    Arguments as :func:`halogenation_features`. Folds are stratified by label and grouped by
    BGC (``settings.probe_folds`` x ``probe_seeds``); intervals and tests resample BGCs. With
    fewer BGCs of the rarer label than folds, a fold would have none to test: the task is
    skipped (empty tables) and a note says why.
    """
    data = halogenation_features(settings, exported, run_dir, esm_model=esm_model)
    notes = _notes(settings, data)
    rarer = _rarer_groups(data)
    if rarer < settings.probe_folds:
        notes.append(
            f"not run: the rarer label is held by {rarer} BGCs, fewer than "
            f"{settings.probe_folds} folds"
        )
        return summarise_sets({}), _no_tests(), notes
    sets = {
        probe_label(model, hidden): _probe_all(settings, data, model, hidden)
        for model, hidden in _probes(settings)
    }
    table = summarise_sets(sets, settings.n_bootstrap, seed=settings.seed, groups=data.groups)
    tests = run_probe_comparisons(
        sets,
        _comparisons(list(data.features)),
        task=TASK,
        metrics=("auc",),
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
        groups=data.groups,
    )
    notes.append(
        f"{settings.probe_folds}-fold CV (stratified, grouped by BGC) x {settings.probe_seeds} "
        f"seeds: each test fold holds about {rarer / settings.probe_folds:.1f} of the {rarer} "
        "BGCs of the rarer label; AUC is read from the pooled out-of-fold scores"
    )
    return table, tests, notes
