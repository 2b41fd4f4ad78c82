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

**Across kernel paths** (``--kernel-path NAME``): the second run executes under another
floating-point path of the same CPU (:data:`KERNEL_PATHS`: ATen's SIMD level, MKL's
conditional-numerical-reproducibility branch, oneDNN's instruction set). Tables are then
reported as bit-identical, or as different but within the profile's measured training
spread (``crossgran.analysis.spread``; ``benchmarks/variance.py`` measures it), or outside it; only
the last is a failure. ``--switches`` answers the cheaper question of *which* switches change
anything: it trains one BiGCARP epoch and a few local-ESM steps under every path and prints
the sha256 of the weights.

``--against-checkout`` runs once and holds the result against the outputs committed in the
checkout (``cold_run.py --adopt``): how the ``evidence`` profile's committed tables are shown
to be reproducible. It also lists every report verdict that differs: on another CPU the tables
differ in their decimals, and the verdicts say whether that changes what the report claims.

Usage: ``python benchmarks/determinism.py [--profile smoke] [--atol 1e-9] [--keep]
[--kernel-path aten-default] [--switches] [--against-checkout]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.analysis import report, spread
from crossgran.profiles import PROFILE_NAMES, get_profile

CHECKOUT = Path(__file__).resolve().parents[1]

# Environment switches that select another floating-point path on the same x86-64 CPU. Which
# of them change a training run is measured by ``--switches`` (benchmarks/variance.md).
KERNEL_PATHS: dict[str, dict[str, str]] = {
    "default": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},  # ATen's scalar (non-SIMD) kernels
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},  # = default on a CPU without AVX-512
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},  # MKL's most portable code branch
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},  # oneDNN (convolutions) without AVX
    # Both switches that changed a training run at no more than 1.5x the time (MKL_CBWR did
    # too, at 2.5x): the second pass of `make test`.
    "scalar": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder for fresh project roots, removed afterwards unless ``keep`` (then
    its path is printed, to inspect the runs)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield scratch
    finally:
        if keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def make_root(root: Path, share_cache: bool = False) -> Path:
    """A project root that ``crossgran.profiles.find_root`` accepts, sharing data/raw (and,
    with ``share_cache``, the content-addressed ``data/cache``: hmmsearch hits and ESM
    embeddings keyed by model weights, so sharing it skips work without changing results)."""
    shutil.copytree(
        CHECKOUT / "notebooks",
        root / "notebooks",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )
    shutil.copy2(CHECKOUT / "pyproject.toml", root / "pyproject.toml")
    (root / "data").mkdir()
    for name in ("raw", "cache") if share_cache else ("raw",):
        shared = CHECKOUT / "data" / name
        shared.mkdir(parents=True, exist_ok=True)
        (root / "data" / name).symlink_to(shared, target_is_directory=True)
    return root


def run_pipeline(
    root: Path, profile: str, kernel_path: str = "default", extra_args: Sequence[str] = ()
) -> tuple[int, float]:
    """``crossgran run --profile P [extra_args]`` with ``$CROSSGRAN_ROOT=root`` under a
    :data:`KERNEL_PATHS` entry; (exit code, wall seconds).

    Run as ``python -m crossgran.cli`` with this interpreter, so the active environment is
    used whether or not its ``crossgran`` script is on PATH.
    """
    command = [
        sys.executable,
        "-m",
        "crossgran.cli",
        "run",
        "--profile",
        profile,
        "--output-dir",
        str(root / "executed"),
        *extra_args,
    ]
    switches = KERNEL_PATHS[kernel_path]
    environment = {**os.environ, **switches, "CROSSGRAN_ROOT": str(root)}
    shown = " ".join(f"{k}={v}" for k, v in switches.items())
    print(f"$ {shown} CROSSGRAN_ROOT={root} {' '.join(command)}", flush=True)
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
    """Output table name -> sha256 from the profile's manifest, or from the copy that
    ``cold_run.py --adopt`` commits as ``results/<profile>/MANIFEST.json`` ({} when neither
    exists)."""
    settings = get_profile(profile, root=root)
    path = settings.manifest_path
    if not path.is_file():
        path = settings.results_dir / "MANIFEST.json"
    if not path.is_file():
        return {}
    return {
        name: entry["sha256"] for name, entry in json.loads(path.read_text())["outputs"].items()
    }


