"""The ``posix`` extension on S3 is s3fs-fuse's convention: Debian's ``s3fs`` (1.90) mounting the bucket the
S3 demo server uses sees the modes, owners, times and symlinks made through the API, and the API sees
those made under s3fs (docs/api-extensions.md §10, "Where it is kept")."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from algofs_jupyter.server.users import DEMO_USERS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("s3fs") is None, reason="needs s3fs (apt-get install s3fs)"),
              pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs FUSE")]

NS = 10**9
DATA_BUCKET = "algofs-data"  # tests/s3_fixtures.py: the S3 demo server's bucket


@pytest.fixture
def s3fs_data(s3_store, s3_api_server, tmp_path) -> Iterator[Path]:
    """The S3 demo server's hosted data (``s3://algofs-data/demo-session/data``) mounted with s3fs; no
    stat cache, so what the API changes shows at once. Unmounted and stopped however the test ends."""
    account = s3_store.account
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    passwd.write_text(f"{account.access_key}:{account.secret_key}\n")
    mountpoint = tmp_path / "s3fs"
    mountpoint.mkdir()
    log = open(tmp_path / "s3fs.log", "wb")
    process = subprocess.Popen(
        ["s3fs", f"{DATA_BUCKET}:/demo-session/data", str(mountpoint), "-f", "-o", f"url={account.endpoint}",
         "-o", "use_path_request_style", "-o", f"passwd_file={passwd}", "-o", f"endpoint={account.region}",
         "-o", "max_stat_cache_size=0"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "s3fs.log").read_text()
            time.sleep(0.1)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_s3fs_and_the_api_see_the_same_modes_owners_times_and_links(s3_api_server, s3fs_data):
    session = requests.Session()
    session.headers["Authorization"] = DEMO_USERS["demo"]
    base, name = s3_api_server.url + "/v1/data/.my", "t" + uuid.uuid4().hex[:10]
    uri = f"data://.my/{name}"
    assert session.post(base, json={"name": name}).ok
    try:
        # made through the API: a script, chmod'ed and chown'ed with a ns mtime; a symlink to it
        assert session.put(f"{base}/{name}/run.sh", data=b"#!/bin/sh\necho hi\n",
                           headers={"X-Algofs-Mode": "644"}).ok
        changed = session.post(s3_api_server.url + "/v1/algofs/setattr", json={
            "path": f"{uri}/run.sh", "mode": 0o751, "uid": 1234, "gid": 99,
            "mtime_ns": 1_600_000_000_123_456_789})
        assert changed.ok, changed.text
        assert session.post(s3_api_server.url + "/v1/algofs/symlink",
                            json={"path": f"{uri}/link", "target": "run.sh"}).ok
        folder = s3fs_data / "demo" / name
        seen = os.lstat(folder / "run.sh")
        assert (seen.st_mode, seen.st_uid, seen.st_gid) == (stat.S_IFREG | 0o751, 1234, 99)
        assert seen.st_mtime_ns == 1_600_000_000_123_456_789
        assert stat.S_ISLNK(os.lstat(folder / "link").st_mode) and os.readlink(folder / "link") == "run.sh"
        assert (folder / "link").read_bytes() == b"#!/bin/sh\necho hi\n"  # s3fs follows it, as a disk would

        # made under s3fs: the API shows mode, owner, ns times and the link
        (folder / "data.bin").write_bytes(b"x")
        os.chmod(folder / "data.bin", 0o704)
        os.chown(folder / "data.bin", 321, 654)
        os.utime(folder / "data.bin", ns=(1_500_000_000_111_222_333, 1_400_000_000_444_555_666))
        os.symlink("../elsewhere/data.bin", folder / "s3fs-link")
        head = session.head(f"{base}/{name}/data.bin").headers
        assert (head["X-Algofs-Mode"], head["X-Algofs-Uid"], head["X-Algofs-Gid"]) == ("100704", "321", "654")
        assert (head["X-Algofs-Mtime-Ns"], head["X-Algofs-Atime-Ns"]) == \
            ("1400000000444555666", "1500000000111222333")
        link = session.get(f"{base}/{name}/s3fs-link")
        assert link.headers["X-Algofs-Mode"] == "120777" and link.content == b"../elsewhere/data.bin"
        assert unquote(link.headers["X-Algofs-Link-Target"]) == "../elsewhere/data.bin"
        listed = {f["filename"]: f for f in session.get(f"{base}/{name}").json()["files"]}
        assert listed["s3fs-link"]["target"] == "../elsewhere/data.bin"
        assert listed["data.bin"]["posix"]["mode"] == 0o100704 and listed["run.sh"]["posix"]["uid"] == 1234
    finally:
        session.delete(f"{base}/{name}", params={"force": "true"})
