"""Layer numbers, one convention for both models: 0 is the input embedding, 1..n the outputs
of the n blocks, and negative numbers count from the end as in fair-esm (-1 = n, the last).

Why one function: ESM embedding, ESM results and BiGCARP representations each resolved
negative layers themselves, with different range checks and messages.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["resolve_layers"]


def resolve_layers(layers: Sequence[int] | None, num_layers: int) -> list[int]:
    """``layers`` as numbers in ``0..num_layers``, in the order given (duplicates kept);
    ``None`` means every layer, ``0..num_layers``.

    A layer outside ``-(num_layers + 1)..num_layers`` raises ``ValueError`` naming it and
    the valid range.
    """
    if layers is None:
        return list(range(num_layers + 1))
    resolved = []
    for layer in layers:
        value = int(layer) + num_layers + 1 if layer < 0 else int(layer)
        if not 0 <= value <= num_layers:
            raise ValueError(
                f"layer {layer} out of range for a {num_layers}-layer model "
                f"(0..{num_layers}, or -{num_layers + 1}..-1 counting from the end)"
            )
        resolved.append(value)
    return resolved
