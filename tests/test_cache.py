"""crossgran.cache: atomic writes, the array cache's self-repair, and per-layer .npz files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossgran.cache import ArrayCache, layer_key, load_layers, load_npz, save_layers


def _leftovers(directory: Path) -> list[Path]:
    """Temporary files of crossgran.cache.atomic_path that a crash could leave behind."""
    return sorted(directory.rglob("*.part"))


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not an npz\xff" * 7)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("corrupt", [_garbage, _truncated, _empty], ids=lambda f: f.__name__[1:])
def test_array_cache_recomputes_a_corrupt_entry(tmp_path, corrupt):
    cache = ArrayCache(tmp_path)
    good = {"pooled": np.arange(12, dtype=np.float32).reshape(3, 4)}
    cache.store("ns", "key", good)
    corrupt(cache.path("ns", "key"))
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return good

    again = cache.get_or_compute("ns", "key", compute)
    assert calls == [1]
    np.testing.assert_array_equal(again["pooled"], good["pooled"])
    reread = cache.load("ns", "key")  # the corrupt entry was replaced by a readable one
    assert reread is not None and np.array_equal(reread["pooled"], good["pooled"])
    assert _leftovers(tmp_path) == []


def test_per_layer_file_layout_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    layers = [0, 2, 10]
    header = {"ids": np.array(["b", "a"]), "layers": np.array(layers), "model_id": np.array("m")}
    per_layer = {
        "mean": {k: rng.normal(size=(2, 3)).astype(np.float32) for k in layers},
        "positions": {k: rng.normal(size=(2, 3)) for k in layers},
    }
    path = tmp_path / "layers.npz"
    save_layers(path, header, per_layer)
    # Header first in its order, then per layer every name: readers rely on these keys.
    assert list(load_npz(path)) == [
        "ids",
        "layers",
        "model_id",
        "mean_L0",
        "positions_L0",
        "mean_L2",
        "positions_L2",
        "mean_L10",
        "positions_L10",
    ]
    assert layer_key("mean", np.int64(2)) == "mean_L2"
    read_header, read_layers = load_layers(path)
    assert list(read_header) == ["ids", "layers", "model_id"]
    assert read_header["ids"].tolist() == ["b", "a"]
    for name, by_layer in per_layer.items():
        assert list(read_layers[name]) == layers
        for layer, array in by_layer.items():
            np.testing.assert_array_equal(read_layers[name][layer], array)
            assert read_layers[name][layer].dtype == array.dtype
    with pytest.raises(ValueError, match="'layers'"):
        save_layers(tmp_path / "bad.npz", {"ids": header["ids"]}, per_layer)
    assert _leftovers(tmp_path) == []
