"""crossgran.models.layers.resolve_layers: the one layer-numbering convention of both models."""

from __future__ import annotations

import numpy as np
import pytest

from crossgran.models.layers import resolve_layers


def test_negative_layers_count_from_the_end_and_order_is_kept():
    assert resolve_layers([-1, 0, 2, -3], 4) == [4, 0, 2, 2]
    assert resolve_layers([-5], 4) == [0]  # -(n + 1) is the input embedding
    assert resolve_layers(None, 3) == [0, 1, 2, 3]
    assert resolve_layers([], 3) == []
    resolved = resolve_layers(np.array([1, -1]), 2)
    assert resolved == [1, 2] and all(type(layer) is int for layer in resolved)


@pytest.mark.parametrize("layer", [5, -6])
def test_out_of_range_names_the_layer_and_the_range(layer):
    with pytest.raises(
        ValueError,
        match=rf"layer {layer} out of range for a 4-layer model "
        r"\(0\.\.4, or -5\.\.-1 counting from the end\)",
    ):
        resolve_layers([0, layer], 4)
