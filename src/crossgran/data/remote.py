"""Remote inputs of the profiles that download (``profile.downloads``): URLs, a hash lock, pooch.

Why a second mechanism beside the pinned wheels (:mod:`crossgran.data.sources`): the paper's
setting needs the real releases (all of MIBiG 3.1, all of Pfam-A 35.0, the 650M-parameter ESM
weights, the official BiGCARP checkpoints), which no PyPI wheel ships. They are fetched over
HTTP with pooch, which streams into a temporary file in the destination folder and moves it
into place only after the transfer (and the hash check, when a hash is known) succeeded, so an
interrupted download never sits where a later run reads. None of these publishers lists a
sha256, so the first download *records* the hash it observed in a lock file; every later run
on any machine sharing that lock enforces it.

One place for every remote file: :func:`remote_path` says where each one lives, and the check
(:func:`check_full_inputs`), the download (:func:`fetch_remote`) and the ESM loader
(:func:`crossgran.models.esm.load_esm`) all read it there. Which files a run needs is
:func:`required_remote_files`, the one list both the check and :func:`fetch_required` walk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from crossgran.cache import sha256_file, write_text_atomic
from crossgran.data.sources import SourceError, check_hash
from crossgran.profiles import Profile

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "FAIR_ESM_MODELS",
    "FULL_INPUTS",
    "LOCK_NAME",
    "MIRROR_ENV",
    "OFFICIAL_BIGCARP_RANDOM",
    "PROBE_TIMEOUT_S",
    "REMOTE_FILES",
    "RUN_INPUTS",
    "RemoteFile",
    "check_full_inputs",
    "check_inputs",
    "fair_esm_weights",
    "fetch_remote",
    "fetch_required",
    "full_inputs_obtainable",
    "full_lock_path",
    "hub_checkpoint_dir",
    "manifest_remote_inputs",
    "read_lock",
    "remote_path",
    "remote_url",
    "required_remote_files",
]

MIRROR_ENV = "CROSSGRAN_MIRROR"
LOCK_NAME = "full.lock.json"
PROBE_TIMEOUT_S = 3.0  # total wall time of check_full_inputs' reachability probe
DOWNLOAD_TIMEOUT_S = (10.0, 60.0)  # requests' (connect, per-read) timeouts; not a total limit


@dataclass(frozen=True)
class RemoteFile:
    """One remote input of a downloading profile. ``sha256`` None: recorded in the lock on
    first use. ``torch_hub``: kept in torch's hub cache (:func:`hub_checkpoint_dir`), not in
    the project's ``data/raw`` (see :func:`remote_path`)."""

    name: str
    url: str
    filename: str
    sha256: str | None
    licence: str
    note: str
    torch_hub: bool = False


_MIBIG = "https://dl.secondarymetabolites.org/mibig"
_PFAM = "https://ftp.ebi.ac.uk/pub/databases/Pfam/releases/Pfam35.0"
_FAIR_ESM = "https://dl.fbaipublicfiles.com/fair-esm"
# sequence-models 1.8.0 (sequence_models/pretrained.py) builds BiGCARP URLs as
# BIG_URL + "<name>.pt?download=1" with BIG_URL = "https://zenodo.org/record/6857704/files/";
# the three names are listed in its package metadata (README), not in the source.
_BIGCARP = "https://zenodo.org/record/6857704/files"


# fair-esm's published models among the remote files: REMOTE_FILES name -> hub model name.
FAIR_ESM_MODELS = {"esm1b": "esm1b_t33_650M_UR50S", "esm2_650M": "esm2_t33_650M_UR50D"}
# The remote files a downloading profile's tables are built from (crossgran.data.tables).
FULL_INPUTS = ("pfam_hmm", "pfam_clans", "mibig_json", "mibig_gbk")


def _remote(
    name: str, url: str, filename: str, licence: str, note: str, torch_hub: bool = False
) -> RemoteFile:
    return RemoteFile(name, url, filename, None, licence, note, torch_hub)


