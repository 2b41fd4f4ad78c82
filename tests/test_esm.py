"""crossgran.models.esm on real proteins (pyhmmer's shipped proteome, PARAS's NRPS proteins)
with tiny models, offline.

The reference for every pooled vector is fair-esm's own forward pass, so the fast path in
crossgran.models.esm is checked against the implementation it replaces, not against itself.
Bad inputs (case, stops, gaps, empty records, corrupt cache entries) must either be handled
as the docstrings promise or stop with a message naming every bad record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from standins import save_tiny_esm1b

import crossgran.models.esm as cesm
from crossgran.cache import ArrayCache, cache_key, save_npz, sha256_file
from crossgran.data import remote
from crossgran.data.readers import read_fasta
from crossgran.data.sources import SourceError, fetch_wheel
from crossgran.data.split import split_of
from crossgran.data.tables import read_nrps_proteins, read_proteome
from crossgran.profiles import EsmConfig, get_profile
from crossgran.threads import limit

# The modules, not the functions of the same names that the package re-exports.
embedding = importlib.import_module("crossgran.models.esm.embed")
pretrain = importlib.import_module("crossgran.models.esm.pretrain")

TOLERANCE = 1e-5
TINY = EsmConfig(
    spec="local:tiny",
    num_layers=2,
    embed_dim=32,
    attention_heads=4,
    train_steps=30,
    train_batch_tokens=1024,
    train_max_len=64,
    lr=3e-3,
    valid_fraction=0.1,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine are far slower with two spinning OpenMP threads
    than with one, and one thread also fixes the reduction order (hence the results)."""
    with limit(torch_threads=1):
        yield


@pytest.fixture(scope="session")
def proteome() -> dict[str, str]:
    return read_proteome()


@pytest.fixture(scope="session")
def records(proteome: dict[str, str]) -> dict[str, str]:
    """30 real proteins of mixed lengths (shortest-first would hide padding bugs)."""
    chosen = [name for name in proteome if len(proteome[name]) <= 400][:30]
    return {name: proteome[name] for name in chosen}


@pytest.fixture(scope="session")
def proteins(proteome: dict[str, str]) -> dict[str, str]:
    """Three real proteins short enough for one window. The proteome's translations end in a
    stop ``*``; it is cut here so that every defect below, terminal stops included, is one
    the test adds on purpose."""
    chosen = [name for name in proteome if 50 <= len(proteome[name]) <= 300][:3]
    return {name: proteome[name].removesuffix("*") for name in chosen}


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory, proteome: dict[str, str]
) -> tuple[cesm.LoadedEsm, Path, object]:
    """A tiny local model, trained once per session; also returns its models_dir and history."""
    models_dir = tmp_path_factory.mktemp("models")
    sequences = list(proteome.values())[:300]
    with limit(torch_threads=1):
        history = cesm.train_local_esm(
            sequences, TINY, out_dir=cesm.local_model_dir(TINY.spec, models_dir), seed=0
        )
    return cesm.load_esm(TINY.spec, models_dir, device="cpu"), models_dir, history


@pytest.fixture(scope="session")
def model(trained: tuple[cesm.LoadedEsm, Path, object]) -> cesm.LoadedEsm:
    """The tiny model with ESM-2's 1,022-residue limit, so ordinary proteins are not windowed."""
    return dataclasses.replace(trained[0], max_positions=1024)


def fair_esm_residues(
    model: cesm.LoadedEsm, sequence: str, layers: list[int]
) -> dict[int, np.ndarray]:
    """Per-residue representations from fair-esm's forward (BOS/EOS removed)."""
    _, _, tokens = model.batch_converter([("x", sequence)])
    with torch.no_grad():
        out = model.model(tokens, repr_layers=layers)["representations"]
    return {
        layer: out[layer][0, 1 : len(sequence) + 1].numpy().astype(np.float64) for layer in layers
    }


def _leftovers(directory: Path) -> list[Path]:
    """Temporary files of crossgran.cache.atomic_path that a crash could leave behind."""
    return sorted(directory.rglob("*.part"))


