"""Run one profile's notebooks from cold, record wall time and peak memory, and optionally adopt
its outputs into the checkout.

Why: a profile whose outputs are committed as the repository's evidence (``evidence``) must
show they came from one ``crossgran run --profile P`` on a cold machine, and how long and how
much memory that took on it. The run happens in a fresh project root (``determinism.make_root``:
a copy of ``notebooks/`` and ``pyproject.toml``, the checkout's pinned downloads, no cache and no
model), so nothing an earlier run left behind is reused. Recorded in
``results/<profile>/cold_run.json``: exit code, wall seconds, peak RSS (the largest resident set
of any child process, papermill's kernels included: ``RUSAGE_CHILDREN``), each notebook's
papermill duration, the machine and the commit.

``--adopt`` copies the run's ``results/<profile>/`` (with the executed notebooks),
``figures/<profile>/`` and its manifest (as ``results/<profile>/MANIFEST.json``) into the
checkout, replacing what was there; ``benchmarks/determinism.py --against-checkout`` later holds
a second cold run against them.

Usage: ``python benchmarks/cold_run.py --profile evidence [--adopt] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from determinism import CHECKOUT, make_root, scratch_dir

from crossgran.cache import write_text_atomic
from crossgran.profiles import PROFILE_NAMES, get_profile

RECORD_NAME = "cold_run.json"


@dataclass
class ColdRun:
    """What one cold run did; ``root`` holds its outputs until the caller removes it."""

    profile: str
    root: Path
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    notebook_s: dict[str, float]


def machine() -> dict[str, str]:
    """Cores, memory and CPU model: a wall time means little without the machine."""
    facts = {
        "cores (os.cpu_count)": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for source, key, label in (
        ("/proc/meminfo", "MemTotal", "RAM"),
        ("/proc/cpuinfo", "model name", "CPU"),
    ):
        try:
            text = Path(source).read_text()
        except OSError:
            continue
        found = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if found and label == "RAM":
            facts[label] = f"{int(found.group(1).split()[0]) / 1024**2:.1f} GiB"
        elif found:
            facts[label] = found.group(1).strip()
    return facts


def notebook_durations(directory: Path) -> dict[str, float]:
    """Seconds papermill recorded for each executed notebook in ``directory``."""
    durations = {}
    for path in sorted(directory.glob("*.ipynb")):
        metadata = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if metadata.get("duration") is not None:
            durations[path.stem] = round(float(metadata["duration"]), 1)
    return durations


def cold_run(profile: str, scratch: Path) -> ColdRun:
    """``crossgran run --profile P`` in a fresh root under ``scratch``, streamed live.

    Peak memory is ``RUSAGE_CHILDREN``'s, the largest of any child waited for so far: call
    this before any other subprocess of the calling process for it to be this run's own."""
    root = make_root(scratch / "root")
    command = [sys.executable, "-m", "crossgran.cli", "run", "--profile", profile]
    print(f"$ CROSSGRAN_ROOT={root} {' '.join(command)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        command, check=False, env={**os.environ, "CROSSGRAN_ROOT": str(root)}, cwd=root
    )
    wall_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    settings = get_profile(profile, root=root)
    executed = (
        settings.root / "notebooks"
        if settings.outputs_committed
        else (settings.results_dir / "notebooks")
    )
    return ColdRun(profile, root, done.returncode, wall_s, peak, notebook_durations(executed))


def commit() -> str:
    """The checkout's commit (with ``+dirty`` when the work tree differs from it)."""
    head = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{head}+dirty" if dirty else head


def record(run: ColdRun, started_at: str) -> dict[str, object]:
    """``started_at``: the checkout's commit when the run began (the package is imported from
    the checkout, so that is the code the run executed if the checkout was left alone)."""
    return {
        "profile": run.profile,
        "command": f"crossgran run --profile {run.profile}",
        "returncode": run.returncode,
        "wall_s": round(run.wall_s, 1),
        "peak_rss_gib": round(run.peak_rss_bytes / 1024**3, 2),
        "notebook_s": run.notebook_s,
        "machine": machine(),
        "commit": started_at,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def adopt(run: ColdRun) -> None:
    """Replace the checkout's ``results/<profile>/`` and ``figures/<profile>/`` with the run's,
    keeping its measured spread files (they describe other runs), and add its manifest."""
    source = get_profile(run.profile, root=run.root)
    target = get_profile(run.profile, root=CHECKOUT)
    kept = {
        path.name: path.read_bytes()
        for path in target.results_dir.glob("*_spread.csv")
        if path.is_file()
    }
    for origin, destination in (
        (source.results_dir, target.results_dir),
        (source.figures_dir, target.figures_dir),
    ):
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("running", "failed"))
    for name, data in kept.items():
        (target.results_dir / name).write_bytes(data)
    if not source.outputs_committed:
        shutil.copy2(source.manifest_path, target.results_dir / "MANIFEST.json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="evidence", choices=PROFILE_NAMES)
    parser.add_argument(
        "--adopt", action="store_true", help="copy the run's outputs into the checkout"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary root")
    args = parser.parse_args(argv)
    with scratch_dir(f"crossgran-{args.profile}-", args.keep) as scratch:
        started_at = commit()
        run = cold_run(args.profile, scratch)
        facts = record(run, started_at)
        print(json.dumps(facts, indent=1))
        if run.returncode != 0:
            return 1
        if args.adopt:
            adopt(run)
            path = get_profile(args.profile, root=CHECKOUT).results_dir / RECORD_NAME
            write_text_atomic(path, json.dumps(facts, indent=1) + "\n")
            print(f"adopted into {CHECKOUT}; recorded in {path}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
