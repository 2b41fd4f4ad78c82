"""Time per BGC of ``crossgran predict`` on a profile's stored models, from cold caches.

Why: the command is meant for a researcher's laptop, one cluster or a genome's worth of
antiSMASH regions at a time; what it costs per BGC, and what the first call adds (fitting the
probes once), decides whether it is used. Every call runs in a fresh process (model loading
included, as a user pays it) in a scratch project root that shares the checkout's downloads,
tables and models but starts with an empty cache, so hmmsearch and ESM run for real:

* ``first``: MIBiG BGC0001090 (10 genes, 4 A-domains in mini) with no stored probes (they are
  fitted and saved on the way; the stored ones are put back afterwards);
* ``one``: the same BGC, probes stored;
* ``batch``: ``--windows`` protein FASTA files, consecutive 40-gene windows of the proteome
  shipped with pyhmmer (real genes in gene order, as the BiGCARP corpus cuts them), in one
  call; ``window``: the first of them alone. (batch - window) / (windows - 1) is the
  marginal cost of one more record.

Prints one table. Build the profile's models first (``crossgran run --profile P 01 02``).

Usage: ``python benchmarks/predict_time.py [--profile mini] [--windows 8]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crossgran.data.sources import pyhmmer_file
from crossgran.data.tables import read_proteome
from crossgran.predict import predictor_path
from crossgran.profiles import PROFILE_NAMES, find_root, get_profile

CHECKOUT = find_root(Path(__file__).parent)
WINDOW = 40


def scratch_root(base: Path) -> Path:
    """A project root sharing the checkout's downloads, tables and models, with an empty
    cache."""
    root = base / "root"
    (root / "data").mkdir(parents=True)
    for name in ("raw", "processed", "models"):
        (root / "data" / name).symlink_to(CHECKOUT / "data" / name, target_is_directory=True)
    return root


def timed_predict(inputs: list[Path], profile: str, base: Path, name: str) -> float:
    """Wall seconds of one ``crossgran predict`` call in a fresh scratch root."""
    root = scratch_root(base / name)
    command = [sys.executable, "-m", "crossgran.cli", "predict", *map(str, inputs)]
    started = time.perf_counter()
    subprocess.run(
        [*command, "--profile", profile, "--out", str(base / name / "out"), "--no-figures"],
        check=True,
        capture_output=True,
        env={**os.environ, "CROSSGRAN_ROOT": str(root)},
    )
    return time.perf_counter() - started


def proteome_windows(count: int, directory: Path) -> list[Path]:
    """``count`` FASTA files of consecutive ``WINDOW``-gene windows of the proteome."""
    proteome = list(read_proteome().items())
    directory.mkdir(parents=True)
    paths = []
    for index in range(count):
        genes = proteome[index * WINDOW : (index + 1) * WINDOW]
        path = directory / f"window{index:02d}.faa"
        path.write_text("".join(f">{name}\n{seq.rstrip('*')}\n" for name, seq in genes))
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="mini", choices=PROFILE_NAMES)
    parser.add_argument("--windows", type=int, default=8)
    args = parser.parse_args()
    stored = predictor_path(get_profile(args.profile, root=CHECKOUT)).parent
    bgc = pyhmmer_file("BGC0001090.gbk")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        aside = base / "aside"
        if stored.exists():
            shutil.move(stored, aside)
        try:
            first = timed_predict([bgc], args.profile, base, "first")
        finally:
            if aside.exists():
                shutil.rmtree(stored, ignore_errors=True)
                shutil.move(aside, stored)
        one = timed_predict([bgc], args.profile, base, "one")
        windows = proteome_windows(args.windows, base / "windows")
        window = timed_predict(windows[:1], args.profile, base, "window")
        batch = timed_predict(windows, args.profile, base, "batch")
    marginal = (batch - window) / (args.windows - 1)
    print(f"| crossgran predict, profile {args.profile}, cold cache | wall s |")
    print("|---|---|")
    print(f"| BGC0001090, first call (fits and stores the probes) | {first:.1f} |")
    print(f"| BGC0001090, probes stored | {one:.1f} |")
    print(f"| one {WINDOW}-gene proteome window | {window:.1f} |")
    print(f"| {args.windows} windows in one call | {batch:.1f} |")
    print(f"| marginal cost of one more {WINDOW}-gene record | {marginal:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
