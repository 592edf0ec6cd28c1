"""Which file and directory names the Algorithmia API can carry (contract §2.3).

The official client sends names inside URL paths through `requests`, which truncates at ``?`` and ``#``,
removes ``.``/``..`` segments and unquotes ``%XX`` escapes of unreserved characters. Names with those
features cannot round-trip, so the server refuses them and the FUSE layer refuses to create them.
"""

from __future__ import annotations

import re

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_FORBIDDEN_CHARS = {"/": "a slash", "?": "a '?'", "#": "a '#'", "\x00": "a NUL byte"}
#: Prefix of in-flight upload files; reserved so a user file can never be mistaken for one.
RESERVED_PREFIX = ".algofs-partial-"


def invalid_name_reason(name: str) -> str | None:
    """Why ``name`` can't be a file/directory name on the API, or None when it is usable."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"'{name}' is not a usable name"
    for char, label in _FORBIDDEN_CHARS.items():
        if char in name:
            return f"name contains {label}"
    if _PERCENT_ESCAPE.search(name):
        return "name contains a %-escape (e.g. %41), which HTTP clients would decode"
    if name.startswith(RESERVED_PREFIX):
        return f"names starting with {RESERVED_PREFIX!r} are reserved"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "name contains a control character"
    return None


def is_valid_name(name: str) -> bool:
    """True when :func:`invalid_name_reason` has no objection."""
    return invalid_name_reason(name) is None
