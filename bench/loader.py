"""Data-loader rows for ``bench/small_files.py``: a PyTorch-style loader over an image-folder-like tree
(two epochs, cold then warm) and a many-file tree walked and read once (daemon RSS after).

The loader runs in a child process (``python bench/loader.py loader MODE ROOT``) so that torch's import
and memory stay out of the bench: ``torch.utils.data.DataLoader(num_workers=4, shuffle=True,
persistent_workers=True)`` when torch imports (``--torch-path DIR`` adds a directory holding it, e.g.
``pip install --no-deps --target DIR /opt/wheels/torch-*.whl``), else a ``multiprocessing`` pool of 4
workers reading the same shuffled order in batches of ``BATCH``: the same access pattern. MODE is
``files`` (open/read/close per item: a mount or local disk) or ``client`` (``file().getBytes()`` per item,
one client per worker). The child prints one JSON line: the seconds of each epoch and which loader ran.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

WORKERS = 4
BATCH = 32
EPOCHS = 2


# ------------------------------------------------------------------------------------------ trees
def make_image_folder(root: Path, classes: int, per_class: int, size: int) -> list[str]:
    """``root/class_NNN/img_NNNNN.jpg``: what ``torchvision.datasets.ImageFolder`` walks. Relative paths."""
    items = []
    for index in range(classes):
        folder = root / f"class_{index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            name = f"img_{number:05d}.jpg"
            (folder / name).write_bytes(os.urandom(size))
            items.append(f"{folder.name}/{name}")
    return items


def make_many(root: Path, count: int, per_dir: int = 1000, size: int = 64) -> int:
    """``count`` files of ``size`` bytes, ``per_dir`` to a directory (a dataset of many tiny records)."""
    payload = b"x" * size
    for index in range(count):
        if index % per_dir == 0:
            folder = root / f"d{index // per_dir:05d}"
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:07d}").write_bytes(payload)
    return count


def walk_and_read(root: Path) -> tuple[int, int]:
    """Every file under ``root`` listed (scandir) and read once; (files, bytes)."""
    files = total = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                with open(entry.path, "rb") as handle:
                    total += len(handle.read())
                files += 1
    return files, total


def rss_mib(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ----------------------------------------------------------------------------------------- loader
class Items:
    """A map-style dataset: item ``i`` is the bytes of file ``i`` (what a ``Dataset.__getitem__`` reads)."""

    def __init__(self, mode: str, root: str, names: list[str]):
        self.mode, self.root, self.names = mode, root, names
        self._client = None

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> int:
        if self.mode == "client":
            if self._client is None:
                import Algorithmia

                self._client = Algorithmia.client(api_key=os.environ["ALGORITHMIA_API_KEY"],
                                                  api_address=os.environ["ALGORITHMIA_API"])
            return len(self._client.file(f"{self.root}/{self.names[index]}").getBytes())
        with open(f"{self.root}/{self.names[index]}", "rb") as handle:
            return len(handle.read())


def _sizes(batch: list[int]) -> int:
    return sum(batch)


def torch_epochs(items: Items) -> list[float]:
    from torch.utils.data import DataLoader

    loader = DataLoader(items, batch_size=BATCH, shuffle=True, num_workers=WORKERS, persistent_workers=True,
                        collate_fn=_sizes)
    times = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        total = sum(loader)
        times.append(time.perf_counter() - start)
        if total <= 0:
            raise RuntimeError("the loader read nothing")
    return times


_ITEMS: Items | None = None


def _batch(indices: list[int]) -> int:
    assert _ITEMS is not None
    return sum(_ITEMS[i] for i in indices)


def pool_epochs(items: Items) -> list[float]:
    import multiprocessing

    global _ITEMS
    _ITEMS = items
    times = []
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        pool.map(len, [[]] * WORKERS)  # workers up before the clock, like persistent loader workers
        for epoch in range(EPOCHS):
            order = list(range(len(items)))
            random.Random(epoch).shuffle(order)
            batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
            start = time.perf_counter()
            total = sum(pool.imap(_batch, batches, chunksize=1))
            times.append(time.perf_counter() - start)
            if total <= 0:
                raise RuntimeError("the loader read nothing")
    return times


def loader_child(mode: str, root: str, listing: str, torch_path: str) -> int:
    if torch_path:
        sys.path.insert(0, torch_path)
    names = Path(listing).read_text().splitlines()
    items = Items(mode, root, names)
    try:
        import torch.utils.data  # noqa: F401
        kind, times = "torch DataLoader", torch_epochs(items)
    except ImportError:
        kind, times = "multiprocessing pool", pool_epochs(items)
    print(json.dumps({"loader": kind, "epochs": times}), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "loader":
        sys.exit(loader_child(*sys.argv[2:6]))
    sys.exit(f"usage: {sys.argv[0]} loader MODE ROOT LISTING TORCH_PATH (run by bench/small_files.py)")
