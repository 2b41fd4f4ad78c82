"""Pinned inputs: PyPI data wheels and pyhmmer's shipped test files, each sha256-checked.

Why wheels: MIBiG, Pfam and the A-domain database cannot be downloaded on an offline
machine, but real copies ship inside pinned PyPI packages (GECCO's BGC-relevant Pfam 35.0
subset and MIBiG class table; PARAS's curated NRPS A-domains). We ``pip download --no-deps``
the wheel (no heavy dependency tree is installed) and read members straight from the zip.
NPLinker's wheel adds the MIBiG 2.0 compound table, whose classes include MIBiG's "Other",
which GECCO's class table leaves out (see :mod:`crossgran.data.nplinker`).
A wheel whose hash differs is refused: a silently changed input would make every
downstream number unreproducible.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from crossgran.cache import atomic_path, sha256_file

__all__ = [
    "PYHMMER_FILES",
    "PYHMMER_VERSION",
    "WHEELS",
    "PinnedFile",
    "PinnedWheel",
    "SourceError",
    "check_hash",
    "extract_wheel_member",
    "fetch_wheel",
    "manifest_inputs",
    "pyhmmer_file",
    "read_wheel_member",
]


class SourceError(RuntimeError):
    """An input is missing or differs from its pinned hash; the message says how to fix it."""


@dataclass(frozen=True)
class PinnedWheel:
    """A PyPI wheel read as data (never installed), pinned by version and sha256."""

    package: str
    version: str
    sha256: str
    licence: str
    note: str

    @property
    def filename(self) -> str:
        return f"{self.package}-{self.version}-py3-none-any.whl"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class PinnedFile:
    """A data file shipped inside an installed package, pinned by version and sha256."""

    package: str
    version: str
    resource: str  # path inside the installed package
    sha256: str
    licence: str


# Hashes as downloaded from PyPI on 2026-11-25 (see README, "Data").
WHEELS: dict[str, PinnedWheel] = {
    "gecco": PinnedWheel(
        "gecco",
        "0.11.0",
        "99e899172b7216cbeee80917f97de80f56f00de195b517707e80e20cb6d385eb",
        "GPL-3.0-or-later (data files only are read)",
        "Pfam 35.0 BGC subset (2,766 HMMs), MIBiG 1,870 BGC classes + Pfam compositions, InterPro",
    ),
    "paras": PinnedWheel(
        "paras",
        "2.0.2",
        "9e6f8ca13da3403e12674a3e6d2e710136cbf03d99a93ea91ab837bc8730cec9",
        "MIT",
        "3,653 NRPS A-domains with substrates, signatures, parent proteins, SMILES",
    ),
    # Pinned 2026-11-28 (issue 13); only its MIBiG 2.0 compound table is read.
    "nplinker": PinnedWheel(
        "nplinker",
        "1.3.2",
        "0abfa35cda46e813d71736a5c6a9a139dcedcfea1e93bc88312fb6828023dc57",
        "Apache-2.0",
        "MIBiG 2.0 compound table (2,112 compounds of 1,470 BGCs) with MIBiG class:subclass; "
        "read for the class 'Other' that GECCO's table leaves empty",
    ),
}

PYHMMER_VERSION = "0.12.3"
PYHMMER_FILES: dict[str, PinnedFile] = {
    name: PinnedFile("pyhmmer", PYHMMER_VERSION, f"tests/data/seqs/{name}", digest, "MIT")
    for name, digest in {
        "BGC0001090.gbk": "cde746178dbe28ef261d46bb9eb224a42d14734449a38a8decde9a239dc0d81a",
        "938293.PRJEB85.HG003687.faa": "7190c967978a9921f69dadc710db2d826b41ec738894bf51c1d439106d0a4a08",
    }.items()
}


def check_hash(path: Path, expected: str, fix: str) -> None:
    """Refuse ``path`` unless its sha256 is ``expected``; the message shows both hashes and ``fix``
    (shared with :mod:`crossgran.data.remote`, so every input is refused in the same words)."""
    actual = sha256_file(path)
    if actual != expected:
        raise SourceError(
            f"{path}: sha256 mismatch\n  expected {expected}\n  actual   {actual}\n"
            f"The file is corrupt, truncated or not the pinned release. Fix: {fix}"
        )


def fetch_wheel(package: str, raw_dir: Path) -> Path:
    """Path of the pinned wheel in ``raw_dir``, downloading it with pip if absent; hash-checked.

    pip downloads into a temporary folder, and the wheel is checked before it is moved into
    ``raw_dir``, so an interrupted or wrong download never sits where a later run reads.
    """
    if package not in WHEELS:
        raise SourceError(f"no pinned wheel named {package!r}; known: {', '.join(WHEELS)}")
    wheel = WHEELS[package]
    target = raw_dir / wheel.filename
    fix = f"delete {target} and rerun to download {wheel.requirement} again"
    if target.exists():
        check_hash(target, wheel.sha256, fix)
        return target
    raw_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".download-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            wheel.requirement,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = Path(tmp) / wheel.filename
        if done.returncode != 0 or not downloaded.exists():
            raise SourceError(
                f"could not download {wheel.requirement} with `{' '.join(command)}`:\n"
                f"{done.stderr.strip()[-2000:]}\nFix: check access to PyPI, or place "
                f"{wheel.filename} (sha256 {wheel.sha256}) in {raw_dir} by hand."
            )
        check_hash(
            downloaded,
            wheel.sha256,
            f"PyPI served a different {wheel.filename}; report it, do not override the pin",
        )
        with atomic_path(target) as part:
            downloaded.replace(part)
    return target


def read_wheel_member(wheel_path: Path, member: str) -> bytes:
    """One file from a wheel, with an error naming the wheel and member when it is absent."""
    try:
        with zipfile.ZipFile(wheel_path) as archive:
            return archive.read(member)
    except KeyError:
        raise SourceError(
            f"{wheel_path} has no member {member!r}; is it the pinned release?"
        ) from None
    except zipfile.BadZipFile as error:
        raise SourceError(
            f"{wheel_path} is not a readable zip ({error}); delete it and rerun"
        ) from None


def extract_wheel_member(wheel_path: Path, member: str, out_dir: Path) -> Path:
    """Extract ``member`` once (atomically) for libraries that need a real path (pyhmmer)."""
    target = out_dir / Path(wheel_path).stem / member
    if not target.exists():
        with atomic_path(target) as part:
            part.write_bytes(read_wheel_member(wheel_path, member))
    return target


def pyhmmer_file(name: str) -> Path:
    """A test file shipped with pyhmmer, checked against its pinned hash."""
    if name not in PYHMMER_FILES:
        raise SourceError(f"no pinned pyhmmer file {name!r}; known: {', '.join(PYHMMER_FILES)}")
    pinned = PYHMMER_FILES[name]
    path = Path(str(files("pyhmmer").joinpath(pinned.resource)))
    if not path.is_file():
        raise SourceError(
            f"{path} is missing; install pyhmmer=={pinned.version} "
            f"(`pip install pyhmmer=={pinned.version}`)"
        )
    check_hash(path, pinned.sha256, f"reinstall pyhmmer=={pinned.version}")
    return path


def manifest_inputs() -> list[dict[str, str]]:
    """Source, version, licence and sha256 of every pinned input, for MANIFEST.json."""
    rows = [
        {
            "source": f"pypi:{w.filename}",
            "version": w.version,
            "licence": w.licence,
            "sha256": w.sha256,
            "content": w.note,
        }
        for w in WHEELS.values()
    ]
    rows += [
        {
            "source": f"pypi:pyhmmer/{f.resource}",
            "version": f.version,
            "licence": f.licence,
            "sha256": f.sha256,
            "content": "pyhmmer test data",
        }
        for f in PYHMMER_FILES.values()
    ]
    return rows
