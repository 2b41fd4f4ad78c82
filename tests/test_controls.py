"""Controls: domain-consistent random projections and the untrained ESM.

A control is only a control if it differs from the representation it controls in nothing but
the learning: the same rows, the same width, the same pooling. These tests check that
contract against the real code paths it must match (``features.count_weighted_mean``, through
``controls.random_bag_means``, for BGC pooling, ``models.esm.embed`` for residue pooling, the
local pretraining's initialisation for the untrained ESM), on real proteins with tiny models.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from esm.model.esm2 import ESM2

import crossgran.models.esm as cesm
from crossgran.analysis import controls
from crossgran.cache import ArrayCache
from crossgran.data.tables import read_proteome
from crossgran.profiles import EsmConfig
from crossgran.threads import limit

pretrain = importlib.import_module("crossgran.models.esm.pretrain")

FAMILIES = ["PF00109", "PF02801", "PF00668", "PF00501", "PF13193", "PF00550"]
# fair-esm's token-dropout constant: layer 0 of ESM-2 is 0.88 x the token embedding when no
# input is masked (crossgran.models.esm.forward._embed_tokens).
ESM2_LAYER0_SCALE = 1 - 0.15 * 0.8


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with limit(torch_threads=1):
        yield


@pytest.fixture(scope="module")
def proteins() -> dict[str, str]:
    """Six real proteins of mixed lengths, terminal stops kept (embed must drop them)."""
    proteome = read_proteome()
    chosen = [name for name in proteome if 60 <= len(proteome[name]) <= 300][:6]
    return {name: proteome[name] for name in chosen}


# --------------------------------------------------------------------------- family vectors


def test_family_vector_depends_only_on_seed_width_and_accession() -> None:
    forward = controls.random_family_vectors(FAMILIES, 64, seed=3)
    shuffled = controls.random_family_vectors([*FAMILIES[::-1], "PF99999"], 64, seed=3)
    assert forward.shape == (6, 64) and forward.dtype == np.float64
    np.testing.assert_array_equal(forward, shuffled[:6][::-1])
    alone = controls.random_family_vectors(["PF00668"], 64, seed=3)
    np.testing.assert_array_equal(alone[0], forward[2])
    # Another seed or width is another draw (the narrow one is not a prefix of the wide one).
    assert not np.allclose(controls.random_family_vectors(FAMILIES, 64, seed=4), forward)
    wide = controls.random_family_vectors(FAMILIES, 128, seed=3)
    assert not np.allclose(wide[:, :64], forward)


def test_family_vectors_are_standard_normal_and_distinct() -> None:
    many = controls.random_family_vectors([f"PF{i:05d}" for i in range(2000)], 32, seed=0)
    assert abs(many.mean()) < 0.02
    assert abs(many.std() - 1.0) < 0.02
    # No two families share a vector (a collision would make two families one random family).
    assert np.unique(many[:, 0]).size == 2000


def test_family_vectors_are_the_same_in_every_process() -> None:
    """Pinned values: a seed derived from Python's salted ``hash`` would change them between
    test runs (PYTHONHASHSEED is random per process unless set)."""
    assert controls.stable_int("PF00109") == 0x3B9D54AD
    value = controls.random_family_vectors(["PF00109"], 4, seed=0)[0]
    expected = np.random.default_rng([0, 4, 0x3B9D54AD]).standard_normal(4)
    np.testing.assert_array_equal(value, expected)


def test_bgc_control_pools_like_the_esm_family_features() -> None:
    """The BGC-level control (``random_bag_means``, used by the product-class and the
    halogenation tables) is the count-weighted mean over random family vectors: a BGC's row
    equals the hand-computed weighted mean, a BGC made of one family gets that family's
    vector, and BGCs not asked for change nobody's row."""
    counts = pd.DataFrame(
        {
            "bgc_id": ["a", "a", "b", "c", "c", "c"],
            "pfam": ["PF00109", "PF02801", "PF00668", "PF00668", "PF00501", "PF13193"],
            "count": [2, 1, 3, 1, 1, 2],
        }
    )
    vectors = dict(zip(FAMILIES, controls.random_family_vectors(FAMILIES, 16, seed=1), strict=True))
    pooled = controls.random_bag_means(counts, ["a", "b", "c"], 16, seed=1)
    np.testing.assert_allclose(pooled[0], (2 * vectors["PF00109"] + vectors["PF02801"]) / 3)
    np.testing.assert_allclose(pooled[1], vectors["PF00668"])
    np.testing.assert_allclose(
        pooled[2], (vectors["PF00668"] + vectors["PF00501"] + 2 * vectors["PF13193"]) / 4
    )
    assert pooled.shape == (3, 16)
    only_b = controls.random_bag_means(counts, ["b"], 16, seed=1)
    np.testing.assert_allclose(only_b[0], pooled[1])