# No sha256 is pinned: none of these publishers lists one, and a hash not observed on a real
# download would be invented. The lock file records each on first download (see fetch_remote).
REMOTE_FILES: dict[str, RemoteFile] = {
    remote.name: remote
    for remote in (
        _remote(
            "mibig_json",
            f"{_MIBIG}/mibig_json_3.1.tar.gz",
            "mibig_json_3.1.tar.gz",
            "CC BY 4.0",
            "MIBiG 3.1 BGC annotations (JSON): classes, compounds, SMILES",
        ),
        _remote(
            "mibig_gbk",
            f"{_MIBIG}/mibig_gbk_3.1.tar.gz",
            "mibig_gbk_3.1.tar.gz",
            "CC BY 4.0",
            "MIBiG 3.1 BGC sequences (GenBank) with CDS translations",
        ),
        _remote(
            "pfam_hmm",
            f"{_PFAM}/Pfam-A.hmm.gz",
            "Pfam-A.hmm.gz",
            "CC0",
            "Pfam-A 35.0 profile HMMs (all families, gathering cutoffs)",
        ),
        _remote(
            "pfam_clans",
            f"{_PFAM}/Pfam-A.clans.tsv.gz",
            "Pfam-A.clans.tsv.gz",
            "CC0",
            "Pfam-A 35.0 family -> clan table",
        ),
        *(
            _remote(
                key,
                f"{_FAIR_ESM}/models/{model}.pt",
                f"{model}.pt",
                "MIT",
                f"fair-esm {model} weights",
                torch_hub=True,
            )
            for key, model in FAIR_ESM_MODELS.items()
        ),
        # fair-esm (esm/pretrained.py) serves the contact heads from /regression/, not /models/;
        # they sit beside the weights, where load_esm looks for them.
        *(
            _remote(
                f"{key}_regression",
                f"{_FAIR_ESM}/regression/{model}-contact-regression.pt",
                f"{model}-contact-regression.pt",
                "MIT",
                f"fair-esm {model} contact head",
                torch_hub=True,
            )
            for key, model in FAIR_ESM_MODELS.items()
        ),
        *(
            _remote(
                model,
                f"{_BIGCARP}/{model}.pt?download=1",
                f"{model}.pt",
                "see Zenodo record 6857704",
                f"official BiGCARP checkpoint {model}",
            )
            for model in ("bigcarp_random", "bigcarp_esm1bfinetune", "bigcarp_esm1bfrozen")
        ),
    )
}


