"""The shared BERT masking (crossgran.models.masking): ratios, what may be masked, the repair of
draws without targets, and the order of random draws that stored models depend on."""

from __future__ import annotations

import math

import pytest
import torch

from crossgran.models.masking import (
    IGNORE_INDEX,
    MASK_SHARE,
    RANDOM_SHARE,
    UNCHANGED_SHARE,
    mask_tokens,
)

MASK_ID, PAD_ID, CLS_ID, EOS_ID = 3, 0, 1, 2
TOKENS = range(10, 30)  # real tokens; disjoint from the replacements, so every outcome is visible
REPLACEMENTS = torch.arange(100, 120)


def _mask(
    tokens: torch.Tensor,
    maskable: torch.Tensor,
    *,
    rate: float,
    generator: torch.Generator,
    rule: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """mask_tokens with this file's mask id and replacement ids."""
    return mask_tokens(
        tokens,
        maskable=maskable,
        rate=rate,
        mask_index=MASK_ID,
        replacements=REPLACEMENTS,
        generator=generator,
        at_least_one=rule,
    )


def _batch(
    rows: int, width: int, min_length: int, seed: int, specials: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random rows (optionally BOS ... EOS around the tokens) and their maskable
    positions (the tokens only)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, width - 1, (rows,), generator=generator)
    tokens = torch.randint(TOKENS.start, TOKENS.stop, (rows, width), generator=generator)
    columns = torch.arange(width)[None, :]
    offset = 1 if specials else 0
    maskable = (columns >= offset) & (columns < lengths[:, None] + offset)
    tokens[~maskable] = PAD_ID
    if specials:
        tokens[:, 0] = CLS_ID
        tokens[torch.arange(rows), lengths + 1] = EOS_ID
    return tokens, maskable


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize(
    ("at_least_one", "rate", "specials"),
    [("row", 0.15, False), ("row", 0.3, False), ("batch", 0.15, True)],
)
def test_target_rate_and_80_10_10_split_over_many_tokens(at_least_one, rate, specials):
    tokens, maskable = _batch(1200, 300, 150, seed=1, specials=specials)
    n = int(maskable.sum())
    assert n >= 200_000
    inputs, labels = _mask(
        tokens, maskable, rate=rate, generator=torch.Generator().manual_seed(2), rule=at_least_one
    )
    targets = labels != IGNORE_INDEX
    assert not (targets & ~maskable).any()  # padding, BOS and EOS are never targets
    assert torch.equal(labels[targets], tokens[targets])
    assert torch.equal(inputs[~targets], tokens[~targets])  # non-targets are shown as they are
    n_targets = int(targets.sum())
    assert _within(n_targets, n, rate)

    shown = inputs[targets]
    masked = int((shown == MASK_ID).sum())
    random = int(torch.isin(shown, REPLACEMENTS).sum())
    unchanged = int((shown == tokens[targets]).sum())
    assert masked + random + unchanged == n_targets
    assert _within(masked, n_targets, MASK_SHARE)
    assert _within(random, n_targets, RANDOM_SHARE)
    assert _within(unchanged, n_targets, UNCHANGED_SHARE)
    # Random replacements are uniform over the replacement ids.
    counts = torch.bincount(
        shown[torch.isin(shown, REPLACEMENTS)] - REPLACEMENTS[0], minlength=len(REPLACEMENTS)
    )
    assert all(_within(int(c), random, 1 / len(REPLACEMENTS)) for c in counts)


def test_row_repair_gives_each_row_one_uniform_target_among_its_maskable_positions():
    """Rate 0: no row draws a target, so every row with a maskable position gets exactly one,
    anywhere among them (not only where a right-padded row would have them), and rows
    without maskable positions get none."""
    tokens = torch.full((3, 8), 10)
    maskable = torch.zeros((3, 8), dtype=torch.bool)
    maskable[0, [1, 3, 4, 6]] = True
    maskable[1, :2] = True
    picks = torch.zeros(8, dtype=torch.long)
    generator = torch.Generator().manual_seed(0)
    draws = 4000
    for _ in range(draws):
        _, labels = _mask(tokens, maskable, rate=0.0, generator=generator, rule="row")
        targets = labels != IGNORE_INDEX
        assert targets.sum(dim=1).tolist() == [1, 1, 0]
        assert not (targets & ~maskable).any()
        picks += targets[0].long()
    assert all(_within(int(picks[column]), draws, 0.25) for column in (1, 3, 4, 6))


def test_batch_repair_gives_the_batch_one_target_and_refuses_nothing_to_mask():
    tokens, maskable = _batch(4, 12, 2, seed=3, specials=True)
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        _, labels = _mask(tokens, maskable, rate=0.0, generator=generator, rule="batch")
        targets = labels != IGNORE_INDEX
        assert int(targets.sum()) == 1 and bool(targets[maskable].any())
    with pytest.raises(ValueError, match="nothing to mask"):
        _mask(tokens, torch.zeros_like(maskable), rate=0.15, generator=generator, rule="batch")
    # Row mode leaves rows without maskable positions alone instead.
    _, labels = _mask(
        tokens, torch.zeros_like(maskable), rate=0.15, generator=generator, rule="row"
    )
    assert (labels == IGNORE_INDEX).all()


@pytest.mark.parametrize(
    ("at_least_one", "rate"), [("row", 0.05), ("row", 0.5), ("batch", 0.05), ("batch", 0.5)]
)
def test_draw_order_is_targets_repair_action_replacements(at_least_one, rate):
    """Stored models depend on the order of draws from the generator; replay it by hand. At
    rate 0.05 some rows (and, with these seeds, the whole batch) draw no target, so the
    repair runs; at 0.5 there are many targets to tell the later draws apart."""
    rows, width = (6, 10) if rate < 0.1 else (16, 20)
    tokens, maskable = _batch(rows, width, 1, seed=4, specials=at_least_one == "batch")
    inputs, labels = _mask(
        tokens, maskable, rate=rate, generator=torch.Generator().manual_seed(11), rule=at_least_one
    )

    replay = torch.Generator().manual_seed(11)
    targets = (torch.rand(tokens.shape, generator=replay) < rate) & maskable
    if at_least_one == "row":
        empty = ~targets.any(dim=1) & maskable.any(dim=1)
        assert bool(empty.any()) == (rate < 0.1), "the repair path is not exercised as meant"
        if empty.any():
            pick = (torch.rand(len(tokens), generator=replay) * maskable.sum(dim=1)).long()
            for row in empty.nonzero().squeeze(1).tolist():
                targets[row, maskable[row].nonzero().squeeze(1)[pick[row]]] = True
    else:
        assert bool(targets.any()) == (rate > 0.1), "the repair path is not exercised as meant"
        if not targets.any():
            candidates = maskable.nonzero()
            row, column = candidates[torch.randint(len(candidates), (1,), generator=replay)][0]
            targets[row, column] = True
    action = torch.rand(tokens.shape, generator=replay)
    random_ids = REPLACEMENTS[torch.randint(len(REPLACEMENTS), tokens.shape, generator=replay)]
    expected = tokens.clone()
    expected[targets & (action < 0.8)] = MASK_ID
    swap = targets & (action >= 0.8) & (action < 0.9)
    assert rate < 0.1 or swap.sum() >= 2, "too few random replacements to check their draw"
    expected[swap] = random_ids[swap]
    assert torch.equal(inputs, expected)
    assert torch.equal(labels, torch.where(targets, tokens, IGNORE_INDEX))


def test_bad_arguments_are_named():
    tokens, maskable = _batch(2, 6, 1, seed=5, specials=False)
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="differ in shape"):
        _mask(tokens, maskable[:, :3], rate=0.15, generator=generator, rule="row")
    with pytest.raises(ValueError, match="at_least_one"):
        _mask(tokens, maskable, rate=0.15, generator=generator, rule="sequence")
