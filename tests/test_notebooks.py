"""Stored notebooks: paired with their py:percent scripts, parameterised once, executed cleanly."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """Cell types and sources, without the cell papermill injects when it executes."""
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells
            if "injected-parameters" not in cell.metadata.get("tags", [])]


def test_all_five_notebooks_are_present() -> None:
    assert [n.stem[:2] for n in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_is_in_sync(path: Path) -> None:
    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} missing: run `jupytext --sync {path.name}`"
    assert _cells(jupytext.read(script)) == _cells(nbformat.read(path, as_version=4)), (
        f"{path.name} and {script.name} differ: edit one, then `jupytext --sync {path.name}`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_defaulting_to_mini(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = [line.split("=")[0].strip() for line in tagged[0].source.splitlines()]
    assert tagged[0].source.startswith('profile = "mini"')
    # notebook 02 alone trains BiGCARP, so it alone takes the training seed
    assert names == (["profile", "bigcarp_seed"] if path.stem.startswith("02") else ["profile"])


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
    checked = [c for c in notebook.cells
               if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, f"{path.name} checks nothing"
    constants = {d for c in notebook.cells if c.cell_type == "code" for d in DECIMAL.findall(c.source)}
    for cell in checked:
        text = "".join(o.get("text", "") for o in cell.outputs)
        computed = set(DECIMAL.findall(text)) - constants
        assert not computed, f"{path.name}: a checked cell prints {sorted(computed)} in {text!r}"
