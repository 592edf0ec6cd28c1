"""``S3Backend`` against the storage contract (tests/server/storage_contract.py) on a real SeaweedFS, plus
what only object storage shows: the bucket layout, streamed multipart uploads and their abort, listings
in the store's order, foreign buckets."""

from __future__ import annotations

import os
import resource
import time
import uuid

import pytest

from algofs_jupyter.server.storage import NameTooLong, NotFound, StorageError
from algofs_jupyter.server.storage.s3 import S3_KEY_MAX, S3Backend
from algofs_jupyter.server.storage.s3_client import S3Location, make_client
from algofs_jupyter.server.storage.s3_uploads import MIN_PART_SIZE, PART_SIZE

from .posix_contract import *  # noqa: F403
from .storage_contract import *  # noqa: F403
from .storage_contract import content, names, store

BUCKET = "algofs-data"


@pytest.fixture
def s3_client(s3_store, monkeypatch):
    """A client of the server's kind: credentials from the shared AWS files (env), not from arguments."""
    for name, value in s3_store.env.items():
        monkeypatch.setenv(name, value)
    return make_client(s3_store.account.endpoint, s3_store.account.region)


@pytest.fixture
def prefix() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def backend(s3_client, prefix) -> S3Backend:
    return S3Backend(s3_client, S3Location(BUCKET, prefix + "data/"), S3Location(BUCKET, prefix + "meta/"))


def test_listing_order_and_paging(backend):  # noqa: F811 - the contract's, with the store's order
    """Folders and files come in the store's key order (SeaweedFS: by name), not folders first; paging
    continues after the last name looked at, so every entry shows once."""
    for name in ("b", "a", "c", "a.txt", "a-1"):
        store(backend, (name,), name.encode())
    for name in ("z", "y", "a0"):
        backend.mkdir((name,))
    backend.mkdir(("a.d",))
    store(backend, ("a.d", "inner"), b"i")
    every = sorted(["a", "a-1", "a.txt", "a.d", "a0", "b", "c", "y", "z"])
    assert sorted(e.name for e in backend.list_page(()).entries) == every
    for limit in (2, 3, 4):
        seen, after = [], None
        while True:
            page = backend.list_page((), after, limit)
            seen += [e.name for e in page.entries]
            if page.last_key is None:
                break
            after = page.last_key
        assert sorted(seen) == every and len(seen) == len(every), limit


def test_bucket_layout_markers_and_metadata(backend, s3_client, prefix):
    backend.mkdir(("alice",))
    backend.mkdir(("alice", "empty"))
    store(backend, ("alice", "f.txt"), b"x")
    backend.write_meta(("acl", "alice", "empty", "read.json"), b'{"read": []}')
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"])
    assert keys == [f"{prefix}data/alice/", f"{prefix}data/alice/empty/", f"{prefix}data/alice/f.txt",
                    f"{prefix}meta/acl/alice/empty/read.json"]
    # removing the last entry of a folder without a marker keeps the folder (its marker is written first)
    s3_client.put_object(Bucket=BUCKET, Key=f"{prefix}data/implicit/only.txt", Body=b"o")
    assert backend.info(("implicit",)).is_dir
    backend.delete_file(("implicit", "only.txt"))
    assert backend.info(("implicit",)).is_dir and names(backend, ("implicit",)) == []


def test_large_upload_is_multipart_and_an_abort_leaves_the_old_object(backend, s3_client, prefix):
    old = store(backend, ("big.bin",), b"old version")
    body = os.urandom(2 * PART_SIZE + 12345)
    upload = backend.write(("big.bin",))
    for start in range(0, len(body), 1 << 20):
        upload.write(body[start:start + (1 << 20)])
    assert s3_client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads")  # parts went up
    assert content(backend, ("big.bin",)) == b"old version"  # nothing visible before commit
    upload.abort()
    assert backend.info(("big.bin",)) == old
    assert not s3_client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads")
    info = store(backend, ("big.bin",), body)
    assert info.size == len(body) and info.etag.endswith('-3"')  # three parts
    assert content(backend, ("big.bin",), PART_SIZE - 5, 10) == body[PART_SIZE - 5:PART_SIZE + 5]


