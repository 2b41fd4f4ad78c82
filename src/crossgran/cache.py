"""Atomic file writes and a content-addressed on-disk cache of numpy arrays.

Why: every expensive step (hmmsearch, ESM extraction, BiGCARP representations) is
rerun by papermill and by CI; a rerun must reuse what an earlier run computed, and a
run killed mid-write must never leave a file that a later run mistakes for a result.
Keys hash the inputs *and* the code version, so changed code never reads stale data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from crossgran import __version__

CHUNK = 1 << 20
_LAYER_KEY = re.compile(r"(?P<name>.+)_L(?P<layer>\d+)")

__all__ = [
    "ArrayCache",
    "atomic_path",
    "cache_key",
    "layer_key",
    "load_layers",
    "load_npz",
    "save_layers",
    "save_npz",
    "sha256_file",
    "write_text_atomic",
]


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(*parts: object) -> str:
    """A stable hex key from JSON-able parts plus the package version."""
    payload = json.dumps([__version__, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz(path: Path | str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_npz(path: Path | str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), loaded eagerly so the file is closed at once."""
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def layer_key(name: str, layer: int) -> str:
    """The ``.npz`` key of ``name``'s array at ``layer``: ``<name>_L<layer>``."""
    return f"{name}_L{int(layer)}"


def save_layers(
    path: Path | str,
    header: Mapping[str, np.ndarray],
    per_layer: Mapping[str, Mapping[int, np.ndarray]],
) -> None:
    """Write per-layer results as one ``.npz``, atomically: the ``header`` arrays first (in
    their order; ``header["layers"]`` lists the layers), then for each layer, for each name of
    ``per_layer``, the array ``<name>_L<layer>``.

    Why one writer: ESM embeddings and BiGCARP representations are both "a few id lists plus
    one matrix per layer", read back by later notebooks; one layout and one key scheme keep
    every such file readable by :func:`load_layers`.
    """
    if "layers" not in header:
        raise ValueError("header needs a 'layers' array (the layers stored)")
    arrays = dict(header)
    for layer in header["layers"]:
        for name, by_layer in per_layer.items():
            arrays[layer_key(name, layer)] = by_layer[int(layer)]
    save_npz(path, arrays)


def load_layers(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, dict[int, np.ndarray]]]:
    """Read what :func:`save_layers` wrote: ``(header, per_layer)``, where ``header`` holds
    every array not named ``<name>_L<layer>`` (``layers`` included) and ``per_layer[name]``
    maps each stored layer to its array."""
    stored = load_npz(path)
    layers = {int(layer) for layer in stored["layers"]}
    header: dict[str, np.ndarray] = {}
    per_layer: dict[str, dict[int, np.ndarray]] = {}
    for key, array in stored.items():
        match = _LAYER_KEY.fullmatch(key)
        if match and int(match["layer"]) in layers:
            per_layer.setdefault(match["name"], {})[int(match["layer"])] = array
        else:
            header[key] = array
    return header, per_layer


class ArrayCache:
    """Arrays stored as ``<dir>/<namespace>/<key>.npz``; unreadable entries are recomputed."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)

    def path(self, namespace: str, key: str) -> Path:
        return self.directory / namespace / f"{key}.npz"

    def load(self, namespace: str, key: str) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when absent or corrupt (a corrupt entry is deleted)."""
        entry = self.path(namespace, key)
        if not entry.is_file():
            return None
        try:
            return load_npz(entry)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
            entry.unlink(missing_ok=True)
            return None

    def store(self, namespace: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        save_npz(self.path(namespace, key), arrays)

    def get_or_compute(
        self, namespace: str, key: str, compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        cached = self.load(namespace, key)
        if cached is not None:
            return cached
        arrays = dict(compute())
        self.store(namespace, key, arrays)
        return arrays
