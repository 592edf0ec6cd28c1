"""Ordinary tools on a real mount of the embedded server: what a user does with ~/algofs."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import subprocess
import threading
from pathlib import Path

import pandas as pd
import pytest
from waiting import wait_until

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.mount import control

from .conftest import Mounted

pytestmark = pytest.mark.fuse


def run(*cmd: str, cwd: Path | None = None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd, timeout=300).stdout


def make_tree(root: Path) -> dict[str, bytes]:
    """A small tree with nested folders, spaces and unicode in names; returns relative path → bytes."""
    rng = random.Random(7)
    files = {
        "top.txt": b"top level\n",
        "with space/a file.txt": b"spaces in names\n",
        "ünïcødé/日本語.bin": rng.randbytes(300_000),
        "deep/er/still/empty.dat": b"",
        "deep/er/big.bin": rng.randbytes(3_000_000),
    }
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return files


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ls_lR_and_find_match_the_server(mounted: Mounted) -> None:
    nested = mounted.path / "data" / "demo" / "nested"
    on_server = mounted.server_path("data/demo/nested")
    expected = sorted(str(p.relative_to(on_server)) for p in on_server.rglob("*"))
    found = run("find", ".", "-mindepth", "1", cwd=nested).split("\n")
    assert sorted(line[2:] for line in found if line) == expected
    listing = run("ls", "-lR", str(nested))
    for path in on_server.rglob("*"):
        if path.is_file():
            assert f" {path.stat().st_size} " in listing and path.name in listing


def test_cp_r_in_and_out(mounted: Mounted, scratch: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    files = make_tree(source)
    run("cp", "-r", str(source), str(scratch / "copy"))
    layout = scratch.relative_to(mounted.path) / "copy"
    assert tree_bytes(mounted.server_path(str(layout))) == files
    run("cp", "-r", str(scratch / "copy"), str(tmp_path / "back"))
    assert tree_bytes(tmp_path / "back") == files


def test_tar_of_a_tree(mounted: Mounted, scratch: Path, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    run("cp", "-r", str(tmp_path / "src"), str(scratch / "t"))
    archive = tmp_path / "t.tar"
    run("tar", "-cf", str(archive), "-C", str(scratch), "t")
    (tmp_path / "x").mkdir()
    run("tar", "-xf", str(archive), "-C", str(tmp_path / "x"))
    assert tree_bytes(tmp_path / "x" / "t") == files


def test_rsync_a_into_the_mount(mounted: Mounted, scratch: Path, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    run("rsync", "-a", str(tmp_path / "src") + "/", str(scratch / "synced"))
    assert tree_bytes(mounted.server_path(str(scratch.relative_to(mounted.path) / "synced"))) == files
    # a second run with a changed file replaces it (rsync writes a temp file and renames it)
    (tmp_path / "src" / "top.txt").write_bytes(b"changed\n")
    run("rsync", "-a", "--checksum", str(tmp_path / "src") + "/", str(scratch / "synced"))
    assert (scratch / "synced" / "top.txt").read_bytes() == b"changed\n"
    assert not [p for p in os.listdir(scratch / "synced") if p.startswith(".top.txt")]


def test_random_seek_and_read(mounted: Mounted, scratch: Path) -> None:
    data = random.Random(1).randbytes(20 << 20)
    (scratch / "random.bin").write_bytes(data)
    rng = random.Random(2)
    with open(scratch / "random.bin", "rb") as handle:
        for _ in range(200):
            offset, size = rng.randrange(len(data) + 100), rng.randrange(1, 300_000)
            handle.seek(offset)
            assert handle.read(size) == data[offset:offset + size]


def test_random_reads_fetch_only_touched_blocks(mounted: Mounted, scratch: Path, new_mount) -> None:
    """The block cache's ranged GETs: a mount that reads nothing from the server's own files."""
    layout = str(scratch.relative_to(mounted.path) / "sparse.bin")
    over_http = new_mount(no_local_reads=True)
    size = 512 << 20
    with open(mounted.server_path(layout), "wb") as handle:  # placed on the server's disk directly
        handle.truncate(size)
        for marker in range(8):
            handle.seek(marker * (64 << 20))
            handle.write(f"marker {marker}".encode())
    before = control.query(over_http, "clear_cache")["cache"]  # a remote change: seen after clearing
    assert before["server_files"] is None
    block = before["block_size"]
    offsets = [5 * (64 << 20), 2 * (64 << 20), size - 8, 7 * (64 << 20)]
    with open(over_http / layout, "rb") as handle:
        for offset in offsets:
            handle.seek(offset)
            chunk = handle.read(8)
            if offset % (64 << 20) == 0:
                assert chunk == f"marker {offset // (64 << 20)}".encode()[:8]
    after = control.query(over_http, "status")["cache"]
    fetched = after["bytes_fetched"] - before["bytes_fetched"]
    touched_blocks = len({o // block for o in offsets})
    assert 0 < fetched <= 2 * touched_blocks * block, (fetched, touched_blocks)
    # Random reads fetch just their pages (plus what the kernel's readahead asks for), not whole blocks.
    assert after["piece_fetches"] > before["piece_fetches"]
    assert fetched <= len(offsets) * (1 << 20), f"{fetched} bytes fetched for {len(offsets)} reads of 8 bytes"


def test_append_and_editor_style_save(mounted: Mounted, scratch: Path) -> None:
    note = scratch / "note.txt"
    note.write_text("line 1\n")
    with open(note, "a") as handle:
        handle.write("line 2\n")
    assert mounted.server_path(str(note.relative_to(mounted.path))).read_text() == "line 1\nline 2\n"
    temp = scratch / ".note.txt.swp~"
    temp.write_text("rewritten by an editor\n")
    os.replace(temp, note)
    assert note.read_text() == "rewritten by an editor\n"
    assert not temp.exists()
    assert sorted(os.listdir(scratch)) == ["note.txt"]


def test_sed_in_place(mounted: Mounted, scratch: Path) -> None:
    target = scratch / "config.ini"
    target.write_text("colour = red\nsize = 3\n")
    run("sed", "-i", "s/red/blue/", str(target))
    assert target.read_text() == "colour = blue\nsize = 3\n"
    on_server = mounted.server_path(str(target.relative_to(mounted.path)))
    assert on_server.read_text() == "colour = blue\nsize = 3\n"


def test_truncate_and_o_trunc(mounted: Mounted, scratch: Path) -> None:
    target = scratch / "t.bin"
    target.write_bytes(b"0123456789")
    os.truncate(target, 4)
    assert target.read_bytes() == b"0123"
    with open(target, "r+b") as handle:
        handle.truncate(2)
        handle.seek(0, os.SEEK_END)
        handle.write(b"xy")
    assert target.read_bytes() == b"01xy"
    with open(target, "wb") as handle:  # O_TRUNC
        handle.write(b"new")
    assert mounted.server_path(str(target.relative_to(mounted.path))).read_bytes() == b"new"


def test_pandas_read_csv(mounted: Mounted, scratch: Path) -> None:
    (scratch / "table.csv").write_text("city,population\nBerlin,3645000\nParis,2161000\n")
    frame = pd.read_csv(scratch / "table.csv")
    assert list(frame["city"]) == ["Berlin", "Paris"]
    assert frame["population"].sum() == 5806000


def test_mkdir_rmdir_unlink(mounted: Mounted, scratch: Path) -> None:
    sub = scratch / "sub dir"
    sub.mkdir()
    (sub / "f").write_text("x")
    with pytest.raises(OSError) as not_empty:
        sub.rmdir()
    assert not_empty.value.errno == errno.ENOTEMPTY
    (sub / "f").unlink()
    sub.rmdir()
    assert not sub.exists()
    with pytest.raises(FileNotFoundError):
        (scratch / "missing").unlink()
    with pytest.raises(FileExistsError):
        scratch.mkdir()


def test_names_api_cannot_carry_are_refused(mounted: Mounted, scratch: Path) -> None:
    for bad in ("what?.txt", "hash#tag", "pct%41", ".algofs-partial-x"):
        with pytest.raises(OSError) as refused:
            (scratch / bad).write_text("x")
        assert refused.value.errno == errno.EINVAL, bad
    (scratch / "ok name ü + ;.txt").write_text("fine")
    assert os.listdir(scratch) == ["ok name ü + ;.txt"]


def test_rename_files_and_directories(mounted: Mounted, scratch: Path) -> None:
    (scratch / "a.txt").write_text("A")
    (scratch / "b.txt").write_text("B")
    os.rename(scratch / "a.txt", scratch / "b.txt")  # over an existing file
    assert sorted(os.listdir(scratch)) == ["b.txt"]
    assert (scratch / "b.txt").read_text() == "A"
    (scratch / "d").mkdir()
    (scratch / "d" / "inner.txt").write_text("in")
    os.rename(scratch / "d", scratch / "e")  # one server-side move (EXDEV without the extension)
    run("mv", str(scratch / "e"), str(scratch / "f"))
    assert (scratch / "f" / "inner.txt").read_text() == "in"
    assert not (scratch / "d").exists() and not (scratch / "e").exists()


def test_rename_of_an_open_dirty_file(mounted: Mounted, scratch: Path) -> None:
    with open(scratch / "tmp.part", "wb") as handle:
        handle.write(b"first ")
        os.rename(scratch / "tmp.part", scratch / "final.bin")
        handle.write(b"second")
    assert (scratch / "final.bin").read_bytes() == b"first second"
    assert sorted(os.listdir(scratch)) == ["final.bin"]


def test_metadata_no_ops_and_refusals(mounted: Mounted, scratch: Path) -> None:
    target = scratch / "f.txt"
    target.write_text("x")
    os.chmod(target, 0o600)
    os.chown(target, os.getuid(), os.getgid())
    os.utime(target, (1, 1))
    with pytest.raises(OSError) as refused:  # symlinks: tests/mount/test_posix.py
        os.link(target, scratch / "h")
    assert refused.value.errno == errno.EPERM
    st = os.statvfs(mounted.path)
    assert st.f_bsize > 0 and st.f_namemax == 255


def test_layout_root_data_and_my(mounted: Mounted) -> None:
    root = os.listdir(mounted.path)
    assert {"data", "algorithms", "s3", "dropbox"} <= set(root)
    users = os.listdir(mounted.path / "data")
    assert users[0] == ".my" and users[1] == "demo" and {"alice", "anowell"} <= set(users)
    assert os.readlink(mounted.path / "data" / ".my") == "demo"
    assert sorted(os.listdir(mounted.path / "data" / ".my")) == sorted(os.listdir(mounted.path / "data/demo"))
    with pytest.raises(PermissionError):
        os.mkdir(mounted.path / "data" / "newuser")


def test_the_kernel_keeps_data_my_instead_of_asking_at_every_path_walk(mounted: Mounted,
                                                                       scratch: Path) -> None:
    """Every path through ``data/.my`` made the kernel send a READLINK (one more round trip into Python
    per open of ``data/.my/c/f``); with FUSE_CAP_CACHE_SYMLINKS it asks once."""
    (scratch / "f.txt").write_text("x")
    via_my = mounted.path / "data" / ".my" / scratch.name / "f.txt"
    via_my.read_text()
    kernel = mounted.status()["kernel"]
    assert kernel["caches_symlinks"]
    before = kernel["readlink_requests"]
    for _ in range(50):
        assert via_my.read_text() == "x"
    assert mounted.status()["kernel"]["readlink_requests"] - before <= 1


def test_path_restricted_connector(mounted: Mounted) -> None:
    connector = mounted.path / "s3+images"
    with pytest.raises(PermissionError):
        os.listdir(connector)
    cat = connector / "media" / "images" / "cat.png"
    expected = mounted.server_path("connectors/s3-images/media/images/cat.png").read_bytes()
    assert cat.read_bytes() == expected
    assert sorted(os.listdir(connector / "media" / "images")) == ["cat.png", "dog.png"]
    assert "s3+images" in os.listdir(mounted.path)  # remembered once looked up


def test_5000_entry_listing_without_per_entry_requests(mounted: Mounted) -> None:
    folder = mounted.path / "data" / "demo" / "many_files"
    before = mounted.status()["backend"]["requests_sent"]
    names = os.listdir(folder)
    sizes = {entry.name: entry.stat().st_size for entry in os.scandir(folder)}
    sent = mounted.status()["backend"]["requests_sent"] - before
    assert len(names) == 5000 and len(sizes) == 5000
    on_server = mounted.server_path("data/demo/many_files")
    assert sizes["file-04321.txt"] == (on_server / "file-04321.txt").stat().st_size
    assert sent <= 10, f"{sent} requests for a 5,000-entry listing"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_50000_entry_listing_in_pages_with_bounded_memory(mounted: Mounted, scratch: Path) -> None:
    """`ls -l` of 50,000 files: 50 listing pages, no request per entry, and the daemon's memory grows
    by a few hundred bytes per entry (measured ~24 MiB), not by a copy of every response."""
    folder = scratch / "fifty-thousand"
    on_server = mounted.server_path(str(folder.relative_to(mounted.path)))
    on_server.mkdir()
    for index in range(50_000):
        (on_server / f"f{index:05}.csv").write_bytes(b"" if index % 1000 else b"x" * (index // 1000))
    control.query(mounted.path, "clear_cache")  # made on the server, not through the mount
    pid = mounted.process.pid
    assert pid is not None
    rss_before = rss_bytes(pid)
    before = mounted.status()["backend"]["requests_sent"]
    listed = {entry.name: entry.stat().st_size for entry in os.scandir(folder)}
    sent = mounted.status()["backend"]["requests_sent"] - before
    grown = rss_bytes(pid) - rss_before
    assert len(listed) == 50_000
    assert [listed[f"f{index:05}.csv"] for index in range(0, 50_000, 1000)] == list(range(50))
    assert sent <= 55, f"{sent} requests for 50 pages"
    assert grown < 64 << 20, f"the daemon grew by {grown >> 20} MiB listing 50,000 entries"


def test_listing_hands_the_kernel_attributes_so_ls_l_needs_no_lookup_per_entry(mounted: Mounted,
                                                                                scratch: Path) -> None:
    """READDIRPLUS: the stat calls of `ls -l` after a listing are answered from what the listing gave."""
    folder = scratch / "plus"
    on_server = mounted.server_path(str(folder.relative_to(mounted.path)))
    on_server.mkdir()
    for index in range(300):
        (on_server / f"f{index:03}.txt").write_bytes(b"x" * index)
    control.query(mounted.path, "clear_cache")  # made on the server, not through the mount
    before = mounted.status()["metadata"]
    listed = {entry.name: entry.stat() for entry in os.scandir(folder)}  # what `ls -l` does
    after = mounted.status()["metadata"]
    lookups = (after["hits"] + after["misses"]) - (before["hits"] + before["misses"])
    assert {name: st.st_size for name, st in listed.items()} == {
        path.name: path.stat().st_size for path in on_server.iterdir()}
    assert int(listed["f123.txt"].st_mtime) == int((on_server / "f123.txt").stat().st_mtime)
    assert lookups < 30, f"{lookups} metadata lookups for a 300-entry ls -l"


def test_two_concurrent_readers(mounted: Mounted, scratch: Path) -> None:
    data = random.Random(3).randbytes(48 << 20)
    layout = str(scratch.relative_to(mounted.path) / "shared.bin")
    mounted.server_path(layout).write_bytes(data)  # changed on the server, not through the mount
    control.query(mounted.path, "clear_cache")
    expected = hashlib.md5(data).hexdigest()
    digests: list[str] = []

    def reader() -> None:
        digest = hashlib.md5()
        with open(mounted.path / layout, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digests.append(digest.hexdigest())

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert digests == [expected, expected]


def test_status_and_clear_cache(mounted: Mounted) -> None:
    (mounted.path / "data/demo/datasets/cities.csv").read_bytes()
    status = mounted.status()
    assert status["state"] == "mounted" and status["username"] == "demo"
    # cities.csv is a small file: held whole in memory (small_files), not in the on-disk block cache, whose
    # size_bytes was > 0 only when earlier tests had read large files (the test failed when run alone)
    cached = {e["path"]: e["cached_bytes"] for e in status["cache"]["entries"]}
    assert cached.get("data/demo/datasets/cities.csv", 0) > 0 and status["small_files"]["bytes"] > 0
    assert {"in_flight", "failed", "done"} <= set(status["uploads"])
    cleared = control.query(mounted.path, "clear_cache")
    assert cleared["cache"]["size_bytes"] == 0 and cleared["small_files"]["bytes"] == 0
    assert cleared["cache"]["entries"] == []
    assert "api_key" not in str(status) and mounted.server.api_key not in str(status)


@pytest.mark.slow
def test_md5sum_of_a_1_gib_file(mounted: Mounted) -> None:
    source = mounted.server_path("data/demo/large/large.bin")
    assert source.stat().st_size >= 1 << 30
    digest = hashlib.md5()
    with open(source, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    out = run("md5sum", str(mounted.path / "data/demo/large/large.bin"))
    assert out.split()[0] == digest.hexdigest()


def test_writing_new_files_costs_one_request_each_and_stat_matches_the_server(
        mounted: Mounted, scratch: Path, api_fs: AlgoFileSystem) -> None:
    # The folder's own lookup is not the files' cost: after an earlier test's clear_cache the mount no longer
    # holds data/demo's listing, and the new folder's attributes cost one request once (not per file).
    os.listdir(scratch)
    before = mounted.status()["backend"]["requests_sent"]
    for index in range(20):
        (scratch / f"small-{index:02d}.txt").write_bytes(b"x" * index)
    sent = mounted.status()["backend"]["requests_sent"] - before
    assert sent == 20, f"{sent} requests to create 20 small files (one PUT each is enough)"
    # What the mount reports after its own upload is what the server says (tar compares mtimes). Not for
    # the empty file: nothing was written, so the kernel keeps the attributes create() returned.
    layout = str(scratch.relative_to(mounted.path))
    for index in (1, 7, 19):
        local = (scratch / f"small-{index:02d}.txt").stat()
        remote = api_fs.head(f"{layout}/small-{index:02d}.txt")
        assert (local.st_size, local.st_mtime) == (remote["size"], remote["mtime"])


@pytest.mark.parametrize("mode", ["rb", "r+b"])
def test_a_file_unlinked_while_open_stays_readable_and_out_of_listings(mounted: Mounted, scratch: Path,
                                                                       mode: str) -> None:
    """libfuse keeps a file unlinked while open under a ``.fuse_hidden…`` name until the last release (and
    also when the unlink overtakes the RELEASE of an already closed handle): no listing shows it."""
    path = scratch / "open.bin"
    data = os.urandom(100_000)
    path.write_bytes(data)
    on_server = mounted.server_path(str(scratch.relative_to(mounted.path)))
    with open(path, mode) as handle:
        os.unlink(path)
        assert not path.exists()
        assert os.listdir(scratch) == []
        control.query(mounted.path, "clear_cache")  # a fresh listing from the server: still not shown
        assert os.listdir(scratch) == []
        assert [p.name for p in on_server.iterdir()][0].startswith(".fuse_hidden")  # what libfuse did
        assert handle.read() == data
    assert wait_until(lambda: list(on_server.iterdir()) == [], 15.0), "the hidden file outlived the release"
