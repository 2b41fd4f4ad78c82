"""The README's command-line and Python examples run as written.

Why: a user's first contact is a copied example; one that no longer matches the code fails
on their machine, not ours. The examples run in a scratch project root (the smoke profile
for the commands that build and train; a tiny local ESM-2 stands in for the one notebook 02
trains, so the test does not depend on a run of the notebooks).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CHECKOUT, make_project_root

from crossgran.data.tables import read_proteome
from crossgran.models.esm import local_model_dir, train_local_esm
from crossgran.profiles import EsmConfig

README = (CHECKOUT / "README.md").read_text()


def _example(language: str, starts: str = "") -> str:
    """The first ``language`` block of "Your own sequences" whose text starts with ``starts``
    (the ``crossgran predict`` block is run by tests/test_predict.py, on trained models)."""
    section = README[README.index("## Your own sequences") :]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    return next(block for block in blocks if block.startswith(starts))


def _commands() -> list[list[str]]:
    joined = _example("bash", "crossgran run").replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def user_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project root with the notebooks, a FASTA of 12 real proteins and a tiny local ESM-2
    where the README's examples expect the mini one."""
    root = make_project_root(tmp_path_factory.mktemp("readme"), notebooks=True)
    proteome = read_proteome()
    chosen = [name for name in proteome if 60 <= len(proteome[name]) <= 200][:12]
    (root / "my_proteins.faa").write_text(
        "".join(f">{name}\n{proteome[name].removesuffix('*')}\n" for name in chosen)
    )
    config = EsmConfig(
        spec="local:esm2_mini",
        num_layers=2,
        embed_dim=32,
        attention_heads=2,
        train_steps=2,
        train_batch_tokens=512,
        train_max_len=64,
    )
    train_local_esm(
        [proteome[name] for name in chosen],
        config,
        out_dir=local_model_dir(config.spec, root / "data" / "models" / "mini"),
        seed=0,
    )
    return root


def test_the_examples_are_there() -> None:
    assert [c[:2] for c in _commands()] == [
        ["crossgran", "run"],
        ["crossgran", "run"],
        ["crossgran", "data"],
        ["crossgran", "train-bigcarp"],
        ["crossgran", "embed"],
    ]
    assert "crossgran.esm.embed(" in _example("python")


@pytest.mark.slow
def test_readme_commands_run(user_root: Path) -> None:
    env = {**os.environ, "CROSSGRAN_ROOT": str(user_root)}
    for command in _commands():
        result = subprocess.run(
            [sys.executable, "-m", "crossgran.cli", *command[1:]],
            env=env,
            cwd=user_root,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stderr[-2000:]}"
    assert (user_root / "my_embeddings.npz").is_file()
    # train-bigcarp trains the run the notebooks read (crossgran.models.runs.bigcarp_run_dir)
    assert (user_root / "data" / "models" / "smoke" / "bigcarp_random" / "state.pt").is_file()


def test_readme_python_example_runs(user_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _example("python")],
        cwd=user_root,
        env={**os.environ, "CROSSGRAN_ROOT": str(user_root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"12 proteins; CKA between ESM layers 0 and 2: [01]\.\d\d\n", result.stdout)
