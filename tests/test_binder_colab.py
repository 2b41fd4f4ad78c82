"""Binder and Colab: the files repo2docker reads, the notebooks' Colab cell, the auto profile.

None of this can be run here (no Binder, no Colab, no GPU), so the tests pin down what each
service relies on: one repository URL everywhere, a Colab cell that cannot drift between
notebooks, an environment.yml repo2docker can install before the repository is copied into
the image, and a profile choice that falls back to ``mini`` without a GPU or without network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
import torch

from crossgran import profiles, session
from crossgran.data import remote

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # read as text: tomllib needs Python 3.11
REPOSITORY = re.search(r'^Repository = "([^"]+)"$', PYPROJECT, re.MULTILINE).group(1)


def _first_code_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_every_notebook_opens_with_the_same_colab_cell_naming_the_repository() -> None:
    cells = {path.name: _first_code_cell(path) for path in NOTEBOOKS}
    assert len(set(cells.values())) == 1, "the Colab cells differ; copy 01_data's to the others"
    cell = next(iter(cells.values()))
    assert '"google.colab" in sys.modules' in cell
    assert f'"{REPOSITORY}"' in cell
    assert re.search(r'"pip", "install", .*"-e", CLONE', cell)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_lets_colab_choose_the_profile(path: Path) -> None:
    source = nbformat.reads(path.read_text(), as_version=4)
    setup = [c.source for c in source.cells if "prepare(" in c.source]
    assert len(setup) == 1 and re.search(
        r"settings = prepare\(profile, on_colab=ON_COLAB[,)]", setup[0]
    )


def test_readme_has_binder_and_one_colab_badge_per_notebook() -> None:
    readme = (ROOT / "README.md").read_text()
    slug = REPOSITORY.removeprefix("https://github.com/")
    assert f"https://mybinder.org/v2/gh/{slug}/HEAD" in readme
    for path in NOTEBOOKS:
        assert (
            f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name}"
            in readme
        )
    citation = (ROOT / "CITATION.cff").read_text()
    assert f'repository-code: "{REPOSITORY}"' in citation


def test_binder_installs_the_package_after_the_environment() -> None:
    environment = (ROOT / "environment.yml").read_text()
    # repo2docker installs environment.yml before the repository is in the image: a local
    # requirement there ("-e .", ".") would fail the build.
    assert not re.search(r"^\s*-\s*(-e\s+)?\.(\[|\s*$)", environment, re.MULTILINE)
    post_build = ROOT / "postBuild"
    assert os.access(post_build, os.X_OK)
    assert "pip install" in post_build.read_text() and "-e ." in post_build.read_text()


def test_torch_pin_agrees_across_environment_makefile_and_pyproject() -> None:
    pinned = {
        re.search(r"torch==([\d.]+)", (ROOT / name).read_text()).group(1)
        for name in ("environment.yml", "Makefile")
    }
    assert len(pinned) == 1
    (version,) = pinned
    low, high = re.search(r'"torch>=([\d.]+),<=([\d.]+)"', PYPROJECT).groups()

    def as_tuple(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    assert as_tuple(low) <= as_tuple(version) <= as_tuple(high)


@pytest.mark.parametrize(
    ("gpu", "obtainable", "expected"),
    [(False, True, "mini"), (True, False, "mini"), (True, True, "full")],
)
def test_auto_profile_needs_a_gpu_and_the_full_inputs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpu: bool, obtainable: bool, expected: str
) -> None:
    probed: list[Path] = []

    def fake_obtainable(profile: profiles.Profile) -> bool:
        probed.append(profile.root)
        return obtainable

    monkeypatch.setenv(profiles.ROOT_ENV, str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(remote, "full_inputs_obtainable", fake_obtainable)
    assert session.auto_profile_name() == expected
    assert probed == ([tmp_path.resolve()] if gpu else [])  # no network probe without a GPU


def test_full_inputs_obtainable_is_false_offline_and_true_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(remote.MIRROR_ENV, "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no ESM weights of the user's
    full = profiles.get_profile("full", root=tmp_path)
    assert not remote.full_inputs_obtainable(full)
    for name in remote.required_remote_files(full):
        path = remote.remote_path(name, full.raw_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"placed by hand")
    assert remote.full_inputs_obtainable(full)


def test_prepare_makes_the_folders_and_stops_an_unobtainable_full_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(profiles.ROOT_ENV, str(tmp_path))
    monkeypatch.setenv(remote.MIRROR_ENV, "http://127.0.0.1:9")
    smoke = session.prepare("smoke")
    assert smoke.name == "smoke" and smoke.root == tmp_path.resolve()
    assert smoke.results_dir.is_dir() and smoke.processed_dir.is_dir()
    with pytest.raises(remote.SourceError, match="input\\(s\\) of the full profile are missing"):
        session.prepare("full")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert session.prepare("full", on_colab=True).name == "mini"  # Colab without a GPU


def test_prepare_holds_the_torch_thread_count_of_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(profiles.ROOT_ENV, str(tmp_path))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert session.prepare("smoke").torch_threads == 2 and torch.get_num_threads() == 2
    finally:
        session._SESSION.close()
        torch.set_num_threads(before)
