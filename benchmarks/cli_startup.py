"""How long ``crossgran --help`` and ``crossgran run --help`` take, against a bare interpreter.

Why: the command line is the first thing a user runs, and it used to import torch (via the
library modules that registered their own subcommands) just to print its help: 1.8 s idle,
up to 3.6 s on a busy machine. The target is under 0.5 s; the ratio to ``python -c pass``
(interpreter start-up alone) is what carries over to another machine.

Each command runs ``--repeats`` times in a fresh process; the median wall time is reported.
Exit status 1 if a command misses the 0.5 s target.

Usage: ``python benchmarks/cli_startup.py [--repeats 15]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_S = 0.5
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "crossgran --help": [sys.executable, "-m", "crossgran.cli", "--help"],
    "crossgran run --help": [sys.executable, "-m", "crossgran.cli", "run", "--help"],
    "crossgran run --list": [sys.executable, "-m", "crossgran.cli", "run", "--list"],
}


def median_wall(command: list[str], repeats: int) -> float:
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    walls = {name: median_wall(command, args.repeats) for name, command in COMMANDS.items()}
    bare = walls["python -c pass"]
    missed = 0
    for name, wall in walls.items():
        verdict = (
            ""
            if name == "python -c pass"
            else (f"   (target < {TARGET_S} s: {'met' if wall < TARGET_S else 'MISSED'})")
        )
        missed += wall >= TARGET_S and name != "python -c pass"
        print(f"{name:24s} median {wall:.3f} s = {wall / bare:5.1f} x python -c pass{verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
