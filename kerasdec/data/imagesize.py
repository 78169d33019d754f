"""An image's size read from its header, before anything is decoded (pure Python).

A compressed file says how large it decodes: an 875 KB PNG can declare 30000×30000 pixels, and the
decoder allocates what the header declares (900 MB grey, 2.7 GB colour) before it finds out anything
else. So every image kerasdec decodes (training and evaluation data, masks, ``kerasdec predict``) is
first measured here and refused above a pixel limit (``DataConfig.max_pixels``, ``--max-pixels``;
default config.DEFAULT_MAX_PIXELS = 50 MP). The served SavedModel applies the same limit inside its
graph (kerasdec/deploy/signatures.py).

Formats whose size is read: PNG, JPEG, BMP, TIFF (and BigTIFF) and WebP. Another format (or a file
whose header is cut short) is refused: its size cannot be known before decoding.
"""

from __future__ import annotations

import struct
from pathlib import Path

from kerasdec.echo import shown

FORMATS = "PNG, JPEG, BMP, TIFF or WebP"  # how messages name the formats read
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic); not C4, C8, CC.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_TIFF_WIDTH, _TIFF_HEIGHT = 256, 257  # TIFF tags ImageWidth, ImageLength


def header_size(data: bytes | memoryview) -> tuple[int, int, str] | None:
    """(width, height, format) declared by an encoded image's header; None when it cannot be read.

    Args:
        data: the file's bytes (any buffer of bytes: bytes, a memoryview, a uint8 numpy array).

    Example:
        >>> header_size(open("kos01/Part0.jpg", "rb").read())
        (500, 1266, 'JPEG')
    """
    buf = memoryview(data).cast("B")
    head = bytes(buf[:16])
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            width, height = struct.unpack_from(">II", buf, 16)
            return width, height, "PNG"
        if head.startswith(b"\xff\xd8"):
            return _jpeg(buf)
        if head.startswith(b"BM"):
            return _bmp(buf)
        if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff(buf, head)
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp(buf, head)
    except (struct.error, IndexError):  # a header cut short
        return None
    return None


def _jpeg(buf: memoryview) -> tuple[int, int, str] | None:
    pos = 2
    while pos + 4 <= len(buf):
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", buf, pos + 5)
            return width, height, "JPEG"
        pos += 2 + struct.unpack_from(">H", buf, pos + 2)[0]
    return None


def _bmp(buf: memoryview) -> tuple[int, int, str]:
    if struct.unpack_from("<I", buf, 14)[0] == 12:  # BITMAPCOREHEADER: 16-bit sides
        width, height = struct.unpack_from("<HH", buf, 18)
    else:
        width, height = struct.unpack_from("<ii", buf, 18)
    return abs(width), abs(height), "BMP"  # a negative height means top-down rows


def _tiff(buf: memoryview, head: bytes) -> tuple[int, int, str] | None:
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets and counts
    if big:
        offset = struct.unpack_from(order + "Q", buf, 8)[0]
        count, entry, first = struct.unpack_from(order + "Q", buf, offset)[0], 20, offset + 8
    else:
        offset = struct.unpack_from(order + "I", buf, 4)[0]
        count, entry, first = struct.unpack_from(order + "H", buf, offset)[0], 12, offset + 2
    sides = {}
    for i in range(min(count, 4096)):  # the first image file directory (the page OpenCV decodes)
        at = first + i * entry
        tag, kind = struct.unpack_from(order + "HH", buf, at)
        if tag in (_TIFF_WIDTH, _TIFF_HEIGHT):
            code = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if code is None:
                return None
            sides[tag] = struct.unpack_from(order + code, buf, at + (12 if big else 8))[0]
    if len(sides) < 2:
        return None
    return sides[_TIFF_WIDTH], sides[_TIFF_HEIGHT], "TIFF"


def _webp(buf: memoryview, head: bytes) -> tuple[int, int, str] | None:
    chunk, body = head[12:16], bytes(buf[20:30])
    if chunk == b"VP8X":  # extended: 24-bit canvas width - 1 and height - 1
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
    elif chunk == b"VP8L" and body[:1] == b"\x2f":  # lossless: 14-bit width - 1 and height - 1
        bits = int.from_bytes(body[1:5], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":  # lossy key frame: 14-bit sides
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", body, 6))
    else:
        return None
    return width, height, "WebP"


def check_pixels(data: bytes | memoryview, max_pixels: int, path: Path | str) -> tuple[int, int]:
    """(width, height) of an encoded image whose header declares at most ``max_pixels`` pixels.

    Raises:
        ValueError: the size cannot be read from the header (another format, a header cut short), or
            it is above ``max_pixels`` (the message says both and how to raise the limit).
    """
    found = header_size(data)
    if found is None:
        raise ValueError(f"{path} is not a readable image (its header, starting "
                         f"{shown(bytes(memoryview(data).cast('B')[:8]))}, declares no size); expected a "
                         f"{FORMATS} file (kerasdec checks the size before decoding)")
    width, height, kind = found
    if width * height > max_pixels:
        raise ValueError(f"{path}: its {kind} header declares {width}x{height} (WxH) = "
                         f"{width * height / 1e6:.1f} MP, more than the limit of {max_pixels / 1e6:g} MP "
                         f"({max_pixels} pixels); refused before decoding. If the image is genuine, raise "
                         "the limit with --max-pixels")
    return width, height
