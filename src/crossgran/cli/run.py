"""``crossgran run``: execute the numbered notebooks headless with papermill.

Notebooks can be named as a user reads them: ``01_data``, ``01``, ``01_data.ipynb`` or a path.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from crossgran.cli.common import UserError, add_profile_option

__all__ = ["numbered_notebooks", "register", "resolve_notebooks", "run_notebooks"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="execute the numbered notebooks with papermill")
    add_profile_option(parser)
    parser.add_argument(
        "notebooks",
        nargs="*",
        help="01_data, 01 or a path (default: all numbered notebooks, in order)",
    )
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where executed copies go (default: in place for mini, "
        "results/<profile>/notebooks otherwise)",
    )
    parser.add_argument(
        "--bigcarp-seed",
        type=int,
        default=None,
        help="train BiGCARP under this seed instead of the profile's: another "
        "sample of the same runs (benchmarks/variance.py)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from crossgran.profiles import get_profile

    directory = get_profile(args.profile).root / "notebooks"
    if args.list:
        for path in numbered_notebooks(directory):
            print(path.stem)
        return 0
    paths = resolve_notebooks(args.notebooks, directory)
    parameters = {} if args.bigcarp_seed is None else {"bigcarp_seed": args.bigcarp_seed}
    return run_notebooks(args.profile, paths, args.output_dir, parameters)


def numbered_notebooks(directory: Path) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9]_*.ipynb"))


def resolve_notebooks(names: Sequence[str], directory: Path) -> list[Path]:
    """Paths of the named notebooks (all numbered ones when none are named).

    A name is a path to an existing notebook, or a notebook of ``directory`` given by its
    stem (``01_data``), its file name, or its number (``01`` or ``1``).
    """
    available = numbered_notebooks(directory)
    if not available:
        raise UserError(
            f"no numbered notebooks (NN_name.ipynb) in {directory}; run from a "
            "crossgran checkout or set CROSSGRAN_ROOT to one"
        )
    if not names:
        return available
    by_name = {}
    for path in available:
        by_name |= {
            path.stem: path,
            path.name: path,
            path.stem[:2]: path,
            str(int(path.stem[:2])): path,
        }
    resolved = []
    for name in names:
        if name in by_name:
            resolved.append(by_name[name])
        elif Path(name).is_file():
            resolved.append(Path(name).resolve())
        else:
            raise UserError(
                f"no notebook {name!r}; choose from "
                f"{', '.join(p.stem for p in available)} (or give a path)"
            )
    return resolved


def run_notebooks(
    profile: str, paths: Sequence[Path], output_dir: str | None, parameters: dict | None = None
) -> int:
    """Execute notebooks in order with papermill; stop at the first failing cell.

    ``parameters`` are passed to every notebook beside ``profile`` (papermill defines them
    whether or not a notebook's parameters cell names them).

    ``mini`` outputs replace the stored notebooks (they are what nbval checks), written to a
    temporary file first so a failed run never replaces a good stored notebook; the failed copy
    is kept under ``results/<profile>/failed/`` for inspection.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from crossgran.profiles import get_profile

    settings = get_profile(profile)
    in_place = output_dir is None and settings.outputs_committed
    out_dir = Path(output_dir) if output_dir else settings.results_dir / "notebooks"
    for index, path in enumerate(paths, 1):
        target = path if in_place else out_dir / path.name
        print(f"[{index}/{len(paths)}] {path.name} (profile {profile}) -> {target}", flush=True)
        started = time.perf_counter()
        running = settings.results_dir / "running" / path.name
        running.parent.mkdir(parents=True, exist_ok=True)
        try:
            papermill.execute_notebook(
                str(path),
                str(running),
                parameters={"profile": profile, **(parameters or {})},
                cwd=str(path.parent),
                progress_bar=True,
                kernel_name="python3",
                language="python",
            )
        except PapermillExecutionError as error:
            failed = settings.results_dir / "failed" / path.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(running, failed)
            print(
                f"FAILED: {path.name}, cell {error.cell_index} (execution count "
                f"{error.exec_count}): {error.ename}: {error.evalue}\n"
                f"  executed copy: {failed}",
                file=sys.stderr,
            )
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(running, target)
        print(f"    done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0