def hub_checkpoint_dir() -> Path:
    """Where fair-esm (torch.hub) keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    import torch.hub  # imported on use: only the weights' path needs torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def remote_path(name: str, raw_dir: Path) -> Path:
    """Where remote file ``name`` lives: ``raw_dir/<filename>``, but fair-esm's weights and
    contact heads in torch's hub cache (:func:`hub_checkpoint_dir`).

    Why the hub cache for ESM: it is where fair-esm itself puts them, so weights a user already
    has are used as they are (no second copy of gigabytes), and every caller of
    :func:`crossgran.models.esm.load_esm` (notebooks, ``crossgran embed``) finds them from the
    model name alone, without knowing a project root. The hash lock stays the project's.
    """
    remote = REMOTE_FILES[name]
    folder = hub_checkpoint_dir() if remote.torch_hub else Path(raw_dir)
    return folder / remote.filename


def fair_esm_weights(spec: str) -> str | None:
    """The REMOTE_FILES name of an ESM spec's weights (a fair-esm hub name listed in
    :data:`FAIR_ESM_MODELS`), else None (local models, ``.pt`` paths, unlisted hub models)."""
    return next((key for key, model in FAIR_ESM_MODELS.items() if model == spec), None)


def _table_inputs(profile: Profile) -> tuple[str, ...]:
    return FULL_INPUTS


def _esm_weights(profile: Profile) -> tuple[str, ...]:
    name = fair_esm_weights(profile.esm.spec)
    return (name,) if name else ()


# The released random-init BiGCARP checkpoint's REMOTE_FILES name.
OFFICIAL_BIGCARP_RANDOM = "bigcarp_random"


def _bigcarp_weights(profile: Profile) -> tuple[str, ...]:
    """The released random-init checkpoint, where the profile imports it instead of training
    (``Profile.bigcarp_official_random``); the ESM-init checkpoints are never read (those
    runs are retrained, as the paper did)."""
    return (OFFICIAL_BIGCARP_RANDOM,) if profile.bigcarp_official_random else ()


# What a downloading profile's run reads, one function per part of the run (profile -> names);
# the check and the download follow this list.
RUN_INPUTS = (_table_inputs, _esm_weights, _bigcarp_weights)


def required_remote_files(profile: Profile) -> tuple[str, ...]:
    """The remote files a run of ``profile`` reads, in :data:`RUN_INPUTS` order: none for a
    profile that does not download (its ESM is local or placed by the user), else the table
    build's inputs (:data:`FULL_INPUTS`) and the weights of ``profile.esm.spec`` when they are
    a remote file, and the released random-init BiGCARP where the profile imports it. Nothing
    else: the contact heads, the other ESM and the ESM-init BiGCARP checkpoints are not read by
    the run, so an offline user need not supply them."""
    if not profile.downloads:
        return ()
    return tuple(dict.fromkeys(name for part in RUN_INPUTS for name in part(profile)))


def remote_url(remote: RemoteFile, base_url: str | None = None) -> str:
    """Where ``remote`` is fetched from: ``<mirror>/<filename>`` when a mirror is set.

    A mirror (``base_url``, else ``$CROSSGRAN_MIRROR``) is one flat folder holding the files
    under their ``filename``s, so any static server (or ``python -m http.server``) can be one.
    """
    mirror = base_url or os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{remote.filename}" if mirror else remote.url


def full_lock_path(root: Path) -> Path:
    """The lock of observed hashes of a project root (shared by every run under that root)."""
    return Path(root) / "data" / LOCK_NAME


def read_lock(lock_path: Path) -> dict[str, dict[str, object]]:
    """The recorded entries (name -> filename, sha256, bytes, source); unreadable is an error,
    not {}."""
    if not lock_path.is_file():
        return {}
    try:
        entries = json.loads(lock_path.read_text())
    except json.JSONDecodeError as error:
        raise SourceError(
            f"{lock_path} is not valid JSON ({error}); restore it from version "
            "control, or delete it to record the hashes afresh"
        ) from None
    if not isinstance(entries, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
        for entry in entries.values()
    ):
        raise SourceError(
            f"{lock_path} must map names to {{'sha256': ...}} entries; "
            "restore it from version control, or delete it to record the hashes "
            "afresh"
        )
    return entries


def manifest_remote_inputs(names: Sequence[str], lock_path: Path) -> list[dict[str, object]]:
    """URL, licence, size and locked sha256 of the remote inputs ``names``, for MANIFEST.json.

    The hash is the lock's, i.e. the one :func:`fetch_remote` enforced when it handed the file
    over, so the manifest names exactly the bytes a build read without hashing gigabytes again.
    """
    entries = read_lock(lock_path)
    missing = [name for name in names if name not in entries]
    if missing:
        raise SourceError(
            f"{lock_path} records no hash for {', '.join(missing)}; fetch them with "
            "crossgran.data.remote.fetch_remote first (build_all does)"
        )
    return [
        {
            "source": REMOTE_FILES[name].url,
            "filename": REMOTE_FILES[name].filename,
            "licence": REMOTE_FILES[name].licence,
            "sha256": str(entries[name]["sha256"]),
            "bytes": entries[name].get("bytes"),
            "content": REMOTE_FILES[name].note,
        }
        for name in names
    ]


def _record_hash(lock_path: Path, remote: RemoteFile, path: Path, digest: str, source: str) -> None:
    """Add one observed hash; the lock is re-read just before writing so other names are kept."""
    entries = read_lock(lock_path)
    entries[remote.name] = {
        "filename": remote.filename,
        "sha256": digest,
        "bytes": path.stat().st_size,
        "source": source,
    }
    write_text_atomic(lock_path, json.dumps(entries, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's INFO lines, which tell users to pin the hash by hand: the lock does that."""
    import pooch  # imported on use: pooch pulls in requests and tqdm, which offline runs never need

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def fetch_remote(
    name: str, raw_dir: Path, base_url: str | None = None, lock_path: Path | None = None
) -> Path:
    """Path of remote input ``name`` (at :func:`remote_path`), downloaded with pooch if absent;
    hash-checked.

    The expected sha256 is the pinned one, else the one recorded in the lock (default
    ``raw_dir/../full.lock.json``, i.e. :func:`full_lock_path` of the profile root). A file
    already in place is reused without any request (it may have been placed by hand) and
    checked against that hash; with no hash yet, the hash of the first file seen is recorded.
    """
    if name not in REMOTE_FILES:
        raise SourceError(f"no remote input named {name!r}; known: {', '.join(REMOTE_FILES)}")
    remote = REMOTE_FILES[name]
    raw_dir = Path(raw_dir)
    lock_path = Path(lock_path) if lock_path is not None else raw_dir.parent / LOCK_NAME
    target = remote_path(name, raw_dir)
    url = remote_url(remote, base_url)
    locked = read_lock(lock_path).get(name)
    expected = remote.sha256 or (str(locked["sha256"]) if locked else None)
    if remote.sha256:
        fix = (
            f"delete {target} and rerun to download it again; if {url} really serves a "
            "different file, report it instead of changing the pinned hash"
        )
    else:
        fix = (
            f"delete {target} and rerun to download it again; if the publisher really changed "
            f"the file, check that this is intended, then delete the {name!r} entry from "
            f"{lock_path} so that the next download is recorded afresh"
        )
    if target.is_file():
        if expected is None:
            _record_hash(
                lock_path,
                remote,
                target,
                sha256_file(target),
                "placed by hand, not downloaded by crossgran",
            )
        else:
            check_hash(target, expected, fix)
        return target
    _download(remote, url, expected, target, fix)
    if expected is None:
        _record_hash(lock_path, remote, target, sha256_file(target), url)
    return target


