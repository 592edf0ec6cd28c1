"""mfusepy's ``FUSE`` with one change: reads land directly in libfuse's reply buffer.

mfusepy calls ``operations.read`` for a ``bytes`` result and then copies it into the reply buffer. For a
1 MiB read that is an extra allocation and copy per request on the hottest path of the mount. When the
operations object has ``read_into(path, out, offset, fh) -> count``, ``out`` is a writable view of the
reply buffer itself and the block cache copies each byte once. Import after ``mount/__init__`` has chosen
libfuse3.
"""

from __future__ import annotations

import ctypes
from typing import Any

import mfusepy


class DirectReadFUSE(mfusepy.FUSE):
    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        read_into = getattr(self.operations, "read_into", None)
        if read_into is None:
            return super().read(path, buf, size, offset, fip)
        fh = fip.contents if self.raw_fi else fip.contents.fh
        address = ctypes.cast(buf, ctypes.c_void_p).value
        with memoryview((ctypes.c_char * size).from_address(address)).cast("B") as out:
            count = read_into(None if path is None else path.decode(self.encoding, self.errors), out,
                              offset, fh)
        if count > size:
            raise AssertionError(f"read_into reported {count} bytes for a {size}-byte buffer")
        return count
