"""The command line as a user meets it: fast help, and mistakes answered in a line or two.

Why: ``crossgran --help`` is the first thing a user runs, and a Python traceback for a typo
in a notebook name or a wrong file teaches nothing. Each case runs the real entry point in a
subprocess, as a user's shell would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crossgran.cli.common import UserError
from crossgran.cli.run import resolve_notebooks

ROOT = Path(__file__).parents[1]
NOTEBOOKS = ROOT / "notebooks"


def crossgran(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crossgran.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=300,
    )


def test_help_imports_no_torch_pandas_or_papermill() -> None:
    probe = (
        "import sys\n"
        "from crossgran.cli import build_parser\n"
        "for command in ([], ['run'], ['embed'], ['train-bigcarp']):\n"
        "    try:\n"
        "        build_parser().parse_args([*command, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'torch', 'pandas', 'papermill', 'sklearn', 'esm'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_import_crossgran_gives_submodules_lazily() -> None:
    probe = (
        "import sys, crossgran\n"
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules\n"
        "assert crossgran.esm is crossgran.models.esm\n"
        "assert crossgran.cka is crossgran.analysis.cka\n"
        "assert callable(crossgran.esm.embed) and callable(crossgran.bigcarp.train_mlm)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("name", ["01_data", "01", "1", "01_data.ipynb"])
def test_run_accepts_a_notebook_by_stem_number_or_file_name(name: str) -> None:
    assert resolve_notebooks([name], NOTEBOOKS) == [NOTEBOOKS / "01_data.ipynb"]


def test_run_accepts_a_path_and_defaults_to_every_numbered_notebook() -> None:
    path = NOTEBOOKS / "03_failed_init.ipynb"
    assert resolve_notebooks([str(path)], NOTEBOOKS) == [path]
    every = resolve_notebooks([], NOTEBOOKS)
    assert [p.stem[:2] for p in every] == ["01", "02", "03", "04", "05", "06"]


def test_run_unknown_notebook_names_the_choices() -> None:
    with pytest.raises(UserError, match="no notebook '07'; choose from 01_data, 02_embeddings"):
        resolve_notebooks(["07"], NOTEBOOKS)


def test_run_list_prints_the_notebooks() -> None:
    result = crossgran("run", "--list")
    assert result.returncode == 0
    assert result.stdout.split() == [p.stem for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]


def _short_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status non-zero, at most two lines on stderr, no traceback, the fix named."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_unknown_notebook_and_profile_are_one_line_errors() -> None:
    _short_error(
        crossgran("run", "--profile", "mini", "07_nothing"), "no notebook '07_nothing'", "01_data"
    )
    _short_error(crossgran("run", "--profile", "huge"), "invalid choice: 'huge'", "mini")


def embed(fasta: Path, tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    """``crossgran embed`` of ``fasta`` with a local model that does not exist."""
    out = str(tmp_path / "x.npz")
    return crossgran("embed", "--fasta", str(fasta), "--model", "local:none",
                     "--models-dir", str(tmp_path / "models"), "--layers", "0", "--out", out,
                     *options)  # fmt: skip


def test_embed_of_a_binary_file_says_it_is_not_fasta(tmp_path: Path) -> None:
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    _short_error(embed(binary, tmp_path), "weights.bin is not a text file", "FASTA")


def test_embed_of_a_missing_file_names_it(tmp_path: Path) -> None:
    _short_error(embed(tmp_path / "absent.faa", tmp_path), "absent.faa: no such file")


def test_embed_checks_the_residues_before_loading_the_model(tmp_path: Path) -> None:
    fasta = tmp_path / "odd.faa"
    fasta.write_text(">good\nMKVLAAGIVG\n>odd\nMK*?JLA\n")
    _short_error(embed(fasta, tmp_path), "1 invalid sequence record(s)", "odd")


def test_embed_of_a_missing_local_model_names_the_folder_and_the_fix(tmp_path: Path) -> None:
    fasta = tmp_path / "ok.faa"
    fasta.write_text(">good\nMKVLAAGIVG\n")
    _short_error(embed(fasta, tmp_path), "local ESM model not found", str(tmp_path / "models"),
                 "train_local_esm")  # fmt: skip


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = crossgran("--debug", "embed", "--fasta", str(tmp_path / "absent.faa"), "--model",
                       "local:none", "--layers", "0", "--out", str(tmp_path / "x.npz"))  # fmt: skip
    assert result.returncode != 0 and "Traceback" in result.stderr