def test_concatenated_control_has_the_fusion_shape() -> None:
    a = controls.random_family_vectors(FAMILIES, 8, seed=0)
    b = controls.random_family_vectors(FAMILIES, 24, seed=1)
    fused = controls.concatenated(a, b)
    assert fused.shape == (6, 32)
    np.testing.assert_array_equal(fused[:, 8:], b)
    with pytest.raises(ValueError, match="row counts"):
        controls.concatenated(a, b[:3])


# --------------------------------------------------------------------------- residue features


def _esm_with_table(width: int, seed: int) -> cesm.LoadedEsm:
    """An ESM-2 whose token embedding is the control's residue table: its layer-0 pooled
    vectors must then be the control's features times fair-esm's token-dropout scale."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = ESM2(num_layers=1, embed_dim=width, attention_heads=2)
    letters = sorted(cesm.ALLOWED_RESIDUES)
    table = controls.random_family_vectors(
        [controls.RESIDUE_KEY_PREFIX + letter for letter in letters], width, seed
    )
    with torch.no_grad():
        for letter, row in zip(letters, table, strict=True):
            network.embed_tokens.weight[network.alphabet.get_idx(letter)] = torch.from_numpy(row)
    return cesm.wrap_model(network, network.alphabet, f"residue-table-{width}-{seed}")


def test_residue_features_pool_like_esm_embed(proteins: dict[str, str]) -> None:
    """Same cleaning, same residue-only mean, same 0-based positions as ``esm.embed``."""
    ids = list(proteins)
    raw = [proteins[name].lower() if i == 0 else proteins[name] for i, name in enumerate(ids)]
    positions = [[0, 5, len(proteins[name].rstrip("*")) - 1] for name in ids]
    mean, chosen = controls.random_residue_features(raw, 16, seed=2, positions=positions)
    assert mean.shape == chosen.shape == (len(ids), 16)
    reference = cesm.embed(
        dict(zip(ids, raw, strict=True)),
        _esm_with_table(16, seed=2),
        [0],
        positions=dict(zip(ids, positions, strict=True)),
    )
    np.testing.assert_allclose(ESM2_LAYER0_SCALE * mean, reference.mean[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ESM2_LAYER0_SCALE * chosen, reference.positions[0], rtol=1e-5, atol=1e-6
    )
    without, none = controls.random_residue_features(raw, 16, seed=2)
    assert none is None
    np.testing.assert_array_equal(without, mean)


def test_residue_features_follow_composition_only() -> None:
    """A control has no context: shuffling a sequence keeps its mean; a position picks the
    vector of the letter there; another seed gives other vectors."""
    mean, chosen = controls.random_residue_features(
        ["MKVLAAG", "GAALVKM"], 8, seed=0, positions=[[1], [5]]
    )
    np.testing.assert_allclose(mean[0], mean[1])
    np.testing.assert_array_equal(chosen[0], chosen[1])  # both are K
    other, _ = controls.random_residue_features(["MKVLAAG"], 8, seed=1)
    assert not np.allclose(other[0], mean[0])


@pytest.mark.parametrize(
    ("positions", "message"),
    [([[]], "empty positions"), ([[1, 1]], "duplicate"), ([[7]], "outside 0..6")],
)
def test_residue_positions_are_checked_like_embed(positions: list[list[int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        controls.random_residue_features(["MKVLAAG"], 8, seed=0, positions=positions)


def test_residue_features_reject_non_proteins() -> None:
    with pytest.raises(ValueError, match="not amino acids"):
        controls.random_residue_features(["MK-LA"], 8, seed=0)


# --------------------------------------------------------------------------- untrained ESM


def _parameters(model: cesm.LoadedEsm) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.model.state_dict().items()}


def _same_weights(a: cesm.LoadedEsm, b: cesm.LoadedEsm) -> bool:
    left, right = _parameters(a), _parameters(b)
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_untrained_fair_esm_is_its_modules_own_initialisation(tiny_esm: cesm.LoadedEsm) -> None:
    """``tiny_esm`` is itself an ESM-2 initialised under ``torch.manual_seed(0)``, so the
    untrained model of seed 0 must reproduce it bit for bit, and seed 1 must not."""
    rng_before = torch.get_rng_state()
    fresh = cesm.untrained_esm(tiny_esm, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is left alone
    assert _same_weights(fresh, tiny_esm)
    assert fresh.model is not tiny_esm.model
    assert fresh.model_id == f"{tiny_esm.model_id}~untrained-seed0"
    assert (fresh.num_layers, fresh.embed_dim, fresh.max_positions) == (
        tiny_esm.num_layers,
        tiny_esm.embed_dim,
        tiny_esm.max_positions,
    )
    assert _same_weights(cesm.untrained_esm(tiny_esm, seed=0), fresh)
    assert not _same_weights(cesm.untrained_esm(tiny_esm, seed=1), fresh)


def _local_pair(
    train: list[str], valid: list[str], seed: int
) -> tuple[cesm.LoadedEsm, dict[str, torch.Tensor]]:
    """A "trained" local model (its pretraining start, then moved) and that start's weights."""
    config = EsmConfig(spec="local:tiny", num_layers=2, embed_dim=32, attention_heads=4)
    with torch.random.fork_rng(devices=[]):
        start = pretrain._new_run(config, seed, train, valid).model
    initial = {name: tensor.detach().clone() for name, tensor in start.state_dict().items()}
    with torch.no_grad():
        for parameter in start.parameters():
            parameter.add_(0.05)  # stands in for training: any move away from the start
    loaded = cesm.wrap_model(start, start.alphabet, "local:tiny@0123456789ab", max_positions=66)
    return loaded, initial


