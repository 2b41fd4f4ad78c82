"""Reliability on bad inputs: every defect a user's files or an interrupted run can bring.

Why a separate suite: the pipeline is run headless (papermill, CI), so a bad input must either
be handled as the docstrings promise or stop with a message that names the record or file and
says how to fix it; and a failure must never leave a half-written file that a later run could
mistake for a result. All data are real (pyhmmer's proteome, the pinned GECCO and PARAS
wheels); the defects are applied to them. Models are tiny and randomly initialised, so all
but one test run in seconds on two busy CPU cores; the exception (about 100 s) SIGKILLs a real
notebook under ``smoke`` and checks that its rerun ends where an uninterrupted run does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import crossgran.esm as cesm
from crossgran import bigcarp
from crossgran.bigcarp import Vocabulary, load_checkpoint, train_mlm
from crossgran.cache import ArrayCache, load_npz, save_npz, sha256_file
from crossgran.datasets import (
    BuildReport,
    bag_sentences,
    build_all,
    build_domain_corpus,
    build_mibig,
    read_fasta_text,
    read_nrps_proteins,
    read_proteome,
    sanitise_proteins,
)
from crossgran.profiles import BigcarpConfig, Profile, get_profile
from crossgran.sources import WHEELS, SourceError, fetch_wheel, read_wheel_member

TINY_BIGCARP = BigcarpConfig(d_model=32, n_layers=2, kernel_size=3, r=4, d_embedding=16,
                             epochs=3, batch_size=8, max_len=32, lr=3e-3, n_orders=2)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine are far slower with two spinning OpenMP threads
    than with one, and one thread also makes reduction order (hence results) fixed."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def proteins() -> dict[str, str]:
    """Three real proteins of pyhmmer's hash-checked proteome, short enough for one window.

    The proteome's translations end in a stop ``*``; it is cut here so that every defect
    below, terminal stops included, is one the test adds on purpose."""
    proteome = read_proteome()
    chosen = [name for name in proteome if 50 <= len(proteome[name]) <= 300][:3]
    return {name: proteome[name].removesuffix("*") for name in chosen}



def _leftovers(directory: Path) -> list[Path]:
    """Temporary files of crossgran.cache.atomic_path that a crash could leave behind."""
    return sorted(directory.rglob("*.part"))


# ------------------------------------------------------------------ FASTA: datasets


def test_read_fasta_text_refuses_duplicate_ids_naming_the_id(proteins):
    name, sequence = next(iter(proteins.items()))
    text = f">{name}\n{sequence}\n>{name} second copy\n{sequence}\n"
    with pytest.raises(ValueError, match=rf"duplicate FASTA id '{name}'.*must be unique"):
        read_fasta_text(text)


def test_sanitise_removes_gaps_lowercase_and_stops_and_reports_the_ids(proteins):
    first, second, third = proteins
    raw = {first: proteins[first][:20].lower() + "-" + proteins[first][20:] + "*",
           second: proteins[second][:30] + "*" + proteins[second][30:],  # internal stop
           third: proteins[third]}  # already clean
    cleaned, changed = sanitise_proteins(raw)
    assert cleaned == proteins
    assert changed == [first, second]


@pytest.mark.parametrize("residues", ["", "--..*"], ids=["empty", "gaps-only"])
def test_sanitise_names_a_record_left_empty_and_the_fix(proteins, residues):
    name = next(iter(proteins))
    records = read_fasta_text(f">{name}\n{proteins[name]}\n>blank_record\n{residues}\n")
    with pytest.raises(ValueError, match=r"'blank_record' is empty.*drop the record"):
        sanitise_proteins(records)


# ------------------------------------------------------------------ FASTA: esm


def test_embed_reads_lowercase_and_a_terminal_stop_as_the_plain_protein(proteins, tiny_esm):
    messy = {name: sequence.lower() + "*" for name, sequence in proteins.items()}
    clean = cesm.embed(proteins, tiny_esm, [0, 2])
    handled = cesm.embed(messy, tiny_esm, [0, 2])
    assert handled.ids == clean.ids
    for layer in (0, 2):
        np.testing.assert_array_equal(handled.mean[layer], clean.mean[layer])


def test_embed_names_every_bad_record_at_once_and_caches_nothing(proteins, tiny_esm, tmp_path):
    name, sequence = next(iter(proteins.items()))
    records = {name: sequence,
               "gapped": sequence[:40] + "-" + sequence[40:],
               "inner_stop": sequence[:40] + "*" + sequence[40:],
               "empty": "",
               "stop_only": "*"}
    cache = ArrayCache(tmp_path / "cache")
    with pytest.raises(ValueError) as caught:
        cesm.embed(records, tiny_esm, [-1], cache=cache)
    message = str(caught.value)
    assert message.startswith("4 invalid sequence record(s)")
    assert "'gapped': characters that are not amino acids: '-'" in message
    assert "'inner_stop': characters that are not amino acids: '*'" in message
    assert "'empty': empty sequence" in message and "'stop_only': empty sequence" in message
    assert "allowed: 20 standard + X B Z U O" in message  # says what a fixed record may hold
    assert repr(name) not in message
    # Validation precedes any forward pass, so not even the good record was cached.
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


def test_esm_read_fasta_refuses_duplicate_ids_naming_file_and_id(proteins, tmp_path):
    name, sequence = next(iter(proteins.items()))
    fasta = tmp_path / "twice.faa"
    fasta.write_text(f">{name}\n{sequence}\n>{name}\n{sequence}\n")
    with pytest.raises(ValueError, match=rf"{fasta}: duplicate FASTA id '{name}'"):
        cesm.read_fasta(fasta)


def test_esm_read_fasta_passes_case_stops_and_empty_records_on_for_embed_to_judge(
        proteins, tiny_esm, tmp_path):
    (first, second), sequences = list(proteins)[:2], list(proteins.values())
    fasta = tmp_path / "messy.faa"
    fasta.write_text(f">{first}\n{sequences[0].lower()}*\n>hollow\n>{second}\n"
                     f"{sequences[1][:25]}*{sequences[1][25:]}\n")
    records = cesm.read_fasta(fasta)
    assert records == {first: sequences[0].lower() + "*", "hollow": "",
                       second: sequences[1][:25] + "*" + sequences[1][25:]}
    with pytest.raises(ValueError) as caught:
        cesm.embed(records, tiny_esm, [-1])
    message = str(caught.value)
    assert message.startswith("2 invalid sequence record(s)")
    assert "'hollow': empty sequence" in message
    assert f"'{second}': characters that are not amino acids: '*'" in message


def test_gapped_fasta_is_read_and_embed_names_the_record(proteins, tmp_path, tiny_esm):
    name, sequence = next(iter(proteins.items()))
    fasta = tmp_path / "aligned.faa"
    fasta.write_text(f">{name}\n{sequence[:40]}-{sequence[40:]}\n")
    records = cesm.read_fasta(fasta)
    assert records[name][40] == "-"
    with pytest.raises(ValueError, match=rf"'{name}': characters that are not amino acids: '-'"):
        cesm.embed(records, tiny_esm, [0])


# ------------------------------------------------------------------ Pfam tokens


def test_vocabulary_counts_unknown_pfam_ids(smoke_profile):
    gecco = fetch_wheel("gecco", smoke_profile.raw_dir)
    accessions = read_wheel_member(gecco, "gecco/types/domains.tsv").decode().split()
    vocab = Vocabulary.from_token_lists([accessions[:50]])
    real_but_absent, invented = accessions[60], "PF99999"
    lower_case = accessions[0].lower()  # accessions are case-sensitive tokens
    ids = vocab.encode([accessions[0], real_but_absent, invented, lower_case, real_but_absent])
    assert ids[0] == vocab.index[accessions[0]]
    assert ids[1:] == [vocab.unk_index] * 4
    assert vocab.unknown_counts == {real_but_absent: 2, invented: 1, lower_case: 1}
    vocab.encode([invented])  # counts accumulate over calls, so a corpus-wide total is kept
    assert vocab.unknown_counts[invented] == 2


# ------------------------------------------------------------------ long proteins


def test_long_nrps_protein_is_embedded_in_overlapping_windows(smoke_profile, tiny_esm):
    nrps, _ = read_nrps_proteins(fetch_wheel("paras", smoke_profile.raw_dir))
    window = tiny_esm.max_positions - 2
    assert window == 1022
    # The shortest real protein needing three or more windows: the last one is C-aligned.
    name = min((n for n in nrps if len(nrps[n]) > 2 * window), key=lambda n: (len(nrps[n]), n))
    sequence = nrps[name]
    starts = cesm.window_starts(len(sequence), window)
    assert len(starts) >= 3 and starts[-1] + window == len(sequence)

    result = cesm.embed({name: sequence}, tiny_esm, [0, 2])
    assert result.stats["computed_residues"] == len(starts) * window

    # Reference: fair-esm's own forward on each window, residues averaged over the windows
    # that contain them, then the mean over all residues.
    summed = {layer: np.zeros((len(sequence), tiny_esm.embed_dim)) for layer in (0, 2)}
    coverage = np.zeros(len(sequence))
    for start in starts:
        piece = sequence[start:start + window]
        _, _, tokens = tiny_esm.batch_converter([(name, piece)])
        with torch.no_grad():
            out = tiny_esm.model(tokens, repr_layers=[0, 2])["representations"]
        for layer in (0, 2):
            summed[layer][start:start + window] += out[layer][0, 1:window + 1].numpy()
        coverage[start:start + window] += 1
    assert coverage.min() >= 1  # every residue, C-terminal ones included, was embedded
    for layer in (0, 2):
        expected = (summed[layer] / coverage[:, None]).mean(axis=0)
        np.testing.assert_allclose(result.mean[layer][0], expected, atol=1e-5)


# ------------------------------------------------------------------ corrupt cache entries


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not an npz\xff" * 7)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("corrupt", [_garbage, _truncated, _empty], ids=lambda f: f.__name__[1:])
def test_array_cache_recomputes_a_corrupt_entry(tmp_path, corrupt):
    cache = ArrayCache(tmp_path)
    good = {"pooled": np.arange(12, dtype=np.float32).reshape(3, 4)}
    cache.store("ns", "key", good)
    corrupt(cache.path("ns", "key"))
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return good

    again = cache.get_or_compute("ns", "key", compute)
    assert calls == [1]
    np.testing.assert_array_equal(again["pooled"], good["pooled"])
    reread = cache.load("ns", "key")  # the corrupt entry was replaced by a readable one
    assert reread is not None and np.array_equal(reread["pooled"], good["pooled"])
    assert _leftovers(tmp_path) == []


def test_embed_recomputes_truncated_and_foreign_cache_entries(proteins, tiny_esm, tmp_path):
    cache = ArrayCache(tmp_path)
    cold = cesm.embed(proteins, tiny_esm, [1, 2], cache=cache)
    entries = sorted((tmp_path / cesm.CACHE_NAMESPACE).glob("*.npz"))
    assert len(entries) == len(proteins)
    _truncated(entries[0])
    # Readable but not a result of this call: wrong shape. Must not be used as a vector.
    save_npz(entries[1], {"pooled": np.zeros((1, 1, 3), dtype=np.float32)})
    warm = cesm.embed(proteins, tiny_esm, [1, 2], cache=cache)
    assert warm.stats["n_computed"] == 2 and warm.stats["n_cached"] == len(proteins) - 2
    for layer in (1, 2):
        # Recomputed in a smaller batch (other padding), so float32 rounding may differ.
        np.testing.assert_allclose(warm.mean[layer], cold.mean[layer], rtol=0, atol=1e-6)
    healed = cesm.embed(proteins, tiny_esm, [1, 2], cache=cache)
    assert healed.stats["n_cached"] == len(proteins)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------ tampered input


def test_tampered_wheel_is_refused_with_both_hashes_and_no_table_is_written(smoke_profile,
                                                                            tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    pristine = fetch_wheel("paras", smoke_profile.raw_dir)
    (raw / WHEELS["gecco"].filename).symlink_to(fetch_wheel("gecco", smoke_profile.raw_dir))
    tampered = raw / WHEELS["paras"].filename
    shutil.copyfile(pristine, tampered)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    actual = sha256_file(tampered)
    assert actual != WHEELS["paras"].sha256 and sha256_file(pristine) == WHEELS["paras"].sha256

    profile = get_profile("smoke", root=tmp_path)
    with pytest.raises(SourceError) as caught:
        build_all(profile)
    message = str(caught.value)
    assert str(tampered) in message and "sha256 mismatch" in message
    assert f"expected {WHEELS['paras'].sha256}" in message and f"actual   {actual}" in message
    assert f"Fix: delete {tampered} and rerun" in message
    assert not any(profile.processed_dir.rglob("*")), "a table or manifest was written"
    assert not profile.manifest_path.exists()
    assert _leftovers(tmp_path) == []
    assert tampered.read_bytes() == bytes(data)  # refused, not silently replaced


# ------------------------------------------------------------------ interrupted training


@pytest.fixture(scope="module")
def mibig_corpus(smoke_profile: Profile) -> pd.DataFrame:
    """BiGCARP's corpus of 40 real MIBiG Pfam bags, made by the package's own builders."""
    gecco = fetch_wheel("gecco", smoke_profile.raw_dir)
    _, counts = build_mibig(gecco, BuildReport(), max_bgcs=40)
    corpus = build_domain_corpus({}, {}, bag_sentences(counts), False,
                                 replace(smoke_profile, valid_fraction=0.2), BuildReport())
    assert set(corpus["split"]) == {"train", "valid"}
    return corpus


def _kill_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Make the checkpoint of ``epoch`` die before writing anything, as a killed process
    would after taking that epoch's steps in memory."""
    real_write = bigcarp._write_checkpoint

    def write(out_dir: Path, at_epoch: int, *args: object) -> None:
        if at_epoch == epoch:
            raise KeyboardInterrupt
        real_write(out_dir, at_epoch, *args)

    monkeypatch.setattr(bigcarp, "_write_checkpoint", write)


