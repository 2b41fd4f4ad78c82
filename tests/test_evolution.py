"""crossgran.analysis.evolution (notebook 03, claim 2).

The CKA tables are plumbing around :mod:`crossgran.analysis.cka`: which arrays are compared,
in which row order, under which labels. They are tested on small synthetic stand-ins for the
trained runs (the runs themselves take minutes to train), checking every value against CKA
computed directly on the rows that belong together; the corpus subset on the real smoke corpus.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import evolution
from crossgran.analysis.cka import debiased_cka, linear_cka
from crossgran.analysis.paper import PAPER_CKA
from crossgran.data.tables import load_table

FAMILIES = [f"PF{i:05d}" for i in range(30)]
INITS = ("random", "esm", "esm-frozen")
LAST = 2


def _run(rng: np.random.Generator, epochs: int = 2) -> SimpleNamespace:
    """A trained run's token tables (2 special rows, then the families) and its vocabulary."""
    tables = {0: rng.normal(size=(32, 6))}
    for epoch in range(1, epochs + 1):
        tables[epoch] = tables[epoch - 1] + 0.3 * rng.normal(size=(32, 6))
    return SimpleNamespace(
        epoch=epochs,
        token_tables=tables,
        vocab=SimpleNamespace(family_indices=np.arange(2, 32)),
        official=None,
    )


def _export(rng: np.random.Generator, order: np.ndarray) -> SimpleNamespace:
    """Per-family layer means, rows in ``order`` (each run lists its families its own way)."""
    family = {layer: rng.normal(size=(len(FAMILIES), 5)) for layer in range(LAST + 1)}
    return SimpleNamespace(
        families=[FAMILIES[i] for i in order],
        family={layer: array[order] for layer, array in family.items()},
        by_family=family,
    )


@pytest.fixture(scope="module")
def runs_and_exports() -> tuple[dict, dict]:
    rng = np.random.default_rng(3)
    runs = {init: _run(rng) for init in INITS}
    exports = {
        "random": _export(rng, np.arange(len(FAMILIES))),
        "esm": _export(rng, rng.permutation(len(FAMILIES))),
        "esm-frozen": _export(rng, rng.permutation(len(FAMILIES))),
    }
    return runs, exports


def test_cka_summary_pairs_families_by_id_and_carries_no_paper_value(runs_and_exports) -> None:
    runs, exports = runs_and_exports
    summary = evolution.cka_summary(runs, exports, LAST)
    assert list(summary.columns) == [
        "run_a",
        "run_b",
        "comparison",
        "epoch",
        "linear_cka",
        "debiased_cka",
        "n_rows",
        "paper_linear_cka",
    ]
    assert list(zip(summary["comparison"], summary["run_a"], summary["run_b"], strict=True)) == [
        *[("token_table_vs_init", init, init) for init in INITS],
        ("embedder_vs_last", "esm", "esm"),
        ("embedder_vs_last", "random", "random"),
        ("embedder_vs_last", "esm-frozen", "esm-frozen"),
        ("embedder_vs_last", "esm", "random"),
    ]
    table = summary.set_index(["comparison", "run_a", "run_b"])
    run = runs["esm"]
    assert table.loc[("token_table_vs_init", "esm", "esm"), "linear_cka"] == linear_cka(
        run.token_tables[2][2:], run.token_tables[0][2:]
    )
    by_family = {init: export.by_family for init, export in exports.items()}
    row = table.loc[("embedder_vs_last", "esm", "random")]
    assert row["linear_cka"] == pytest.approx(
        linear_cka(by_family["esm"][0], by_family["random"][LAST]), abs=1e-12
    )
    assert row["debiased_cka"] == pytest.approx(
        debiased_cka(by_family["esm"][0], by_family["random"][LAST]), abs=1e-12
    )
    assert row["n_rows"] == len(FAMILIES)
    # The paper's values are of the occurrence measure (occurrence_cka), not of these tables.
    assert table["paper_linear_cka"].isna().all()
    assert not set(table.index) & set(PAPER_CKA)


