"""The SavedModel's serving computations: in-graph request checks, decoding, resizing, outputs.

Why the checks are in the graph: TF Serving feeds a request straight into the graph. Under TF 2.21's
default oneDNN kernels a convolution fed a tensor of the wrong rank does not raise, it ABORTS the
process (``Check failed ... MklConvOp``, exit 134), taking the model server down for every client.
So the signatures accept an input of unknown rank and shape, and every op after the checks depends
on them (control dependencies): a malformed request is an ``InvalidArgumentError`` whose message
states the rule (kerasdec/inference/contract.py) and what was received, raised before any convolution.

Decoding bytes as training does (``cv2.imdecode``, IMREAD_GRAYSCALE or IMREAD_COLOR): a PNG is
decoded by libpng in both (its own RGB → gray), a JPEG by libjpeg with the accurate integer DCT
(TF's default fast DCT differs by up to 9 grey levels), a BMP as RGB and, for a grayscale model,
converted with OpenCV's BMP formula. A test checks that the pixels are IDENTICAL to cv2's for each
format, from grayscale and colour files.

Resizing: images of any size are resized in the graph to the trained size with bilinear
interpolation, half-pixel centres and no antialiasing, which is what training's
``cv2.resize(..., INTER_LINEAR)`` computes; cv2 works in 8-bit fixed point, so decoded bytes
(resized as float, then rounded to 8-bit as training's uint8 images are) differ from training's by
at most 1 grey level per pixel (a test measures it). At the trained size the resize is the identity.

Sizes from the request are bounded (``ModelInfo.max_pixels``, ``kerasdec export --max-pixels``,
default 50 MP): a float image of more pixels is refused before the resize, and an encoded file whose
HEADER declares more is refused before it is decoded (an 875 KB PNG can declare 30000×30000 pixels,
and the decoder allocates what the header declares). The header is read in the graph: the PNG IHDR
chunk, the BMP info header (width and height as TensorFlow's decoder reads them) and
``tf.io.extract_jpeg_shape``.
"""

from __future__ import annotations

import tensorflow as tf

from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.inference.contract import bytes_rule, image_rule

# OpenCV's BMP reader, RGB → gray for 8-bit images: (4899 R + 9617 G + 1868 B + 2^13) >> 14.
BMP_GRAY_WEIGHTS = (4899, 9617, 1868)
BMP_GRAY_SHIFT = 14
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM")  # PNG, JPEG, BMP: the order of _decode's branches
SUMMARIZE = 16  # how many values of a tensor an assertion message shows


def _checked(tensor: tf.Tensor, checks: list) -> tf.Tensor:
    """``tensor`` behind a chain of assertions: each runs only after the previous passed (so the
    first broken rule is the one reported), and the returned tensor only after all of them.

    A check is (condition, message) or a function returning that pair: a function is called under the
    previous assertions, so what it computes (e.g. sizes read from a header) runs only once they passed.
    """
    previous: list = []
    for check in checks:
        with tf.control_dependencies(previous):
            condition, message = check() if callable(check) else check
            previous = [tf.debugging.Assert(condition, message, summarize=SUMMARIZE)]
    with tf.control_dependencies(previous):
        return tf.identity(tensor)