def test_killed_training_resumes_to_the_uninterrupted_result(mibig_corpus, tmp_path, monkeypatch):
    vocab = Vocabulary.from_corpus(mibig_corpus)
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    straight = train_mlm(mibig_corpus, vocab, TINY_BIGCARP, "random", None, straight_dir, seed=5)

    _kill_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_mlm(mibig_corpus, vocab, TINY_BIGCARP, "random", None, killed_dir, seed=5)
    monkeypatch.undo()
    assert load_checkpoint(killed_dir).epoch == 1
    assert not (killed_dir / "model_e002.pt").exists() and _leftovers(killed_dir) == []

    resumed = train_mlm(mibig_corpus, vocab, TINY_BIGCARP, "random", None, killed_dir, seed=5)
    columns = ["epoch", "train_loss", "valid_loss", "valid_masked_accuracy"]
    pd.testing.assert_frame_equal(resumed[columns], straight[columns])
    ours, theirs = load_checkpoint(killed_dir), load_checkpoint(straight_dir)
    assert ours.epoch == theirs.epoch == TINY_BIGCARP.epochs
    for name, tensor in theirs.model.state_dict().items():
        assert torch.equal(tensor, ours.model.state_dict()[name]), name
    for epoch, table in theirs.token_tables.items():
        np.testing.assert_array_equal(ours.token_tables[epoch], table)


