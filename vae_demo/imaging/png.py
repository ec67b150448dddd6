"""PNG files for the app's answers, written for speed: every answer image is encoded once per request.

Each row is stored with PNG's *Up* filter (the byte above subtracted), computed in one numpy step, and the rows are
deflated by zlib-ng at level 1 with the run-length strategy. The app's pictures suit that pair: an image enlarged by
a whole factor repeats each row, which Up turns into zeros; white margins and the flat colours of faces and digits are
runs. Pillow's encoder, by contrast, tries all five filters on every row and deflates with a full match search, which
on a sheet of 64 colour samples costs several times the decode that drew it (benchmarks/bench.py measures the answer
it serves). The file is a plain 8-bit PNG (RFC 2083) that any reader opens; tests/test_images.py checks the pixels
come back exactly.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

_COLOUR_TYPE = {"L": 0, "RGB": 2, "RGBA": 6}  # PNG's colour type for each Pillow mode written directly
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP = 2  # PNG filter type: Up


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def png_bytes(image: Image.Image) -> bytes:
    """A PIL image -> the bytes of a PNG of it. "L", "RGB" and "RGBA" are written here (Up filter, zlib-ng level 1,
    run-length strategy); any other mode by Pillow at level 1."""
    colour_type = _COLOUR_TYPE.get(image.mode)
    if colour_type is None:
        buf = io.BytesIO()
        image.save(buf, "png", compress_level=1)
        return buf.getvalue()
    a = np.asarray(image, dtype=np.uint8)
    h, w = image.height, image.width
    rows = a.reshape(h, -1)
    raw = np.empty((h, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = _UP
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG's filters do
    deflate = zlib_ng.compressobj(1, zlib_ng.DEFLATED, 15, 9, zlib_ng.Z_RLE)
    data = deflate.compress(raw.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)  # 8 bits, deflate, adaptive filters, no interlace
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
