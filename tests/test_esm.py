"""crossgran.esm on real proteins (pyhmmer's shipped proteome) with tiny models, offline.

The reference for every pooled vector is fair-esm's own forward pass, so the fast path in
crossgran.esm is checked against the implementation it replaces, not against itself.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json

import numpy as np
import pytest
import torch

import crossgran.esm as cesm
from crossgran.cache import ArrayCache
from crossgran.profiles import EsmConfig

torch.set_num_threads(1)

TOLERANCE = 1e-5
TINY = EsmConfig(spec="local:tiny", num_layers=2, embed_dim=32, attention_heads=4,
                 train_steps=30, train_batch_tokens=1024, train_max_len=64, lr=3e-3,
                 valid_fraction=0.1)


@pytest.fixture(scope="session")
def proteome() -> dict[str, str]:
    import pyhmmer

    path = importlib.resources.files("pyhmmer.tests.data.seqs") / "938293.PRJEB85.HG003687.faa"
    with pyhmmer.easel.SequenceFile(str(path), digital=False) as handle:
        return {record.name: record.sequence for record in handle}


@pytest.fixture(scope="session")
def records(proteome: dict[str, str]) -> dict[str, str]:
    """30 real proteins of mixed lengths (shortest-first would hide padding bugs)."""
    chosen = [name for name in proteome if len(proteome[name]) <= 400][:30]
    return {name: proteome[name] for name in chosen}


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory,
            proteome: dict[str, str]) -> tuple[cesm.LoadedEsm, object, object]:
    """A tiny local model, trained once per session; also returns its models_dir and history."""
    models_dir = tmp_path_factory.mktemp("models")
    sequences = list(proteome.values())[:300]
    history = cesm.train_local_esm(sequences, TINY, cesm.local_model_dir(TINY.spec, models_dir), 0)
    return cesm.load_esm(TINY.spec, models_dir, device="cpu"), models_dir, history


@pytest.fixture(scope="session")
def model(trained: tuple[cesm.LoadedEsm, object, object]) -> cesm.LoadedEsm:
    """The tiny model with ESM-2's 1,022-residue limit, so ordinary proteins are not windowed."""
    return dataclasses.replace(trained[0], max_positions=1024)


def fair_esm_residues(model: cesm.LoadedEsm, sequence: str, layers: list[int]) -> dict[int, np.ndarray]:
    """Per-residue representations from fair-esm's forward (BOS/EOS removed)."""
    _, _, tokens = model.batch_converter([("x", sequence)])
    with torch.no_grad():
        out = model.model(tokens, repr_layers=layers)["representations"]
    return {layer: out[layer][0, 1:len(sequence) + 1].numpy().astype(np.float64) for layer in layers}


def test_matches_fair_esm_forward(model: cesm.LoadedEsm, records: dict[str, str]) -> None:
    name, sequence = next(iter(records.items()))
    result = cesm.embed({name: sequence}, model, [0, 1, 2])
    reference = fair_esm_residues(model, cesm.clean_sequence(name, sequence), [0, 1, 2])
    for layer in (0, 1, 2):
        np.testing.assert_allclose(result.mean[layer][0], reference[layer].mean(0), atol=TOLERANCE)


def test_layers_and_shapes(model: cesm.LoadedEsm, records: dict[str, str]) -> None:
    result = cesm.embed(records, model, [-1, 0])
    assert result.layers == (0, 2)
    assert result.ids == list(records)
    for layer in result.layers:
        assert result.mean[layer].shape == (len(records), 32)
        assert result.mean[layer].dtype == np.float32
    assert result.layer_index(-1) == 2
    assert result.positions is None
    with pytest.raises(ValueError, match="out of range"):
        cesm.embed(records, model, [3])


def test_batched_equals_one_at_a_time(model: cesm.LoadedEsm, records: dict[str, str]) -> None:
    positions = {name: [0, 5, len(seq.rstrip("*")) - 1] for name, seq in records.items()}
    batched = cesm.embed(records, model, [0, 1, 2], positions=positions, batch_tokens=4096)
    for row, (name, sequence) in enumerate(records.items()):
        alone = cesm.embed({name: sequence}, model, [0, 1, 2],
                           positions={name: positions[name]}, batch_tokens=1)
        for layer in (0, 1, 2):
            np.testing.assert_allclose(batched.mean[layer][row], alone.mean[layer][0], atol=TOLERANCE)
            np.testing.assert_allclose(batched.positions[layer][row], alone.positions[layer][0],
                                       atol=TOLERANCE)


