"""``algofs_jupyter.path("data/demo/datasets/cities.csv")``: one spelling that works in every notebook.

A relative ``"algofs/data/…"`` only works from the server's root directory: a notebook that lives inside
``algofs/`` runs with that folder as its working directory, and in fallback mode (no FUSE) nothing is at
``algofs/`` at all. This gives the absolute path under the mount when one is mounted, else an ``algo://`` URL
that pandas and every fsspec user open through the API, with this kernel's endpoint set as ``algo://``'s
defaults in ``fsspec.config.conf`` (in memory only: the key is never written anywhere or shown).
"""

from __future__ import annotations

import os

import fsspec.config

from .kernel_access import get_access


def layout_path(name: str) -> str:
    """``data://demo/x.csv`` → ``data/demo/x.csv``, ``s3://bucket/k`` → ``s3/bucket/k``,
    ``algo://data/demo/x.csv`` and ``/data/demo/x.csv`` → ``data/demo/x.csv``."""
    scheme, sep, rest = name.partition("://")
    if not sep:
        return name.lstrip("/")
    return rest.lstrip("/") if scheme == "algo" else f"{scheme}/{rest.lstrip('/')}"


def path(name: str) -> str:
    """Where a notebook reads ``name`` (a path in the mount's layout or a ``data://`` URI), from any
    working directory: ``<mount point>/data/…`` when mounted, else ``algo://data/…``."""
    relative = layout_path(name)
    access = get_access()
    status = access.status()
    if status.get("mounted"):
        return os.path.join(status["mountpoint_abs"], relative)
    endpoint = access.endpoint()
    defaults = fsspec.config.conf.setdefault("algo", {})
    defaults.update(api_address=endpoint.api_address, api_key=endpoint.api_key)
    return f"algo://{relative}"