def fetch_required(profile: Profile, base_url: str | None = None) -> dict[str, Path]:
    """Every remote file a run of ``profile`` reads (:func:`required_remote_files`), fetched
    and hash-checked against the profile's lock: name -> path.

    Why all at once, weights included, in the table build (notebook 01, ``crossgran data``):
    the later steps load from disk only (:func:`crossgran.models.esm.load_esm` never
    downloads), and a download that fails stops the run before hours of work, not after.
    """
    lock = full_lock_path(profile.root)
    return {
        name: fetch_remote(name, profile.raw_dir, base_url, lock)
        for name in required_remote_files(profile)
    }


def _download(remote: RemoteFile, url: str, expected: str | None, target: Path, fix: str) -> None:
    """Fetch ``url`` to ``target`` with pooch (checked against ``expected`` when known); any
    failure is a :class:`SourceError` naming the URL and the fix, with nothing left behind."""
    import pooch  # imported on use: pooch pulls in requests and tqdm, which offline runs never need
    import requests

    try:
        with _quiet_pooch():
            pooch.retrieve(
                url,
                known_hash=f"sha256:{expected}" if expected else None,
                fname=remote.filename,
                path=target.parent,
                progressbar=False,
                downloader=pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT_S),
            )
    except ValueError as error:  # pooch's hash mismatch; its temporary file is already deleted
        actual = re.search(r"but got ([0-9a-f]{64})", str(error))
        if actual is None:
            raise
        raise SourceError(
            f"{target}: sha256 mismatch of the file downloaded from {url}\n  expected {expected}\n"
            f"  actual   {actual.group(1)}\nNothing was kept. Fix: {fix}"
        ) from None
    except requests.exceptions.RequestException as error:
        raise SourceError(
            f"could not download {remote.name} from {url} ({type(error).__name__}: {error}). "
            f"Nothing was kept. Fix: check the network and rerun (a second call starts the "
            f"download again), or set ${MIRROR_ENV} to a server holding {remote.filename}, or "
            f"place the file at {target} by hand."
        ) from None
    os.chmod(target, 0o644)  # pooch's temporary file is 0600; raw_dir is shared like results


