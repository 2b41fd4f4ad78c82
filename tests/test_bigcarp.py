"""BiGCARP training, initialisation, resume and representations on a tiny real corpus.

The corpus is real: Pfam compositions of 60 MIBiG BGCs shipped in the pinned GECCO wheel,
as bags (each Pfam accession repeated by its count, gene order unknown, so ``ordered=False``;
``gecco_corpus``).
The model is tiny so that the whole file runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import inspect
import itertools
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from gecco_corpus import gecco_domains

from crossgran.cli import main
from crossgran.data.split import association_label_bgcs, split_of
from crossgran.data.tables import load_table, table_path
from crossgran.models.bigcarp import (
    CORPUS_COLUMNS,
    HISTORY_COLUMNS,
    STREAMS,
    Representations,
    Vocabulary,
    build_model,
    chosen_epoch,
    esm_projection,
    export_representations,
    family_representations,
    init_token_embeddings,
    layer_representations,
    load_checkpoint,
    save_family_vectors,
    selected_epoch,
    sequence_representations,
    stream_rng,
    token_representations,
    token_table,
    train_mlm,
    training_windows,
)
from crossgran.models.bigcarp import represent as represent_module
from crossgran.models.bigcarp import train as train_module
from crossgran.models.bigcarp.checkpoint import RUN, run_record, same_run
from crossgran.models.runs import bigcarp_run_dir, family_vectors_path
from crossgran.profiles import ROOT_ENV, BigcarpConfig, get_profile
from crossgran.threads import limit

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest
TINY = BigcarpConfig(
    d_model=32,
    n_layers=4,
    kernel_size=3,
    r=4,
    d_embedding=16,
    epochs=2,
    batch_size=8,
    max_len=32,
    lr=3e-3,
    mask_rate=0.15,
    n_orders=2,
)
ESM_WIDTH = 24  # differs from TINY.d_embedding, so the projection path is exercised


@pytest.fixture(scope="module")
def vocab(corpus: pd.DataFrame) -> Vocabulary:
    return Vocabulary.from_corpus(corpus)


@pytest.fixture(scope="module")
def family_vectors(vocab: Vocabulary) -> dict[str, np.ndarray]:
    """Stand-ins for ESM family vectors (seeded noise); the last 5 families get none."""
    rng = np.random.default_rng(7)
    return {name: rng.normal(size=ESM_WIDTH).astype(np.float32) for name in vocab.families[:-5]}


def _train(corpus, vocab, config, init_mode, family_vectors, out_dir, seed):
    return train_mlm(
        corpus,
        vocab,
        config,
        init_mode=init_mode,
        family_vectors=family_vectors,
        out_dir=out_dir,
        seed=seed,
    )


@pytest.fixture(scope="module")
def training_corpus(corpus) -> pd.DataFrame:
    """Only the columns train_mlm documents as read: the others must not be needed."""
    return corpus[["tokens", "ordered", "split"]]


@pytest.fixture(scope="module")
def straight_run(training_corpus, vocab, family_vectors, tmp_path_factory) -> Path:
    """Two uninterrupted epochs; shared by the loss, resume and representation tests."""
    out = tmp_path_factory.mktemp("straight")
    _train(training_corpus, vocab, TINY, "esm", family_vectors, out, seed=3)
    return out


def test_corpus_columns_are_documented_and_options_are_keywords(corpus):
    assert set(CORPUS_COLUMNS) == set(corpus.columns)
    parameters = inspect.signature(train_mlm).parameters
    assert [name for name, p in parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == [
        "corpus",
        "vocab",
        "config",
    ]


def test_vocabulary_encodes_counts_unknowns_and_round_trips(vocab, tmp_path):
    assert vocab.families == sorted(vocab.families) and len(vocab) == len(vocab.families) + 3
    fresh = Vocabulary.load(_saved(vocab, tmp_path / "vocab.json"))
    known = vocab.families[0]
    real_but_absent = next(name for name in gecco_domains() if name not in vocab.index)
    lower_case = known.lower()  # accessions are case-sensitive tokens
    ids = fresh.encode([known, real_but_absent, "PF99999", lower_case, real_but_absent])
    assert ids[0] == vocab.index[known]
    assert ids[1:] == [fresh.unk_index] * 4
    assert fresh.unknown_counts == {real_but_absent: 2, "PF99999": 1, lower_case: 1}
    fresh.encode(["PF99999"])  # counts accumulate over calls, so a corpus-wide total is kept
    assert fresh.unknown_counts["PF99999"] == 2


def _saved(vocab: Vocabulary, path: Path) -> Path:
    vocab.save(path)
    return path


def test_esm_init_writes_projected_vectors_and_counts_missing(vocab, family_vectors):
    model = build_model(TINY, vocab, TINY.d_embedding, seed=0)
    before = token_table(model)
    report = init_token_embeddings(model, vocab, "esm", family_vectors)
    table = token_table(model)
    projection = esm_projection(ESM_WIDTH, TINY.d_embedding)
    for name in vocab.families[:-5]:
        expected = torch.tensor(
            family_vectors[name].astype(np.float64) @ projection, dtype=torch.float32
        )
        assert torch.equal(table[vocab.index[name]], expected)
    missing = [vocab.index[name] for name in vocab.families[-5:]]
    assert report.missing == vocab.families[-5:] and report.projected_from == ESM_WIDTH
    assert torch.equal(table[missing], before[missing])  # no vector: random init kept
    assert torch.equal(table[vocab.pad_index], torch.zeros(TINY.d_embedding))
    # Same width: the vectors go in as they are.
    same = {name: v[: TINY.d_embedding] for name, v in family_vectors.items()}
    model = build_model(TINY, vocab, TINY.d_embedding, seed=0)
    init_token_embeddings(model, vocab, "esm", same)
    name = vocab.families[0]
    assert torch.equal(token_table(model)[vocab.index[name]], torch.from_numpy(same[name]))


def test_loss_falls_and_outputs_are_written(straight_run, vocab):
    run = load_checkpoint(straight_run)
    history = run.history
    assert list(history["epoch"]) == [1, 2]
    # Masked-token loss ends far below the uniform-guess loss ln(|V|) after a few dozen steps.
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["valid_loss"].iloc[-1] < 0.8 * np.log(len(vocab))
    assert (history["tokens_per_s"] > 0).all()
    assert sorted(run.token_tables) == [0, 1, 2]
    assert run.init_mode == "esm" and run.config == TINY


def test_frozen_table_is_bit_identical_after_training(
    training_corpus, vocab, family_vectors, tmp_path
):
    config = replace(TINY, epochs=1)
    _train(training_corpus, vocab, config, "esm-frozen", family_vectors, tmp_path, seed=1)
    run = load_checkpoint(tmp_path)
    assert torch.equal(token_table(run.model), torch.from_numpy(run.token_tables[0]))
    np.testing.assert_array_equal(run.token_tables[1], run.token_tables[0])
    initial = load_checkpoint(tmp_path, epoch=0).model.state_dict()
    trained = run.model.state_dict()
    assert not torch.equal(initial["decoder.conv.weight"], trained["decoder.conv.weight"])


def test_best_checkpoint_is_the_lowest_held_out_loss(training_corpus, vocab, tmp_path):
    # Measured on this corpus: the held-out loss of this run falls at epoch 2 and rises at 3
    # (4.033 -> 4.059), so "best" and "last" differ and the rule must read the history.
    config = replace(TINY, epochs=3)
    _train(training_corpus, vocab, config, "random", None, tmp_path, seed=3)
    history = load_checkpoint(tmp_path).history
    lowest = int(history.loc[history["valid_loss"].idxmin(), "epoch"])
    assert selected_epoch(tmp_path, "last") == 3
    assert selected_epoch(tmp_path, "best") == lowest != 3, history
    best = load_checkpoint(tmp_path, "best")
    assert best.epoch == lowest and list(best.history["epoch"]) == [1, 2, 3]
    for name, tensor in load_checkpoint(tmp_path, lowest).model.state_dict().items():
        assert torch.equal(best.model.state_dict()[name], tensor), name


def test_checkpoint_rule_ties_go_to_the_earliest_and_epoch_0_never_counts():
    rows = [(0, 3.0), (1, 4.5), (2, 4.1), (3, 4.1), (4, 4.3)]  # epoch 0: no trained row
    history = pd.DataFrame(
        [{**dict.fromkeys(HISTORY_COLUMNS, 1.0), "epoch": e, "valid_loss": v} for e, v in rows]
    )
    assert chosen_epoch(history, "best") == 2 and chosen_epoch(history, "last") == 4
    with pytest.raises(ValueError, match="no trained epoch"):
        chosen_epoch(history[history["epoch"] == 0], "best")
    with pytest.raises(ValueError, match="checkpoint='last'"):
        chosen_epoch(history.assign(valid_loss=np.nan), "best")
    with pytest.raises(ValueError, match="unknown checkpoint rule"):
        chosen_epoch(history, "final")


def test_gelu_run_trains_and_is_read_back_with_gelu(training_corpus, vocab, tmp_path):
    config = replace(TINY, epochs=1, activation="gelu")
    history = _train(training_corpus, vocab, config, "random", None, tmp_path, seed=3)
    assert history["valid_loss"].iloc[-1] < 0.8 * np.log(len(vocab))
    run = load_checkpoint(tmp_path)
    activations = {type(m) for m in run.model.modules()} & {torch.nn.GELU, torch.nn.ReLU}
    assert activations == {torch.nn.GELU} and run.config.activation == "gelu"
    with pytest.raises(ValueError, match="unknown BiGCARP activation"):
        build_model(replace(TINY, activation="tanh"), vocab, TINY.d_embedding)


def test_weight_decay_0_is_plain_adam(training_corpus, vocab):
    config = replace(TINY, weight_decay=0.0)
    model = build_model(config, vocab, TINY.d_embedding, seed=0)
    optimizer = train_module._optimizer(model, config)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.0, 0.0]
    twin = build_model(config, vocab, TINY.d_embedding, seed=0)
    adam = torch.optim.Adam(twin.parameters(), lr=config.lr)
    batch = train_module.pad_windows(
        [np.asarray(vocab.encode(t.split())[:32]) for t in training_corpus["tokens"][:8]],
        vocab.pad_index,
    )
    for net, step in ((model, optimizer), (twin, adam)):
        for _ in range(3):  # three steps: Adam's moments enter the update from the second
            logits = net(batch, input_mask=(batch != vocab.pad_index).unsqueeze(-1).float())
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.flatten())
            step.zero_grad()
            loss.backward()
            step.step()
    for name, tensor in model.state_dict().items():
        assert torch.equal(twin.state_dict()[name], tensor), name
    decayed = train_module._optimizer(model, TINY)
    assert [group["weight_decay"] for group in decayed.param_groups] == [TINY.weight_decay, 0.0]


def test_run_json_without_the_new_fields_still_resumes(
    training_corpus, vocab, family_vectors, straight_run, tmp_path
):
    """A run.json written before weight_decay, activation and checkpoint existed (today's
    stored mini runs) holds a run trained with 0.01 and ReLU: it continues under those
    values, a checkpoint rule never invalidates it, and another decay or activation does."""
    for path in straight_run.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    record = json.loads((tmp_path / RUN).read_text())
    for key in ("weight_decay", "activation", "checkpoint"):
        del record["config"][key]
    (tmp_path / RUN).write_text(json.dumps(record))
    d_embedding = record["d_embedding"]
    for config in (TINY, replace(TINY, checkpoint="last")):
        assert same_run(record, run_record(config, "esm", 3, d_embedding))
    for config in (replace(TINY, weight_decay=0.0), replace(TINY, activation="gelu")):
        assert not same_run(record, run_record(config, "esm", 3, d_embedding))
    more = replace(TINY, epochs=3, checkpoint="last")
    history = _train(training_corpus, vocab, more, "esm", family_vectors, tmp_path, seed=3)
    assert list(history["epoch"]) == [1, 2, 3]
    resumed = json.loads((tmp_path / RUN).read_text())  # follows the run, legacy values written
    assert resumed == {**record, "config": asdict(more)}
    stored = load_checkpoint(straight_run).history
    pd.testing.assert_frame_equal(history.iloc[:2], stored)  # epochs 1-2 kept, not retrained
    assert load_checkpoint(tmp_path).config.activation == "relu"
    with pytest.raises(ValueError, match="different run"):
        _train(
            training_corpus,
            vocab,
            replace(more, activation="gelu"),
            "esm",
            family_vectors,
            tmp_path,
            seed=3,
        )


def test_train_bigcarp_trains_the_notebooks_run_and_run_json_follows_a_resume(
    corpus, vocab, tmp_path, monkeypatch, capsys
):
    """``crossgran train-bigcarp`` as the README runs it (profile seed, no --out, before
    notebook 02 wrote the family vectors): the run lands where notebooks 02-05 read it, with
    the table width notebook 02 takes from the vectors, so 02's own call continues it instead
    of refusing a different run; a resume that adds epochs rewrites run.json; the esm init
    reads the vectors 02 writes; another seed is a sample beside the notebooks' run."""
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    profile = get_profile("smoke")
    profile.processed_dir.mkdir(parents=True)
    corpus.to_csv(table_path(profile, "domain_corpus"), sep="\t", index=False)
    command = ["train-bigcarp", "--profile", "smoke", "--threads", "1", "--init"]

    assert main([*command, "random", "--epochs", "1"]) == 0
    run_dir = bigcarp_run_dir(profile, "random")
    first = json.loads((run_dir / RUN).read_text())
    assert first["config"]["epochs"] == 1 and first["d_embedding"] == profile.esm.embed_dim
    assert main([*command, "random", "--epochs", "2"]) == 0
    second = json.loads((run_dir / RUN).read_text())
    assert second == {**first, "config": {**first["config"], "epochs": 2}}
    assert load_checkpoint(run_dir).epoch == 2

    assert main([*command, "esm"]) == 2  # no vectors yet: the error names where 02 puts them
    assert str(family_vectors_path(profile)) in capsys.readouterr().err
    rng = np.random.default_rng(0)  # stand-ins of the profile's ESM width, as 02 saves them
    vectors = {name: rng.normal(size=profile.esm.embed_dim) for name in vocab.families}
    save_family_vectors(family_vectors_path(profile), vectors)
    stored = load_table(profile, "domain_corpus")
    with limit(torch_threads=1):  # notebook 02's call (train_bigcarp_runs): profile epochs, 1
        history = train_mlm(
            stored,
            Vocabulary.from_corpus(stored),
            profile.bigcarp,
            init_mode="random",
            family_vectors=vectors,
            out_dir=run_dir,
            seed=profile.bigcarp.seed,
        )
    assert list(history["epoch"]) == [1, 2]  # continued: nothing retrained or removed
    assert json.loads((run_dir / RUN).read_text())["config"]["epochs"] == 2

    assert main([*command, "esm", "--epochs", "1"]) == 0
    esm_run = json.loads((bigcarp_run_dir(profile, "esm") / RUN).read_text())
    assert esm_run["init"]["n_from_esm"] == len(vocab.families)
    assert main([*command, "random", "--epochs", "1", "--seed", "5"]) == 0
    assert load_checkpoint(profile.models_dir / "bigcarp_random_seed5").seed == 5
    capsys.readouterr()


