"""Issue 20, family 1 in the served SavedModel: serving_bytes reads the size a file declares from its
header IN THE GRAPH and refuses it above the limit before the decoder allocates; serving_default refuses
a float image of more pixels before resizing it. The model keeps answering good requests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.deploy import signatures

sys.path.insert(0, str(Path(__file__).parents[1] / "untrusted"))
from untrusted_files import bmp_header, jpeg_header, png_bomb  # noqa: E402


def _encoded(suffix: str, shape: tuple[int, ...]) -> bytes:
    ok, data = cv2.imencode(suffix, np.random.default_rng(0).integers(0, 256, shape, np.uint8))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def serve_bytes(exported):
    return tf.saved_model.load(str(exported)).signatures["serving_bytes"]


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("bombs")
    return {"png": png_bomb(folder / "a.png", 16000, 16000).read_bytes(),  # a real 256 MP bomb, ~250 KB
            "png header": png_bomb(folder / "b.png", 30000, 30000, complete=False).read_bytes(),
            "jpeg header": jpeg_header(folder / "c.jpg", 30000, 30000).read_bytes(),
            "bmp header": bmp_header(folder / "d.bmp", 30000, 30000).read_bytes(),
            "bmp top-down": bmp_header(folder / "e.bmp", 30000, -30000).read_bytes()}


@pytest.mark.parametrize("kind", ["png", "png header", "jpeg header", "bmp header", "bmp top-down"])
def test_serving_bytes_refuses_a_file_declaring_too_many_pixels_before_decoding(serve_bytes, bombs, kind):
    good = _encoded(".png", (64, 64))
    side = 16000 if kind == "png" else 30000
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        serve_bytes(image_bytes=tf.constant([good, bombs[kind]]))
    message = err.value.message
    assert f"image_bytes holds a file whose header declares more than {DEFAULT_MAX_PIXELS} pixels (refused " \
           "before decoding)" in message
    assert f"received at positions] [1] [(height, width)] [[{side} {side}]]" in message
    out = serve_bytes(image_bytes=tf.constant([good]))  # the same model answers the next request
    assert out["score"].shape == (1,)


def test_serving_bytes_reads_real_headers_of_every_format_and_keeps_large_images_under_the_limit(serve_bytes):
    files = [_encoded(".jpg", (700, 1000)), _encoded(".png", (3000, 2000)), _encoded(".bmp", (90, 70, 3)),
             _encoded(".jpg", (64, 64, 3))]
    out = serve_bytes(image_bytes=tf.constant(files))
    assert out["image_size"].numpy().tolist() == [[700, 1000], [3000, 2000], [90, 70], [64, 64]]


def test_serving_default_refuses_a_float_image_of_more_pixels_than_the_limit():
    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
    def checked(image):
        return signatures.checked_images(image, 1, max_pixels=100)

    assert checked(tf.zeros((2, 10, 10, 1))).shape == (2, 10, 10, 1)
    rule = r"image has too many pixels; .* H x W at most 100 pixels.*received shape.*\[1 11 10 1\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=rule):
        checked(tf.zeros((1, 11, 10, 1)))


def test_the_limit_is_recorded_with_the_export_and_stated_in_its_rules(exported):
    meta = json.loads((exported / "metadata.json").read_text())
    assert meta["max_pixels"] == DEFAULT_MAX_PIXELS
    assert f"at most {DEFAULT_MAX_PIXELS} pixels" in meta["signatures"]["serving_default"]
    assert f"declares at most {DEFAULT_MAX_PIXELS} pixels" in meta["signatures"]["serving_bytes"]
