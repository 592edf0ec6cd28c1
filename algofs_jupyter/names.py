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


#: The rule as users read it, in every message that refuses a name (contents API, mount log, magics).
NAME_RULE = (
    "`?` and `#` can't be in names on this storage, nor `/`, `%XX` escapes (e.g. %41), control characters, "
    "'.' or '..': the API carries names inside URLs, which would cut or change them"
)

#: Where the API can create folders and files, for messages that refuse a location.
FOLDER_RULE = (
    "folders can be made only in a user's folder data/<user>/ (a new collection) or inside a collection "
    "(data/<user>/<collection>/…), or inside a connector (e.g. s3/<bucket>/…); not in the mount's top "
    "folder nor in data/ itself"
)
FILE_RULE = (
    "files can be saved only inside a collection (data/<user>/<collection>/…) or a connector "
    "(e.g. s3/<bucket>/…); not in the mount's top folder, in data/ nor directly in data/<user>/"
)


def name_refusal(name: str) -> str | None:
    """A message naming the rule when ``name`` can't be used (None when it can)."""
    reason = invalid_name_reason(name)
    if reason is None:
        return None
    return f"Can't use the name {name!r} ({reason}): {NAME_RULE}."


def location_refusal(layout: str, directory: bool) -> str | None:
    """Why nothing named ``layout`` (a path below the mount root, e.g. ``data/demo/x``) can be created
    there, or None; the rule the mount enforces with EACCES (``mount.layout.check_writable_location``)."""
    from .fs import api_paths

    parts = layout.strip("/").split("/")
    if parts[0] == "data":
        allowed = len(parts) >= (3 if directory else 4)
    else:
        allowed = len(parts) >= 2 and api_paths.is_connector(parts[0])
    if allowed:
        return None
    where = "/".join(parts[:-1]) or "the mount's top folder"
    return f"Can't create {parts[-1]!r} in {where}: {FOLDER_RULE if directory else FILE_RULE}."
