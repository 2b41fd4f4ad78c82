"""Run the whole pipeline twice from scratch and check that the key numbers agree.

Why: the stored notebook outputs and ``data/MANIFEST.json`` are only worth committing if a
rerun reproduces them. Each run gets its own fresh project root (``$CROSSGRAN_ROOT``) with a
copy of ``notebooks/`` and ``pyproject.toml`` (so nothing of the checkout is written to) and a
symlink to the checkout's ``data/raw`` (the pinned, hash-checked wheels: no download), hence
cold caches and no model trained by an earlier run. Compared afterwards:

* every ``results/<profile>/*.csv``: same columns and rows, numeric columns equal within
  ``--atol`` (NaN equals NaN), other columns identical;
* the sha256 of every output table listed in the profile's manifest (``data/MANIFEST.json``
  for mini, ``data/processed/<profile>/MANIFEST.json`` otherwise).

``benchmarks/run_all.py`` reuses :func:`compare_runs` to hold its fresh, timed ``mini`` run
against the outputs committed in the checkout.

Prints one table row per compared item and exits 1 on any difference (2 if a run failed).

Usage: ``python benchmarks/determinism.py [--profile smoke] [--atol 1e-9] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.profiles import get_profile

CHECKOUT = Path(__file__).resolve().parents[1]


def make_root(root: Path) -> Path:
    """A project root that ``crossgran.profiles.find_root`` accepts, sharing only data/raw."""
    shutil.copytree(CHECKOUT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    shutil.copy2(CHECKOUT / "pyproject.toml", root / "pyproject.toml")
    raw = CHECKOUT / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir()
    (root / "data" / "raw").symlink_to(raw, target_is_directory=True)
    return root


def run_pipeline(root: Path, profile: str) -> tuple[int, float]:
    """``crossgran run --profile P`` with ``$CROSSGRAN_ROOT=root``; (exit code, wall seconds).

    Run as ``python -m crossgran.cli`` with this interpreter, so the active environment is
    used whether or not its ``crossgran`` script is on PATH.
    """
    command = [sys.executable, "-m", "crossgran.cli", "run", "--profile", profile,
               "--output-dir", str(root / "executed")]
    environment = {**os.environ, "CROSSGRAN_ROOT": str(root)}
    print(f"$ CROSSGRAN_ROOT={root} {' '.join(command)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, check=False, env=environment, cwd=root)
    return done.returncode, time.perf_counter() - started


def compare_csv(first: Path, second: Path, atol: float) -> tuple[bool, str]:
    """(equal, detail) for two result tables: numbers within ``atol``, everything else exact."""
    a, b = pd.read_csv(first), pd.read_csv(second)
    if list(a.columns) != list(b.columns):
        return False, f"columns differ: {list(a.columns)} vs {list(b.columns)}"
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs {b.shape}"
    worst, problems = 0.0, []
    for column in a.columns:
        left, right = a[column], b[column]
        if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
            x, y = left.to_numpy(dtype=float), right.to_numpy(dtype=float)
            same_nan = np.isnan(x) == np.isnan(y)
            finite = ~np.isnan(x) & ~np.isnan(y)
            gap = float(np.abs(x[finite] - y[finite]).max()) if finite.any() else 0.0
            worst = max(worst, gap)
            if not same_nan.all() or gap > atol:
                problems.append(f"{column} (max |diff| {gap:.3g})")
        elif not left.astype(str).equals(right.astype(str)):
            problems.append(f"{column} (text differs)")
    if problems:
        return False, "; ".join(problems)
    return True, f"max |diff| {worst:.3g}"


def manifest_outputs(root: Path, profile: str) -> dict[str, str]:
    """Output table name -> sha256 from the profile's manifest ({} when it is missing)."""
    path = get_profile(profile, root=root).manifest_path
    if not path.is_file():
        return {}
    return {name: entry["sha256"] for name, entry in json.loads(path.read_text())["outputs"].items()}


def compare_runs(first: Path, second: Path, profile: str, atol: float) -> list[tuple[str, bool, str]]:
    """One (item, equal, detail) row per result table and manifest output of the two roots."""
    rows: list[tuple[str, bool, str]] = []
    results = [root / "results" / profile for root in (first, second)]
    names = sorted({p.name for d in results for p in d.glob("*.csv")})
    if not names:
        rows.append((f"results/{profile}/*.csv", False, "no result tables were written"))
    for name in names:
        paths = [d / name for d in results]
        missing = [str(i + 1) for i, p in enumerate(paths) if not p.is_file()]
        if missing:
            rows.append((f"results/{profile}/{name}", False, f"missing in run {', '.join(missing)}"))
        else:
            rows.append((f"results/{profile}/{name}", *compare_csv(*paths, atol)))
    hashes = [manifest_outputs(root, profile) for root in (first, second)]
    if not any(hashes):
        rows.append((f"{profile} MANIFEST.json", False, "missing in both runs"))
    for table in sorted(set(hashes[0]) | set(hashes[1])):
        a, b = hashes[0].get(table), hashes[1].get(table)
        detail = f"sha256 {a[:12] if a else '-'} vs {b[:12] if b else '-'}"
        rows.append((f"MANIFEST outputs: {table}", a is not None and a == b, detail))
    return rows


def print_table(rows: Sequence[tuple[str, bool, str]]) -> None:
    width = max(len(item) for item, _, _ in rows)
    print(f"\n{'item':<{width}}  {'result':<6}  detail")
    for item, equal, detail in rows:
        print(f"{item:<{width}}  {'same' if equal else 'DIFF':<6}  {detail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke", choices=("smoke", "mini"),
                        help="profile to run twice (default: smoke, about 3 min per run on 2 cores)")
    parser.add_argument("--atol", type=float, default=1e-9,
                        help="largest allowed absolute difference of a numeric cell")
    parser.add_argument("--keep", action="store_true",
                        help="keep the two temporary roots and print where they are")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="crossgran-determinism-"))
    try:
        roots = [make_root(scratch / f"run{i}") for i in (1, 2)]
        for index, root in enumerate(roots, 1):
            code, seconds = run_pipeline(root, args.profile)
            print(f"run {index}: exit {code} in {seconds:.0f} s", flush=True)
            if code != 0:
                print(f"run {index} failed; its failed notebook is under "
                      f"{root / 'results' / args.profile / 'failed'} (use --keep to inspect)",
                      file=sys.stderr)
                return 2
        rows = compare_runs(*roots, args.profile, args.atol)
        print_table(rows)
        differing = sum(not equal for _, equal, _ in rows)
        print(f"\n{len(rows) - differing}/{len(rows)} identical"
              f" (numeric tolerance {args.atol:g})")
        return 1 if differing else 0
    finally:
        if args.keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
