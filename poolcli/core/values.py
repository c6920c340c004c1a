"""Loose values → parameter values: the converters every op uses, and the one matrix grammar.

A parameter arrives as a Python value (from a torch call or a TOML table) or as text (from a
compact spec or a command-line option). Each converter takes either and returns the field's
value, or raises ValueError saying what was expected; ``Stage.create`` turns that into a
SpecError naming the stage and the token. Nothing here is executed: text is read with
``ast.literal_eval`` or split by hand, never ``eval``.

The matrix grammar (DESIGN.md §8) is ``parse_matrix``, shared by ``explain --matrix``,
``conv -w`` and ``conv:weight=``::

    >>> parse_matrix("0 1; 2 3") == parse_matrix("[[0, 1], [2, 3]]") == parse_matrix("0 1\\n2 3")
    True
"""

from __future__ import annotations

import ast
import re
import warnings
from typing import Any, Callable

from . import arithmetic as ar

MATRIX_HINT = "write rows split by ';' and values by spaces or commas, like '0 1 2; 3 4 5', or '[[0, 1], [2, 3]]'"


# ---------------------------------------------------------------------------------- text


def literal_or_text(text: str) -> Any:
    """``ast.literal_eval`` (never eval) or the text itself where it is no Python literal.

    literal_eval raises more than ValueError/SyntaxError on hostile text: TypeError for
    ``{[1]: 2}``, MemoryError/RecursionError for deep nesting; all of them mean "not a literal".

    >>> literal_or_text("(2, 3)"), literal_or_text("sobel-x")
    ((2, 3), 'sobel-x')
    """
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" & co. must not reach stderr
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


class Quoted(str):
    """A string that a torch call wrote as a string literal (``kernel_size='2'``): text, never read
    as a number, because torch would not read it as one."""


