"""Thread control, in one place: how many threads torch and the BLAS libraries may use.

Why it matters here: on a busy two-core machine idle-spinning OpenMP/BLAS threads cost far
more than they save for the small matrix products of CKA and probe fits (measured ~10-20x
slower with two threads), and torch's reduction order depends on its thread count, so a fixed
count is part of what makes a stored result reproducible. A context manager restores the
previous settings on exit, so a library call never changes its caller's process for good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def limit(*, torch_threads: int | None = None, blas_threads: int | None = None) -> Iterator[None]:
    """Run the body with at most ``torch_threads`` torch intra-op threads and ``blas_threads``
    BLAS threads (``None``: leave that library as it is); both are restored on exit."""
    with contextlib.ExitStack() as stack:
        if blas_threads is not None:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=blas_threads, user_api="blas"))
        if torch_threads is not None:
            import torch

            previous = torch.get_num_threads()
            torch.set_num_threads(torch_threads)
            stack.callback(torch.set_num_threads, previous)
        yield
