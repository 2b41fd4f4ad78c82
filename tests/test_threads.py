"""crossgran.threads.limit: the one place thread counts change, and they change back."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from crossgran import threads


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_torch_threads_are_set_inside_and_restored_after() -> None:
    before = torch.get_num_threads()
    inside = 2 if before == 1 else 1  # differs from the current count on any machine
    with threads.limit(torch_threads=inside):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == before


def test_blas_threads_are_set_inside_and_restored_after() -> None:
    before = _blas_threads()
    assert before, "no BLAS library loaded (numpy should have brought one)"
    with threads.limit(blas_threads=1):
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_restored_when_the_body_raises() -> None:
    before = torch.get_num_threads(), _blas_threads()
    with pytest.raises(RuntimeError, match="boom"), threads.limit(torch_threads=1, blas_threads=1):
        raise RuntimeError("boom")
    assert (torch.get_num_threads(), _blas_threads()) == before


def test_none_leaves_both_alone() -> None:
    before = torch.get_num_threads(), _blas_threads()
    with threads.limit():
        assert (torch.get_num_threads(), _blas_threads()) == before