def test_a_large_read_reuses_its_memory_instead_of_faulting_in_fresh_pages(backend):
    """Chunks bigger than the pinned mmap threshold were each a fresh mmap: one page fault per 4 KiB read,
    which was most of the server's system time on a GET (bench/results/s3_backend.md)."""
    size = 32 << 20
    store(backend, ("big.bin",), os.urandom(size))
    for chunk in backend.read(("big.bin",), 0, 1 << 20):  # warm the heap up
        assert chunk
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    read = sum(len(chunk) for chunk in backend.read(("big.bin",), 0, size))
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
    assert read == size
    assert faults < size // 4096 // 8, f"{faults} page faults reading {size >> 20} MiB"


def test_a_small_upload_asks_the_store_only_what_the_caller_does_not_know(backend, s3_client, prefix):
    """The data handler has just looked the file up (for its permission check): a new small file then
    costs the parent check, its re-check at commit, the PUT and one HEAD for the answer; it cost eight
    requests (~55 ms on SeaweedFS here) when every layer asked again."""
    backend.mkdir(("c",))
    calls: list[str] = []
    s3_client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    upload = backend.write(("c", "new.txt"), current=None)
    upload.write(b"small")
    info = upload.commit()
    assert calls == ["HeadObject", "HeadObject", "PutObject", "HeadObject"], calls
    assert info.size == 5 and content(backend, ("c", "new.txt")) == b"small"


def test_a_plain_read_is_one_store_request_with_the_files_validators(backend, s3_client):
    """A GET of a small file was a HEAD and a GetObject: twice the store's round trip per file (the
    contract's test_read_file_gives_the_info_and_the_bytes_together checks what it answers)."""
    backend.mkdir(("c",))
    info = store(backend, ("c", "f.bin"), b"0123456789")
    calls: list[str] = []
    s3_client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    got, start, chunks = backend.read_file(("c", "f.bin"), 2, 5)
    assert (b"".join(chunks), start) == (b"2345", 2)
    assert calls == ["GetObject"]
    assert got == info  # the same validators a HEAD gives


def test_a_part_that_fails_aborts_the_upload(backend, s3_client, prefix):
    store(backend, ("f",), b"kept")
    upload = backend.write(("f",))
    upload.write(os.urandom(PART_SIZE))  # the first part is in flight
    real_id, upload.upload_id = upload.upload_id, "no-such-upload"  # the store refuses the next part
    upload.write(os.urandom(PART_SIZE))
    with pytest.raises(StorageError):
        upload.commit()
    assert content(backend, ("f",)) == b"kept"
    for part in upload.parts:  # the real upload, hidden from the code under test: not left in the bucket
        part.exception()
    backend.client.abort_multipart_upload(Bucket=BUCKET, Key=upload.name, UploadId=real_id)


def test_writes_at_an_offset_of_a_large_object_copy_the_prefix_inside_the_store(backend, s3_client, prefix):
    """An append to (or a patch of) an object of more than one part sends only the new bytes: the
    unchanged prefix becomes part 1 by UploadPartCopy, the old tail after a patch is kept."""
    old = os.urandom(MIN_PART_SIZE + 4321)
    store(backend, ("log.bin",), old)
    tail = b"one more line\n"
    appended = store(backend, ("log.bin",), tail, offset=len(old), expected_size=len(old))
    assert appended.size == len(old) + len(tail) and appended.etag.endswith('-2"')  # copied part + body
    assert content(backend, ("log.bin",)) == old + tail
    at = MIN_PART_SIZE + 10
    patched = store(backend, ("log.bin",), b"PATCH", offset=at)
    assert patched.size == len(old) + len(tail)
    assert content(backend, ("log.bin",)) == old[:at] + b"PATCH" + (old + tail)[at + 5:]
    small = store(backend, ("small.txt",), b"0123456789")
    store(backend, ("small.txt",), b"ab", offset=3, if_match=small.etag)  # a prefix under one part: streamed
    assert content(backend, ("small.txt",)) == b"012ab56789"
    assert not s3_client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads")