def _leftovers(directory: Path) -> list[Path]:
    """Temporary files of crossgran.cache.atomic_path that a crash could leave behind."""
    return sorted(directory.rglob("*.part"))


def test_killed_training_resumes_to_the_uninterrupted_result(
    training_corpus, vocab, family_vectors, straight_run, tmp_path, monkeypatch
):
    real_write = train_module.write_checkpoint

    def killed_in_epoch_2(out_dir, epoch, *args):
        if epoch == 2:  # steps of epoch 2 were taken in memory; the process dies unsaved
            raise KeyboardInterrupt
        real_write(out_dir, epoch, *args)

    monkeypatch.setattr(train_module, "write_checkpoint", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _train(training_corpus, vocab, TINY, "esm", family_vectors, tmp_path, seed=3)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path).epoch == 1
    assert not (tmp_path / "model_e002.pt").exists() and _leftovers(tmp_path) == []
    resumed = _train(training_corpus, vocab, TINY, "esm", family_vectors, tmp_path, seed=3)

    straight = load_checkpoint(straight_run)
    again = load_checkpoint(tmp_path)
    assert again.epoch == straight.epoch == TINY.epochs
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    for epoch, table in straight.token_tables.items():
        np.testing.assert_array_equal(again.token_tables[epoch], table)
    columns = ["epoch", "train_loss", "valid_loss", "valid_masked_accuracy"]
    pd.testing.assert_frame_equal(resumed[columns], straight.history[columns])
    with pytest.raises(ValueError, match="different run"):
        _train(training_corpus, vocab, TINY, "esm", family_vectors, tmp_path, seed=4)