# ------------------------------------------------------------------ forward pass and pooling


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
    with pytest.raises(KeyError, match="layer 1 was not embedded"):
        result.layer_index(1)
    with pytest.raises(KeyError, match="layer 7 was not embedded"):
        result.layer_index(7)
    assert result.positions is None
    with pytest.raises(ValueError, match="out of range"):
        cesm.embed(records, model, [3])
    with pytest.raises(ValueError, match="at least one layer"):
        cesm.embed(records, model, [])


def test_embedding_result_round_trips(
    model: cesm.LoadedEsm, records: dict[str, str], tmp_path: Path
) -> None:
    subset = dict(list(records.items())[:4])
    positions = {name: [0, 3] for name in subset}
    for given in (None, positions):
        result = cesm.embed(subset, model, [0, 2], positions=given)
        result.save(tmp_path / "result.npz")
        loaded = cesm.EmbeddingResult.load(tmp_path / "result.npz")
        assert (loaded.ids, loaded.layers, loaded.model_id, loaded.num_layers) == (
            result.ids,
            result.layers,
            result.model_id,
            result.num_layers,
        )
        for layer in result.layers:
            np.testing.assert_array_equal(loaded.mean[layer], result.mean[layer])
        assert (loaded.positions is None) == (given is None)
        if given is not None:
            for layer in result.layers:
                np.testing.assert_array_equal(loaded.positions[layer], result.positions[layer])


def test_batched_equals_one_at_a_time(model: cesm.LoadedEsm, records: dict[str, str]) -> None:
    positions = {name: [0, 5, len(seq.rstrip("*")) - 1] for name, seq in records.items()}
    batched = cesm.embed(records, model, [0, 1, 2], positions=positions, batch_tokens=4096)
    for row, (name, sequence) in enumerate(records.items()):
        alone = cesm.embed(
            {name: sequence}, model, [0, 1, 2], positions={name: positions[name]}, batch_tokens=1
        )
        for layer in (0, 1, 2):
            np.testing.assert_allclose(
                batched.mean[layer][row], alone.mean[layer][0], atol=TOLERANCE
            )
            np.testing.assert_allclose(
                batched.positions[layer][row], alone.positions[layer][0], atol=TOLERANCE
            )


def test_padding_invariance(model: cesm.LoadedEsm, proteome: dict[str, str]) -> None:
    """A short protein in one batch with a ~400-residue one gets padded; it must not notice."""
    names = sorted(proteome, key=lambda name: len(proteome[name]))
    short, long_ = names[0], next(n for n in names if len(proteome[n]) > 400)
    alone = cesm.embed({short: proteome[short]}, model, [2])
    together = cesm.embed(
        {short: proteome[short], long_: proteome[long_]}, model, [2], batch_tokens=100_000
    )
    np.testing.assert_allclose(together.mean[2][0], alone.mean[2][0], atol=TOLERANCE)


