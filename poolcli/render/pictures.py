"""Pictures of the stages: ``--save-stages DIR`` and ``--montage FILE``.

Each stage's output becomes an 8-bit picture (``--normalize`` as for outputs). A montage puts
the input and every stage side by side at one height, upscaled with nearest-neighbour so a
2×2 map is four visible blocks, each panel labelled with its op and shape.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..execute.quantize import quantize
from ..io.writing import save_image
from ..kernels.quantize import to_integers

PANEL_HEIGHT = 256
LABEL_HEIGHT = 16
GAP = 6
MAX_CHANNEL_TILES = 8


def _stage_arrays(image: Any, result: Any, normalize: str) -> list[tuple[str, np.ndarray]]:
    """(label, H×W×3 uint8) for the input and every stage that is still a picture."""
    panels = [(f"input {'×'.join(map(str, image.array.shape))}", _to_rgb(_input_uint8(image)))]
    for stage_plan, (data, scale) in zip(result.plan.stages, result.stage_outputs):
        label = f"{stage_plan.index} {stage_plan.stage.label()} {'×'.join(map(str, stage_plan.output_shape))}"
        if data.ndim != 4:
            continue
        quantized = quantize(result, 8, normalize, stage=(data, scale)).array
        panels.append((label, _to_rgb(quantized)))
    return panels


def _input_uint8(image: Any) -> np.ndarray:
    array = image.array
    if array.dtype == np.uint8:
        return array
    unit = array.astype(np.float32) / float(image.maxval)
    if image.is_array:
        low, high = float(unit.min()), float(unit.max())
        unit = (unit - low) / (high - low) if high > low else np.zeros_like(unit)
    return to_integers(unit, 255, np.uint8)


def _to_rgb(array: np.ndarray) -> np.ndarray:
    """The first image of an N×C×H×W uint8 array as H×W×3: gray, RGB, alpha dropped, or the
    first channels tiled side by side when C is not a colour layout."""
    planes = array[0]
    channels = planes.shape[0]
    if channels in (3, 4):
        return np.ascontiguousarray(planes[:3].transpose(1, 2, 0))
    if channels in (1, 2):
        return np.repeat(planes[0][:, :, None], 3, axis=2)
    shown = planes[:MAX_CHANNEL_TILES]
    gap = np.full((planes.shape[1], 1), 255, dtype=np.uint8)
    tiles = [p for plane in shown for p in (plane, gap)][:-1]
    strip = np.concatenate(tiles, axis=1)
    return np.repeat(strip[:, :, None], 3, axis=2)


def _upscale(rgb: np.ndarray, height: int) -> np.ndarray:
    factor = max(1, height // max(1, rgb.shape[0]))
    return rgb.repeat(factor, axis=0).repeat(factor, axis=1)


def save_stage_pictures(source: str, image: Any, result: Any, folder_name: str, normalize: str) -> list[str]:
    """``DIR/<stem>_<NN>_<op>.png`` for every stage output that is a picture."""
    folder = Path(folder_name)
    _make_folder(folder)
    stem = Path(source).stem if source != "-" else "stdin"
    written = []
    for number, (label, rgb) in enumerate(_stage_arrays(image, result, normalize)):
        name = "input" if number == 0 else label.split()[1].split(":")[0]
        path = folder / f"{stem}_{number:02d}_{name}.png"
        save_image(rgb.transpose(2, 0, 1)[None], str(path), format="png")
        written.append(str(path))
    return written


def save_montage(image: Any, result: Any, target: str, normalize: str) -> str:
    """One picture: the input and each stage side by side, labelled, nearest-neighbour upscaled."""
    from PIL import Image, ImageDraw

    panels = _stage_arrays(image, result, normalize)
    height = max(PANEL_HEIGHT, image.array.shape[-2])
    scaled = [(label, _upscale(rgb, height)) for label, rgb in panels]
    width = sum(rgb.shape[1] for _, rgb in scaled) + GAP * (len(scaled) + 1)
    tallest = max(rgb.shape[0] for _, rgb in scaled)
    canvas = Image.new("RGB", (width, tallest + LABEL_HEIGHT + 2 * GAP), "white")
    draw = ImageDraw.Draw(canvas)
    x = GAP
    for label, rgb in scaled:
        canvas.paste(Image.fromarray(rgb), (x, GAP + LABEL_HEIGHT))
        draw.text((x, GAP // 2), _drawable(label), fill="black")
        x += rgb.shape[1] + GAP
    _make_folder(Path(target).parent)
    save_image(np.asarray(canvas).transpose(2, 0, 1)[None], target)
    return target


def _drawable(label: str) -> str:
    """Pillow's built-in font has no × or ↩ (they come out as boxes): their ASCII stand-ins."""
    return label.replace("×", "x").replace("↩", "<-")


def _make_folder(folder: Path) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder: {exc.strerror}",
                          "give a folder (it is made when missing), not the name of a file") from None
