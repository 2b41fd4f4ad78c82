"""The ``rehearsal`` profile: every notebook executed under ``full``'s code path, on stand-ins.

What is rehearsed (issue 15): ``crossgran run --profile rehearsal`` from a cold scratch project
root, its remote inputs downloaded from a loopback server exactly as from the real hosts
(``$CROSSGRAN_MIRROR``; pooch, hashes locked in ``data/full.lock.json`` on first download,
atomic writes), the ESM weights fetched into torch's hub cache (``$TORCH_HOME``, where the
check's message says to place them), MIBiG sentences in gene order from hmmsearch over GenBank
CDSs, the halogenation task's per-domain rows, the paper's probes (MLPs, the BiLSTM over
gene-ordered domains) and the released random-init BiGCARP imported as a run folder. The
served files are built from the offline data by :mod:`standins`; the profile sets the sizes,
so the rehearsal differs from ``full`` only in sizes and the base URL. Its numbers mean
nothing; what counts is that no cell fails and the report is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import standins
from conftest import CHECKOUT, copy_notebooks
from loopback import HOST, Server, serve_folder

from crossgran.cache import sha256_file
from crossgran.data import remote, sources, tables
from crossgran.models.bigcarp import load_checkpoint
from crossgran.profiles import ROOT_ENV, Profile, get_profile

# What the rehearsal may change in full: sizes only (and its name).
SIZE_FIELDS = {
    "name",
    "max_nrps_proteins",
    "max_proteome_proteins",
    "max_adomains",
    "torch_threads",
    "hmmer_cpus",
    "probe_folds",
    "probe_seeds",
    "paper_probe_seeds",
    "paper_probe_properties",
    "n_bootstrap",
}
ESM_SIZES = {"num_layers", "embed_dim", "attention_heads"}
BIGCARP_SIZES = {"d_model", "n_layers", "r", "d_embedding", "epochs", "batch_size", "max_len"}
BIGCARP_SIZES |= {"n_orders"}
BILSTM_SIZES = {"hidden", "max_epochs"}
REHEARSAL_TIMEOUT_S = 3600


def _differences(a: object, b: object) -> set[str]:
    return {
        field.name
        for field in dataclasses.fields(a)
        if getattr(a, field.name) != getattr(b, field.name)
    }


def test_rehearsal_is_full_but_for_sizes(tmp_path: Path) -> None:
    full, rehearsal = get_profile("full", root=tmp_path), get_profile("rehearsal", root=tmp_path)
    assert _differences(full, rehearsal) <= SIZE_FIELDS | {"esm", "bigcarp", "sequence_probe"}
    assert _differences(full.esm, rehearsal.esm) <= ESM_SIZES
    assert _differences(full.bigcarp, rehearsal.bigcarp) <= BIGCARP_SIZES
    assert _differences(full.sequence_probe, rehearsal.sequence_probe) <= BILSTM_SIZES
    assert remote.required_remote_files(rehearsal) == remote.required_remote_files(full)
    # The ESM-init runs' token tables are as wide as the ESM, like the released checkpoint's.
    assert rehearsal.bigcarp.d_embedding == rehearsal.esm.embed_dim


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def shared_raw() -> Path:
    """The checkout's pinned wheels (downloaded once per machine, hash-checked)."""
    raw = get_profile("smoke", root=CHECKOUT).raw_dir
    for package in sources.WHEELS:
        sources.fetch_wheel(package, raw)
    return raw


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, shared_raw: Path) -> Path:
    """A cold project root: the notebooks, and a ``data/raw`` of its own holding links to the
    pinned wheels only, so the stand-ins (which carry the real files' names) never land in
    the checkout's downloads."""
    root = tmp_path_factory.mktemp("rehearsal-root")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    for package in sources.WHEELS:
        wheel = sources.fetch_wheel(package, shared_raw)
        (raw / wheel.name).symlink_to(wheel)
    copy_notebooks(root)
    return root


@pytest.fixture(scope="module")
def profile(root: Path) -> Profile:
    return get_profile("rehearsal", root=root)


@pytest.fixture(scope="module")
def release(
    tmp_path_factory: pytest.TempPathFactory, shared_raw: Path, profile: Profile
) -> standins.RehearsalRelease:
    return standins.write_rehearsal_release(
        tmp_path_factory.mktemp("rehearsal-served"), shared_raw, profile
    )