def checked_images(image: tf.Tensor, channels: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> tf.Tensor:
    """A ``serving_default`` request checked and shaped (B, H, W, C) float32; any rank accepted in.

    Raises (when run):
        tf.errors.InvalidArgumentError: wrong rank, channel count, an empty dimension, more than
            ``max_pixels`` pixels per image, NaN/infinity or values outside [0, 1]; the message states
            the rule and the shape or values received.
    """
    rule = image_rule(channels, max_pixels)
    shape = tf.shape(image, out_type=tf.int64)
    rank = tf.size(shape)
    dims = tf.concat([shape, tf.ones([4], tf.int64)], axis=0)[:4]  # (B, H, W, C); rank 3 → C = 1
    rank_ok = tf.equal(rank, 4) if channels != 1 else tf.logical_or(tf.equal(rank, 4), tf.equal(rank, 3))
    finite = tf.reduce_all(tf.math.is_finite(image))
    low, high = tf.reduce_min(image), tf.reduce_max(image)
    checked = _checked(image, [
        (rank_ok, [f"image has the wrong rank; {rule}; received shape", shape]),
        (tf.equal(dims[3], channels), [f"image has the wrong channel count; {rule}; received shape", shape]),
        (tf.reduce_all(dims[:3] >= 1), [f"image has an empty dimension; {rule}; received shape", shape]),
        (dims[1] * dims[2] <= max_pixels, [f"image has too many pixels; {rule}; received shape", shape]),
        (finite, [f"image holds NaN or infinite values; {rule}"]),
        (tf.logical_and(low >= 0.0, high <= 1.0),
         [f"image values outside [0, 1]; {rule}; received min and max", low, high]),
    ])
    images = tf.reshape(checked, tf.concat([dims[:3], [channels]], axis=0))
    return tf.ensure_shape(images, [None, None, None, channels])


def checked_bytes(image_bytes: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS) -> tf.Tensor:
    """A ``serving_bytes`` request checked: (B,) strings, B >= 1, each starting like a PNG/JPEG/BMP and
    declaring at most ``max_pixels`` pixels in its header (read before anything is decoded)."""
    rule = bytes_rule(max_pixels)
    shape = tf.shape(image_bytes, out_type=tf.int64)
    flat = tf.reshape(image_bytes, [-1])
    known = tf.zeros_like(flat, dtype=tf.bool)
    for magic in MAGIC:
        known = tf.logical_or(known, tf.equal(tf.strings.substr(flat, 0, len(magic)), magic))
    checked = _checked(flat, [
        (tf.equal(tf.size(shape), 1), [f"image_bytes has the wrong rank; {rule}; received shape", shape]),
        (tf.size(flat) >= 1, [f"image_bytes is empty; {rule}; received shape", shape]),
        (tf.reduce_all(known), [f"image_bytes holds data that is not a PNG, JPEG or BMP file; {rule}; "
                                "received at positions", tf.where(tf.logical_not(known))[:, 0]]),
        lambda: _size_check(flat, max_pixels, rule),
    ])
    return tf.ensure_shape(checked, [None])


def _size_check(flat: tf.Tensor, max_pixels: int, rule: str) -> tuple[tf.Tensor, list]:
    """(every file declares at most ``max_pixels`` pixels, message) for checked PNG/JPEG/BMP bytes."""
    sides = tf.map_fn(header_sides, flat, fn_output_signature=tf.TensorSpec([2], tf.int64))  # (B, 2)
    pixels = sides[:, 0] * sides[:, 1]
    large = tf.where(pixels > max_pixels)[:, 0]
    return tf.size(large) == 0, [f"image_bytes holds a file whose header declares more than {max_pixels} "
                                 f"pixels (refused before decoding); {rule}; received at positions", large,
                                 "(height, width)", tf.gather(sides, large)]


def _unsigned(data: tf.Tensor, start: int, size: int, little: bool) -> tf.Tensor:
    """The unsigned integer of ``size`` bytes at ``start`` of a scalar string, as int64 (0 past its end)."""
    padded = tf.strings.join([data, tf.constant(b"\0" * (start + size))])  # substr needs pos <= length
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, start, size), tf.uint8), tf.int64)  # (size,)
    order = range(size) if little else range(size - 1, -1, -1)
    weights = tf.constant([256 ** i for i in order], tf.int64)
    return tf.reduce_sum(raw * weights)


def header_sides(data: tf.Tensor) -> tf.Tensor:
    """(height, width) int64 declared by the header of one PNG / JPEG / BMP file (checked_bytes' magic)."""
    matches = tf.stack([tf.equal(tf.strings.substr(data, 0, len(magic)), magic) for magic in MAGIC])
    kind = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)

    def png() -> tf.Tensor:  # IHDR: big-endian width, height at bytes 16 and 20
        return tf.stack([_unsigned(data, 20, 4, False), _unsigned(data, 16, 4, False)])

    def jpeg() -> tf.Tensor:  # the frame header, as the decoder will read it
        return tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64)

    def bmp() -> tf.Tensor:  # tf.io.decode_bmp reads int32 width at 18 and height at 22 (negative: top-down)
        width, height = _unsigned(data, 18, 4, True), _unsigned(data, 22, 4, True)
        return tf.stack([tf.where(v >= 2**31, 2**32 - v, v) for v in (height, width)])

    return tf.switch_case(kind, [png, jpeg, bmp])


def bmp_gray(image: tf.Tensor) -> tf.Tensor:
    """(h, w, 3) RGB uint8 → (h, w, 1) uint8 with the integer formula OpenCV's BMP reader uses."""
    weights = tf.constant(BMP_GRAY_WEIGHTS, tf.int32)
    weighted = tf.tensordot(tf.cast(image, tf.int32), weights, axes=[[2], [0]])
    gray = tf.bitwise.right_shift(weighted + (1 << (BMP_GRAY_SHIFT - 1)), BMP_GRAY_SHIFT)
    return tf.cast(gray, tf.uint8)[:, :, None]