# ------------------------------------------------------------------ killed notebook


def _project_root(root: Path) -> Path:
    """A project root holding the notebooks and sharing the checkout's pinned wheels."""
    checkout = Path(__file__).parents[1]
    shutil.copytree(checkout / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"))
    shutil.copy2(checkout / "pyproject.toml", root / "pyproject.toml")
    (root / "data").mkdir()
    (root / "data" / "raw").symlink_to(checkout / "data" / "raw", target_is_directory=True)
    return root


def _run_notebook(root: Path, notebook: str, kill_when: Path | None = None) -> int | None:
    """``crossgran run --profile smoke <notebook>`` in ``root``; with ``kill_when``, SIGKILL the
    whole process group (papermill and its kernel) as soon as that file exists. Returns the
    exit code, or None when the run was killed."""
    command = [sys.executable, "-m", "crossgran.cli", "run", "--profile", "smoke",
               str(root / "notebooks" / notebook)]
    env = {**os.environ, "CROSSGRAN_ROOT": str(root)}
    with subprocess.Popen(command, env=env, cwd=root, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            if kill_when is not None and kill_when.exists():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return None
            time.sleep(0.05)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"{notebook} did not finish within 10 minutes")
        return process.returncode


def test_notebook_killed_mid_run_resumes_to_the_uninterrupted_outputs(tmp_path):
    """02 (ESM training and embedding, three BiGCARP trainings, exports) is SIGKILLed once the
    first BiGCARP run has written its initial checkpoint; rerunning it finishes from the caches
    and checkpoints and writes the same arrays as an uninterrupted run, bit for bit."""
    straight, killed = _project_root(tmp_path / "straight"), _project_root(tmp_path / "killed")
    assert _run_notebook(straight, "01_data.ipynb") == 0
    shutil.copytree(straight / "data" / "processed", killed / "data" / "processed")
    assert _run_notebook(straight, "02_embeddings.ipynb") == 0

    processed = killed / "data" / "processed" / "smoke"
    first_checkpoint = killed / "data" / "models" / "smoke" / f"bigcarp_{bigcarp.INIT_MODES[0]}" / "model_e000.pt"
    assert _run_notebook(killed, "02_embeddings.ipynb", kill_when=first_checkpoint) is None
    assert not (processed / f"bigcarp_{bigcarp.INIT_MODES[-1]}.npz").exists(), "killed too late"
    # Whatever the kill left under a final name is complete (atomic writes): equal to the
    # uninterrupted run's file.
    _assert_same_arrays(processed, straight / "data" / "processed" / "smoke",
                        sorted(p.name for p in processed.glob("*.npz")))

    assert _run_notebook(killed, "02_embeddings.ipynb") == 0
    written = sorted(p.name for p in (straight / "data" / "processed" / "smoke").glob("*.npz"))
    assert len(written) >= 2 + len(bigcarp.INIT_MODES)  # ESM Pfam + A-domains, one per init
    _assert_same_arrays(processed, straight / "data" / "processed" / "smoke", written)


def _assert_same_arrays(ours_dir: Path, theirs_dir: Path, names: list[str]) -> None:
    for name in names:
        ours, theirs = load_npz(ours_dir / name), load_npz(theirs_dir / name)
        assert sorted(ours) == sorted(theirs), name
        for key in theirs:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name}:{key}")
