"""Stored notebooks: paired with their py:percent scripts, parameterised once, executed cleanly."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from conftest import make_project_root

from crossgran.cache import load_npz
from crossgran.models.bigcarp import INIT_MODES

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """Cell types and sources, without the cell papermill injects when it executes."""
    return [
        (cell.cell_type, cell.source.strip())
        for cell in notebook.cells
        if "injected-parameters" not in cell.metadata.get("tags", [])
    ]


def test_all_six_notebooks_are_present() -> None:
    assert [n.stem[:2] for n in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_is_in_sync(path: Path) -> None:
    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} missing: run `jupytext --sync {path.name}`"
    assert _cells(jupytext.read(script)) == _cells(nbformat.read(path, as_version=4)), (
        f"{path.name} and {script.name} differ: edit one, then `jupytext --sync {path.name}`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_defaulting_to_mini(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = [line.split("=")[0].strip() for line in tagged[0].source.splitlines()]
    assert tagged[0].source.startswith('profile = "mini"')
    # notebook 02 alone trains BiGCARP, so it alone takes the training seed; 06 takes the
    # user's files
    extra = {"02": ["bigcarp_seed"], "06": ["inputs"]}.get(path.stem[:2], [])
    assert names == ["profile", *extra]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_come_from_a_clean_mini_run(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{path.name} has unexecuted cells"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert all('profile = "mini"' in c.source for c in injected)


TRAINED = [p for p in NOTEBOOKS if not p.stem.startswith("01")]
DECIMAL = re.compile(r"\d*\.\d+")


@pytest.mark.parametrize("path", TRAINED, ids=lambda p: p.stem)
def test_checked_cells_print_nothing_a_cpu_can_change(path: Path) -> None:
    """Notebooks 02-05 follow training runs, whose numbers differ between CPUs (a sample):
    their checked cells may print counts, labels and spread checks, and no decimal but the
    constants the notebook's code spells out (a threshold such as 0.5)."""
    notebook = nbformat.read(path, as_version=4)
    checked = [
        c
        for c in notebook.cells
        if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")
    ]
    assert checked, f"{path.name} checks nothing"
    constants = {
        d for c in notebook.cells if c.cell_type == "code" for d in DECIMAL.findall(c.source)
    }
    for cell in checked:
        text = "".join(o.get("text", "") for o in cell.outputs)
        computed = set(DECIMAL.findall(text)) - constants
        assert not computed, f"{path.name}: a checked cell prints {sorted(computed)} in {text!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_is_narrative(path: Path) -> None:
    """Notebooks call crossgran; they define nothing and loop over at most one call, so every
    claim they state is computed by a function a test can reach."""
    source = path.with_suffix(".py").read_text()
    for node in ast.walk(ast.parse(source)):
        assert not isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        ), f"{path.stem}: defines something (line {node.lineno})"
        if isinstance(node, (ast.For, ast.While)):
            assert len(node.body) == 1 and isinstance(node.body[0], ast.Expr), (
                f"{path.stem}: a loop around more than one call (line {node.lineno})"
            )


@pytest.mark.slow
def test_notebook_killed_mid_run_resumes_to_the_uninterrupted_outputs(tmp_path: Path) -> None:
    """02 (ESM training and embedding, three BiGCARP trainings, exports) is SIGKILLed once the
    first BiGCARP run has written its initial checkpoint; rerunning it finishes from the caches
    and checkpoints and writes the same arrays as an uninterrupted run, bit for bit."""
    straight = make_project_root(tmp_path / "straight", notebooks=True)
    killed = make_project_root(tmp_path / "killed", notebooks=True)
    assert _run_notebook(straight, "01_data.ipynb") == 0
    shutil.copytree(straight / "data" / "processed", killed / "data" / "processed")
    assert _run_notebook(straight, "02_embeddings.ipynb") == 0

    processed = killed / "data" / "processed" / "smoke"
    first_init, last_init = INIT_MODES[0], INIT_MODES[-1]
    first_checkpoint = (
        killed / "data" / "models" / "smoke" / f"bigcarp_{first_init}" / "model_e000.pt"
    )
    assert _run_notebook(killed, "02_embeddings.ipynb", kill_when=first_checkpoint) is None
    assert not (processed / f"bigcarp_{last_init}.npz").exists(), "killed too late"
    # Whatever the kill left under a final name is complete (atomic writes): equal to the
    # uninterrupted run's file.
    _assert_same_arrays(
        processed,
        straight / "data" / "processed" / "smoke",
        sorted(p.name for p in processed.glob("*.npz")),
    )

    assert _run_notebook(killed, "02_embeddings.ipynb") == 0
    written = sorted(p.name for p in (straight / "data" / "processed" / "smoke").glob("*.npz"))
    assert len(written) >= 2 + len(INIT_MODES)  # ESM Pfam + A-domains, one per init
    _assert_same_arrays(processed, straight / "data" / "processed" / "smoke", written)


def _run_notebook(root: Path, notebook: str, kill_when: Path | None = None) -> int | None:
    """``crossgran run --profile smoke <notebook>`` in ``root``; with ``kill_when``, SIGKILL the
    whole process group (papermill and its kernel) as soon as that file exists. Returns the
    exit code, or None when the run was killed."""
    command = [sys.executable, "-m", "crossgran.cli", "run", "--profile", "smoke", notebook]
    env = {**os.environ, "CROSSGRAN_ROOT": str(root)}
    with subprocess.Popen(
        command,
        env=env,
        cwd=root,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:
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


def _assert_same_arrays(ours_dir: Path, theirs_dir: Path, names: list[str]) -> None:
    for name in names:
        ours, theirs = load_npz(ours_dir / name), load_npz(theirs_dir / name)
        assert sorted(ours) == sorted(theirs), name
        for key in theirs:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name}:{key}")