def decode_file(data: tf.Tensor, channels: int) -> tf.Tensor:
    """One checked PNG / JPEG / BMP file → (h, w, channels) uint8, pixel for pixel as cv2.imdecode."""
    matches = tf.stack([tf.equal(tf.strings.substr(data, 0, len(magic)), magic) for magic in MAGIC])
    kind = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)  # checked_bytes: one matches

    def bmp() -> tf.Tensor:
        rgb = tf.io.decode_bmp(data, channels=3)
        return bmp_gray(rgb) if channels == 1 else rgb

    branches = [lambda: tf.io.decode_png(data, channels=channels),
                lambda: tf.io.decode_jpeg(data, channels=channels, dct_method="INTEGER_ACCURATE"), bmp]
    return tf.ensure_shape(tf.switch_case(kind, branches), [None, None, channels])


def decode_images(image_bytes: tf.Tensor, channels: int, size_hw: tuple[int, int]
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """Checked bytes (B,) → images (B, H, W, C) float32 in [0, 1] at ``size_hw``, sizes (B, 2) int32.

    Each file is decoded as training decodes it (:func:`decode_file`), resized bilinearly as float,
    rounded to 8-bit, then scaled to [0, 1].
    """
    height, width = size_hw

    def decode(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = decode_file(data, channels)
        size = tf.shape(image, out_type=tf.int32)[:2]
        resized = tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear")
        return tf.clip_by_value(tf.round(resized), 0.0, 255.0) / 255.0, size

    spec = (tf.TensorSpec((height, width, channels), tf.float32), tf.TensorSpec((2,), tf.int32))
    return tf.map_fn(decode, image_bytes, fn_output_signature=spec)


def model_outputs(model, images: tf.Tensor, threshold: float, heatmap_hw: tf.Tensor | None
                  ) -> dict[str, tf.Tensor]:
    """Run ``model`` on (B, H, W, C) images of its input size; the serving outputs (contract.OUTPUTS).

    Args:
        model: a SegDecNet (returns {"decision": (B, 1), "seg": (B, H/8, W/8, 1)} logits).
        images: float32 in [0, 1] at the model's input size.
        threshold: the decision threshold on the score.
        heatmap_hw: (2,) size to resize the heatmap to; None = the input size.
    """
    out = model(images, training=False)
    decision = out["decision"][:, 0]  # (B,)
    score = tf.sigmoid(decision)
    heat = tf.sigmoid(out["seg"])  # (B, H/8, W/8, 1)
    size = tf.shape(images)[1:3] if heatmap_hw is None else heatmap_hw
    heatmap = tf.image.resize(heat, size, method="bilinear")[..., 0]  # (B, h, w)
    return {"score": score, "is_defective": score >= tf.constant(threshold, tf.float32),
            "heatmap": heatmap, "decision": decision, "seg": out["seg"][..., 0]}


def serve_images(model, image: tf.Tensor, *, channels: int, size_hw: tuple[int, int],
                 threshold: float, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, tf.Tensor]:
    """``serving_default``: checked float images of any size → outputs, heatmap at the request's size."""
    images = checked_images(image, channels, max_pixels)
    request_hw = tf.shape(images, out_type=tf.int32)[1:3]
    resized = tf.image.resize(images, size_hw, method="bilinear")  # identity at the trained size
    outputs = model_outputs(model, resized, threshold, request_hw)
    batch = tf.shape(images)[0]
    return {**outputs, "image_size": tf.tile(request_hw[None], [batch, 1])}


def serve_bytes(model, image_bytes: tf.Tensor, *, channels: int, size_hw: tuple[int, int],
                threshold: float, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, tf.Tensor]:
    """``serving_bytes``: checked encoded files → outputs, heatmap at the model's input size."""
    images, sizes = decode_images(checked_bytes(image_bytes, max_pixels), channels, size_hw)
    return {**model_outputs(model, images, threshold, None), "image_size": sizes}


def core_outputs(model, image: tf.Tensor) -> dict[str, tf.Tensor]:
    """The TFLite computation on an image of the fixed input size: score, decision, seg logits."""
    out = model(image, training=False)
    decision = out["decision"][:, 0]
    return {"score": tf.sigmoid(decision), "decision": decision, "seg": out["seg"][..., 0]}
