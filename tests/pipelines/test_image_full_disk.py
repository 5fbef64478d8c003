"""A folder of photos cartoonized onto a disk that fills up: one line, and no empty output folders
left behind (the folders made for the photos' cartoons were kept, empty). The disk is real: a small
tmpfs (root only; skipped elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.helpers import run_main
from tests.test_styles_full_disk import small_disk


def test_a_full_disk_leaves_no_empty_output_folder(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:  # noqa: ANN001
    from cartoonize.pipelines.image import write_image

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    noise = np.random.default_rng(0)  # noise: a PNG that does not compress, larger than the disk
    for name in ("a.png", "sub/b.png"):
        write_image(photos / name, noise.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    with small_disk(tmp_path / "disk", "64k") as disk:
        code, _, err = run_main(["image", str(photos), "-o", str(disk / "out"), "--model", str(tiny_checkpoint),
                                 "--raw", "--engine", "torch"], capsys)  # fmt: skip
        assert code == 1 and "No space left on device" in err and "Traceback" not in err, err
        assert list(disk.iterdir()) == []
