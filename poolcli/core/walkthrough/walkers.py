"""The walkers by name: an op's ``walkthrough`` attribute names one of these.

Each walker is ``walker(stage, x, plan, context, select) -> (output, body)``: it computes the
stage's whole output (nested lists) with ``core.textbook``'s loops, and returns ``body``, a
function that yields the stage's items when they are read.

    >>> sorted(WALKERS)
    ['adaptive', 'conv', 'elementwise', 'flatten', 'global', 'linear', 'luma', 'pad', 'resample', 'transposed', 'unpool', 'window']
"""

from __future__ import annotations

from typing import Any, Callable

from .decoder import walk_conv_transpose, walk_upsample
from .elements import walk_elementwise, walk_flatten, walk_linear, walk_luma, walk_pad, walk_unpool
from .windows import walk_conv, walk_pool

WALKERS: dict[str, Callable[..., tuple[list, Any]]] = {
    "window": walk_pool,  # sliding windows, reduced by the op's ``reduction``
    "adaptive": walk_pool,  # torch's adaptive windows
    "global": walk_pool,  # one window over the plane
    "conv": walk_conv,
    "unpool": walk_unpool,
    "pad": walk_pad,
    "elementwise": walk_elementwise,  # the op's ``element()`` and ``definition()``
    "luma": walk_luma,  # the op's ``pixel()`` and constants
    "flatten": walk_flatten,
    "linear": walk_linear,
    "transposed": walk_conv_transpose,  # each input value times the kernel, scattered at stride steps
    "resample": walk_upsample,  # each output from its source cells and weights
}
