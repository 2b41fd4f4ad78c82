"""Claim 2's token-occurrence CKA: the sentence bootstrap against CKA on stacked rows, its
paired test on planted gaps, and the occurrence outputs and claim-2 table of tiny trained runs.

The runs are trained on a planted corpus (three cluster types, each drawing its domains from
its own families), one epoch each, so the whole file runs in seconds on one thread.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis.cka import linear_cka
from crossgran.analysis.occurrence_cka import (
    claim2_table,
    occurrence_outputs,
    pair_label,
    sentence_cka,
)
from crossgran.data.split import split_of
from crossgran.data.tables import table_path
from crossgran.models.bigcarp import Vocabulary, layer_representations, load_checkpoint, train_mlm
from crossgran.profiles import BigcarpConfig, Profile
from crossgran.threads import limit

TINY = BigcarpConfig(
    d_model=16, n_layers=2, kernel_size=3, r=2, d_embedding=8, epochs=1, batch_size=8, max_len=16
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with limit(torch_threads=1):
        yield


def _sentences(rng: np.random.Generator, n: int, width: int) -> list[np.ndarray]:
    return [rng.normal(size=(int(rng.integers(3, 12)), width)) for _ in range(n)]


def test_point_and_every_replicate_equal_linear_cka_on_the_stacked_rows() -> None:
    rng = np.random.default_rng(0)
    xs = _sentences(rng, 30, 5)
    mixing = rng.normal(size=(5, 4))
    ys = [x @ mixing + rng.normal(size=(len(x), 4)) for x in xs]
    boot = sentence_cka({"pair": (xs, ys)}, n_bootstrap=6, seed=11, chunk=4)
    assert boot.values["pair"] == pytest.approx(linear_cka(np.vstack(xs), np.vstack(ys)), rel=1e-9)
    assert boot.n_sentences == 30 and boot.n_tokens["pair"] == sum(len(x) for x in xs)
    draws = np.random.default_rng(11).integers(0, 30, size=(6, 30))
    for replicate, rows in zip(boot.replicates["pair"], draws, strict=True):
        resampled = linear_cka(np.vstack([xs[i] for i in rows]), np.vstack([ys[i] for i in rows]))
        assert replicate == pytest.approx(resampled, rel=1e-9)


def test_paired_test_finds_a_planted_gap_and_no_gap_between_equal_pairs() -> None:
    rng = np.random.default_rng(1)
    xs = _sentences(rng, 80, 6)
    mixing = rng.normal(size=(6, 6))
    close = [x @ mixing + 0.5 * rng.normal(size=x.shape) for x in xs]
    far = [x @ mixing + 3.0 * rng.normal(size=x.shape) for x in xs]
    boot = sentence_cka(
        {"close": (xs, close), "far": (xs, far), "close again": (xs, close)},
        n_bootstrap=300,
        seed=0,
    )
    gap = boot.above("close", "far")
    assert gap["delta"] > 0 and gap["low"] > 0 and gap["p_value"] < 0.01
    assert boot.above("far", "close")["p_value"] > 0.99
    # Same resamples for every pair: identical pairs differ by exactly 0 in every replicate.
    same = boot.above("close", "close again")
    assert same["delta"] == 0 and same["low"] == same["high"] == 0 and same["p_value"] == 1
    for name in ("close", "far"):
        low, high = boot.interval(name)
        assert low < boot.values[name] < high


def test_pairs_must_cover_the_same_sentences_and_rows() -> None:
    rng = np.random.default_rng(2)
    xs = _sentences(rng, 5, 3)
    with pytest.raises(ValueError, match="same sentences"):
        sentence_cka({"a": (xs, xs), "b": (xs[:4], xs[:4])}, n_bootstrap=3, seed=0)
    with pytest.raises(ValueError, match="rows"):
        sentence_cka({"a": (xs, [x[1:] for x in xs])}, n_bootstrap=3, seed=0)


# --------------------------------------------------------------------------- trained runs


def _planted_corpus() -> pd.DataFrame:
    """Three cluster types, each drawing 5-10 domains from its own ten families; MIBiG rows are
    bags (unordered), NRPS rows ordered."""
    rng = np.random.default_rng(5)
    records = []
    for i in range(90):
        kind = i % 3
        tokens = rng.choice([f"PF{kind * 10 + f:05d}" for f in range(10)], rng.integers(5, 11))
        source = "mibig" if i % 2 else "nrps"
        seq_id = f"BGC{i:07d}" if source == "mibig" else f"nrps:P{i}"
        records.append(
            {
                "seq_id": seq_id,
                "source": source,
                "ordered": source == "nrps",
                "split": split_of(seq_id, 0.3),
                "n_tokens": len(tokens),
                "tokens": " ".join(tokens),
            }
        )
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """A profile whose processed dir holds the planted corpus and whose models dir holds a
    ``random`` and an ``esm`` run (ESM vectors: seeded stand-ins), one epoch each."""
    settings = Profile(
        name="planted", root=tmp_path_factory.mktemp("root"), n_bootstrap=200, torch_threads=1
    )
    corpus = _planted_corpus()
    settings.processed_dir.mkdir(parents=True)
    corpus.to_csv(table_path(settings, "domain_corpus"), sep="\t", index=False)
    vocab = Vocabulary.from_corpus(corpus)
    rng = np.random.default_rng(9)
    vectors = {name: rng.normal(size=8).astype(np.float32) for name in vocab.families}
    for init in ("random", "esm"):
        train_mlm(
            corpus,
            vocab,
            TINY,
            init_mode=init,
            family_vectors=vectors,
            out_dir=settings.models_dir / f"bigcarp_{init}",
            seed=3,
        )
    return settings


def _run_dir(settings: Profile, init: str) -> Path:
    return settings.models_dir / f"bigcarp_{init}"


def test_occurrence_outputs_are_the_sentence_outputs_in_fixed_seeded_orders(project) -> None:
    corpus = _planted_corpus()
    rows = corpus.iloc[:6]
    run_dir = _run_dir(project, "random")
    outputs = occurrence_outputs(run_dir, 1, rows, [0, -1], n_orders=2, seed=4)
    run = load_checkpoint(run_dir, 1)
    for row, per_layer in zip(rows.itertuples(), outputs, strict=True):
        tokens = row.tokens.split()
        assert set(per_layer) == {0, -1}
        if row.ordered:  # runs once, as the sentence itself
            direct = layer_representations(run.model, run.vocab, [tokens], [0, -1])[0]
            np.testing.assert_allclose(per_layer[-1], direct[1], rtol=1e-5, atol=1e-6)
        else:  # two orders, each a permutation of the bag (layer 0 is context-free)
            assert per_layer[-1].shape == (2 * len(tokens), TINY.d_model)
            direct0 = layer_representations(run.model, run.vocab, [tokens], [0])[0][0]
            for half in np.split(per_layer[0], 2):
                np.testing.assert_allclose(
                    np.sort(half, axis=0), np.sort(direct0, axis=0), rtol=1e-5, atol=1e-6
                )
            # The order depends on (seed, id) alone: the same row alone gives the same outputs.
            alone = occurrence_outputs(
                run_dir, 1, rows[rows.seq_id == row.seq_id], [-1], n_orders=2, seed=4
            )
            np.testing.assert_allclose(alone[0][-1], per_layer[-1], rtol=1e-5, atol=1e-6)
            other = occurrence_outputs(
                run_dir, 1, rows[rows.seq_id == row.seq_id], [-1], n_orders=2, seed=5
            )
            assert not np.allclose(other[0][-1], per_layer[-1])
    start = occurrence_outputs(run_dir, 0, rows, [-1], n_orders=2, seed=4)
    assert not np.allclose(start[0][-1], outputs[0][-1])


def test_claim2_table_measures_held_out_occurrences(project) -> None:
    table, tests = claim2_table(project, runs=("random", "esm"))
    assert list(table.columns) == [
        "run_a",
        "run_b",
        "comparison",
        "linear_cka",
        "ci_low",
        "ci_high",
        "n_sentences",
        "n_tokens",
    ]
    assert len(table) == 7
    corpus = _planted_corpus()
    valid = corpus[corpus["split"] == "valid"]
    assert (table["n_sentences"] == len(valid)).all()
    assert (table["n_tokens"] == valid["n_tokens"].sum()).all()
    assert (
        (table["ci_low"] <= table["linear_cka"]) & (table["linear_cka"] <= table["ci_high"])
    ).all()
    # layer0_vs_epoch0 is linear CKA of the final vs epoch-0 layer-0 outputs on the valid rows.
    final = occurrence_outputs(_run_dir(project, "esm"), None, valid, [0], n_orders=1, seed=0)
    start = occurrence_outputs(_run_dir(project, "esm"), 0, valid, [0], n_orders=1, seed=0)
    expected = linear_cka(np.vstack([o[0] for o in final]), np.vstack([o[0] for o in start]))
    row = table.query("run_a == 'esm' and comparison == 'layer0_vs_epoch0'").iloc[0]
    assert row["linear_cka"] == pytest.approx(expected, rel=1e-6)
    assert tests["candidate"].tolist() == [
        "esm layer0_vs_epoch0",
        "random layer0_vs_epoch0",
        "esm layer0_vs_epoch0",
        "esm embedder0_vs_last",
    ]
    assert tests["rival"].iloc[-1] == pair_label("esm", "random", "embedder0_vs_last")
    assert set(tests["kind"]) == {"above"} and set(tests["task"]) == {"claim 2"}
    assert ((tests["p_value"] > 0) & (tests["p_value"] <= 1)).all()
    np.testing.assert_allclose(tests["delta"], tests["candidate_mean"] - tests["rival_mean"])


def test_claim2_tests_leave_out_an_imported_runs_epoch0(project, tmp_path) -> None:
    """The random-init run marked imported (an official checkpoint's run.json records
    ``official``): its epoch 0 is a fresh initialisation, so no test reads it; the CKA values
    stay in the table, and the ESM-init run's own tests are unchanged."""
    copy = replace(project, root=tmp_path)
    shutil.copytree(project.processed_dir, copy.processed_dir)
    shutil.copytree(project.models_dir, copy.models_dir)
    record_path = _run_dir(copy, "random") / "run.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "official": {"model": "bigcarp_random"}}))
    table, tests = claim2_table(copy, runs=("random", "esm"))
    original, all_tests = claim2_table(project, runs=("random", "esm"))
    pd.testing.assert_frame_equal(table, original)
    assert list(zip(tests["candidate"], tests["rival"], strict=True)) == [
        ("esm layer0_vs_epoch0", "esm embedder0_vs_last"),
        ("esm embedder0_vs_last", pair_label("esm", "random", "embedder0_vs_last")),
    ]
    kept = all_tests[all_tests["candidate"].str.startswith("esm")].iloc[1:]
    pd.testing.assert_frame_equal(tests.reset_index(drop=True), kept.reset_index(drop=True))