def compare_runs(
    first: Path, second: Path, profile: str, atol: float
) -> list[tuple[str, bool, str]]:
    """One (item, equal, detail) row per result table and manifest output of the two roots."""
    rows: list[tuple[str, bool, str]] = []
    results = [root / "results" / profile for root in (first, second)]
    # The measured spread files describe many runs, not this one: not compared.
    names = sorted(
        {p.name for d in results for p in d.glob("*.csv")}
        - {spread.SPREAD_NAME, spread.VERDICT_SPREAD_NAME}
    )
    if not names:
        rows.append((f"results/{profile}/*.csv", False, "no result tables were written"))
    for name in names:
        paths = [d / name for d in results]
        missing = [str(i + 1) for i, p in enumerate(paths) if not p.is_file()]
        if missing:
            rows.append(
                (f"results/{profile}/{name}", False, f"missing in run {', '.join(missing)}")
            )
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


def compare_verdicts(first: Path, second: Path, profile: str) -> list[tuple[str, bool, str]]:
    """One (row, same, detail) per report row whose verdict differs between the two roots,
    then one count of all rows.

    Why: a rerun on another CPU trains on another floating-point path, so its tables differ in
    their decimals however the code is written; what a reader takes from the report is each
    claim's verdict, so that is what this holds row by row (``paper_vs_reproduced.md``'s rows,
    by their key)."""
    first_verdicts, second_verdicts = (
        report.report_rows(get_profile(profile, root=root)).set_index("key")["verdict"]
        for root in (first, second)
    )
    keys = list(dict.fromkeys([*first_verdicts.index, *second_verdicts.index]))
    pairs = {key: (first_verdicts.get(key, "-"), second_verdicts.get(key, "-")) for key in keys}
    rows = [(f"verdict {key}", False, f"{a} -> {b}") for key, (a, b) in pairs.items() if a != b]
    same = len(keys) - len(rows)
    rows.append(("report verdicts", same == len(keys), f"{same}/{len(keys)} the same"))
    return rows


def print_table(rows: Sequence[tuple[str, bool, str]]) -> None:
    width = max(len(item) for item, _, _ in rows)
    print(f"\n{'item':<{width}}  {'result':<6}  detail")
    for item, equal, detail in rows:
        print(f"{item:<{width}}  {'same' if equal else 'DIFF':<6}  {detail}")


def compare_within_spread(
    reference: Path, other: Path, profile: str
) -> list[tuple[str, bool, str]]:
    """Per result table of ``other``: bit-identical to ``reference``'s, or else how many of its
    values lie within the checkout's measured training spread (``crossgran.analysis.spread``)."""
    rows = []
    settings = get_profile(profile, root=other)
    spread_path = CHECKOUT / "results" / profile / spread.SPREAD_NAME
    measured = spread.read_spread(spread_path) if spread_path.is_file() else None
    for item, equal, detail in compare_runs(reference, other, profile, atol=0.0):
        if equal or measured is None or not item.startswith("results/"):
            rows.append((item, equal, "bit-identical" if equal else detail))
            continue
        name = Path(item).stem
        table = spread.read_tables(settings.results_dir).get(name)
        checked = spread.check(
            {name: table} if table is not None else {}, measured[measured["table"] == name]
        )
        inside = int(checked["ok"].sum())
        rows.append(
            (
                item,
                inside == len(checked),
                f"differs; {inside}/{len(checked)} values within the measured spread",
            )
        )
    return rows


def fingerprint(profile: str) -> dict[str, str]:
    """sha256 of one BiGCARP epoch (random init) and 20 local-ESM steps trained on the
    checkout's built ``profile`` tables: what a kernel-path switch changes, if anything."""
    import hashlib

    import torch

    from crossgran import threads
    from crossgran.data.tables import load_table
    from crossgran.models import bigcarp, esm, runs

    settings = get_profile(profile, root=CHECKOUT)
    corpus = load_table(settings, "domain_corpus")
    digests = {"cpu_capability": torch.backends.cpu.get_cpu_capability()}
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as scratch,
        threads.limit(torch_threads=settings.torch_threads),
    ):
        config = replace(settings.bigcarp, epochs=1)
        bigcarp.train_mlm(
            corpus,
            bigcarp.Vocabulary.from_corpus(corpus),
            config,
            init_mode="random",
            out_dir=Path(scratch) / "bigcarp",
            seed=config.seed,
        )
        table = np.load(Path(scratch) / "bigcarp" / "token_table_e001.npy")
        digests["bigcarp_epoch1_token_table"] = hashlib.sha256(table.tobytes()).hexdigest()[:16]
        esm_config = replace(settings.esm, train_steps=20)
        fragments = runs.esm_pretraining_fragments(settings)
        esm.train_local_esm(
            fragments.sequences,
            esm_config,
            out_dir=Path(scratch) / "esm",
            seed=settings.seed,
            groups=fragments.groups,
        )
        digests["esm_20_steps_weights"] = hashlib.sha256(
            (Path(scratch) / "esm" / "model.pt").read_bytes()
        ).hexdigest()[:16]
    digests["seconds"] = f"{time.perf_counter() - started:.0f}"
    return digests