@pytest.fixture(scope="module")
def server(
    release: standins.RehearsalRelease, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from serve_folder(release.folder, tmp_path_factory.mktemp("log") / "http.log")


@dataclasses.dataclass(frozen=True)
class Rehearsal:
    process: subprocess.CompletedProcess
    wall_s: float
    env: dict[str, str]  # what the run saw beside this process's environment
    load: tuple[float, float, float]  # os.getloadavg() when it started: was the machine idle?


def _duration(notebook: Path) -> float:
    """Seconds papermill recorded for an executed notebook (kernel start to last cell)."""
    return float(json.loads(notebook.read_text())["metadata"]["papermill"]["duration"])


@pytest.fixture(scope="module")
def rehearsed(root: Path, server: Server, tmp_path_factory: pytest.TempPathFactory) -> Rehearsal:
    """``crossgran run --profile rehearsal`` (all notebooks) from cold, with its own empty
    hub cache ($TORCH_HOME) and the loopback server as the mirror."""
    env = {
        ROOT_ENV: str(root),
        remote.MIRROR_ENV: server.url,
        "TORCH_HOME": str(tmp_path_factory.mktemp("torch-home")),
        "NO_PROXY": HOST,
        "no_proxy": HOST,
    }
    load, started = os.getloadavg(), time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "crossgran.cli", "run", "--profile", "rehearsal"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=REHEARSAL_TIMEOUT_S,
    )
    return Rehearsal(process, time.perf_counter() - started, env, load)


@pytest.mark.slow
def test_every_notebook_runs_under_full_code_path_to_the_report(
    rehearsed: Rehearsal, profile: Profile, capsys: pytest.CaptureFixture
) -> None:
    process = rehearsed.process
    assert process.returncode == 0, process.stdout[-4000:] + process.stderr[-8000:]
    executed = sorted((profile.results_dir / "notebooks").glob("*.ipynb"))
    with capsys.disabled():  # the wall time is the test's output, even when it passes
        print(
            f"\nrehearsal wall time {rehearsed.wall_s:.0f} s ("
            + ", ".join(f"{path.stem} {_duration(path):.0f} s" for path in executed)
            + f"); load average {rehearsed.load[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
    assert [path.stem for path in executed] == [
        path.stem for path in sorted((profile.root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    ]
    for path in executed:
        cells = json.loads(path.read_text())["cells"]
        errors = [
            output
            for cell in cells
            for output in cell.get("outputs", [])
            if output["output_type"] == "error"
        ]
        assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    report = (profile.results_dir / "paper_vs_reproduced.md").read_text()
    assert "(rehearsal profile)" in report.splitlines()[0]
    assert "| task | claim | metric | probe | paper |" in report
    assert len([line for line in report.splitlines() if line.startswith("| ")]) > 10


@pytest.mark.slow
def test_remote_inputs_came_from_the_server_hash_locked(
    rehearsed: Rehearsal,
    profile: Profile,
    server: Server,
    release: standins.RehearsalRelease,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every file the run reads was downloaded once from the mirror to the path the check
    names (ESM weights in the run's hub cache), and its hash locked."""
    monkeypatch.setenv("TORCH_HOME", rehearsed.env["TORCH_HOME"])
    lock = remote.read_lock(remote.full_lock_path(profile.root))
    assert set(lock) == set(remote.required_remote_files(profile))
    for name, entry in lock.items():
        filename = remote.REMOTE_FILES[name].filename
        assert entry["sha256"] == sha256_file(release.folder / filename)
        assert entry["source"] == f"{server.url}/{filename}"
        assert sha256_file(remote.remote_path(name, profile.raw_dir)) == entry["sha256"]
        assert server.gets(filename) == 1  # fetched once, then read from disk


@pytest.mark.slow
def test_the_run_read_gene_ordered_sentences_halogenases_and_the_released_checkpoint(
    rehearsed: Rehearsal, profile: Profile, release: standins.RehearsalRelease
) -> None:
    corpus = tables.load_table(profile, "domain_corpus")
    mibig = corpus[corpus["source"] == "mibig"].set_index("seq_id")
    assert mibig["ordered"].all() and len(mibig) > 100
    halogenases = tables.load_table(profile, "halogenase_domains")
    labelled = halogenases.dropna(subset=["has_halogen"]).groupby("bgc_id")["has_halogen"].first()
    served = release.halogenase_labels
    assert sorted(labelled.index) == sorted(served.index)
    assert labelled.astype(str).to_dict() == served.astype(str).to_dict()
    run = load_checkpoint(profile.models_dir / "bigcarp_random", "best")
    assert run.official["model"] == "bigcarp_random" and run.official["unknown_families"] > 0
    for init in ("esm", "esm-frozen"):
        trained = load_checkpoint(profile.models_dir / f"bigcarp_{init}", "last")
        assert trained.official is None and trained.epoch == profile.bigcarp.epochs
