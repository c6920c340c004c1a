"""Which inputs a run has: files, folders (``-r`` to descend; hidden entries skipped) and lists.

    >>> [item.path for item in expand_inputs(["-"])]
    ['-']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator


@dataclass(frozen=True)
class InputItem:
    """One input: its path (or '-') and the folder its output path is mirrored from."""

    path: str
    root: str | None = None  # set for files found in a folder or listed by --files-from


def expand_inputs(
    inputs: Iterable[str], *, recursive: bool = False, files_from: Iterable[str] = (), exclude: str | None = None
) -> list[InputItem]:
    """Files from arguments, folders and a list.

    A folder argument's files mirror their path relative to that folder; ``--files-from``
    entries mirror their path relative to the entries' common folder. ``exclude`` (the output
    folder) is never walked.
    """
    items: list[InputItem] = []
    excluded = os.path.realpath(exclude) if exclude else None
    for given in inputs:
        found = [InputItem(p, given) for p in _walk(given, recursive, excluded)] if given != "-" and os.path.isdir(given) else []
        # A folder with nothing to read stays an input of its own, so that it fails naming itself.
        items.extend(found or [InputItem(given)])
    listed = [line.strip() for line in files_from if line.strip()]
    if listed:
        common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) or "/" for p in listed])
        items.extend(InputItem(p, common) for p in listed)
    return items


def _walk(folder: str, recursive: bool, excluded: str | None) -> Iterator[str]:
    seen: set[str] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if real in seen or real == excluded:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:  # a symlink loop (ELOOP): it fails as a file, naming itself
                is_dir = False
            if is_dir:
                if recursive:
                    subfolders.append(entry.path)
            else:
                yield entry.path
        stack.extend(reversed(subfolders))
