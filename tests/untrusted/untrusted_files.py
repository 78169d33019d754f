"""Hostile files for the tests of issue 20, written byte by byte (no image library involved)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bomb(path: Path, width: int, height: int, complete: bool = True) -> Path:
    """A grey 8-bit PNG of ``width`` x ``height`` zeros: a real decompression bomb (16000² is ~250 KB),
    or with ``complete=False`` only its header followed by a few bytes of nothing (undecodable)."""
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))]
    if complete:
        packer, rows = zlib.compressobj(9), b"\x00" * (width + 1) * 64  # filter byte 0 + a zero row, x64
        data = b"".join(packer.compress(rows) for _ in range(height // 64))
        data += packer.compress(b"\x00" * (width + 1) * (height % 64)) + packer.flush()
        out += [_chunk(b"IDAT", data), _chunk(b"IEND", b"")]
    else:
        out.append(_chunk(b"IDAT", b"\x78\x9c\x03\x00"))
    path.write_bytes(b"".join(out))
    return path


def jpeg_header(path: Path, width: int, height: int) -> Path:
    """A real 16x16 baseline JPEG whose frame header (SOF0) is changed to declare ``width`` x ``height``:
    tables and scan intact, as a decoder reads it (libjpeg sizes its buffers from the frame header)."""
    import cv2
    import numpy as np

    data = bytearray(cv2.imencode(".jpg", np.zeros((16, 16), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def bmp_header(path: Path, width: int, height: int) -> Path:
    """A BMP whose BITMAPINFOHEADER declares ``width`` x ``height`` (8-bit, no pixels)."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info)
    return path
