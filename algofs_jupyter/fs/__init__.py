"""Data-access layer: the Algorithmia Data API as an fsspec filesystem (protocol ``algo``)."""

from __future__ import annotations

import fsspec

from .api_errors import BackendUnavailable, StaleFile
from .api_session import ApiSession
from .filesystem import AlgoFileSystem

fsspec.register_implementation("algo", AlgoFileSystem, clobber=True)

__all__ = ["AlgoFileSystem", "ApiSession", "BackendUnavailable", "StaleFile"]
