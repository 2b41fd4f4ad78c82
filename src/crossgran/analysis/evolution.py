"""Notebook 03, claim 2's secondary figure: table-level CKA across checkpoints and on the final
models (the token table and per-family averages). The paper's measure, CKA of layer outputs at
held-out token occurrences, is :mod:`crossgran.analysis.occurrence_cka`; these tables are a
different quantity and carry no paper value (a table of N(0, 1) rows stays near CKA 1 with its
initial self under any initialisation, so they cannot test claim 2 on their own).

Three kinds of comparison, each as plain linear CKA (the paper's) and debiased CKA (near 0 for
unrelated representations whatever the width): a run's token table at every epoch against its
epoch-0 table (over the rows of real Pfam families); per-family representations at the
embedder (layer 0) and the last layer of every checkpoint, against each other and against
their own epoch-0 state; and the ESM-init embedder against the random-init last layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from crossgran.analysis.cka import debiased_cka, linear_cka
from crossgran.analysis.paper import PAPER_CKA
from crossgran.analysis.rows import rows_of
from crossgran.data.tables import load_table
from crossgran.models import bigcarp
from crossgran.profiles import Profile

__all__ = ["checkpoint_subset", "cka_evolution", "cka_summary"]

_SUMMARY_PAIRS = (
    ("esm", "esm"),
    ("random", "random"),
    ("esm-frozen", "esm-frozen"),
    ("esm", "random"),
)


def _similarity(
    run_a: str, run_b: str, comparison: str, epoch: int, x: np.ndarray, y: np.ndarray
) -> dict:
    """One CKA record: plain linear (the paper's) and debiased."""
    return {
        "run_a": run_a,
        "run_b": run_b,
        "comparison": comparison,
        "epoch": epoch,
        "linear_cka": linear_cka(x, y),
        "debiased_cka": debiased_cka(x, y),
        "n_rows": x.shape[0],
    }


def checkpoint_subset(settings: Profile, n_rows: int) -> pd.DataFrame:
    """About ``n_rows`` evenly spaced rows of ``domain_corpus`` sorted by id: a fixed subset,
    so that every checkpoint is read on the same sentences and the notebook stays fast."""
    corpus = load_table(settings, "domain_corpus").sort_values("seq_id")
    return corpus.iloc[np.unique(np.linspace(0, len(corpus) - 1, n_rows).astype(int))]


def _checkpoint_layers(
    settings: Profile,
    runs: Mapping[str, bigcarp.TrainedRun],
    subset: pd.DataFrame,
    last: int,
    records: list[dict],
) -> tuple[dict[tuple[str, int], dict[int, np.ndarray]], list[str]]:
    """Per (init, epoch), the per-family representations at layers 0 and ``last`` of that
    checkpoint on ``subset``, and the families they cover; appends each epoch's token-table
    record to ``records`` on the way (one pass over the checkpoints)."""
    per_epoch: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    families_seen: list[str] = []
    for init, run in runs.items():
        family_rows = run.vocab.family_indices
        for epoch, table in sorted(run.token_tables.items()):
            records.append(
                _similarity(
                    init,
                    init,
                    "token_table_vs_init",
                    epoch,
                    table[family_rows],
                    run.token_tables[0][family_rows],
                )
            )
            model = bigcarp.load_checkpoint(settings.models_dir / f"bigcarp_{init}", epoch=epoch)
            reps = bigcarp.family_representations(
                model.model,
                model.vocab,
                subset,
                [0, last],
                n_orders=settings.bigcarp.n_orders,
                seed=settings.seed,
            )
            if reps[0][0] != reps[last][0]:
                raise ValueError("layers 0 and last cover different families")
            per_epoch[init, epoch] = {layer: array for layer, (_, array) in reps.items()}
            families_seen = reps[0][0]
    return per_epoch, families_seen


def cka_evolution(
    settings: Profile, runs: Mapping[str, bigcarp.TrainedRun], subset: pd.DataFrame, last: int
) -> tuple[pd.DataFrame, int]:
    """(``cka_evolution.csv``, number of families compared): for every run and epoch, the
    token table vs its epoch-0 table, and on ``subset``'s per-family representations the
    embedder vs the last layer, each vs its epoch-0 state, and the ESM-init embedder vs the
    random-init last layer at the same epoch (``runs``: init mode -> trained run, ``esm`` and
    ``random`` among them). The last is left out when the random-init run is an imported
    official checkpoint (``TrainedRun.official``): its epoch 1 is the released model, not the
    first epoch of a run trained beside the ESM-init one, and its vocabulary is not theirs.
    """
    records: list[dict] = []
    per_epoch, families_seen = _checkpoint_layers(settings, runs, subset, last, records)
    pair_across = runs["random"].official is None
    for (init, epoch), layers in per_epoch.items():
        start = per_epoch[init, 0]
        records += [
            _similarity(init, init, "embedder_vs_last", epoch, layers[0], layers[last]),
            _similarity(init, init, "embedder_vs_init", epoch, layers[0], start[0]),
            _similarity(init, init, "last_vs_init", epoch, layers[last], start[last]),
        ]
        if init == "esm" and pair_across:
            records.append(
                _similarity(
                    "esm",
                    "random",
                    "embedder_vs_last",
                    epoch,
                    layers[0],
                    per_epoch["random", epoch][last],
                )
            )
    return pd.DataFrame.from_records(records), len(families_seen)


def cka_summary(
    runs: Mapping[str, bigcarp.TrainedRun],
    exports: Mapping[str, bigcarp.Representations],
    last: int,
) -> pd.DataFrame:
    """``cka_summary.csv``: the final models' table-level CKA. ``paper_linear_cka`` is filled
    only where :data:`~crossgran.analysis.paper.PAPER_CKA` has the same (comparison, run_a,
    run_b); the paper's values are of the occurrence measure, whose comparisons are named
    differently, so for these tables it stays empty.

    Each run's final token table vs its initialisation, and the embedder vs the last layer
    (within each run, and ESM-init embedder vs random-init last layer) on the per-family
    representations over the whole corpus that notebook 02 exported, in the random run's
    family order.
    """
    families = exports["random"].families

    def family_layer(init: str, layer: int) -> np.ndarray:
        return exports[init].family[layer][rows_of(exports[init].families, families)]

    final = {init: run.epoch for init, run in runs.items()}
    records = [
        _similarity(
            init,
            init,
            "token_table_vs_init",
            final[init],
            run.token_tables[final[init]][run.vocab.family_indices],
            run.token_tables[0][run.vocab.family_indices],
        )
        for init, run in runs.items()
    ]
    records += [
        _similarity(a, b, "embedder_vs_last", final[a], family_layer(a, 0), family_layer(b, last))
        for a, b in _SUMMARY_PAIRS
    ]
    summary = pd.DataFrame.from_records(records)
    summary["paper_linear_cka"] = [
        PAPER_CKA.get((r.comparison, r.run_a, r.run_b)) for r in summary.itertuples()
    ]
    return summary
