"""Data-access layer: ``DataClient`` (the Data API) and ``AlgoFileSystem``, its fsspec face (``algo``)."""

from __future__ import annotations

import fsspec

from .api_errors import BackendUnavailable, StaleFile
from .api_session import ApiSession
from .data_api import DataClient
from .filesystem import AlgoFileSystem

fsspec.register_implementation("algo", AlgoFileSystem, clobber=True)

__all__ = ["AlgoFileSystem", "ApiSession", "BackendUnavailable", "DataClient", "StaleFile"]
