"""Reading images and masks, and the errors for bad files."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerasdec.data.decode import binarize_mask, read_image, read_mask
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


def _rect(shape=(64, 96), value=255, background=0, dtype=np.uint8) -> np.ndarray:
    mask = np.full(shape, background, dtype=dtype)
    mask[10:30, 20:60] = value  # 800 of 6144 pixels
    return mask


def _read(tmp_path: Path, name: str, array: np.ndarray, **imwrite_params) -> np.ndarray:
    path = tmp_path / name
    assert cv2.imwrite(str(path), array, [p for kv in imwrite_params.values() for p in kv])
    return read_mask(_sample(tmp_path, mask_path=path), array.shape[:2])


def test_mask_rule_8bit_threshold_and_01_masks(tmp_path):
    expected = np.where(_rect() > 0, 255, 0)
    np.testing.assert_array_equal(_read(tmp_path, "a.png", _rect()), expected)
    np.testing.assert_array_equal(_read(tmp_path, "b.png", _rect(value=1)), expected)  # 0/1 label image
    # A background of 3 is not a defect (it made the whole image defective before).
    np.testing.assert_array_equal(_read(tmp_path, "c.png", _rect(background=3)), expected)
    soft = _rect()
    soft[10, 20:60], soft[40, 5] = 128, 127  # antialiased edge above half, a faint pixel below
    out = _read(tmp_path, "d.png", soft)
    assert out[10, 20] == 255 and out[40, 5] == 0


@pytest.mark.parametrize("quality", [95, 50])
def test_jpeg_compressed_mask_keeps_its_area(tmp_path, quality):
    out = _read(tmp_path, f"m{quality}.jpg", _rect(), quality=(cv2.IMWRITE_JPEG_QUALITY, quality))
    raw = cv2.imread(str(tmp_path / f"m{quality}.jpg"), cv2.IMREAD_UNCHANGED)
    assert (raw > 0).sum() > 800 * 1.05  # "any nonzero" would have grown it
    assert abs((out > 0).sum() - 800) <= 800 * 0.02  # the rule keeps the true area (±2%)


def test_16bit_masks_keep_their_depth(tmp_path):
    expected = np.where(_rect() > 0, 255, 0)
    for name, mask in (("full.png", _rect(value=65535, dtype=np.uint16)),
                       ("ones.png", _rect(value=1, dtype=np.uint16))):  # 8-bit reading made this all 0
        np.testing.assert_array_equal(_read(tmp_path, name, mask), expected)
    half = _rect(value=40000, background=20000, dtype=np.uint16)  # half of 65535 decides
    np.testing.assert_array_equal(_read(tmp_path, "half.png", half), expected)


def test_palette_and_colour_masks_read_their_brightest_channel(tmp_path):
    from PIL import Image

    indices = (_rect() > 0).astype(np.uint8)
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 254 * 3)  # index 1 = pure red: luminance 76 of 255
    palette.save(tmp_path / "p.png")
    out = read_mask(_sample(tmp_path, mask_path=tmp_path / "p.png"), indices.shape)
    np.testing.assert_array_equal(out, indices * 255)
    bgr = np.zeros((*indices.shape, 3), np.uint8)
    bgr[..., 1] = indices * 200  # green defects
    np.testing.assert_array_equal(_read(tmp_path, "g.png", bgr), indices * 255)


def test_irregular_masks_warn_once_per_dataset(tmp_path, caplog):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path in paths:
        cv2.imwrite(str(path), _rect(background=3))
    clean = tmp_path / "clean.png"
    cv2.imwrite(str(clean), _rect())
    with caplog.at_level("WARNING", logger="kerasdec.data.decode"):
        for key in ("ksdd /a", "ksdd /b"):
            for path in (clean, *paths):
                read_mask(_sample(tmp_path, mask_path=path), (64, 96), dataset=key)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one per dataset, none for the clean mask
    assert str(paths[0]) in warnings[0] and "(3, 255), not only 0 and 255" in warnings[0]
    assert "> 127 for 8-bit" in warnings[0]


def test_a_mask_with_values_but_no_defect_is_warned_about(tmp_path):
    defect, note = binarize_mask(_rect(value=100))
    assert not defect.any() and "none above 127" in note
    assert binarize_mask(_rect())[1] is None and binarize_mask(np.zeros((4, 4), np.uint8))[1] is None
    with pytest.raises(ValueError, match="int32"):
        binarize_mask(np.zeros((4, 4), np.int32))


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


def test_gray_masks_keep_soft_edges_as_the_published_code_reads_them(tmp_path):
    soft = _rect()
    soft[10, 20:60], soft[40, 5] = 128, 40  # antialiased edge, a faint pixel
    path = tmp_path / "soft.png"
    assert cv2.imwrite(str(path), soft)
    positive = _sample(tmp_path, mask_path=path)
    np.testing.assert_array_equal(read_mask(positive, soft.shape, gray=True), soft)  # value / 255 later
    assert read_mask(positive, soft.shape)[40, 5] == 0  # the binary rule drops it
    noise = tmp_path / "noise.png"  # a defect-free image's mask with JPEG-like noise
    assert cv2.imwrite(str(noise), np.where(_rect() > 0, 3, 0).astype(np.uint8))
    negative = _sample(tmp_path, mask_path=noise, is_positive=False)
    assert not read_mask(negative, soft.shape, gray=True).any()  # negatives train on all zeros
    ones = tmp_path / "ones.png"  # a 0/1 label image is not read as nearly empty gray levels
    assert cv2.imwrite(str(ones), _rect(value=1))
    np.testing.assert_array_equal(read_mask(_sample(tmp_path, mask_path=ones), soft.shape, gray=True),
                                  np.where(_rect() > 0, 255, 0))
    wide = tmp_path / "wide.png"  # 16 bits: brought to 8
    assert cv2.imwrite(str(wide), _rect(value=32896, dtype=np.uint16))
    assert read_mask(_sample(tmp_path, mask_path=wide), soft.shape, gray=True).max() == 128
