"""Where each input's output goes, and in which format: decided once per input, before any work.

One input: ``-o FILE``, ``-o -``, ``-o DIR/`` (keeps the name) or ``NAME{suffix}.EXT`` beside it.
Many inputs: inside ``-o DIR`` at the path mirrored from the input's root::

    >>> from poolcli.batch.discovery import InputItem
    >>> from poolcli.batch.options import ProcessOptions
    >>> output_path(InputItem("dir/photo.jpg"), ProcessOptions(suffix="_pooled"), False)
    'dir/photo_pooled.jpg'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError, UsageError
from ..io.formats import FORMATS, output_format, writable_extension
from .discovery import InputItem
from .options import ProcessOptions


@dataclass(frozen=True)
class Target:
    """An output: its path ("-" for stdout) and its format (a name of ``io.formats.FORMATS``)."""

    path: str
    format: str

    @property
    def exact(self) -> bool:
        """An array format: the float values themselves, never quantized."""
        return FORMATS[self.format].exact


def output_path(item: InputItem, options: ProcessOptions, many: bool) -> str:
    """Where one input's output goes (see the module's docstring)."""
    out = options.output
    if (item.path == "-" and out is None) or out == "-":
        return "-"
    source = Path(item.path) if item.path != "-" else Path("stdin.png")
    if many or (out is not None and (out.endswith(os.sep) or os.path.isdir(out))):
        if out is None:
            raise UsageError("several inputs need -o DIR", "name a folder for the outputs, e.g. -o out/")
        target = Path(out) / _relative(item, source)
        return str(target.with_suffix(_extension(options.format, target.suffix)))
    if out is not None:
        return out
    return str(source.with_name(source.stem + options.suffix + _extension(options.format, source.suffix)))


def _relative(item: InputItem, source: Path) -> Path:
    """The input's path below its root; never escaping it (no '..', no absolute path)."""
    if item.root is not None:
        relative = Path(os.path.relpath(os.path.abspath(source), os.path.abspath(item.root)))
    else:
        relative = Path(source.name)
    parts = [p for p in relative.parts if p not in ("..", ".", "", os.sep)]
    return Path(*parts) if parts else Path(source.name)


def _extension(fmt: str | None, current: str) -> str:
    """The output's extension: ``--format``'s, else the input's where poolcli writes that format
    (``.jpg`` stays ``.jpg``), else ``.png`` (an ``.ico``, ``.tga`` or ``.ppm`` input)."""
    if fmt is not None:
        return FORMATS[fmt].extensions[0]
    return current if writable_extension(current) else ".png"


def output_targets(items: list[InputItem], options: ProcessOptions) -> list[Target]:
    """Every input's target, checked before any work: no output over an input, no two inputs
    writing one output."""
    many = len(items) > 1 or any(item.root is not None for item in items)
    paths = [output_path(item, options, many) for item in items]
    check_outputs(list(zip(items, paths)))
    return [Target(path, output_format(None if path == "-" else path, options.format)) for path in paths]


def check_outputs(pairs: list[tuple[InputItem, str]]) -> None:
    """Before any work: no output over an input, no two inputs mapping to one output."""
    inputs = {os.path.realpath(i.path) for i, _ in pairs if i.path != "-"}
    seen: dict[str, str] = {}
    for item, out in pairs:
        if out == "-":
            continue
        real = os.path.realpath(out)
        if real in inputs:
            raise OutputError(f"{out}: would write over an input file", "choose another -o or --format")
        if real in seen:
            raise UsageError(
                f"{item.path} and {seen[real]} would both write {out}", "use --format or separate folders"
            )
        seen[real] = item.path
