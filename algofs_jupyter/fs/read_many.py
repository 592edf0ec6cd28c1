"""Many small files with one request: the client half of ``read-many`` (docs/api-extensions.md §12).

The answer is ``<length of the index>\\n<JSON index><bytes of each answered file, in order>``; an entry of
the index names a file and its ``size`` and ``etag``, or the ``error`` a GET of it would have got. A file
the server did not answer maps to that error (an OSError with its errno): the caller GETs it on its own.
"""

from __future__ import annotations

import json

from .api_errors import error_for_status

#: path -> (bytes, ETag), or the error the file got.
ManyResult = dict[str, "tuple[bytes, str] | OSError"]


def decode(body: bytes, paths_of: dict[str, str]) -> ManyResult:
    """Split an answer; ``paths_of`` maps each URI asked for to the caller's path. A malformed answer
    raises OSError(EIO); paths the answer does not mention are missing from the result."""
    newline = body.find(b"\n", 0, 12)
    try:
        length = int(body[:newline])
        index = json.loads(body[newline + 1:newline + 1 + length])
        entries = index["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OSError(5, "read-many: malformed answer") from exc
    offset = newline + 1 + length
    result: ManyResult = {}
    for entry in entries:
        path = paths_of.get(str(entry.get("path"))) if isinstance(entry, dict) else None
        if path is None:
            raise OSError(5, "read-many: the answer names a file that was not asked for")
        error = entry.get("error")
        if isinstance(error, dict):
            result[path] = error_for_status(int(error.get("status") or 500), str(error.get("message") or ""),
                                            entry["path"], error)
            continue
        size = entry.get("size")
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            raise OSError(5, "read-many: the answer is shorter than its index says")
        result[path] = (body[offset:offset + size], str(entry.get("etag") or ""))
        offset += size
    return result
