"""Reading images and masks, and the errors for bad files."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerasdec.data.decode import read_image, read_mask
from kerasdec.data.samples import Sample


def _write(path: Path, array: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), array)
    return path


def test_read_grayscale_and_rgb(tmp_path):
    gray = np.arange(32 * 40, dtype=np.uint32).reshape(32, 40).astype(np.uint8)
    out = read_image(_write(tmp_path / "g.png", gray), channels=1)
    assert out.shape == (32, 40, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], gray)
    bgr = np.zeros((32, 40, 3), dtype=np.uint8)
    bgr[:, :, 0] = 200  # blue in OpenCV's BGR order
    bgr[:, :, 2] = 10
    rgb = read_image(_write(tmp_path / "c.png", bgr), channels=3)
    assert rgb.shape == (32, 40, 3)
    assert tuple(rgb[0, 0]) == (10, 0, 200)
    assert read_image(tmp_path / "c.png", channels=1).shape == (32, 40, 1)  # colour read as gray


def test_missing_image_names_the_file(tmp_path):
    path = tmp_path / "nowhere" / "Part0.jpg"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_image(path, channels=1)


@pytest.mark.parametrize("content", [b"this is not an image" * 20, b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_corrupt_image_names_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path)) + " is not a readable image"):
        read_image(path, channels=1)


def test_bad_channels():
    with pytest.raises(ValueError, match="channels=2; expected 1 or 3"):
        read_image("x.png", channels=2)


def _sample(tmp_path: Path, **kwargs) -> Sample:
    fields = dict(name="a", image_path=tmp_path / "a.png", is_positive=True)
    fields.update(kwargs)
    return Sample(**fields)


def test_mask_from_file_becomes_0_255(tmp_path):
    mask = np.zeros((32, 48), dtype=np.uint8)
    mask[4:9, 10:30] = 1  # any nonzero value is a defect
    mask[20, 5] = 128
    sample = _sample(tmp_path, mask_path=_write(tmp_path / "a_GT.png", mask))
    out = read_mask(sample, (32, 48))
    assert out.dtype == np.uint8 and out.shape == (32, 48)
    np.testing.assert_array_equal(out, np.where(mask > 0, 255, 0))


def test_mask_of_another_size_names_both_files_and_sizes(tmp_path):
    mask_path = _write(tmp_path / "a_GT.png", np.zeros((30, 48), dtype=np.uint8))
    sample = _sample(tmp_path, mask_path=mask_path)
    message = (re.escape(f"Mask {mask_path} is 48x30 (WxH) but its image {tmp_path / 'a.png'} is 48x32")
               + ".*expected a mask of the image's size")
    with pytest.raises(ValueError, match=message):
        read_mask(sample, (32, 48))


def test_missing_and_corrupt_mask(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "m.png"))):
        read_mask(_sample(tmp_path, mask_path=tmp_path / "m.png"), (8, 8))
    (tmp_path / "m.png").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "m.png")) + " is not a readable image"):
        read_mask(_sample(tmp_path, mask_path=tmp_path / "m.png"), (8, 8))


def test_no_mask_gives_zeros_and_segmented_positive_without_label_is_an_error(tmp_path):
    negative = _sample(tmp_path, is_positive=False)
    np.testing.assert_array_equal(read_mask(negative, (5, 7)), np.zeros((5, 7), np.uint8))
    label_only = _sample(tmp_path, is_segmented=False)
    np.testing.assert_array_equal(read_mask(label_only, (5, 7)), np.zeros((5, 7), np.uint8))
    with pytest.raises(ValueError, match="segmented positive but has no mask_path and no rle"):
        read_mask(_sample(tmp_path), (5, 7))


def test_mask_from_rle_is_the_union_of_rows(tmp_path):
    # 4 rows × 3 columns, pixels numbered 1.. top-to-bottom then left-to-right:
    # "1 2" → (0,0), (1,0); "9 3" → (0,2), (1,2), (2,2); "2 1" overlaps the first row.
    sample = _sample(tmp_path, rle=("1 2", "9 3", "2 1"))
    expected = np.zeros((4, 3), dtype=np.uint8)
    expected[0:2, 0] = 255
    expected[0:3, 2] = 255
    np.testing.assert_array_equal(read_mask(sample, (4, 3)), expected)
