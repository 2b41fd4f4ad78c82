"""The BiLSTM sequence probe (crossgran.analysis.probes.sequence) on real smoke rows.

Rows: the smoke profile's labelled MIBiG BGCs (multilabel product classes) with short domain
bags, each read as its sequence of Pfam domains in the corpus's stored (bag) order. The vector
of a domain is its family's HMM consensus amino-acid composition: model-free and real, enough
for a sequence model to tell families apart. The probe is shrunk (one layer of 16, a few
epochs) so that it runs in seconds; the paper's sizes are :data:`PAPER_BILSTM`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from crossgran.analysis.features import product_class_targets
from crossgran.analysis.probes import cross_validated_scores, paired_bootstrap
from crossgran.analysis.probes.sequence import (
    PAPER_BILSTM,
    SequenceProbeConfig,
    sequence_probe_scores,
)
from crossgran.data.mibig import PROBE_CLASSES
from crossgran.data.tables import load_table

FAST = SequenceProbeConfig(hidden=16, layers=1, lr=1e-2, max_epochs=8, patience=3)
MAX_DOMAINS = 40  # short bags keep the LSTM's unrolled steps (its CPU cost) small
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def task(smoke_profile, smoke_build) -> dict:
    """Sequences, multilabel targets and the pooled (mean) vectors of the short smoke BGCs."""
    families = load_table(smoke_profile, "pfam_families")
    composition = {
        row.pfam: np.array([row.consensus.count(a) for a in AMINO_ACIDS]) / len(row.consensus)
        for row in families.itertuples()
    }
    corpus = load_table(smoke_profile, "domain_corpus")
    mibig = corpus[(corpus["source"] == "mibig") & corpus["n_tokens"].between(1, MAX_DOMAINS)]
    mibig = mibig.sort_values("seq_id")
    classes = load_table(smoke_profile, "mibig_classes")
    labelled, targets, kept = product_class_targets(
        classes, mibig["seq_id"], PROBE_CLASSES, min_positives=smoke_profile.probe_folds
    )
    sequences = [
        np.stack([composition[token] for token in tokens.split()])
        for tokens in mibig.loc[labelled, "tokens"]
    ]
    return {
        "sequences": sequences,
        "targets": targets,
        "classes": kept,
        "folds": smoke_profile.probe_folds,
        "pooled": np.stack([s.mean(axis=0) for s in sequences]),
    }


@pytest.fixture(scope="module")
def learned(task):
    return sequence_probe_scores(
        task["sequences"],
        task["targets"],
        task="multilabel",
        folds=task["folds"],
        config=FAST,
        torch_threads=1,
    )


def test_the_bilstm_learns_product_classes_above_chance(task, learned) -> None:
    assert len(task["sequences"]) > 100 and len(task["classes"]) >= 3
    assert learned.model == "bilstm" and learned.probe == "BiLSTM (1 x 16)"
    assert learned.seeds == (0,) and learned.oof_scores[0].shape == task["targets"].shape
    assert np.isfinite(learned.oof_scores[0]).all()
    # Shuffled labels are what chance gives this probe; the real labels must be well above.
    rng = np.random.default_rng(0)
    shuffled = sequence_probe_scores(
        task["sequences"],
        task["targets"][rng.permutation(len(task["targets"]))],
        task="multilabel",
        folds=task["folds"],
        config=FAST,
        torch_threads=1,
    )
    assert learned.mean()["auc"] > 0.65
    assert learned.mean()["auc"] > shuffled.mean()["auc"] + 0.1


def test_the_folds_are_the_pooled_probes_so_their_scores_pair(task, learned) -> None:
    pooled = cross_validated_scores(
        task["pooled"], task["targets"], task="multilabel", folds=task["folds"], seeds=(0,)
    )
    np.testing.assert_array_equal(learned.fold_ids, pooled.fold_ids)
    np.testing.assert_array_equal(learned.y_true, pooled.y_true)
    test = paired_bootstrap(
        learned.y_true, learned.oof_scores, pooled.oof_scores, "auc", n_bootstrap=50
    )
    assert test["low"] <= test["delta"] <= test["high"]


def test_same_seed_same_scores_other_seed_other_scores(task) -> None:
    first_class = task["targets"][:, 0]
    few = np.sort(
        np.r_[np.flatnonzero(first_class == 1)[:30], np.flatnonzero(first_class == 0)[:30]]
    )
    small = replace(FAST, max_epochs=2)

    def run(seed: int) -> np.ndarray:
        return sequence_probe_scores(
            [task["sequences"][i] for i in few],
            first_class[few],
            task="binary",
            folds=task["folds"],
            seeds=(seed,),
            config=small,
            torch_threads=1,
        ).oof_scores[0]

    state = torch.get_rng_state()
    first = run(3)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left alone
    np.testing.assert_array_equal(first, run(3))
    assert not np.array_equal(first, run(4))


def test_the_papers_settings_and_bad_inputs() -> None:
    assert (PAPER_BILSTM.hidden, PAPER_BILSTM.layers, PAPER_BILSTM.dropout) == (512, 2, 0.2)
    assert (PAPER_BILSTM.lr, PAPER_BILSTM.batch_size, PAPER_BILSTM.max_epochs) == (1e-4, 32, 150)
    y = np.array([0, 1] * 5)
    good = [np.ones((3, 4))] * 10
    with pytest.raises(ValueError, match="sequence 2 has shape"):
        sequence_probe_scores([*good[:2], np.ones((0, 4)), *good[3:]], y, task="binary")
    with pytest.raises(ValueError, match="sequence 1 has shape"):
        sequence_probe_scores([good[0], np.ones((3, 5)), *good[2:]], y, task="binary")
    with pytest.raises(ValueError, match="9 sequences but 10 labels"):
        sequence_probe_scores(good[:9], y, task="binary")
