"""Storage backends of ``algofs serve``: the interface (``base``) and its implementations."""

from .base import (
    COPY,
    FOLDER_MTIME,
    MOVE,
    NAME_MAX,
    NOT_LOOKED_UP,
    PATH_MAX,
    SET_MTIME,
    WRITE_AT_OFFSET,
    AlreadyExists,
    CrossBackend,
    DirectoryNotEmpty,
    EntryInfo,
    InvalidOperation,
    IsADirectory,
    Key,
    ListingPage,
    Lookup,
    NameTooLong,
    NotADirectory,
    NotFound,
    OffsetBeyondEnd,
    OutsideRoot,
    PreconditionFailed,
    SortKey,
    StorageBackend,
    StorageError,
    Unsatisfiable,
    Unsupported,
    Upload,
    check_key,
)
from .local import LocalBackend

__all__ = [
    "COPY", "FOLDER_MTIME", "MOVE", "NAME_MAX", "NOT_LOOKED_UP", "PATH_MAX", "SET_MTIME", "WRITE_AT_OFFSET",
    "AlreadyExists",
    "CrossBackend", "DirectoryNotEmpty", "EntryInfo", "InvalidOperation", "IsADirectory", "Key",
    "ListingPage", "LocalBackend", "Lookup", "NameTooLong", "NotADirectory", "NotFound", "OffsetBeyondEnd",
    "OutsideRoot", "PreconditionFailed", "SortKey", "StorageBackend", "StorageError", "Unsatisfiable",
    "Unsupported", "Upload", "check_key",
]
