"""Seeding the demo content into a server root. Idempotent: existing files and ACLs are left alone.

Shipped files live in ``content/`` and ``algorithms/`` next to this module; the rest is generated so
git stays small: PNG images, a 5,000-file directory and a sparse large file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..acl import AclStore
from ..namespace import hosted_data_backend
from . import png

HERE = Path(__file__).parent
MANY_FILES = 5000
DEFAULT_LARGE_FILE_MB = 1024

#: collection -> read ACL (collections not listed keep the default ``["algo://.my/*"]``)
DEMO_ACLS = {
    ("demo", "public"): ["user://*"],
    ("demo", "images"): ["user://*"],
    ("alice", "private"): [],
    ("alice", "public"): ["user://*"],
    ("anowell", "pinky-quotes"): ["user://*"],
}
#: Owned by demo: others read; alice may add files to dropbox+work but not replace or delete any
DEMO_CONNECTORS: dict[str, dict] = {
    "s3": {"path": "connectors/s3", "owner": "demo"},
    "dropbox": {"path": "connectors/dropbox", "owner": "demo"},
    "dropbox+work": {"path": "connectors/dropbox-work", "owner": "demo", "write": ["demo", "alice"]},
    "s3+images": {"path": "connectors/s3-images", "allowed_paths": ["media/images"], "owner": "demo"},
}
GENERATED_IMAGES = {
    "data/demo/images/gradient.png": png.gradient,
    "data/demo/images/checkerboard.png": png.checkerboard,
    "connectors/dropbox/Photos/sunset.png": png.sunset,
    "connectors/s3-images/media/images/cat.png": png.cat,
    "connectors/s3-images/media/images/dog.png": png.dog,
}


def copy_missing(source: Path, destination: Path) -> None:
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        target = destination / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def write_images(root: Path) -> None:
    for relative, pixel in GENERATED_IMAGES.items():
        target = root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png.encode_png(64, 64, pixel))


def write_many_files(directory: Path, count: int = MANY_FILES) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        target = directory / f"file-{index:05d}.txt"
        if not target.exists():
            target.write_text(f"demo file number {index}\n")


def write_large_file(path: Path, size_mb: int) -> None:
    """A sparse file of zeros: costs no disk space, reads at page-cache speed."""
    if size_mb <= 0:
        return
    size = size_mb * 1024 * 1024
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def merge_connectors(root: Path) -> None:
    config_file = root / "connectors.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {"connectors": {}}
    connectors = config.setdefault("connectors", {})
    if all(cid in connectors and "owner" in connectors[cid] for cid in DEMO_CONNECTORS):
        return
    for cid, spec in DEMO_CONNECTORS.items():
        current = connectors.setdefault(cid, dict(spec))
        if current.get("path") == spec["path"]:
            current.setdefault("owner", spec["owner"])  # a root seeded by an earlier version
    tmp = config_file.with_name("connectors.json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, config_file)


def seed(root: Path, large_file_mb: int = DEFAULT_LARGE_FILE_MB) -> None:
    root.mkdir(parents=True, exist_ok=True)
    copy_missing(HERE / "content", root)
    copy_missing(HERE / "algorithms", root / "algorithms")
    write_images(root)
    write_many_files(root / "data" / "demo" / "many_files")
    write_large_file(root / "data" / "demo" / "large" / "large.bin", large_file_mb)
    acl = AclStore(hosted_data_backend(root))
    for (user, collection), read in DEMO_ACLS.items():
        if not acl.has(user, collection):
            acl.set_read_list(user, collection, read)
    merge_connectors(root)
