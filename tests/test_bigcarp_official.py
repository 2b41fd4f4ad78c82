"""Official BiGCARP checkpoints, imported as run folders (crossgran.models.bigcarp.official).

The released files (hundreds of MB, Zenodo) are not at hand, so each test builds a stand-in in
their layout: the dict keys, token tables and state-dict names that sequence_models 1.8.0's
own loader (``sequence_models.pretrained.load_model_and_alphabet``) reads, with a tiny
network. That loader reading the stand-in is what shows the layout is the official one; the
import must then give the representations sequence_models' ``CARP`` wrapper gives. The
corpus is real: Pfam bags of 60 MIBiG BGCs from the pinned GECCO wheel (conftest's ``corpus``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from gecco_corpus import BAG_BGCS
from sequence_models.pretrained import load_model_and_alphabet
from standins import N_FROZEN, write_official_bigcarp

from crossgran.data.remote import REMOTE_FILES, required_remote_files
from crossgran.data.tables import table_path
from crossgran.models import bigcarp, runs
from crossgran.models.bigcarp import (
    Representations,
    Vocabulary,
    export_representations,
    import_official,
    layer_representations,
    load_checkpoint,
    token_table,
    train_mlm,
)
from crossgran.models.bigcarp.checkpoint import STATE
from crossgran.profiles import PROFILE_NAMES, BigcarpConfig, Profile, get_profile

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest
# The stand-in's network and the profile settings that match it.
SIZES = {"d_embed": 8, "d_model": 16, "n_layers": 3, "kernel_size": 3, "r": 2, "activation": "gelu"}
CONFIG = BigcarpConfig(
    d_model=16,
    n_layers=3,
    kernel_size=3,
    r=2,
    d_embedding=8,
    activation="gelu",
    batch_size=8,
    max_len=32,
    n_orders=2,
)
# Specials as the BiGCARP training script indexes them: pad "-", mask "#", then BGC classes
# (the names of the classes do not matter here; nothing reads them).
SPECIALS = {"-": 0, "#": 1, "NRP": 2, "Polyketide": 3}


def _occurrences(corpus: pd.DataFrame) -> Counter[str]:
    return Counter(token for row in corpus["tokens"] for token in row.split())


def _layout(corpus: pd.DataFrame, frozen: bool) -> tuple[dict, dict[str, str], list[str]]:
    """(tokens, pfam_to_domain, the corpus Pfams the checkpoint cannot name).

    Every corpus Pfam gets a domain token but three: the rarest has no entry at all, the next
    is mapped to ``UNK`` (both must be counted as unknown), and the two most frequent share
    one token (aliases). The frozen layout pads the domains to sequence_models' fixed count.
    """
    by_count = [name for name, _ in _occurrences(corpus).most_common()]
    absent, to_unk = by_count[-1], by_count[-2]
    named = sorted(set(by_count) - {absent, to_unk})
    domains = {"UNK": len(SPECIALS)}
    for name in named:
        domains[f"dom_{name}"] = len(SPECIALS) + len(domains)
    n_domains = N_FROZEN + 1 if frozen else len(domains)
    for k in range(len(domains), n_domains):
        domains[f"filler_{k}"] = len(SPECIALS) + k
    pfam_to_domain = {name: f"dom_{name}" for name in named}
    pfam_to_domain[by_count[1]] = f"dom_{by_count[0]}"  # an alias
    pfam_to_domain[to_unk] = "UNK"
    tokens = {"size": len(SPECIALS) + len(domains), "specials": SPECIALS, "domains": domains}
    return tokens, pfam_to_domain, [absent, to_unk]


def _write_official(path: Path, corpus: pd.DataFrame, frozen: bool = False) -> dict:
    """A stand-in checkpoint of :func:`_layout` (standins.write_official_bigcarp); its dict."""
    tokens, pfam_to_domain, _ = _layout(corpus, frozen)
    return write_official_bigcarp(path, tokens, pfam_to_domain, SIZES, frozen=frozen)


@pytest.fixture(scope="module", params=[False, True], ids=["random", "frozen"])
def official(request, corpus, tmp_path_factory) -> tuple[Path, dict, Path]:
    """(checkpoint file, its dict, the run folder it was imported into)."""
    root = tmp_path_factory.mktemp("official")
    checkpoint = root / ("frozen.pt" if request.param else "bigcarp_random.pt")
    data = _write_official(checkpoint, corpus, frozen=request.param)
    import_official(checkpoint, root / "run", corpus, CONFIG, seed=5)
    return checkpoint, data, root / "run"


def test_representations_equal_sequence_models_own_reading(official, corpus) -> None:
    checkpoint, _, run_dir = official
    reference, collater = load_model_and_alphabet(str(checkpoint))  # the official loader
    run = load_checkpoint(run_dir, "best")
    absent, to_unk = _layout(corpus, frozen=False)[2]
    sentences = [row.split() for row in corpus["tokens"].iloc[:2]]
    sentences[1] = [absent, *sentences[1], to_unk]  # unknown Pfams, and two lengths (padding)
    # sequence_models' input: the class slot ("#": unknown class), then the domains.
    batch = collater([["#;" + ";".join(tokens)] for tokens in sentences])[0]
    layers = list(range(1, CONFIG.n_layers + 1))
    with torch.no_grad():
        theirs = reference(batch, repr_layers=layers)["representations"]
        theirs[0] = reference.model.embedder._embed(batch)  # CARP keeps layer 0 elsewhere
    ours = layer_representations(run.model, run.vocab, sentences, [0, *layers])
    for row, tokens in enumerate(sentences):
        for n, layer in enumerate([0, *layers]):
            expected = theirs[layer][row, 1 : len(tokens) + 1].numpy()
            np.testing.assert_allclose(ours[row][n], expected, rtol=1e-5, atol=1e-6)
    assert run.vocab.unknown_counts == {absent: 1, to_unk: 1}  # counted, not silent


def test_import_is_a_run_folder_with_the_released_table_at_epoch_1(official, corpus) -> None:
    _, data, run_dir = official
    run = load_checkpoint(run_dir, "best")
    state = data["model_state_dict"]
    if "embedder.embedder.weight" in state:
        released = state["embedder.embedder.weight"]
    else:  # the frozen layout: trainable rows (specials, UNK), then the frozen ESM rows
        released = torch.cat(
            [state["embedder.embedder.trainable.weight"], state["embedder.embedder.frozen.weight"]]
        )
    assert run.epoch == 1 and sorted(run.token_tables) == [0, 1]
    np.testing.assert_array_equal(run.token_tables[1], released.numpy())
    assert torch.equal(token_table(run.model), released)
    assert run.token_tables[0].shape == released.shape
    assert not np.allclose(run.token_tables[0], run.token_tables[1])  # epoch 0: untrained
    assert run.init_mode == ("esm-frozen" if "frozen" in data["model"] else "random")
    assert run.config == CONFIG and run.seed == 5
    row = run.history.iloc[0]
    assert list(run.history["epoch"]) == [1] and np.isnan(row["train_loss"])
    assert 0 < row["valid_loss"] < 2 * np.log(data["tokens"]["size"])
    assert 0 <= row["valid_masked_accuracy"] <= 1

    counts = _occurrences(corpus)
    absent, to_unk = _layout(corpus, frozen=False)[2]
    record = run.official
    assert record["model"] == data["model"] and len(record["sha256"]) == 64
    assert record["unknown_families"] == 2
    assert record["unknown_occurrences"] == counts[absent] + counts[to_unk]
    assert record["unknown_examples"] == {absent: counts[absent], to_unk: counts[to_unk]}
    assert "not published" in record["epoch0"]
    # Aliases: the two most frequent Pfams read one token; the vocabulary names both.
    first, second = [name for name, _ in counts.most_common(2)]
    assert run.vocab.index[first] == run.vocab.index[second]
    assert run.vocab.prefix == (SPECIALS["#"],) and run.vocab.pad_index == SPECIALS["-"]


def test_export_reads_the_import_like_a_trained_run(official, corpus, tmp_path) -> None:
    _, _, run_dir = official
    parent = corpus["tokens"].iloc[0]
    nrps = {"seq_id": "nrps:P1", "source": "nrps", "tokens": parent, "ordered": True}
    rows = pd.concat([corpus, pd.DataFrame([nrps])], ignore_index=True)
    adomains = pd.DataFrame(
        {"domain_id": ["P1.A1"], "parent_protein": ["P1"], "amp_token_index": [2]}
    )
    trained = export_representations(run_dir, rows, adomains, n_orders=2, seed=0, epoch="best")
    untrained = export_representations(run_dir, rows, adomains, n_orders=2, seed=0, epoch=0)
    run = load_checkpoint(run_dir, 1)
    counts = _occurrences(corpus)
    absent, to_unk = _layout(corpus, frozen=False)[2]
    # One row per token the corpus reaches, named by its first alias; unknown Pfams have none.
    expected = sorted({run.vocab.index[name] for name in counts if name in run.vocab.index})
    assert [run.vocab.index[name] for name in trained.families] == expected
    assert absent not in trained.families and to_unk not in trained.families
    assert trained.layers == list(range(CONFIG.n_layers + 1)) and trained.epoch == 1
    assert untrained.epoch == 0 and untrained.families == trained.families
    for export in (trained, untrained):
        for layer in export.layers:
            assert export.family[layer].shape == (len(expected), CONFIG.d_model)
            assert export.bgc[layer].shape == (BAG_BGCS, CONFIG.d_model)
            assert export.adomain[layer].shape == (1, CONFIG.d_model)
    # The A-domain's token is read in its parent's context, the class slot in front of it.
    single = layer_representations(run.model, run.vocab, [parent.split()], [CONFIG.n_layers])
    np.testing.assert_allclose(
        trained.adomain[CONFIG.n_layers][0], single[0][0][2], rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(trained.family[0], untrained.family[0])
    trained.save(tmp_path / "official.npz")
    assert Representations.load(tmp_path / "official.npz").families == trained.families


def test_import_is_reused_and_redone_when_its_inputs_change(corpus, tmp_path) -> None:
    checkpoint = tmp_path / "bigcarp_random.pt"
    _write_official(checkpoint, corpus)
    out = tmp_path / "run"
    import_official(checkpoint, out, corpus, CONFIG, seed=5)
    written = os.stat(out / STATE).st_mtime_ns
    import_official(checkpoint, out, corpus, CONFIG, seed=5)
    assert os.stat(out / STATE).st_mtime_ns == written  # same file, corpus, config, seed
    before = load_checkpoint(out, 0).token_tables[0]
    again = import_official(checkpoint, out, corpus, CONFIG, seed=6)
    assert again.seed == 6 and not np.allclose(again.token_tables[0], before)
    fewer = import_official(checkpoint, out, corpus.iloc[:-3], CONFIG, seed=6)
    assert fewer.official["corpus_sha256"] != again.official["corpus_sha256"]


def test_import_refuses_another_network_and_training_refuses_the_import(corpus, tmp_path) -> None:
    checkpoint = tmp_path / "bigcarp_random.pt"
    _write_official(checkpoint, corpus)
    with pytest.raises(ValueError, match=r"n_layers 3 \(profile 4\)"):
        import_official(checkpoint, tmp_path / "run", corpus, replace(CONFIG, n_layers=4), 5)
    assert not (tmp_path / "run").exists()
    import_official(checkpoint, tmp_path / "run", corpus, CONFIG, 5)
    run = load_checkpoint(tmp_path / "run")
    with pytest.raises(ValueError, match="class slot"):
        train_mlm(corpus, run.vocab, CONFIG, init_mode="random", out_dir=tmp_path / "x", seed=0)
    with pytest.raises(ValueError, match="imported official checkpoint"):
        train_mlm(
            corpus,
            Vocabulary.from_corpus(corpus),
            CONFIG,
            init_mode="random",
            out_dir=tmp_path / "run",
            seed=5,
        )
    trained = tmp_path / "trained"  # a run trained here is never overwritten by an import
    train_mlm(
        corpus,
        Vocabulary.from_corpus(corpus),
        replace(CONFIG, epochs=0),
        init_mode="random",
        out_dir=trained,
        seed=0,
    )
    with pytest.raises(ValueError, match="trained here"):
        import_official(checkpoint, trained, corpus, CONFIG, 5)
    assert load_checkpoint(trained).official is None
    torch.save({"model": "carp_600k"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an official BiGCARP checkpoint"):
        import_official(tmp_path / "other.pt", tmp_path / "run2", corpus, CONFIG, 5)


def test_only_full_selects_the_official_random_run_and_names_its_download() -> None:
    """The run's inputs (what the check asks for and the build downloads) hold the released
    random-init checkpoint exactly where the profile imports it (full, and the rehearsal of
    its code path), and never the ESM-init ones."""
    for name in PROFILE_NAMES:
        profile = get_profile(name)
        assert profile.bigcarp_official_random == (name in ("full", "rehearsal"))
        inputs = required_remote_files(profile)
        assert ("bigcarp_random" in inputs) == profile.bigcarp_official_random
        assert not {"bigcarp_esm1bfinetune", "bigcarp_esm1bfrozen"} & set(inputs)
    assert set(required_remote_files(get_profile("full"))) <= set(REMOTE_FILES)
    # The full profile's network is BiGCARP's published one (microsoft/bigcarp train_mlm.py
    # defaults), so the import's size check passes on the released file.
    full = get_profile("full").bigcarp
    assert (full.d_embedding, full.d_model, full.n_layers, full.kernel_size, full.r) == (
        1280,
        256,
        32,
        3,
        128,
    )
    assert full.activation == "gelu"


def test_train_bigcarp_runs_imports_random_and_trains_the_esm_runs(
    corpus, tmp_path, monkeypatch
) -> None:
    settings = Profile(name="scratch", root=tmp_path, bigcarp=CONFIG, bigcarp_official_random=True)
    settings.processed_dir.mkdir(parents=True)
    settings.raw_dir.mkdir(parents=True)
    corpus.to_csv(table_path(settings, "domain_corpus"), sep="\t", index=False)
    _write_official(settings.raw_dir / REMOTE_FILES["bigcarp_random"].filename, corpus)
    trained = []

    def train(corpus, vocab, config, *, init_mode, family_vectors, out_dir, seed):
        trained.append(init_mode)
        return pd.DataFrame()

    monkeypatch.setattr(bigcarp, "train_mlm", train)
    families = sorted(_occurrences(corpus))
    pfam = bigcarp_vectors(families)
    histories = runs.train_bigcarp_runs(settings, pfam)
    assert trained == ["esm", "esm-frozen"]
    run = load_checkpoint(runs.bigcarp_run_dir(settings, "random"), "best")
    assert run.official["model"] == "bigcarp_random"
    pd.testing.assert_frame_equal(histories["random"], run.history)
    # Only the import counts as imported (the report reads this): not a run trained here.
    train_mlm(
        corpus,
        Vocabulary.from_corpus(corpus),
        replace(CONFIG, epochs=0),
        init_mode="random",
        out_dir=runs.bigcarp_run_dir(settings, "esm"),
        seed=0,
    )
    assert runs.imported_runs(settings) == {"random"}


def bigcarp_vectors(families: list[str]):
    """An ESM embedding result of ``families`` (seeded noise, 2 layers)."""
    from crossgran.models.esm import EmbeddingResult

    rng = np.random.default_rng(0)
    mean = {layer: rng.normal(size=(len(families), 8)).astype(np.float32) for layer in (0, 1)}
    return EmbeddingResult(families, (0, 1), "noise", 1, mean)