def test_random_streams_are_distinct_per_purpose_epoch_and_seed():
    named = (
        train_module.TRAIN_STREAM,
        train_module.VALID_STREAM,
        train_module.VALID_MASK_STREAM,
        train_module.ORDER_STREAM,
    )
    assert sorted(named) == sorted(STREAMS) and len(set(STREAMS)) == len(STREAMS)
    draws = {
        (seed, epoch, stream): tuple(stream_rng(seed, epoch, stream).integers(2**62, size=4))
        for seed, epoch, stream in itertools.product((0, 1), range(4), STREAMS)
    }
    assert len(set(draws.values())) == len(draws)  # no two (seed, epoch, purpose) draw alike
    assert tuple(stream_rng(0, 1, STREAMS[0]).integers(2**62, size=4)) == draws[0, 1, STREAMS[0]]


def test_each_random_stream_serves_one_purpose(
    training_corpus, corpus, vocab, tmp_path, monkeypatch
):
    """Record every (seed, epoch, stream) a training run and a representation export request,
    and where from: one stream shared by two purposes (e.g. validation masks drawn like the
    validation windows' order) would correlate draws that are meant to be independent."""
    requests: dict[tuple[int, int, int], set[tuple[str, int]]] = {}

    def recording(seed: int, epoch: int, stream: int) -> np.random.Generator:
        caller = sys._getframe(1)
        requests.setdefault((seed, epoch, stream), set()).add(
            (caller.f_code.co_name, caller.f_lineno)
        )
        return stream_rng(seed, epoch, stream)

    monkeypatch.setattr(train_module, "stream_rng", recording)
    monkeypatch.setattr(represent_module, "stream_rng", recording)
    _train(training_corpus, vocab, replace(TINY, epochs=2), "random", None, tmp_path, seed=3)
    run = load_checkpoint(tmp_path)
    sequence_representations(run.model, run.vocab, corpus.iloc[:5], layers=[-1], n_orders=2, seed=3)
    shared = {key: sites for key, sites in requests.items() if len(sites) > 1}
    assert not shared, f"one random stream drawn for several purposes: {shared}"
    assert {stream for _, _, stream in requests} == set(STREAMS)  # every purpose was exercised


