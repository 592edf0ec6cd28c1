"""Sequential-access detection per read stream (one open file handle), for the block cache's readahead.

A stream counts as sequential while each read starts near where the previous one ended. "Near" allows a
little reordering, because a multi-threaded FUSE daemon receives the kernel's concurrent readahead requests
in any order. A read far away (a parquet footer, a seek) resets the count, and a few sequential reads
bring it back: the detector never latches into "random" mode, a failure seen in peers (a footer read
left a connector in random mode for the rest of a 1 GB parquet file).

Locks (names of docs/architecture.md's *mount lock order*):
``SequentialDetector._lock`` guards ``_streams`` and every ``_Stream``; a leaf.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import NamedTuple

#: Reads needed in a row before readahead starts again (a new stream at offset 0 already counts one).
SEQUENTIAL_TRIGGER = 2
#: How far (bytes) a read may start from the previous end and still count as sequential: a few times the
#: read size, at least this much.
MIN_TOLERANCE = 256 << 10
#: Streams remembered at once (oldest forgotten first); a forgotten stream just starts over.
MAX_STREAMS = 4096


class _Stream:
    __slots__ = ("end", "run", "from_start")

    def __init__(self, end: int, run: int):
        self.end = end
        self.run = run
        self.from_start = run > 0  # reading from offset 0 without a jump so far


class Access(NamedTuple):
    sequential: bool  # reads follow each other: read ahead
    from_start: bool  # the stream began at offset 0 and never jumped (a whole-file read, most likely)


class SequentialDetector:
    """``observe()`` says how a stream's reads look right now. Thread-safe."""

    def __init__(self, trigger: int = SEQUENTIAL_TRIGGER, max_streams: int = MAX_STREAMS):
        self.trigger = trigger
        self.max_streams = max_streams
        self._streams: OrderedDict[Hashable, _Stream] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, stream: Hashable, offset: int, end: int) -> Access:
        tolerance = max(MIN_TOLERANCE, 4 * (end - offset))
        with self._lock:
            state = self._streams.get(stream)
            if state is None:
                state = _Stream(end, 1 if offset == 0 else 0)
                self._streams[stream] = state
                if len(self._streams) > self.max_streams:
                    self._streams.popitem(last=False)
            else:
                self._streams.move_to_end(stream)
                if state.end - tolerance <= offset <= state.end + tolerance:
                    state.run += 1
                    state.end = max(state.end, end)
                else:
                    state.run = 0
                    state.end = end
                    state.from_start = False
            return Access(state.run >= self.trigger, state.from_start)

    def forget(self, stream: Hashable) -> None:
        with self._lock:
            self._streams.pop(stream, None)
