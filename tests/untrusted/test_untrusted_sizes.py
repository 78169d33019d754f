"""Issue 20, family 1: sizes come from the file. An image is measured from its header and refused above
the pixel limit BEFORE it is decoded, wherever kerasdec decodes (data loaders, labels, predict); the
served SavedModel does the same in its graph (tests/deploy/test_untrusted_serving.py)."""

from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fakes import imwrite, write_folder, write_ksdd
from untrusted_files import bmp_header, jpeg_header, png_bomb

from kerasdec.cli import main
from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.data import ksdd
from kerasdec.data.decode import read_image
from kerasdec.data.imagesize import header_size

LIMIT_TEXT = "more than the limit of 50 MP (50000000 pixels); refused before decoding"


def _one_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("suffix, params", [
    (".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []), (".tif", []),
    (".webp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_header_gives_the_size_opencv_decodes(suffix, params, channels):
    image = np.random.default_rng(0).integers(0, 256, (37, 53, channels)[:2 + (channels == 3)], np.uint8)
    ok, encoded = cv2.imencode(suffix, image, params)
    assert ok
    width, height, _ = header_size(encoded)
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    assert (height, width) == decoded.shape[:2] == (37, 53)


def test_the_header_of_other_encoders_and_hand_written_headers(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    image = pil.fromarray(np.zeros((37, 53), np.uint8))
    for kwargs in ({"format": "TIFF", "big_tiff": True}, {"format": "WEBP", "lossless": True},
                   {"format": "WEBP", "exif": b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00"}):  # VP8X
        buffer = io.BytesIO()
        image.save(buffer, **kwargs)
        assert header_size(buffer.getvalue())[:2] == (53, 37), kwargs
    # big-endian TIFF: width as SHORT, height as LONG
    ifd = struct.pack(">H", 2) + struct.pack(">HHIHH", 256, 3, 1, 53, 0) + struct.pack(">HHII", 257, 4, 1, 37)
    assert header_size(b"MM\x00*" + struct.pack(">I", 8) + ifd + b"\x00" * 4) == (53, 37, "TIFF")
    core = b"BM" + b"\x00" * 12 + struct.pack("<IHHHH", 12, 53, 37, 1, 8)  # BITMAPCOREHEADER: 16-bit sides
    assert header_size(core) == (53, 37, "BMP")
    assert header_size(bmp_header(tmp_path / "top-down.bmp", 53, -37).read_bytes()) == (53, 37, "BMP")
    for cut in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00", b"BM\x00", b"GIF89a\x01\x00\x01\x00"):
        assert header_size(cut) is None  # refused: the size cannot be known before decoding


@pytest.mark.parametrize("write", [png_bomb, jpeg_header, bmp_header])
def test_an_image_declaring_more_pixels_than_the_limit_is_refused_before_decoding(tmp_path, write):
    path = tmp_path / "bomb.img"
    if write is png_bomb:
        write(path, 30000, 30000, complete=False)  # header only: decoding it would fail differently
    else:
        write(path, 30000, 30000)
    for channels in (1, 3):
        with pytest.raises(ValueError) as err:
            read_image(path, channels)
        kind = header_size(path.read_bytes())[2]
        assert str(err.value) == (f"{path}: its {kind} header declares 30000x30000 (WxH) = 900.0 MP, "
                                  f"{LIMIT_TEXT}. If the image is genuine, raise the limit with --max-pixels")


def test_the_limit_is_a_setting(tmp_path):
    path = imwrite(tmp_path / "a.png", np.zeros((100, 100), np.uint8))  # 10,000 pixels
    assert read_image(path, 1, max_pixels=10_000).shape == (100, 100, 1)
    with pytest.raises(ValueError, match=r"100x100 \(WxH\) = 0.0 MP, more than the limit of 0.009999 MP"):
        read_image(path, 1, max_pixels=9_999)
    assert DEFAULT_MAX_PIXELS == 50_000_000


def test_a_real_decompression_bomb_costs_the_reader_no_memory(tmp_path):
    """A 16000x16000 PNG (256 MP of zeros, ~250 KB on disk) in a fresh process: refused, the peak RSS stays
    near that of the import; decoded under a raised limit (the control), it takes the 256 MB it declares.
    (VmHWM, the peak of the process's own memory: ru_maxrss keeps the peak of the forking parent.)"""
    bomb = png_bomb(tmp_path / "bomb.png", 16000, 16000)
    assert bomb.stat().st_size < 400_000
    script = textwrap.dedent("""
        import re, sys
        from kerasdec.data.decode import read_image
        def peak_kb():
            return re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
        try:
            read_image(sys.argv[1], 1, max_pixels=int(sys.argv[2]))
            print("decoded", peak_kb())
        except ValueError as err:
            print("refused", peak_kb(), err)
    """)
    peaks = {}
    for limit in (DEFAULT_MAX_PIXELS, 10**9):
        done = subprocess.run([sys.executable, "-c", script, str(bomb), str(limit)], capture_output=True,
                              text=True, timeout=120, check=True)
        outcome, kilobytes = done.stdout.split()[:2]
        peaks[outcome] = int(kilobytes) * 1024
    assert peaks["decoded"] - peaks["refused"] > 200e6  # the control: decoding really costs the 256 MB
    assert peaks["refused"] < 200e6  # numpy + OpenCV + the 250 KB file, nothing of the declared size


def test_a_bomb_among_the_training_images_stops_fit_in_one_line(tmp_path):
    data = write_folder(tmp_path / "data", counts={"train": (2, 2, 1), "test": (2, 2, 1)})
    bomb = png_bomb(data.root / "train" / "ok" / "bomb.png", 16000, 16000)
    result = CliRunner().invoke(main, ["fit", "--dataset", "folder", "--data-root", str(data.root),
                                       "--epochs", "1", "--width", "64", "--height", "64",
                                       "--run-dir", str(tmp_path / "run")])
    line = _one_line(result)
    assert line.startswith(f"Error: {bomb}: its PNG header declares 16000x16000 (WxH) = 256.0 MP, "
                           f"{LIMIT_TEXT}")
    assert not (tmp_path / "run").exists()  # refused while the data is read, before a run exists


def test_a_label_declaring_a_huge_image_is_refused_while_listing(tmp_path):
    data = write_ksdd(tmp_path / "KSDD", n_folders=3, parts=2)
    label = png_bomb(data.root / "kos02" / "Part1_label.bmp", 20000, 20000, complete=False)
    with pytest.raises(ValueError, match=rf"{label}: its PNG header declares 20000x20000 \(WxH\) = 400.0 MP"):
        ksdd.folder_samples(data.root / "kos02")


def test_predict_lists_images_over_the_limit_with_their_error_and_scores_the_others(tiny_run, tmp_path):
    inputs = tmp_path / "in"
    imwrite(inputs / "a_small.png", np.full((64, 64), 90, np.uint8))  # 4,096 pixels
    imwrite(inputs / "b_larger.png", np.full((80, 80), 90, np.uint8))  # 6,400 pixels
    png_bomb(inputs / "c_bomb.png", 30000, 30000, complete=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["predict", str(tiny_run.run_dir), str(inputs), "--out", str(out),
                                       "--threshold", "0.5", "--max-pixels", "5000"])
    assert result.exit_code == 0, result.output
    with (out / "scores.csv").open(newline="") as f:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(f)}
    assert rows["a_small.png"]["score"] and not rows["a_small.png"]["error"]
    assert "80x80 (WxH) = 0.0 MP, more than the limit of 0.005 MP" in rows["b_larger.png"]["error"]
    assert "30000x30000 (WxH) = 900.0 MP, more than the limit" in rows["c_bomb.png"]["error"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a_small.png"]


def test_fit_records_the_limit_and_refuses_a_bad_one():
    from kerasdec.cli import build_fit_config
    from kerasdec.config import DataConfig

    cfg = build_fit_config("synthetic", None, None, None, None, max_pixels=123_456)
    assert cfg.data.max_pixels == 123_456 and json.loads(json.dumps(cfg.to_dict()))["data"]["max_pixels"]
    with pytest.raises(ValueError, match=r"max_pixels='many'; expected a whole number of pixels >= 1"):
        DataConfig(max_pixels="many")
    result = CliRunner().invoke(main, ["fit", "--max-pixels", "0"])
    assert result.exit_code == 2 and "--max-pixels" in result.output