def test_unordered_rows_are_reshuffled_each_epoch_and_ordered_rows_kept(corpus, vocab):
    rows = [vocab.encode(t.split()) for t in corpus["tokens"].iloc[:6]]
    # Synthetic ordering of real tokens, only to test the ordered code path: the first three
    # bags are declared ordered in their stored (accession-sorted) order.
    ordered = [True, True, True, False, False, False]

    def windows(epoch: int) -> list[np.ndarray]:
        return training_windows(rows, ordered, 16, stream_rng(0, epoch, train_module.TRAIN_STREAM))

    def chunks(ids: list[int]) -> set[tuple[int, ...]]:
        return {tuple(ids[i : i + 16]) for i in range(0, len(ids), 16)}

    first, second = windows(1), windows(2)
    assert [w.tolist() for w in windows(1)] == [w.tolist() for w in first]  # deterministic
    for epoch_windows in (first, second):
        seen = {tuple(w.tolist()) for w in epoch_windows}
        assert all(chunks(row) <= seen for row in rows[:3])
        assert sorted(np.concatenate(epoch_windows).tolist()) == sorted(
            token for row in rows for token in row
        )
    unordered = [row for row in rows[3:] if len(set(row)) > 5]  # a reorder is then visible
    assert unordered
    for row in unordered:  # a bag is cut from a fresh random order, not its stored order
        assert not chunks(row) <= {tuple(w.tolist()) for w in first}
    assert {tuple(w.tolist()) for w in first} != {tuple(w.tolist()) for w in second}


