"""Activations on numpy arrays, in float32 as torch computes them."""

from __future__ import annotations

import numpy as np


def relu(x) -> np.ndarray:
    """max(x, 0) in float32; NaN stays NaN, as torch.relu."""
    return np.maximum(np.asarray(x, dtype=np.float32), np.float32(0))


def sigmoid(x) -> np.ndarray:
    """1 / (1 + e^−x) in float32; saturates to 0 and 1 without overflow warnings."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):
        out = np.exp(-x)
    np.add(out, np.float32(1), out=out)
    return np.divide(np.float32(1), out, out=out)


def tanh(x) -> np.ndarray:
    """tanh in float32."""
    return np.tanh(np.asarray(x, dtype=np.float32))


def leaky_relu(x, negative_slope: float = 0.01) -> np.ndarray:
    """x where x > 0, else negative_slope·x, float32, as torch's ``x > 0 ? x : x * slope``."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # ±inf · 0 is NaN, as in torch
        out = np.multiply(x, np.float32(negative_slope))
    np.copyto(out, x, where=x > 0)
    return out

