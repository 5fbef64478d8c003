"""Photos of one name and different types in a folder (a.jpg and a.png; a phone's IMG_1.HEIC and
IMG_1.JPG) would each be written to one PNG: refused before any work, every clash named at once
(before, the first alone was: a folder with several took a run to find each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.errors import CartoonizeError
from cartoonize.media import files
from cartoonize.pipelines.image import ImageJob, plan_outputs, write_image


def _photos(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(folder / name, np.zeros((8, 8, 3), np.uint8))


def test_every_clash_is_named_at_once(tmp_path: Path) -> None:
    _photos(
        tmp_path / "in", ["a.jpg", "a.png", "b.jpg", "b.webp", "c.png", "sub/d.JPG", "sub/d.jpg", "sub/d.tif"]
    )
    with pytest.raises(CartoonizeError) as caught:
        plan_outputs(ImageJob((tmp_path / "in",), tmp_path / "out"))
    message = str(caught.value)
    assert message.startswith("3 cartoons are each of more than one photo: ")
    assert "in/a.jpg and " in message and "in/a.png would both be written to " in message
    assert "in/b.jpg and " in message and "in/b.webp would both be written to " in message
    assert (
        "sub/d.JPG, " in message
        and "sub/d.jpg and " in message
        and "sub/d.tif would all be written to " in message
    )
    assert message.endswith("; give them in separate runs or rename all but one of each")
    assert "c.png" not in message and not (tmp_path / "out").exists()


def test_one_clash_reads_as_before(tmp_path: Path) -> None:
    _photos(tmp_path / "in", ["a.jpg", "a.png"])
    with pytest.raises(CartoonizeError, match=r"^\S*in/a\.jpg and \S*in/a\.png would both be written to "
                                              r"\S*out/a\.png; give them in separate runs or rename one$"):  # fmt: skip
        plan_outputs(ImageJob((tmp_path / "in",), tmp_path / "out"))


def test_many_clashes_name_the_first_and_count_the_rest(tmp_path: Path) -> None:
    count = files.MAX_NAMED + 3
    _photos(tmp_path / "in", [f"p{k:02}.{kind}" for k in range(count) for kind in ("jpg", "png")])
    with pytest.raises(CartoonizeError, match=rf"^{count} cartoons are each of more than one photo: .*p00\.jpg and "
                                              rf".*; and 3 more; give them"):  # fmt: skip
        plan_outputs(ImageJob((tmp_path / "in",), tmp_path / "out"))