def test_long_nrps_protein_is_embedded_in_overlapping_windows(smoke_profile, tiny_esm):
    """A real multi-modular NRPS protein, longer than two ESM-2 windows: windows of 1,022
    residues, stride 511, the last one C-aligned; each residue is averaged over the windows
    that contain it, then pooled (over all residues, and over picked positions)."""
    nrps, _ = read_nrps_proteins(fetch_wheel("paras", smoke_profile.raw_dir))
    window = tiny_esm.max_positions - 2
    assert window == 1022
    name = min((n for n in nrps if len(nrps[n]) > 2 * window), key=lambda n: (len(nrps[n]), n))
    sequence = nrps[name]
    starts = cesm.window_starts(len(sequence), window)
    assert len(starts) >= 3 and starts[-1] + window == len(sequence)
    picked = [1, window + 5, len(sequence) - 2]  # in one, two and the last window(s)

    result = cesm.embed({name: sequence}, tiny_esm, [0, 2], positions={name: picked})
    assert result.stats["computed_residues"] == len(starts) * window

    # Reference: fair-esm's own forward on each window.
    summed = {layer: np.zeros((len(sequence), tiny_esm.embed_dim)) for layer in (0, 2)}
    coverage = np.zeros(len(sequence))
    for start in starts:
        piece = fair_esm_residues(tiny_esm, sequence[start : start + window], [0, 2])
        for layer in (0, 2):
            summed[layer][start : start + window] += piece[layer]
        coverage[start : start + window] += 1
    assert coverage.min() >= 1  # every residue, C-terminal ones included, was embedded
    for layer in (0, 2):
        per_residue = summed[layer] / coverage[:, None]
        np.testing.assert_allclose(result.mean[layer][0], per_residue.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(
            result.positions[layer][0], per_residue[picked].mean(axis=0), atol=1e-5
        )


def test_esm1b_checkpoint_file(tmp_path, proteome: dict[str, str]) -> None:
    """A fair-esm ESM-1b-format .pt without its contact-regression file loads offline, and
    its learned-position forward pass matches fair-esm, windows included (64 positions)."""
    path = tmp_path / "esm1b_t2_tiny.pt"
    save_tiny_esm1b(path)

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


# ------------------------------------------------------------------ bad records


def test_embed_reads_lowercase_and_a_terminal_stop_as_the_plain_protein(proteins, tiny_esm):
    messy = {name: sequence.lower() + "*" for name, sequence in proteins.items()}
    clean = cesm.embed(proteins, tiny_esm, [0, 2])
    handled = cesm.embed(messy, tiny_esm, [0, 2])
    assert handled.ids == clean.ids
    for layer in (0, 2):
        np.testing.assert_array_equal(handled.mean[layer], clean.mean[layer])


def test_embed_names_every_bad_record_at_once_and_caches_nothing(proteins, tiny_esm, tmp_path):
    name, sequence = next(iter(proteins.items()))
    records = {
        name: sequence,
        "gapped": sequence[:40] + "-" + sequence[40:],
        "inner_stop": sequence[:40] + "*" + sequence[40:],
        "digits": sequence[:10] + "12" + sequence[10:],
        "empty": "",
        "stop_only": "*",
    }
    cache = ArrayCache(tmp_path / "cache")
    with pytest.raises(ValueError) as caught:
        cesm.embed(records, tiny_esm, [-1], cache=cache)
    message = str(caught.value)
    assert message.startswith("5 invalid sequence record(s)")
    assert "'gapped': characters that are not amino acids: '-'" in message
    assert "'digits': characters that are not amino acids: '12'" in message
    assert "'inner_stop': characters that are not amino acids: '*'" in message
    assert "'empty': empty sequence" in message and "'stop_only': empty sequence" in message
    assert "allowed: 20 standard + X B Z U O" in message  # says what a fixed record may hold
    assert repr(name) not in message
    # Validation precedes any forward pass, so not even the good record was cached.
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


def test_gapped_fasta_is_read_and_embed_names_the_record(proteins, tmp_path, tiny_esm):
    name, sequence = next(iter(proteins.items()))
    fasta = tmp_path / "aligned.faa"
    fasta.write_text(f">{name}\n{sequence[:40]}-{sequence[40:]}\n")
    records = read_fasta(fasta)
    assert records[name][40] == "-"
    with pytest.raises(ValueError, match=rf"'{name}': characters that are not amino acids: '-'"):
        cesm.embed(records, tiny_esm, [0])


# ------------------------------------------------------------------ cache


def test_cache_hit_and_recomputed_truncated_and_foreign_entries(
    proteins, tiny_esm, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ArrayCache(tmp_path)
    cold = cesm.embed(proteins, tiny_esm, [1, 2], cache=cache)
    assert cold.stats["n_computed"] == len(proteins)

    original = embedding._pool_batch
    calls: list[int] = []

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(embedding, "_pool_batch", counting)
    warm = cesm.embed(proteins, tiny_esm, [1, 2], cache=cache)
    assert calls == [] and warm.stats["n_cached"] == len(proteins)
    for layer in (1, 2):
        np.testing.assert_array_equal(warm.mean[layer], cold.mean[layer])

    entries = sorted((tmp_path / cesm.CACHE_NAMESPACE).glob("*.npz"))
    assert len(entries) == len(proteins)
    entries[0].write_bytes(entries[0].read_bytes()[: entries[0].stat().st_size // 2])
    # Readable but not a result of this call: wrong shape. Must not be used as a vector.
    save_npz(entries[1], {"pooled": np.zeros((1, 1, 3), dtype=np.float32)})
    repaired = cesm.embed(proteins, tiny_esm, [1, 2], cache=cache)
    assert sum(calls) == 2
    assert repaired.stats["n_computed"] == 2 and repaired.stats["n_cached"] == len(proteins) - 2
    for layer in (1, 2):
        # Recomputed in a smaller batch (other padding), so float32 rounding may differ.
        np.testing.assert_allclose(repaired.mean[layer], cold.mean[layer], rtol=0, atol=1e-6)
    healed = cesm.embed(proteins, tiny_esm, [1, 2], cache=cache)
    assert healed.stats["n_cached"] == len(proteins)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------ precision and device

# Measured on this CPU (the test's 10 proteins, 142-398 residues, three models below): bf16
# autocast moves a pooled vector by at most 0.37% of its norm (1 - cosine <= 6.8e-6); on 3
# proteins through a random 650M-parameter ESM-2 (33 x 1,280), 0.53% (1.4e-5) at the deepest
# layers. The bounds leave 2.7x and 15x margin here for other CPUs' bf16 kernels.
BF16_MIN_COSINE = 0.9999
BF16_MAX_RELATIVE_ERROR = 0.01


@pytest.fixture(scope="session")
def mini_shaped_esm() -> cesm.LoadedEsm:
    """A randomly initialised ESM-2 of the ``mini`` profile's shape (4 layers x 128, 4 heads)."""
    import esm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = esm.model.esm2.ESM2(num_layers=4, embed_dim=128, attention_heads=4)
    return cesm.wrap_model(network, network.alphabet, "random-esm2-4x128-seed0")


@pytest.mark.parametrize("which", ["tiny_esm", "model", "mini_shaped_esm"])
def test_bf16_autocast_stays_close_to_fp32(
    which: str, request: pytest.FixtureRequest, records: dict[str, str]
) -> None:
    """bf16 autocast on the CPU runs the CUDA path (the autocast device type is the model's),
    so the numerics a GPU run gets are checked here without a GPU. Real proteins, three
    models (random 2 x 32, the tiny model trained above, random ``mini``-shaped 4 x 128).

    Tolerance, per sequence and layer: cosine(bf16, fp32) >= 0.9999 and
    ||bf16 - fp32|| / ||fp32|| <= 1% (measured: <= 0.39%, see BF16_MAX_RELATIVE_ERROR). The
    token embeddings (layer 0) are not autocast and must be identical; every deeper layer
    must differ by more than float32 noise, or autocast did not run."""
    model = request.getfixturevalue(which)
    subset = dict(list(records.items())[:10])
    layers = list(range(model.num_layers + 1))
    exact = cesm.embed(subset, model, layers, precision="fp32")
    half = cesm.embed(subset, model, layers, precision="bf16")
    assert (exact.precision, half.precision) == ("fp32", "bf16")
    np.testing.assert_array_equal(half.mean[0], exact.mean[0])
    for layer in layers[1:]:
        reference = exact.mean[layer].astype(np.float64)
        candidate = half.mean[layer]
        assert candidate.dtype == np.float32
        norms = np.linalg.norm(reference, axis=1)
        cosine = (reference * candidate).sum(axis=1) / norms / np.linalg.norm(candidate, axis=1)
        relative = np.linalg.norm(candidate - reference, axis=1) / norms
        assert cosine.min() >= BF16_MIN_COSINE, (layer, cosine.min())
        assert relative.max() <= BF16_MAX_RELATIVE_ERROR, (layer, relative.max())
        assert relative.max() > 1e-4, f"layer {layer}: bf16 equals fp32, autocast did not run"


def test_cache_keeps_bf16_and_fp32_apart(proteins, tiny_esm, tmp_path) -> None:
    """A bf16 entry is never read as fp32 (nor the reverse), and fp32 keys are exactly the
    keys of earlier versions, so the float32 entries already cached stay valid."""
    cache = ArrayCache(tmp_path)
    exact = cesm.embed(proteins, tiny_esm, [2], cache=cache, precision="fp32")
    half = cesm.embed(proteins, tiny_esm, [2], cache=cache, precision="bf16")
    assert half.stats["n_computed"] == len(proteins)  # fp32 entries were not taken
    assert not np.array_equal(half.mean[2], exact.mean[2])
    assert len(list((tmp_path / cesm.CACHE_NAMESPACE).glob("*.npz"))) == 2 * len(proteins)
    for precision, first in (("fp32", exact), ("bf16", half)):
        again = cesm.embed(proteins, tiny_esm, [2], cache=cache, precision=precision)
        assert again.stats["n_cached"] == len(proteins) and again.precision == precision
        np.testing.assert_array_equal(again.mean[2], first.mean[2])

    sequence = next(iter(proteins.values()))
    before_precisions = cache_key(
        cesm.CACHE_NAMESPACE,
        cesm.EMBED_VERSION,
        tiny_esm.model_id,
        [2],
        tiny_esm.max_positions - 2,
        "mean",
        None,
        hashlib.sha256(sequence.encode()).hexdigest(),
    )
    assert embedding._entry_key(tiny_esm, (2,), sequence, None, "fp32") == before_precisions
    assert embedding._entry_key(tiny_esm, (2,), sequence, None, "bf16") != before_precisions


def test_cpu_defaults_are_fp32_and_the_measured_budget(proteins, tiny_esm, tmp_path) -> None:
    """On the CPU nothing changes: fp32, CPU_BATCH_TOKENS; the precision survives a save."""
    assert cesm.default_precision(torch.device("cpu")) == "fp32"
    result = cesm.embed(proteins, tiny_esm, [0, 2])
    assert result.precision == "fp32" and result.stats["batch_tokens"] == cesm.CPU_BATCH_TOKENS
    half = cesm.embed(proteins, tiny_esm, [0, 2], precision="bf16")
    half.save(tmp_path / "half.npz")
    assert cesm.EmbeddingResult.load(tmp_path / "half.npz").precision == "bf16"
    with pytest.raises(ValueError, match="precision 'fp16': use one of fp32, bf16"):
        cesm.embed(proteins, tiny_esm, [0], precision="fp16")


def test_cuda_budget_fits_the_share_and_is_capped_and_floored() -> None:
    """ESM-1b's shape (650M parameters, 1,280 wide, 20 heads, 1,026 positions) on GPUs of
    16, 24, 80 and 141 GB: the budget's bound stays inside the memory share, grows with the
    memory, is capped, and never drops below one full window."""
    shape = {
        "parameter_bytes": 650_000_000 * 4,
        "embed_dim": 1280,
        "attention_heads": 20,
        "max_positions": 1026,
    }
    per_token = 4 * (embedding.ACTIVATION_WIDTHS * 1280 + embedding.ATTENTION_COPIES * 20 * 1026)
    budgets = [cesm.cuda_batch_tokens(gb * 10**9, **shape) for gb in (16, 24, 80, 141)]
    for gb, budget in zip((16, 24), budgets[:2], strict=True):
        bound = budget * per_token + 1.5 * shape["parameter_bytes"]
        assert 1026 < budget < cesm.CUDA_MAX_BATCH_TOKENS
        assert bound <= embedding.CUDA_MEMORY_SHARE * gb * 10**9
    assert budgets == sorted(budgets) and budgets[0] < budgets[1]
    assert budgets[2:] == [cesm.CUDA_MAX_BATCH_TOKENS] * 2
    assert cesm.cuda_batch_tokens(4 * 10**9, **shape) == 1026  # too small: one window


def test_cuda_budget_reads_the_gpu_and_the_model(tiny_esm, monkeypatch: pytest.MonkeyPatch) -> None:
    """default_batch_tokens on a CUDA model asks the GPU for its total memory and the model
    for its weights, width, heads and window (a stand-in with ``device`` cuda: no GPU here)."""
    from types import SimpleNamespace

    asked: list[torch.device] = []

    def properties(device: torch.device) -> SimpleNamespace:
        asked.append(device)
        return SimpleNamespace(total_memory=2 * 10**9)

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    on_cuda = SimpleNamespace(
        device=torch.device("cuda", 0),
        model=tiny_esm.model,
        embed_dim=tiny_esm.embed_dim,
        max_positions=tiny_esm.max_positions,
    )
    weights = sum(p.numel() * 4 for p in tiny_esm.model.parameters())
    expected = cesm.cuda_batch_tokens(2 * 10**9, weights, 32, 4, tiny_esm.max_positions)
    assert cesm.default_batch_tokens(on_cuda) == expected
    assert asked == [torch.device("cuda", 0)]
    assert cesm.default_batch_tokens(tiny_esm) == cesm.CPU_BATCH_TOKENS


# ------------------------------------------------------------------ loading


def test_hub_name_offline_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as caught:
        cesm.load_esm("esm2_t6_8M_UR50D", device="cpu")
    message = str(caught.value)
    assert str(tmp_path / "hub" / "checkpoints" / "esm2_t6_8M_UR50D.pt") in message
    assert "https://dl.fbaipublicfiles.com/fair-esm/models/esm2_t6_8M_UR50D.pt" in message
    with pytest.raises(FileNotFoundError, match="train_local_esm"):
        cesm.load_esm("local:absent", tmp_path, device="cpu")


@pytest.mark.usefixtures("local_only")
def test_offline_full_finds_the_esm_weights_where_its_check_says(tmp_path: Path) -> None:
    """Offline, with no hub cache: the full profile's check names one path for its ESM
    weights; a fair-esm file placed there is what load_esm reads for the profile's spec (as
    notebook 02 calls it), what the download hands over without a request (hashed into the
    lock as placed by hand), and what satisfies the check."""
    full = get_profile("full", root=tmp_path)
    with pytest.raises(SourceError) as error:
        remote.check_full_inputs(full)
    asked = re.search(r"^  esm1b: place \S+ at (\S+)$", str(error.value), re.MULTILINE)
    path = Path(asked.group(1))
    assert not path.exists() and not path.is_relative_to(full.root)
    save_tiny_esm1b(path)

    loaded = cesm.load_esm(full.esm.spec, full.models_dir, device="cpu")
    digest = sha256_file(path)
    assert loaded.model_id == f"{full.esm.spec}@{digest[:12]}"
    assert (loaded.num_layers, loaded.embed_dim, loaded.max_positions) == (2, 32, 64)
    assert remote.fetch_remote("esm1b", full.raw_dir) == path  # mirror closed: no download
    entry = remote.read_lock(remote.full_lock_path(full.root))["esm1b"]
    assert entry["sha256"] == digest and entry["source"].startswith("placed by hand")

    full.raw_dir.mkdir(parents=True)
    for name in set(remote.required_remote_files(full)) - {"esm1b"}:
        remote.remote_path(name, full.raw_dir).write_bytes(b"placed by hand")
    remote.check_full_inputs(full)  # nothing missing: 01 and 02 can start offline


# ------------------------------------------------------------------ local pretraining


def test_held_out_split_is_the_project_hash_split_and_holds_one_out_of_tiny_inputs(proteome):
    unique = sorted({cesm.clean_sequence(name, s) for name, s in list(proteome.items())[:400]})
    train, valid = cesm.split_sequences(unique, 0.1)
    assert valid == [s for s in unique if split_of(s, 0.1) == "valid"] and valid
    assert train == [s for s in unique if split_of(s, 0.1) == "train"]
    # Two sequences whose hashes both fall in train: the one with the smallest is held out.
    pair = [s for s in unique if split_of(s, 0.1) == "train"][:2]
    tiny_train, tiny_valid = cesm.split_sequences(pair, 0.1)
    assert len(tiny_valid) == 1 and sorted(tiny_train + tiny_valid) == sorted(pair)
    assert cesm.split_sequences(pair, 0.0) == (pair, [])


def test_local_training_deterministic_and_learns(
    trained, proteome: dict[str, str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded, models_dir, history = trained
    assert list(history.columns) == list(cesm.HISTORY_COLUMNS)
    assert history["valid_loss"].iloc[-1] < history["valid_loss"].iloc[0]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[1]
    stored = json.loads((cesm.local_model_dir(TINY.spec, models_dir) / "config.json").read_text())
    assert stored["n_valid"] > 0 and stored["unigram_perplexity"] > 1
    assert loaded.model_id.startswith("local:tiny@") and loaded.max_positions == 66

    again_dir = tmp_path / "again"
    cesm.train_local_esm(list(proteome.values())[:300][::-1], TINY, out_dir=again_dir, seed=0)
    first = torch.load(cesm.local_model_dir(TINY.spec, models_dir) / "model.pt", weights_only=True)
    second = torch.load(again_dir / "model.pt", weights_only=True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)

    def no_training(*_args, **_kwargs):
        raise AssertionError("retrained although an identical model exists")

    monkeypatch.setattr(pretrain, "mlm_logits", no_training)
    reused = cesm.train_local_esm(list(proteome.values())[:300], TINY, out_dir=again_dir, seed=0)
    assert reused["valid_loss"].tolist() == pytest.approx(history["valid_loss"].tolist())
