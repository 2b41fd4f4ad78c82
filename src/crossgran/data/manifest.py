"""MANIFEST.json: what a build read and what it wrote, each with its sha256.

Why: the tables are written with deterministic bytes, so a manifest under version control
(``profile.manifest_committed``) turns any change of an input, of the code or of a library
that alters a table into a visible ``git diff``; the counts of the build report sit beside
them, so the diff also says which quirk changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from crossgran.cache import sha256_file, write_text_atomic
from crossgran.data.report import BuildReport
from crossgran.data.sources import manifest_inputs
from crossgran.profiles import Profile

__all__ = ["write_manifest"]


def write_manifest(
    profile: Profile,
    outputs: Mapping[str, tuple[Path, int]],
    report: BuildReport,
    remote_inputs: list[dict[str, object]],
) -> None:
    """Write ``profile.manifest_path``: every input (source, version or file, licence, sha256)
    and every output of ``outputs`` (table name -> (path, rows): file, rows, sha256).

    ``remote_inputs`` (downloading profiles) come from
    :func:`crossgran.data.remote.manifest_remote_inputs`; the pinned wheels and files from
    :func:`crossgran.data.sources.manifest_inputs`.
    """
    tables = {
        name: {
            "file": str(path.relative_to(profile.root)),
            "rows": count,
            "sha256": sha256_file(path),
        }
        for name, (path, count) in outputs.items()
    }
    manifest = {
        "profile": profile.name,
        "inputs": manifest_inputs() + remote_inputs,
        "outputs": tables,
        "counts": report.counts,
    }
    write_text_atomic(profile.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