def test_untrained_local_esm_is_where_its_pretraining_started(proteins: dict[str, str]) -> None:
    sequences = [sequence.rstrip("*") for sequence in proteins.values()]
    trained, initial = _local_pair(sequences[:4], sequences[4:], seed=7)
    fresh = cesm.untrained_esm(trained, seed=7)
    state = fresh.model.state_dict()
    assert state.keys() == initial.keys()
    assert all(torch.equal(state[name], initial[name]) for name in initial)
    assert fresh.max_positions == 66 and fresh.model_id.startswith("local:tiny@0123456789ab~")
    assert not _same_weights(fresh, trained)
    # BERT's N(0, 0.02), not PyTorch's N(0, 1) embedding default.
    assert 0.015 < float(state["embed_tokens.weight"].std()) < 0.025


def test_untrained_esm_embeds_and_never_shares_cache_entries(
    tiny_esm: cesm.LoadedEsm, proteins: dict[str, str], tmp_path
) -> None:
    """Cached vectors are keyed by ``model_id``: the untrained model's pass must not be
    answered from the trained model's entries."""
    cache = ArrayCache(tmp_path / "cache")
    shifted = cesm.untrained_esm(tiny_esm, seed=5)
    first = cesm.embed(proteins, tiny_esm, [0, 2], cache=cache)
    second = cesm.embed(proteins, shifted, [0, 2], cache=cache)
    assert second.stats["n_cached"] == 0 and second.model_id == shifted.model_id
    assert np.isfinite(second.mean[2]).all()
    assert not np.allclose(first.mean[2], second.mean[2])
    again = cesm.embed(proteins, cesm.untrained_esm(tiny_esm, seed=5), [0, 2], cache=cache)
    assert again.stats["n_cached"] == len(proteins)
    np.testing.assert_array_equal(again.mean[2], second.mean[2])