def test_representation_shapes_and_batch_independence(straight_run, corpus):
    run = load_checkpoint(straight_run)
    model, vocab = run.model, run.vocab
    tokens = [row.split() for row in corpus["tokens"].iloc[:3]]
    reps = layer_representations(model, vocab, tokens)
    assert len(reps) == 3 and all(len(per_layer) == TINY.n_layers + 1 for per_layer in reps)
    for row, per_layer in zip(tokens, reps, strict=True):
        assert all(array.shape == (len(row), TINY.d_model) for array in per_layer)
    alone = layer_representations(model, vocab, [tokens[0]], layers=[0, -1])[0]
    np.testing.assert_allclose(alone[1], reps[0][-1], rtol=1e-5, atol=1e-5)

    families = family_representations(model, vocab, corpus, layers=[0, 2], n_orders=2, seed=0)
    names, matrix = families[2]
    assert names == vocab.families and matrix.shape == (len(vocab.families), TINY.d_model)
    # Layer 0 is context-free: a family's mean equals its (up-projected) embedder output.
    single = layer_representations(model, vocab, [[names[0]]], layers=[0])[0][0][0]
    np.testing.assert_allclose(families[0][1][0], single, rtol=1e-5, atol=1e-5)

    pooled = sequence_representations(model, vocab, corpus, layers=[-1], n_orders=2, seed=0)
    assert pooled[TINY.n_layers].shape == (len(corpus), TINY.d_model)
    assert np.isfinite(pooled[TINY.n_layers]).all()

    sentences = {f"row{i}": row for i, row in enumerate(tokens)}
    sites = [("row0", 0), ("row2", 2), ("row2", 0)]  # two sites in one sentence
    picked = token_representations(model, vocab, sentences, sites, layers=[3])
    assert picked[3].shape == (3, TINY.d_model)
    for (key, index), vector in zip(sites, picked[3], strict=True):
        np.testing.assert_allclose(vector, reps[int(key[3:])][3][index], rtol=1e-5, atol=1e-5)
    with pytest.raises(IndexError, match="row1"):
        token_representations(model, vocab, sentences, [("row1", len(tokens[1]))], layers=[3])