def _evolution(runs: dict, monkeypatch) -> tuple[pd.DataFrame, int, dict]:
    """cka_evolution over stand-in checkpoints of ``runs``: each epoch's per-family layers are
    known arrays (returned), so every record can be checked against CKA on the arrays it
    names."""
    rng = np.random.default_rng(5)
    layers = {
        (init, epoch): {0: rng.normal(size=(12, 4)), LAST: rng.normal(size=(12, 4))}
        for init, run in runs.items()
        for epoch in run.token_tables
    }
    families = FAMILIES[:12]

    def load_checkpoint(path, epoch):
        return SimpleNamespace(model=(path.name.removeprefix("bigcarp_"), epoch), vocab=None)

    def family_representations(model, vocab, subset, wanted, *, n_orders, seed):
        assert wanted == [0, LAST] and len(subset) == 7
        return {layer: (families, layers[model][layer]) for layer in wanted}

    monkeypatch.setattr(
        evolution,
        "bigcarp",
        SimpleNamespace(
            load_checkpoint=load_checkpoint, family_representations=family_representations
        ),
    )
    settings = SimpleNamespace(
        models_dir=Path("/models"), seed=0, bigcarp=SimpleNamespace(n_orders=2)
    )
    table, n_families = evolution.cka_evolution(settings, runs, pd.DataFrame(index=range(7)), LAST)
    return table, n_families, layers


def test_cka_evolution_compares_every_checkpoint(runs_and_exports, monkeypatch) -> None:
    runs, _ = runs_and_exports
    table, n_families, layers = _evolution(runs, monkeypatch)
    assert n_families == 12
    counts = table.groupby(["comparison", "run_a", "run_b"]).size()
    assert counts["token_table_vs_init"].tolist() == [3, 3, 3]  # epochs 0-2 of each run
    assert counts["embedder_vs_last", "esm", "random"] == 3
    record = table.set_index(["comparison", "run_a", "run_b", "epoch"])
    assert record.loc[("last_vs_init", "esm", "esm", 2), "linear_cka"] == linear_cka(
        layers["esm", 2][LAST], layers["esm", 0][LAST]
    )
    assert record.loc[("embedder_vs_last", "esm", "random", 1), "linear_cka"] == linear_cka(
        layers["esm", 1][0], layers["random", 1][LAST]
    )
    assert record.loc[("embedder_vs_init", "random", "random", 0), "linear_cka"] == pytest.approx(
        1.0
    )


def test_cka_evolution_pairs_no_epochs_with_an_imported_random_run(
    runs_and_exports, monkeypatch
) -> None:
    """An official random-init checkpoint has epochs 0 (an untrained control) and 1 (the
    released model): its epoch 1 is not the ESM-init run's first epoch, so no ESM-init
    epoch is paired with it, however many epochs that run has."""
    runs, _ = runs_and_exports
    tables = runs["random"].token_tables
    imported = SimpleNamespace(
        **{**vars(runs["random"]), "official": {"model": "bigcarp_random"}, "epoch": 1},
    )
    imported.token_tables = {k: tables[k] for k in (0, 1)}
    table, _, _ = _evolution({**runs, "random": imported}, monkeypatch)
    assert not ((table["run_a"] == "esm") & (table["run_b"] == "random")).any()
    within = table[table["run_a"] == "random"].groupby("comparison")["epoch"].apply(list)
    assert within["embedder_vs_last"] == [0, 1]
    assert (table[table["run_a"] == "esm"]["epoch"].max()) == 2


def test_checkpoint_subset_is_evenly_spaced_over_sorted_ids(smoke_profile, smoke_build) -> None:
    corpus = load_table(smoke_profile, "domain_corpus").sort_values("seq_id")
    subset = evolution.checkpoint_subset(smoke_profile, 25)
    assert len(subset) == 25 < len(corpus)
    assert subset["seq_id"].iloc[0] == corpus["seq_id"].iloc[0]
    assert subset["seq_id"].iloc[-1] == corpus["seq_id"].iloc[-1]
    assert subset["seq_id"].is_monotonic_increasing
    assert evolution.checkpoint_subset(smoke_profile, 25).equals(subset)
