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

from ..errors import OutputError, PoolcliError, UsageError
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


def output_path(item: InputItem, options: ProcessOptions, many: bool, keep_extension: bool = False) -> str:
    """Where one input's output goes (see the module's docstring); ``keep_extension`` keeps the
    input's own extension in the name (``a.ico`` → ``a.ico.png``), for two inputs that would
    otherwise write one file."""
    out = options.output
    if (item.path == "-" and out is None) or out == "-":
        return "-"
    source = Path(item.path) if item.path != "-" else Path("stdin.png")
    if many or (out is not None and (out.endswith(os.sep) or os.path.isdir(out))):
        if out is None:
            raise UsageError("several inputs need -o DIR", "name a folder for the outputs, e.g. -o out/")
        target = Path(out) / _relative(item, source)
        if keep_extension:
            target = target.with_name(target.name + _extension(options.format, target.suffix))
            return str(target)
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


def check_output_folder(options: ProcessOptions, many: bool) -> None:
    """Several inputs write into a folder: an ``-o`` that names a file (an existing one, or a name
    with an image or array extension) is a usage error, not a folder made under that name."""
    out = options.output
    if not many or out is None or out == "-" or os.path.isdir(out):
        return
    if os.path.exists(out) or writable_extension(os.path.splitext(out)[1]):
        raise UsageError(f"-o {out} names a file, but there are several inputs",
                         "give a folder for the outputs, e.g. -o out/")


def output_targets(items: list[InputItem], options: ProcessOptions) -> list[Target | PoolcliError]:
    """Every input's target, decided before any work. Two inputs that would write one file both
    keep their own extension in its name (``a.ico.png``, ``a.dds.png``); an output that would
    replace an input, or the same input given twice, fails that input alone."""
    many = len(items) > 1 or any(item.root is not None for item in items)
    check_output_folder(options, many)
    paths = [output_path(item, options, many) for item in items]
    owners: dict[str, list[int]] = {}
    for index, path in enumerate(paths):
        if path != "-":
            owners.setdefault(os.path.realpath(path), []).append(index)
    for indices in owners.values():
        if len(indices) > 1:
            for index in indices:
                paths[index] = output_path(items[index], options, many, keep_extension=True)
    inputs = {os.path.realpath(item.path): item.path for item in items if item.path != "-"}
    taken: dict[str, str] = {}
    targets: list[Target | PoolcliError] = []
    for item, path in zip(items, paths):
        real = os.path.realpath(path) if path != "-" else None
        if real is not None and real in inputs:
            which = "" if inputs[real] == path else f" ({inputs[real]})"
            targets.append(OutputError(f"{path}: would write over an input file{which}", "choose another -o or --format"))
        elif real is not None and real in taken:
            targets.append(UsageError(f"{item.path} would write {path}, as {taken[real]} does",
                                      "give each input once"))
        else:
            if real is not None:
                taken[real] = item.path
            targets.append(Target(path, output_format(None if path == "-" else path, options.format)))
    return targets