def test_padding_invariance(model: cesm.LoadedEsm, proteome: dict[str, str]) -> None:
    """A short protein in one batch with a ~400-residue one gets padded; it must not notice."""
    names = sorted(proteome, key=lambda name: len(proteome[name]))
    short, long_ = names[0], next(n for n in names if len(proteome[n]) > 400)
    alone = cesm.embed({short: proteome[short]}, model, [2])
    together = cesm.embed({short: proteome[short], long_: proteome[long_]}, model, [2],
                          batch_tokens=100_000)
    np.testing.assert_allclose(together.mean[2][0], alone.mean[2][0], atol=TOLERANCE)


def test_long_sequence_windows(model: cesm.LoadedEsm, proteome: dict[str, str]) -> None:
    """Windows of 32 residues, stride 16, per-residue averages, then the means."""
    small = dataclasses.replace(model, max_positions=34)
    name = next(n for n in proteome if 100 <= len(proteome[n].rstrip("*")) <= 140)
    sequence = cesm.clean_sequence(name, proteome[name])
    length = len(sequence)
    starts = cesm.window_starts(length, 32)
    assert starts[0] == 0 and starts[-1] == length - 32 and len(starts) > 2

    summed = np.zeros((length, 32))
    coverage = np.zeros(length)
    for start in starts:
        summed[start:start + 32] += fair_esm_residues(model, sequence[start:start + 32], [2])[2]
        coverage[start:start + 32] += 1
    per_residue = summed / coverage[:, None]
    picked = [1, 40, length - 2]

    result = cesm.embed({name: sequence}, small, [2], positions={name: picked})
    np.testing.assert_allclose(result.mean[2][0], per_residue.mean(0), atol=TOLERANCE)
    np.testing.assert_allclose(result.positions[2][0], per_residue[picked].mean(0), atol=TOLERANCE)


@pytest.mark.parametrize("bad", ["", "MKV-LA", "MKV12", "MK*VL"])
def test_bad_records_name_the_id(model: cesm.LoadedEsm, bad: str) -> None:
    with pytest.raises(ValueError, match="broken_one"):
        cesm.embed({"fine": "MKVLA", "broken_one": bad}, model, [1])


def test_case_and_terminal_stop_are_normalised(model: cesm.LoadedEsm) -> None:
    plain = cesm.embed({"a": "MKVLAAGW"}, model, [2]).mean[2]
    variant = cesm.embed({"a": "mkvlAAGW*"}, model, [2]).mean[2]
    np.testing.assert_array_equal(plain, variant)