def test_association_label_bgcs_is_a_stable_half_apart_from_the_split():
    ids = [f"BGC{i:07d}" for i in range(2000)]
    mask = association_label_bgcs(ids)
    assert mask.dtype == bool and 0.45 < mask.mean() < 0.55
    # A function of the id alone: any subset or order gets the same answer per id.
    np.testing.assert_array_equal(association_label_bgcs(ids[::-7]), mask[::-7])
    # Not the train/valid split under another name: both labels occur in either split part.
    valid = np.array([split_of(bgc, 0.1) == "valid" for bgc in ids])
    assert 0.35 < mask[valid].mean() < 0.65


def test_export_holds_out_association_bgcs_and_reads_any_epoch(straight_run, corpus, tmp_path):
    # Ordered rows draw no orders, so the disjoint average can be recomputed on the kept rows.
    rows = corpus.assign(ordered=True)
    parent = rows["tokens"].iloc[0]
    rows = pd.concat(
        [rows, pd.DataFrame([{"seq_id": "nrps:P1", "source": "nrps", "tokens": parent}])],
        ignore_index=True,
    ).assign(ordered=True)
    adomains = pd.DataFrame(
        {
            "domain_id": ["P1.A1", "P1.A2"],
            "parent_protein": ["P1", "P1"],
            "amp_token_index": [1, -1],
        }
    )
    final = export_representations(straight_run, rows, adomains, n_orders=2, seed=0)
    run = load_checkpoint(straight_run)
    is_mibig = (rows["source"] == "mibig").to_numpy()
    held = np.zeros(len(rows), dtype=bool)
    held[is_mibig] = association_label_bgcs(rows.loc[is_mibig, "seq_id"].tolist())
    assert 0 < held.sum() < is_mibig.sum()
    every = family_representations(run.model, run.vocab, rows, None, n_orders=2, seed=0)
    kept = family_representations(run.model, run.vocab, rows[~held], None, n_orders=2, seed=0)
    position = {name: i for i, name in enumerate(final.families)}
    rows_kept = [position[name] for name in kept[0][0]]
    only_held = np.setdiff1d(np.arange(len(final.families)), rows_kept)
    assert len(only_held) > 0  # some families occur only in held-out bags: NaN there
    for layer in final.layers:
        assert final.families == every[layer][0]
        np.testing.assert_array_equal(final.family[layer], every[layer][1])
        disjoint = final.family_disjoint[layer]
        assert disjoint.shape == final.family[layer].shape
        np.testing.assert_allclose(disjoint[rows_kept], kept[layer][1], rtol=1e-5, atol=1e-6)
        assert np.isnan(disjoint[only_held]).all()
    assert final.adomain_ids == ["P1.A1"]
    assert final.bgc_ids == rows.loc[is_mibig, "seq_id"].tolist()

    final.save(tmp_path / "final.npz")
    back = Representations.load(tmp_path / "final.npz")
    for layer in final.layers:
        np.testing.assert_array_equal(back.family_disjoint[layer], final.family_disjoint[layer])

    assert final.epoch == back.epoch == TINY.epochs  # the epoch read is recorded
    replace(final, epoch=None).save(tmp_path / "older.npz")  # files from before it was
    assert Representations.load(tmp_path / "older.npz").epoch is None
    best = export_representations(straight_run, rows, adomains, n_orders=2, seed=0, epoch="best")
    assert best.epoch == selected_epoch(straight_run, "best")
    best.save(tmp_path / "best.npz")
    assert Representations.load(tmp_path / "best.npz").epoch == best.epoch

    start = export_representations(straight_run, rows, adomains, n_orders=2, seed=0, epoch=0)
    untrained = load_checkpoint(straight_run, epoch=0)
    layer0 = family_representations(untrained.model, untrained.vocab, rows, [0], 2, 0)
    np.testing.assert_array_equal(start.family[0], layer0[0][1])
    assert not np.allclose(start.family[0], final.family[0])
