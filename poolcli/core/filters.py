"""Named convolution kernels for ``conv:filter=NAME`` and ``poolcli filters``.

Plain nested lists (no numpy, no torch), cross-correlation orientation as in PyTorch: the
textbook's edge detector ``[[1, -1]]`` gives +1 where a bright pixel has a dark right neighbour.
"""

from __future__ import annotations

from math import exp

from ..errors import SpecError

Matrix = list[list[float]]

FIXED: dict[str, Matrix] = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "sobel-x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel-y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "scharr-x": [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]],
    "scharr-y": [[-3, -10, -3], [0, 0, 0], [3, 10, 3]],
    "prewitt-x": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "prewitt-y": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
    "edge": [[1, -1]],
}

DESCRIPTIONS: dict[str, str] = {
    "identity": "copies the input (a 3x3 delta)",
    "box": "mean of a k x k window (k=3)",
    "gaussian": "normalised Gaussian blur (k=5, sigma=1)",
    "sobel-x": "horizontal gradient (responds to vertical edges)",
    "sobel-y": "vertical gradient (responds to horizontal edges)",
    "scharr-x": "horizontal gradient, better rotational symmetry",
    "scharr-y": "vertical gradient, better rotational symmetry",
    "prewitt-x": "horizontal gradient, unweighted",
    "prewitt-y": "vertical gradient, unweighted",
    "laplacian": "second derivative: edges in every direction",
    "sharpen": "identity plus a Laplacian",
    "emboss": "relief effect along the diagonal",
    "edge": "the textbook's [[1, -1]]: left minus right neighbour",
}

NAMES = tuple(DESCRIPTIONS)


def box(k: int = 3) -> Matrix:
    """A k x k mean filter: every weight 1/k²."""
    return [[1.0 / (k * k)] * k for _ in range(k)]


def gaussian(k: int = 5, sigma: float = 1.0) -> Matrix:
    """A k x k Gaussian, normalised to sum 1 (OpenCV's getGaussianKernel, outer product)."""
    centre = (k - 1) / 2
    row = [exp(-((i - centre) ** 2) / (2 * sigma * sigma)) for i in range(k)]
    total = sum(row)
    row = [v / total for v in row]
    return [[a * b for b in row] for a in row]


def named_filter(name: str, k: int | None = None, sigma: float | None = None) -> Matrix:
    """The kernel called ``name``; ``box`` and ``gaussian`` take a size ``k`` (and ``sigma``).

    >>> named_filter("edge")
    [[1, -1]]
    """
    if name == "box":
        return box(k or 3)
    if name == "gaussian":
        return gaussian(k or 5, 1.0 if sigma is None else sigma)
    if name not in FIXED:
        raise SpecError(f"unknown filter {name!r}", f"known filters: {', '.join(NAMES)}")
    if k is not None or sigma is not None:
        raise SpecError(f"filter {name!r} has a fixed size", "k= and sigma= apply to box and gaussian")
    return [list(row) for row in FIXED[name]]
