"""BERT masking: the one implementation shared by ESM pretraining and BiGCARP training.

Why one function: both models learn by masked-token prediction with the same 80/10/10 rule
(of the chosen targets, 80% are shown as ``<mask>``, 10% as a random real token and 10%
unchanged, so that the model cannot learn that an unmasked token is always correct). Two
copies of that rule drifted apart before in small ways (what may be masked, how an all-empty
draw is repaired); here the differences are explicit arguments:

* ``maskable``: which positions may become targets (ESM: residues, not padding/BOS/EOS;
  BiGCARP: every real token, not padding).
* ``at_least_one``: how a draw without targets is repaired. ``"row"`` (BiGCARP) gives every
  row with a maskable token at least one target, so a one-token window still teaches
  something; ``"batch"`` (ESM pretraining) only guarantees one target in the whole batch,
  so that the loss is defined.
* ``rate``, ``mask_index`` and ``replacements`` (the ids a random replacement may draw:
  amino acids for ESM, Pfam families for BiGCARP).

Random draws happen in one fixed order, which stored models depend on: the target uniform,
the repair (only when needed), the action uniform, then the replacement ids.
"""

from __future__ import annotations

from typing import Literal

import torch

# Target value that cross-entropy skips (PyTorch's default ignore_index): positions that
# are not targets.
IGNORE_INDEX = -100
# Of the targets: shown as <mask> / replaced by a random token / left unchanged.
MASK_SHARE = 0.8
RANDOM_SHARE = 0.1
UNCHANGED_SHARE = 0.1
# The action threshold between "random" and "unchanged", written out: in binary floating
# point 0.8 + 0.1 is not 0.9, and trained models depend on the exact comparison.
_RANDOM_BELOW = 0.9
AtLeastOne = Literal["row", "batch"]
AT_LEAST_ONE: tuple[AtLeastOne, ...] = ("row", "batch")

__all__ = [
    "AT_LEAST_ONE",
    "IGNORE_INDEX",
    "MASK_SHARE",
    "RANDOM_SHARE",
    "UNCHANGED_SHARE",
    "AtLeastOne",
    "mask_tokens",
]


def mask_tokens(
    tokens: torch.Tensor,
    *,
    maskable: torch.Tensor,
    rate: float,
    mask_index: int,
    replacements: torch.Tensor,
    generator: torch.Generator,
    at_least_one: AtLeastOne,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose targets among ``maskable`` positions of the (rows, length) ``tokens`` and hide them.

    Each maskable position is a target with probability ``rate``; targets are shown as
    ``mask_index`` (80%), a uniformly drawn id of ``replacements`` (10%) or unchanged (10%).
    Returns ``(inputs, labels)``: labels hold the original token at targets and
    :data:`IGNORE_INDEX` elsewhere. All randomness comes from ``generator`` (a CPU generator;
    ``tokens`` must be on the CPU). See the module docstring for ``at_least_one``.
    """
    if tokens.shape != maskable.shape:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} and maskable {tuple(maskable.shape)} differ in shape"
        )
    if at_least_one not in AT_LEAST_ONE:
        raise ValueError(f"at_least_one must be one of {AT_LEAST_ONE}, not {at_least_one!r}")
    targets = (torch.rand(tokens.shape, generator=generator) < rate) & maskable
    if at_least_one == "row":
        _one_per_row(targets, maskable, generator)
    else:
        _one_per_batch(targets, maskable, generator)
    action = torch.rand(tokens.shape, generator=generator)
    random_tokens = replacements[
        torch.randint(len(replacements), tokens.shape, generator=generator)
    ]
    inputs = tokens.clone()
    inputs[targets & (action < MASK_SHARE)] = mask_index
    swap = targets & (action >= MASK_SHARE) & (action < _RANDOM_BELOW)
    inputs[swap] = random_tokens[swap]
    labels = torch.where(targets, tokens, torch.full_like(tokens, IGNORE_INDEX))
    return inputs, labels


def _one_per_row(targets: torch.Tensor, maskable: torch.Tensor, generator: torch.Generator) -> None:
    """Give each row that has maskable positions but no target one target, uniformly among its
    maskable positions (one uniform per row is drawn, for every row, only when some row needs
    it)."""
    empty = ~targets.any(dim=1) & maskable.any(dim=1)
    if not empty.any():
        return
    counts = maskable.sum(dim=1)
    pick = (torch.rand(targets.shape[0], generator=generator) * counts).long()
    # Column of each row's (pick + 1)-th maskable position; for right-padded rows whose
    # maskable positions come first, that is column ``pick`` itself.
    column = (maskable.cumsum(dim=1) <= pick[:, None]).sum(dim=1)
    rows = empty.nonzero().squeeze(1)
    targets[rows, column[rows]] = True


def _one_per_batch(
    targets: torch.Tensor, maskable: torch.Tensor, generator: torch.Generator
) -> None:
    """When the whole batch drew no target, make one maskable position (uniformly drawn) one."""
    if targets.any():
        return
    candidates = maskable.nonzero()
    if len(candidates) == 0:
        raise ValueError("nothing to mask: no maskable position in the batch")
    pick = candidates[torch.randint(len(candidates), (1,), generator=generator)][0]
    targets[pick[0], pick[1]] = True
