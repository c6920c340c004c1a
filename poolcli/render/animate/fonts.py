"""The font of the frames: DejaVu Sans Mono where it is installed (fonts-dejavu-core), else
Pillow's own default font at the size asked, with ASCII stand-ins for the signs it lacks.

    >>> Fonts(14, prefer=None).text("3×2 = 6, -∞")
    '3x2 = 6, -inf'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

DEJAVU = "DejaVuSansMono.ttf"
DEJAVU_BOLD = "DejaVuSansMono-Bold.ttf"
# what the default font cannot draw, written in ASCII
STAND_INS = str.maketrans({
    "×": "x", "·": "*", "∞": "inf", "−": "-", "≤": "<=", "←": "<-", "→": "->", "⌊": "floor(", "⌋": ")",
    "⌈": "ceil(", "⌉": ")", "…": "...", "Σ": "sum", "²": "^2", "¹": "^1", "⁵": "^5", "⁻": "^-",
})


@lru_cache(maxsize=64)
def _truetype(name: str, size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(name, size)


class Fonts:
    """Fonts at any size from one family; ``ascii`` when the stand-ins are in use. ``prefer``
    None forces Pillow's default font (what a machine without DejaVu gets)."""

    def __init__(self, base: int = 14, prefer: str | None = DEJAVU):
        self.base = base
        self.ascii = True
        if prefer is not None:
            try:
                _truetype(prefer, base)
                self.ascii = False
            except OSError:
                pass
        self.prefer = prefer

    def get(self, size: int, bold: bool = False) -> Any:
        from PIL import ImageFont

        size = max(int(size), 6)
        if not self.ascii:
            try:
                return _truetype(DEJAVU_BOLD if bold else self.prefer, size)
            except OSError:
                return _truetype(self.prefer, size)
        return ImageFont.load_default(size)

    def text(self, text: str) -> str:
        """The text as this font can draw it."""
        return text.translate(STAND_INS) if self.ascii else text