def test_cache_hit_and_corruption(model: cesm.LoadedEsm, records: dict[str, str], tmp_path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ArrayCache(tmp_path)
    subset = dict(list(records.items())[:6])
    cold = cesm.embed(subset, model, [0, 2], cache=cache)
    assert cold.stats["n_computed"] == 6

    original = cesm._pool_batch
    calls: list[int] = []

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(cesm, "_pool_batch", counting)
    warm = cesm.embed(subset, model, [0, 2], cache=cache)
    assert calls == [] and warm.stats["n_cached"] == 6
    for layer in (0, 2):
        np.testing.assert_array_equal(warm.mean[layer], cold.mean[layer])

    entries = sorted((tmp_path / cesm.CACHE_NAMESPACE).glob("*.npz"))
    assert len(entries) == 6
    entries[0].write_bytes(b"\x00garbage, not a zip file" * 10)
    repaired = cesm.embed(subset, model, [0, 2], cache=cache)
    assert sum(calls) == 1 and repaired.stats["n_computed"] == 1
    for layer in (0, 2):
        np.testing.assert_allclose(repaired.mean[layer], cold.mean[layer], atol=TOLERANCE)

    # A readable entry of the wrong shape (e.g. written by a buggy version) is also recomputed.
    np.savez(entries[1], pooled=np.zeros((1, 1, 3), dtype=np.float32))
    cesm.embed(subset, model, [0, 2], cache=cache)
    assert sum(calls) == 2


def test_hub_name_offline_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as caught:
        cesm.load_esm("esm2_t6_8M_UR50D", device="cpu")
    message = str(caught.value)
    assert str(tmp_path / "hub" / "checkpoints" / "esm2_t6_8M_UR50D.pt") in message
    assert "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t6_8M_UR50D.pt" in message
    with pytest.raises(FileNotFoundError, match="train_local_esm"):
        cesm.load_esm("local:absent", tmp_path, device="cpu")


def test_local_training_deterministic_and_learns(trained, proteome: dict[str, str], tmp_path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    loaded, models_dir, history = trained
    assert history["valid_loss"].iloc[-1] < history["valid_loss"].iloc[0]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[1]
    stored = json.loads((cesm.local_model_dir(TINY.spec, models_dir) / "config.json").read_text())
    assert stored["n_valid"] > 0 and stored["unigram_perplexity"] > 1
    assert loaded.model_id.startswith("local:tiny@") and loaded.max_positions == 66

    again_dir = tmp_path / "again"
    cesm.train_local_esm(list(proteome.values())[:300][::-1], TINY, again_dir, 0)
    first = torch.load(cesm.local_model_dir(TINY.spec, models_dir) / "model.pt", weights_only=True)
    second = torch.load(again_dir / "model.pt", weights_only=True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)

    def no_training(*_args, **_kwargs):
        raise AssertionError("retrained although an identical model exists")

    monkeypatch.setattr(cesm, "_mlm_logits", no_training)
    reused = cesm.train_local_esm(list(proteome.values())[:300], TINY, again_dir, 0)
    assert reused["valid_loss"].tolist() == pytest.approx(history["valid_loss"].tolist())


def test_embed_command(trained, records: dict[str, str], tmp_path) -> None:
    import argparse

    _, models_dir, _ = trained
    fasta = tmp_path / "in.faa"
    fasta.write_text("".join(f">{name}\n{seq.rstrip('*')}\n" for name, seq in list(records.items())[:4]))
    parser = argparse.ArgumentParser()
    cesm.add_embed_command(parser.add_subparsers(dest="command"))
    out = tmp_path / "out.npz"
    args = parser.parse_args(["embed", "--fasta", str(fasta), "--model", TINY.spec, "--layers",
                              "0", "2", "--out", str(out), "--models-dir", str(models_dir)])
    assert args.handler(args) == 0
    with np.load(out) as saved:
        assert saved["ids"].tolist() == list(records)[:4]
        assert saved["mean_L2"].shape == (4, 32)


def test_esm1b_checkpoint_file(tmp_path, proteome: dict[str, str]) -> None:
    """A fair-esm ESM-1b-format .pt without its contact-regression file loads offline, and
    its learned-position forward pass matches fair-esm, windows included (64 positions)."""
    from argparse import Namespace

    import esm

    torch.manual_seed(1)
    alphabet = esm.data.Alphabet.from_architecture("roberta_large")
    args = Namespace(arch="roberta_large", layers=2, embed_dim=32, ffn_embed_dim=64,
                     attention_heads=4, max_positions=64, token_dropout=True,
                     emb_layer_norm_before=True)
    network = esm.ProteinBertModel(args, alphabet)
    state = {(f"encoder.{key}" if key.startswith("lm_head") else f"encoder.sentence_encoder.{key}"): value
             for key, value in network.state_dict().items() if not key.startswith("contact_head")}
    path = tmp_path / "esm1b_t2_tiny.pt"
    torch.save({"args": args, "model": state}, path)

    loaded = cesm.load_esm(str(path), device="cpu")
    assert loaded.model_id.startswith("esm1b_t2_tiny@") and loaded.max_positions == 64
    name = next(n for n in proteome if len(proteome[n].rstrip("*")) < 62)
    sequence = cesm.clean_sequence(name, proteome[name])
    result = cesm.embed({name: sequence}, loaded, [0, 2])
    reference = fair_esm_residues(loaded, sequence, [0, 2])
    for layer in (0, 2):
        np.testing.assert_allclose(result.mean[layer][0], reference[layer].mean(0), atol=TOLERANCE)
    long_name = next(n for n in proteome if len(proteome[n]) > 200)
    assert cesm.embed({long_name: proteome[long_name]}, loaded, [2]).mean[2].shape == (1, 32)
