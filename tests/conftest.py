"""Shared fixtures and the one recipe for a scratch project root.

A scratch root's ``data/raw`` links to the checkout's, so the pinned wheels are downloaded (and
hash-checked) once per machine; everything else a test builds stays in the temporary root.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import esm
import pandas as pd
import pytest
import torch
from gecco_corpus import BAG_BGCS, gecco_bag_corpus
from loopback import HOST, free_port

from crossgran.data.remote import MIRROR_ENV
from crossgran.models.esm import LoadedEsm, wrap_model
from crossgran.profiles import Profile, find_root, get_profile
from crossgran.threads import limit

CHECKOUT = find_root(Path(__file__).parent)


def make_project_root(root: Path, *, notebooks: bool = False) -> Path:
    """A project root at ``root`` sharing the checkout's pinned downloads; with
    ``notebooks``, also the stored notebooks and pyproject.toml, so ``crossgran run`` works
    there (``CROSSGRAN_ROOT=root``)."""
    shared_raw = CHECKOUT / "data" / "raw"
    shared_raw.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(parents=True)
    (root / "data" / "raw").symlink_to(shared_raw, target_is_directory=True)
    if notebooks:
        copy_notebooks(root)
    return root


def copy_notebooks(root: Path) -> None:
    """The stored notebooks and pyproject.toml into ``root``: what ``crossgran run`` needs
    there besides data (``CROSSGRAN_ROOT=root``)."""
    shutil.copytree(
        CHECKOUT / "notebooks",
        root / "notebooks",
        ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"),
    )
    shutil.copy2(CHECKOUT / "pyproject.toml", root / "pyproject.toml")


@pytest.fixture(scope="session")
def smoke_profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    return get_profile("smoke", root=make_project_root(tmp_path_factory.mktemp("crossgran-smoke")))


@pytest.fixture(scope="session")
def smoke_build(smoke_profile: Profile):
    """The smoke tables, built once per test session."""
    from crossgran.data.tables import build_all

    return build_all(smoke_profile)


@pytest.fixture()
def local_only(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A fetch without an explicit base_url goes to a closed local port, never the internet
    (full-profile tests use it for every test: ``pytestmark = usefixtures("local_only")``),
    and torch's hub cache, where ESM weights live, is an empty temporary folder: no test
    reads or writes the user's weights, and none passes because they happen to be there."""
    monkeypatch.setenv(MIRROR_ENV, f"http://{HOST}:{free_port()}")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
    monkeypatch.setenv("NO_PROXY", HOST)
    monkeypatch.setenv("no_proxy", HOST)


@pytest.fixture(scope="session")
def tiny_esm() -> LoadedEsm:
    """A randomly initialised ESM-2 (2 layers x 32 dims): input handling and feature plumbing
    do not depend on trained weights. Seeded inside fork_rng so the global torch RNG is left
    untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = esm.model.esm2.ESM2(num_layers=2, embed_dim=32, attention_heads=4)
    return wrap_model(network, network.alphabet, "random-esm2-2x32-seed0")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny convolutions on a busy 2-core machine run ~100x slower with two OpenMP threads
    (threads spin waiting for each other) than with one, and one thread fixes the reduction
    order; the thread count is restored after the module. A module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with limit(torch_threads=1):
        yield


@pytest.fixture(scope="session")
def corpus() -> pd.DataFrame:
    """The BiGCARP tests' corpus: Pfam bags of :data:`BAG_BGCS` MIBiG BGCs (``gecco_corpus``),
    with both splits."""
    table = gecco_bag_corpus(BAG_BGCS)
    assert set(table["split"]) == {"train", "valid"}
    return table