def test_paths_past_the_stores_key_limit_are_name_too_long_and_create_nothing(backend, prefix):
    """S3 keys hold 1024 bytes (the store answered KeyTooLongError, which the API turned into a 500):
    a path that fits with the root prefix and a folder marker's "/" works, one byte more is NameTooLong."""
    room = S3_KEY_MAX - len((prefix + "data/").encode()) - 1
    folders = ("d" * 200,) * (room // 201)
    for depth in range(1, len(folders) + 1):
        backend.mkdir(folders[:depth])
    used = sum(len(f) + 1 for f in folders)
    fits = folders + ("f" * (room - used),)
    assert store(backend, fits, b"deep").size == 4
    too_long = folders + ("f" * (room - used + 1),)
    for attempt in (lambda: backend.write(too_long), lambda: backend.mkdir(too_long),
                    lambda: backend.info(too_long)):
        with pytest.raises(NameTooLong) as failure:
            attempt()
        assert failure.value.details["max"] == room
    assert names(backend, folders) == ["f" * (room - used)]


def test_server_side_copy_and_directory_move(backend):
    backend.mkdir(("src",))
    backend.mkdir(("src", "sub"))
    store(backend, ("src", "sub", "a"), b"A")
    store(backend, ("src", "b"), b"B")
    backend.move(("src",), ("dst",))
    with pytest.raises(NotFound):
        backend.info(("src",))
    assert sorted(names(backend, ("dst",))) == ["b", "sub"] and content(backend, ("dst", "sub", "a")) == b"A"
    backend.copy(("dst", "b"), ("dst", "c"))
    assert content(backend, ("dst", "c")) == b"B"
    assert backend.delete_dir(("dst",), force=True) == 3


def test_bad_urls_are_refused():
    assert S3Location.parse("s3://bucket/a/b/") == S3Location("bucket", "a/b/")
    assert S3Location.parse("s3://bucket") == S3Location("bucket", "")
    for bad in ("http://bucket/x", "s3:///x", "bucket/x"):
        with pytest.raises(ValueError):
            S3Location.parse(bad)


def test_listing_metadata_is_read_once_per_version_yet_other_servers_changes_show(backend, s3_client, prefix):
    """Listings carry no user metadata, so each file's is a HEAD; a file listed again unchanged needs none
    (``s3_posix.PosixCache``), while a change made through another server (a new version) is read again."""
    from algofs_jupyter.server.storage import AttrChange

    backend.mkdir(("c",))
    for name in ("a", "b", "x"):
        store(backend, ("c", name), name.encode(), mode=0o640)
    other = S3Backend(s3_client, S3Location(BUCKET, prefix + "data/"), S3Location(BUCKET, prefix + "meta/"))
    time.sleep(1.1)  # Last-Modified has whole seconds: a version is remembered once its second is over

    def listed() -> tuple[dict[str, int], list[str]]:
        calls: list[str] = []
        handler = lambda model, **_: calls.append(model.name)  # noqa: E731
        s3_client.meta.events.register("before-call.s3", handler)
        try:
            entries = backend.with_posix(("c",), backend.list_page(("c",)).entries)
        finally:
            s3_client.meta.events.unregister("before-call.s3", handler)
        return {e.name: e.posix.mode for e in entries}, calls

    modes, calls = listed()
    assert modes == {"a": 0o100640, "b": 0o100640, "x": 0o100640} and calls.count("HeadObject") == 3
    modes, calls = listed()
    assert modes["x"] == 0o100640 and calls == ["ListObjectsV2"], calls
    other.set_attributes(("c", "x"), AttrChange(mode=0o755))
    modes, calls = listed()
    assert modes == {"a": 0o100640, "b": 0o100640, "x": 0o100755} and calls.count("HeadObject") == 1


def test_objects_written_by_other_tools_show_the_posix_defaults(backend, s3_client, prefix):
    """Objects without s3fs's metadata: files 0644, folders 0755, no owner, times = Last-Modified."""
    s3_client.put_object(Bucket=BUCKET, Key=f"{prefix}data/other/f", Body=b"abc")
    info = backend.info(("other", "f"))
    assert (info.posix.mode, info.posix.uid, info.posix.gid) == (0o100644, None, None)
    assert info.posix.mtime_ns == info.posix.atime_ns == info.posix.ctime_ns == int(info.mtime * 10**9)
    assert backend.info(("other",)).posix.mode == 0o040755
    listed = {e.name: e for e in backend.with_posix(("other",), backend.list_page(("other",)).entries)}
    assert listed["f"].posix.mode == 0o100644 and listed["f"].posix.target is None


def test_a_large_exclusive_create_is_multipart_and_conditional(backend):
    """Bodies over one part land with CompleteMultipartUpload under If-None-Match: * as well."""
    from algofs_jupyter.server.storage import CreateRefused

    body = os.urandom(PART_SIZE + 1000)
    store(backend, ("big",), body, exclusive=True)
    assert content(backend, ("big",), PART_SIZE, 1000) == body[PART_SIZE:]
    upload = backend.write(("late",), exclusive=True)
    try:
        upload.write(body)
        store(backend, ("late",), b"another writer was first")
        with pytest.raises(CreateRefused):
            upload.commit()
    finally:
        upload.abort()
    assert content(backend, ("late",)) == b"another writer was first"
