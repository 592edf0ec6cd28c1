"""A minimal PNG writer (RGB, 8 bit), so demo images are generated instead of committed."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

Pixel = tuple[int, int, int]


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(width: int, height: int, pixel: Callable[[int, int], Pixel]) -> bytes:
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows.extend(bytes(pixel(x, y)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
            + _chunk(b"IEND", b""))


def gradient(x: int, y: int) -> Pixel:
    return (x * 4 % 256, y * 4 % 256, 160)


def checkerboard(x: int, y: int) -> Pixel:
    return (240, 240, 240) if (x // 8 + y // 8) % 2 else (30, 30, 30)


def sunset(x: int, y: int) -> Pixel:
    return (255, max(0, 200 - y * 3), max(0, 80 - y))


def cat(x: int, y: int) -> Pixel:
    head = (x - 32) ** 2 + (y - 36) ** 2 < 400
    ears = 8 < y < 22 and (abs(x - 20) < 6 or abs(x - 44) < 6)
    inside = head or ears
    return (200, 120, 40) if inside else (250, 250, 250)


def dog(x: int, y: int) -> Pixel:
    head = (x - 32) ** 2 + (y - 34) ** 2 < 440
    ears = 14 < y < 44 and (abs(x - 14) < 5 or abs(x - 50) < 5)
    inside = head or ears
    return (110, 80, 50) if inside else (235, 245, 255)