def switches(profile: str) -> int:
    """Run :func:`fingerprint` under every :data:`KERNEL_PATHS` entry; print which differ."""
    results = {}
    for name, switch in KERNEL_PATHS.items():
        done = subprocess.run(
            [sys.executable, __file__, "--profile", profile, "--fingerprint"],
            env={**os.environ, **switch},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 2
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results["default"]
    print(f"\n{'kernel path':16s}  {'switches':34s}  " + "  ".join(f"{k:>26s}" for k in base))
    for name, digest in results.items():
        cells = [
            f"{v:>18s} {'same' if v == base[k] or k == 'seconds' else 'DIFF':>7s}"
            for k, v in digest.items()
        ]
        switch = " ".join(f"{k}={v}" for k, v in KERNEL_PATHS[name].items()) or "(none)"
        print(f"{name:16s}  {switch:34s}  " + "  ".join(cells))
    return 0


def against_checkout(root: Path, profile: str, atol: float) -> int:
    """One cold run compared with the checkout's committed ``results/<profile>/``."""
    code, seconds = run_pipeline(make_root(root), profile)
    print(f"cold run: exit {code} in {seconds:.0f} s", flush=True)
    if code != 0:
        return 2
    rows = compare_runs(CHECKOUT, root, profile, atol)
    print_table(rows)
    differing = sum(not equal for _, equal, _ in rows)
    print(f"\n{len(rows) - differing}/{len(rows)} identical (numeric tolerance {atol:g})")
    print_table(compare_verdicts(CHECKOUT, root, profile))
    return 1 if differing else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile",
        default="smoke",
        choices=[name for name in PROFILE_NAMES if not get_profile(name).downloads],
        help="profile to run twice (default: smoke, about 3 min per run on 2 cores)",
    )
    parser.add_argument(
        "--against-checkout",
        action="store_true",
        help="run once and compare with the outputs committed in the checkout "
        "(those of `cold_run.py --adopt`, e.g. the evidence profile's)",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-9,
        help="largest allowed absolute difference of a numeric cell",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the two temporary roots and print where they are"
    )
    parser.add_argument(
        "--kernel-path",
        choices=list(KERNEL_PATHS),
        default="default",
        help="floating-point path of the second run (default: the same)",
    )
    parser.add_argument(
        "--switches",
        action="store_true",
        help="only fingerprint one short training under every kernel path",
    )
    parser.add_argument("--fingerprint", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fingerprint:
        print(json.dumps(fingerprint(args.profile)))
        return 0
    if args.switches:
        return switches(args.profile)

    with scratch_dir("crossgran-determinism-", args.keep) as scratch:
        if args.against_checkout:
            return against_checkout(scratch / "run", args.profile, args.atol)
        roots = [make_root(scratch / f"run{i}") for i in (1, 2)]
        for index, (root, path) in enumerate(
            zip(roots, ("default", args.kernel_path), strict=True), 1
        ):
            code, seconds = run_pipeline(root, args.profile, path)
            print(f"run {index} ({path}): exit {code} in {seconds:.0f} s", flush=True)
            if code != 0:
                print(
                    f"run {index} failed; its failed notebook is under "
                    f"{root / 'results' / args.profile / 'failed'} (use --keep to inspect)",
                    file=sys.stderr,
                )
                return 2
        if args.kernel_path == "default":
            rows = compare_runs(*roots, args.profile, args.atol)
        else:
            rows = compare_within_spread(*roots, args.profile)
        print_table(rows)
        differing = sum(not equal for _, equal, _ in rows)
        print(
            f"\n{len(rows) - differing}/{len(rows)} identical"
            + (
                f" (numeric tolerance {args.atol:g})"
                if args.kernel_path == "default"
                else f" or within the measured spread (second run: {args.kernel_path})"
            )
        )
        return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
