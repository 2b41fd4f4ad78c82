"""Shared fixtures: a smoke-profile project root in a temporary folder.

The root's ``data/raw`` links to the checkout's, so the pinned wheels are downloaded (and
hash-checked) once per machine; everything else a test builds stays in the temporary root.
"""

from __future__ import annotations

from pathlib import Path

import esm
import pytest
import torch
from loopback import HOST, free_port

import crossgran.esm as cesm
from crossgran.profiles import Profile, find_root, get_profile
from crossgran.sources import MIRROR_ENV

CHECKOUT = find_root(Path(__file__).parent)


@pytest.fixture(scope="session")
def smoke_profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    root = tmp_path_factory.mktemp("crossgran-smoke")
    shared_raw = CHECKOUT / "data" / "raw"
    shared_raw.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir()
    (root / "data" / "raw").symlink_to(shared_raw, target_is_directory=True)
    return get_profile("smoke", root=root)


@pytest.fixture(scope="session")
def smoke_build(smoke_profile: Profile):
    """The smoke tables, built once per test session."""
    from crossgran.datasets import build_all
    return build_all(smoke_profile)


@pytest.fixture()
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch without an explicit base_url goes to a closed local port, never the internet
    (full-profile tests use it for every test: ``pytestmark = usefixtures("local_only")``)."""
    monkeypatch.setenv(MIRROR_ENV, f"http://{HOST}:{free_port()}")
    monkeypatch.setenv("NO_PROXY", HOST)
    monkeypatch.setenv("no_proxy", HOST)


@pytest.fixture(scope="session")
def tiny_esm() -> cesm.LoadedEsm:
    """A randomly initialised ESM-2 (2 layers x 32 dims): input handling and feature plumbing
    do not depend on trained weights. Seeded inside fork_rng so the global torch RNG is left
    untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = esm.model.esm2.ESM2(num_layers=2, embed_dim=32, attention_heads=4)
    return cesm.wrap_model(network, network.alphabet, "random-esm2-2x32-seed0")
