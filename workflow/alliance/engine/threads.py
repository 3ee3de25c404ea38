"""One BLAS thread while an engine fits (threadpoolctl, when installed).

Why: the engines' matrix work is row passes and small dense products, where BLAS threads only
add overhead, and on a busy machine (more runnable jobs than cores) OpenBLAS threads waiting
for each other make it many times slower: the 10k-row missed_sessions GLMM took 11.4 s with
the default threads and 0.8 s with one (load average 8.7 on 2 cores). One thread also keeps
the order of the sums fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Single-threaded BLAS inside the block (unchanged without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional; without it BLAS keeps its own thread count
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
