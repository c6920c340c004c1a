"""poolcli.batch.naming: each input's output path and format, decided once, collisions resolved
per DESIGN §3 (both keep their source extension), never a refused batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolcli.batch import InputItem, ProcessOptions, output_targets
from poolcli.batch.naming import Target
from poolcli.errors import OutputError, UsageError


def _targets(tmp_path, names, **options):
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    items = [InputItem(str(folder / name), str(folder)) for name in names]
    return output_targets(items, ProcessOptions(output=str(tmp_path / "out"), **options))


def test_same_stems_both_keep_their_extension(tmp_path):
    targets = _targets(tmp_path, ["hopper.ico", "hopper.dds", "other.tga"])
    assert [Path(t.path).name for t in targets] == ["hopper.ico.png", "hopper.dds.png", "other.png"]
    assert all(isinstance(t, Target) and t.format == "png" for t in targets)


def test_a_format_that_makes_names_meet(tmp_path):
    targets = _targets(tmp_path, ["a.jpg", "a.png", "b.jpg"], format="png")
    assert [Path(t.path).name for t in targets] == ["a.jpg.png", "a.png.png", "b.png"]
    jpegs = _targets(tmp_path, ["c.jpg", "c.jpeg"], format="jpeg")
    assert [Path(t.path).name for t in jpegs] == ["c.jpg.jpg", "c.jpeg.jpg"]


def test_an_input_given_twice_fails_alone(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"x")
    item = InputItem(str(folder / "a.png"))
    first, second = output_targets([item, item], ProcessOptions(output=str(tmp_path / "out")))
    assert isinstance(first, Target) and isinstance(second, UsageError)
    assert "give each input once" in str(second)


def test_writing_over_an_input_fails_that_input(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(b"x")
    items = [InputItem(str(folder / "a.png"), str(folder)), InputItem(str(folder / "b.png"), str(folder))]
    targets = output_targets(items, ProcessOptions(output=str(folder)))
    assert all(isinstance(t, OutputError) and "would write over an input file" in str(t) for t in targets)


@pytest.mark.parametrize("name", ["single.png", "single.npy", "exists"])
def test_a_file_as_the_folder_of_many_outputs_is_a_usage_error(tmp_path, name):
    (tmp_path / "exists").write_text("a file")
    items = [InputItem(str(tmp_path / "a.png")), InputItem(str(tmp_path / "b.png"))]
    with pytest.raises(UsageError, match="names a file, but there are several inputs"):
        output_targets(items, ProcessOptions(output=str(tmp_path / name)))
    assert not (tmp_path / "single.png").exists()


def test_one_input_may_name_its_output_file(tmp_path):
    [target] = output_targets([InputItem(str(tmp_path / "a.png"))], ProcessOptions(output=str(tmp_path / "small.jpg")))
    assert target == Target(str(tmp_path / "small.jpg"), "jpeg")