def parse_text(value: Any) -> Any:
    """'2x3', '(2,3)', '2,3' and numbers written as text → Python values; other values (and
    ``Quoted`` strings) as they are.

    >>> parse_text("2x3"), parse_text("2,3"), parse_text("0.5"), parse_text(4), parse_text(Quoted("2"))
    ((2, 3), (2, 3), 0.5, 4, '2')
    """
    if not isinstance(value, str) or isinstance(value, Quoted):
        return value
    text = value.strip()
    if "x" in text and all(part.strip().lstrip("-").isdigit() for part in text.split("x")):
        return tuple(int(part) for part in text.split("x"))
    return literal_or_text(text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------- converters


def to_int(minimum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        value = parse_text(value)
        if not _is_int(value):
            raise ValueError("an integer")
        if minimum is not None and value < minimum:
            raise ValueError(f"an integer ≥ {minimum}")
        return value

    return convert


def to_pair(minimum: int, single: bool = True) -> Callable[[Any], tuple[int, int]]:
    """An int, ``HxW``, ``H,W``, ``(H, W)`` or, where torch takes it (``single``), the 1-tuple
    ``(K,)`` → (h, w), each ≥ minimum."""

    def convert(value: Any) -> tuple[int, int]:
        value = parse_text(value)
        if isinstance(value, list):
            value = tuple(value)
        if single and isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        try:
            result = ar.pair(value)
        except TypeError:
            raise ValueError("an integer or a pair like 2x3") from None
        if min(result) < minimum:
            raise ValueError(f"integers ≥ {minimum}")
        return result

    return convert


def to_size_pair(value: Any) -> tuple[int | None, int | None]:
    """An adaptive output size: int or pair, where None keeps that input dimension (as torch)."""
    value = parse_text(value)
    if isinstance(value, list):
        value = tuple(value)
    if _is_int(value):
        value = (value, value)
    if not (isinstance(value, tuple) and len(value) == 2
            and all(v is None or (_is_int(v) and v >= 1) for v in value)):
        raise ValueError("a size ≥ 1 or a pair like 7x7")
    return value  # type: ignore[return-value]


def to_float(value: Any) -> float:
    value = parse_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("a number")
    return float(value)


def to_positive_float(value: Any) -> float:
    number = to_float(value)
    if not number > 0:
        raise ValueError("a number > 0")
    return number


def to_bool(value: Any) -> bool:
    """True/False, as a bool, as text (``true``), or 0/1 from a TOML or JSON table."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and not isinstance(value, Quoted) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    raise ValueError("true or false")


def to_strict_bool(value: Any) -> bool:
    """True or False only, as torch's argument parser takes a bool argument (``ceil_mode=1`` it refuses)."""
    if isinstance(value, bool):
        return value
    raise ValueError("True or False (torch takes no number or text here)")


def is_none(value: Any) -> bool:
    """None, or text that says so (``none``, ``null``): torch's "use the default"."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))


def to_optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(value: Any) -> Any:
        return None if is_none(value) else convert(value)

    return optional


def to_default(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Like ``to_optional``, and an empty tuple or list means the default too, as torch's
    ``stride=()`` does for the pools."""

    def default(value: Any) -> Any:
        value = parse_text(value)
        if is_none(value) or (isinstance(value, (tuple, list)) and not value):
            return None
        return convert(value)

    return default


def to_choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            raise ValueError(" or ".join(choices))
        return value.strip().lower()

    return convert


def to_text(expected: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(expected)
        return value

    return convert


def to_torch_padding4(value: Any) -> tuple[int, int, int, int]:
    """Padding as ``nn.ZeroPad2d`` and friends read it: an int for every side, a pair as (left,
    right), or (left, right, top, bottom).

    >>> to_torch_padding4(1), to_torch_padding4((1, 2)), to_torch_padding4([1, 2, 3, 4])
    ((1, 1, 1, 1), (1, 2, 0, 0), (1, 2, 3, 4))
    """
    if isinstance(value, list):
        value = tuple(value)
    if _is_int(value):
        return (value,) * 4
    if isinstance(value, tuple) and len(value) in (0, 2, 4) and all(type(v) is int for v in value):
        return (value + (0, 0, 0, 0))[:4]  # type: ignore[return-value]
    raise ValueError("an int, (left, right) or (left, right, top, bottom)")


def to_torch_padding4_whole(value: Any) -> tuple[int, int, int, int]:
    """Padding as ``nn.ReflectionPad2d``, ``ReplicationPad2d`` and ``CircularPad2d`` read it: an
    int, or (left, right, top, bottom) — these pad both dimensions or none."""
    if isinstance(value, list):
        value = tuple(value)
    if _is_int(value) or (isinstance(value, tuple) and len(value) == 4):
        return to_torch_padding4(value)
    raise ValueError("an int or (left, right, top, bottom)")


def to_padding4(value: Any) -> tuple[int, int, int, int]:
    """Pad amounts as (left, right, top, bottom), from an int, ``HxW`` (top/bottom x left/right)
    or four values ``l,r,t,b`` — torch's ZeroPad2d order.

    >>> to_padding4(1), to_padding4("2x3"), to_padding4((1, 2, 3, 4))
    ((1, 1, 1, 1), (3, 3, 2, 2), (1, 2, 3, 4))
    """
    value = parse_text(value)
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if _is_int(value):
        value = (value,) * 4
    elif isinstance(value, tuple) and len(value) == 2:
        value = (value[1], value[1], value[0], value[0])
    if not (isinstance(value, tuple) and len(value) == 4 and all(type(v) is int for v in value)):
        raise ValueError("an int, HxW, or left,right,top,bottom")
    return value  # type: ignore[return-value]


def to_conv_padding(value: Any) -> Any:
    """A conv's padding: ``same``, ``valid``, or an int or pair as ``to_pair(0)`` reads it."""
    if isinstance(value, str) and value.strip().lower() in ("same", "valid"):
        return value.strip().lower()
    return to_pair(0)(value)


def to_matrix(value: Any) -> tuple:
    """A weight, in the matrix grammar or as nested lists, 2-D to 4-D, as nested tuples of floats."""
    try:
        return parse_matrix(value)
    except MatrixError as exc:
        raise ValueError(f"a matrix like 0 1; 2 3 or [[0,1],[2,3]] ({exc})") from None


def show(value: Any) -> str:
    """A value as a message quotes it, cut short when long."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:50] + "…"


# ------------------------------------------------------------------------ the matrix grammar


class MatrixError(ValueError):
    """What is wrong with a matrix, in words (``row 2 has 1 values, row 1 has 2``)."""


def parse_matrix(value: Any) -> tuple:
    """A matrix written like ``--matrix`` (DESIGN.md §8), or nested lists, as nested float tuples.

    Rows split by ``;`` or new lines (a trailing ``;`` is fine), values by spaces or commas:
    ``0 1 2; 3 4 5``; the same in brackets as numpy and MATLAB print it, ``[0 1; 2 3]``; or a
    Python literal of nested lists or tuples, 2-D to 4-D (a flat list is one row). Anything with
    ``tolist`` (a numpy array) is taken as its nested lists.

    >>> parse_matrix("0 1; 2 3;")
    ((0.0, 1.0), (2.0, 3.0))
    >>> parse_matrix("[1, -1]")
    ((1.0, -1.0),)
    >>> parse_matrix("0 1; 2")
    Traceback (most recent call last):
    ...
    poolcli.core.values.MatrixError: row 2 has 1 values, row 1 has 2: rows of equal length, please
    """
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise MatrixError("the matrix is empty")
        value = _bracketed(text) if text.startswith("[") else _plain_rows(text)
    if isinstance(value, (list, tuple)) and value and all(_is_number(v) for v in value):
        value = [value]
    nested = _nested(value)
    depth = _depth(nested)
    if depth < 2:
        raise MatrixError("not a list of rows of numbers")
    if depth > 4:
        raise MatrixError(f"{depth} dimensions, at most 4 (O×I×kh×kw)")
    _check_rectangular(nested)
    return nested


def _plain_rows(body: str) -> list[list[float]]:
    lines = [line.strip() for line in re.split(r"[;\n]", body)]
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # a trailing ';'
    if not any(lines):
        raise MatrixError("the matrix is empty")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line:
            raise MatrixError(f"row {number} is empty")
        rows.append([_number(token) for token in re.split(r"[\s,]+", line)])
    return rows


def _number(token: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise MatrixError(f"{token!r} is not a number") from None


def _bracketed(body: str) -> Any:
    """A Python literal list (read with ast.literal_eval, never eval), or ``[0 1; 2 3]``."""
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" & co. must not reach stderr
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(body)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if body.endswith("]") and "[" not in body[1:]:
            return _plain_rows(body[1:-1])
        raise MatrixError("not a nested list of numbers") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _nested(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        if not value:
            raise MatrixError("an empty row")
        return tuple(_nested(v) for v in value)
    if not _is_number(value):
        raise MatrixError("not a list of rows of numbers")
    return float(value)


def _depth(value: Any) -> int:
    return 1 + _depth(value[0]) if isinstance(value, tuple) and value else 0


def _check_rectangular(value: Any) -> None:
    if not isinstance(value, tuple):
        return
    if any(isinstance(v, tuple) != isinstance(value[0], tuple) for v in value):
        raise MatrixError("not a list of rows of numbers")
    if isinstance(value[0], tuple):
        lengths = [len(v) for v in value]
        for number, length in enumerate(lengths[1:], start=2):
            if length != lengths[0]:
                raise MatrixError(f"row {number} has {length} values, row 1 has {lengths[0]}: rows of equal length, please")
        shapes = {matrix_shape(v) for v in value}
        if len(shapes) != 1:
            raise MatrixError("rows of equal length")
        for v in value:
            _check_rectangular(v)


def matrix_shape(value: Any) -> tuple[int, ...]:
    """The shape of nested tuples: ((0, 1), (2, 3)) → (2, 2)."""
    if not isinstance(value, tuple):
        return ()
    return (len(value), *matrix_shape(value[0])) if value else (0,)
