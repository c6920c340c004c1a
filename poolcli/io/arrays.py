"""Arrays as inputs: ``.npy`` (no pickles), ``.pt`` (weights_only) and ``.csv``/``.txt``, one
reader per format, for images to pool and for conv weight files alike. Arrays are taken as they
are: never scaled, never premultiplied; 2-D HW and 3-D CHW become 1×1×H×W and 1×C×H×W.
"""

from __future__ import annotations

import io
import math
import os
import re
from typing import Any, BinaryIO

from ..errors import InputError, SpecError
from .noise import quiet, reason
from .pillow import NumpyOnFirstUse
from .records import ImageData, ImageHeader
from .sources import Source, kind_of, open_source

np = NumpyOnFirstUse(globals())


def npy_header(fp: BinaryIO, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy without reading its data; object arrays (pickles) are refused."""
    try:
        version = np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fp)
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, TokenError, ...
        raise InputError(f"{name}: corrupt .npy header ({reason(exc)})", "save it again with numpy.save") from None
    if dtype.hasobject:
        raise InputError(f"{name}: refused: pickled .npy (object array)",
                         "poolcli loads .npy with allow_pickle=False; save a numeric array")
    check_dtype(dtype, name)
    return shape, dtype


def check_npy_size(fp: BinaryIO, shape: tuple[int, ...], dtype: np.dtype, name: str) -> None:
    """The data the header promises must be in the file: checked from the header (so ``shape`` and a
    batch's memory estimate never trust a lie) and before numpy would allocate what it promises."""
    promised, start = math.prod(shape) * dtype.itemsize, fp.tell()
    available = fp.seek(0, os.SEEK_END) - start
    fp.seek(start)
    if promised > available:
        raise InputError(f"{name}: truncated .npy: its header promises {promised:,} bytes of data, "
                         f"the file holds {available:,}", "save it again with numpy.save")


def load_npy(source: Source) -> np.ndarray:
    with source.open() as fp:
        shape, dtype = npy_header(fp, source.name)
        nchw_shape(shape, source.name)
        check_npy_size(fp, shape, dtype, source.name)
        fp.seek(0)
        try:
            return np.load(fp, allow_pickle=False)
        except (ValueError, OSError, EOFError, MemoryError) as exc:
            raise InputError(f"{source.name}: truncated or corrupt .npy ({reason(exc)})",
                             "save it again with numpy.save") from None


def load_pt(source: Source) -> np.ndarray:
    """One tensor from a torch.save file, with weights_only=True: a file that needs code is refused."""
    import pickle

    import torch

    with source.open() as fp, quiet(source.head):
        try:
            value = torch.load(fp, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            raise _refused_pickle(source.name, str(exc)) from None
        except Exception as exc:  # torch reports a bad file as RuntimeError, KeyError, EOFError, ...
            raise InputError(f"{source.name}: not a tensor file torch can read ({reason(exc)})",
                             "save one with torch.save(tensor, path)") from None
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{source.name}: holds a {type(value).__name__}, not a tensor",
                         "save one tensor with torch.save(tensor, path)")
    if value.is_complex() or value.layout != torch.strided:
        raise InputError(f"{source.name}: a {value.dtype} {value.layout} tensor", "save a dense real tensor")
    return value.detach().to(torch.float32).numpy()


def _refused_pickle(name: str, message: str) -> InputError:
    """torch's weights-only unpickler refuses both a pickle that asks for code (a GLOBAL such as
    os.system: hostile, or a pickled object) and bytes that are no pickle at all; tell them apart."""
    wanted = re.search(r"unsupported GLOBAL ([\w.]+)", message) or re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if wanted:
        return InputError(f"{name}: refused: loading this .pt would call {wanted[1]} (weights_only=True)",
                          "save a plain tensor with torch.save(tensor, path)")
    if "Weights only load failed" in message:
        detail = next((line.strip() for line in message.splitlines() if line.strip().startswith("Unsupported")), "")
        return InputError(f"{name}: refused: not a plain tensor file"
                          f"{f' ({detail})' if detail else ''}; .pt files are loaded with weights_only=True",
                          "save a plain tensor with torch.save(tensor, path)")
    return InputError(f"{name}: not a tensor file torch can read", "save one with torch.save(tensor, path)")


def load_csv(source: Source) -> np.ndarray:
    """A 2-D matrix of numbers separated by commas or whitespace, one row per line ('#' comments)."""
    with source.open() as fp:
        raw = fp.read()
    try:
        text = raw.decode("utf-8-sig")
        with quiet():
            matrix = np.loadtxt(io.StringIO(text), delimiter="," if "," in text else None, ndmin=2, dtype=np.float64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{source.name}: not a numeric matrix ({reason(exc)})",
                         "write numbers separated by commas or spaces, one row per line") from None
    return matrix


def check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind not in "biuf":
        raise InputError(f"{name}: a {dtype} array", "give numbers: bool, int or float")


def nchw_shape(shape: tuple[int, ...], name: str) -> tuple[int, int, int, int]:
    """HW → 1×1×H×W, CHW → 1×C×H×W, NCHW as is (DESIGN.md §1, §8)."""
    if len(shape) not in (2, 3, 4):
        raise InputError(f"{name}: a {len(shape)}-D array of shape {tuple(shape)}", "give 2-D HW, 3-D CHW or 4-D NCHW")
    if 0 in shape:
        raise InputError(f"{name}: an empty array of shape {tuple(shape)}", "give an array with values")
    return (1,) * (4 - len(shape)) + tuple(int(d) for d in shape)  # type: ignore[return-value]


def array_data(name: str, fmt: str, array: np.ndarray) -> ImageData:
    check_dtype(array.dtype, name)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes ±inf, without a warning
        array = np.ascontiguousarray(array.reshape(nchw_shape(array.shape, name)), dtype=np.float32)
    return ImageData(
        array=array if array.flags.writeable else array.copy(), maxval=1.0, mode="array", source_mode="array",
        format=fmt, source=name, is_array=True, has_alpha=False, orientation_applied=None, frames=array.shape[0],
    )


def array_header(name: str, fmt: str, shape: tuple[int, ...]) -> ImageHeader:
    n, c, h, w = nchw_shape(tuple(shape), name)
    return ImageHeader(source=name, format=fmt, mode="array", source_mode="array", width=w, height=h,
                       channels=c, bit_depth=32, frames=n, orientation=None, is_array=True)


def read_weight_matrix(path: str, stage: Any) -> Any:
    """A conv weight file (``.npy`` or ``.csv``/``.txt``, 2-D to 4-D) as an array, read by the same
    readers as inputs; what is wrong with it is a SpecError for ``stage`` naming the file."""
    try:
        source = open_source(path, None, None)
        kind = kind_of(source)
        if kind not in ("npy", "csv"):
            raise InputError(f"{path}: not an .npy or .csv matrix", "give a .npy or .csv matrix")
        array = load_npy(source) if kind == "npy" else load_csv(source)
    except InputError as exc:
        raise SpecError(f"{stage.op}: weight_file={exc.what}", exc.hint or "give a .npy or .csv matrix") from None
    if not 2 <= array.ndim <= 4:
        raise SpecError(f"{stage.op}: weight_file={path} holds a {array.ndim}-D array",
                        "give a 2-D kernel, C×kh×kw or O×I×kh×kw")
    check_dtype(array.dtype, path)
    return array