def _reachable(hosts: set[tuple[str, int]], timeout: float) -> set[tuple[str, int]]:
    """The hosts accepting a TCP connection within ``timeout`` seconds in total.

    Each probe runs in a daemon thread because name resolution ignores socket timeouts; a
    probe still resolving when the time is up counts as unreachable and is abandoned.
    """
    ok: set[tuple[str, int]] = set()
    guard = threading.Lock()  # an abandoned probe may still add while the result is copied

    def probe(host: tuple[str, int]) -> None:
        try:
            socket.create_connection(host, timeout=timeout).close()
        except OSError:
            return
        with guard:
            ok.add(host)

    threads = [threading.Thread(target=probe, args=(host,), daemon=True) for host in hosts]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with guard:
        return set(ok)


def _host_of(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def check_full_inputs(profile: Profile, base_url: str | None = None) -> None:
    """Fail early, with one message, when inputs the run reads are absent and unreachable.

    The inputs are exactly :func:`required_remote_files` (what the run reads, nothing more),
    each looked for at :func:`remote_path` (where the download puts it and the loaders read
    it). Only presence is checked here: hashing gigabytes of weights is left to
    :func:`fetch_remote`, which checks each file when it is fetched. Missing files are fine
    while their host (or the mirror) accepts connections, since the run will download them;
    the probe takes at most PROBE_TIMEOUT_S.
    """
    missing = {
        name: path
        for name in required_remote_files(profile)
        if not (path := remote_path(name, profile.raw_dir)).is_file()
    }
    if not missing:
        return
    urls = {name: remote_url(REMOTE_FILES[name], base_url) for name in missing}
    reachable = _reachable({_host_of(url) for url in urls.values()}, PROBE_TIMEOUT_S)
    if all(_host_of(url) in reachable for url in urls.values()):
        return
    raise SourceError(_missing_message(profile, missing, urls, reachable))


def _missing_message(
    profile: Profile,
    missing: dict[str, Path],
    urls: dict[str, str],
    reachable: set[tuple[str, int]],
) -> str:
    """check_full_inputs' message: one line per missing file (where to place it, where it is
    served), then the ways out."""
    lines = [
        (
            f"{len(missing)} input(s) of the {profile.name} profile are missing and cannot all "
            f"be downloaded (no connection within {PROBE_TIMEOUT_S:g} s to the host marked "
            "'unreachable'):"
        )
    ]
    for name, path in missing.items():
        url = urls[name]
        state = "reachable" if _host_of(url) in reachable else "unreachable"
        lines.append(
            f"  {name}: place {REMOTE_FILES[name].filename} at {path}\n      (from {url}, {state})"
        )
    if any(REMOTE_FILES[name].torch_hub for name in missing):
        lines.append(
            "ESM weights go to torch's hub cache ($TORCH_HOME/hub/checkpoints), where fair-esm "
            "keeps them: weights already there are used as they are."
        )
    lines.append(
        f"Fix: run where the hosts are reachable, or download the files elsewhere and place each "
        f"at its path above, or serve them from one folder and set {MIRROR_ENV}=<its URL>. "
        f"Hashes observed on first download (or first use of a file placed by hand) are kept "
        f"in {full_lock_path(profile.root)}."
    )
    return "\n".join(lines)


def check_inputs(profile: Profile) -> None:
    """Every notebook's first check. A downloading profile (``profile.downloads``) needs its
    remote inputs, so a machine that has neither them nor the network stops here with one
    message (:func:`check_full_inputs`); the offline profiles' wheels are fetched and
    hash-checked when first read."""
    if profile.downloads:
        check_full_inputs(profile)


def full_inputs_obtainable(profile: Profile) -> bool:
    """Whether the full profile could start here: every input present, or its host reachable
    (the same test as :func:`check_full_inputs`, as a yes/no for
    :func:`crossgran.session.auto_profile_name`)."""
    try:
        check_full_inputs(profile)
    except SourceError:
        return False
    return True
