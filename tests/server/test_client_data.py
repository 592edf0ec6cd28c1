"""Every Data API call of the official `algorithmia` 2.0.5 client (contract §4) against `algofs serve`."""

from __future__ import annotations

import json

import pytest
from Algorithmia.acl import AclType, ReadAcl
from Algorithmia.errors import DataApiError


def test_username_is_first_entry_of_the_root_listing(client, alice):
    # The client builds the name with pathJoin("", name), hence the leading slash.
    assert client.username().lstrip("/") == "demo"
    assert alice.username().lstrip("/") == "alice"


def test_file_exists(client):
    assert client.file("data://.my/datasets/cities.csv").exists()
    assert client.file("data://demo/datasets/cities.csv").exists()
    assert not client.file("data://.my/datasets/no-such.csv").exists()
    exists, error = client.file("data://.my/datasets/no-such.csv").existsWithError()
    assert not exists and "not found" in error


def test_get_string_bytes_json_file(client):
    text = client.file("data://.my/datasets/cities.csv").getString()
    assert text.splitlines()[0] == "city,country,population,latitude,longitude"
    assert client.file("data://.my/datasets/cities.csv").getBytes() == text.encode()
    planets = client.file("data://.my/datasets/planets.json").getJson()
    assert [p["name"] for p in planets["planets"]][:3] == ["Mercury", "Venus", "Earth"]
    with client.file("data://.my/datasets/cities.csv").getFile() as handle:
        assert handle.read() == text
    path = client.file("data://.my/datasets/cities.csv").getFile(as_path=True)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == text


def test_get_missing_file_raises(client):
    with pytest.raises(DataApiError, match="not found"):
        client.file("data://.my/datasets/missing.txt").getString()


def test_binary_png_round_trip(client, scratch):
    png = client.file("data://.my/images/gradient.png").getBytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    client.file(f"data://.my/{scratch}/copy.png").put(png)
    assert client.file(f"data://.my/{scratch}/copy.png").getBytes() == png


def test_put_string_bytes_json_and_file(client, scratch, tmp_path):
    base = f"data://.my/{scratch}"
    client.file(f"{base}/hello.txt").put("hello wörld")
    assert client.file(f"{base}/hello.txt").getString() == "hello wörld"
    client.file(f"{base}/raw.bin").put(bytes(range(256)))
    assert client.file(f"{base}/raw.bin").getBytes() == bytes(range(256))
    client.file(f"{base}/doc.json").putJson({"a": [1, 2, 3]})
    assert client.file(f"{base}/doc.json").getJson() == {"a": [1, 2, 3]}
    local = tmp_path / "local.csv"
    local.write_text("x,y\n1,2\n")
    client.file(f"{base}/local.csv").putFile(str(local))
    assert client.file(f"{base}/local.csv").getString() == "x,y\n1,2\n"
    # replacing an existing file
    client.file(f"{base}/hello.txt").put("second version")
    assert client.file(f"{base}/hello.txt").getString() == "second version"


def test_file_delete(client, scratch):
    target = client.file(f"data://.my/{scratch}/gone.txt")
    target.put("bye")
    assert target.exists()
    target.delete()
    assert not target.exists()
    with pytest.raises(DataApiError):
        target.delete()


def test_dir_create_exists_list_files_dirs(client, scratch):
    base = client.dir(f"data://.my/{scratch}")
    assert base.exists()
    base.dir("sub").create()
    base.file("a.txt").put("a")
    base.file("b.txt").put("bb")
    entries = list(base.list())
    assert [e.getName() for e in entries] == ["sub", "a.txt", "b.txt"]  # folders first
    files = {f.getName(): f for f in base.files()}
    assert sorted(files) == ["a.txt", "b.txt"]
    assert files["b.txt"].size == 2
    assert files["a.txt"].last_modified.year >= 2024
    assert [d.getName() for d in base.dirs()] == ["sub"]
    assert not client.dir(f"data://.my/{scratch}/nope").exists()


def test_dir_delete_needs_force_when_not_empty(client, scratch):
    sub = client.dir(f"data://.my/{scratch}/full")
    sub.create()
    sub.file("x.txt").put("x")
    with pytest.raises(DataApiError, match="not empty"):
        sub.delete()
    assert sub.exists()
    assert sub.delete(force=True)
    assert not sub.exists()
    empty = client.dir(f"data://.my/{scratch}/empty")
    empty.create()
    assert empty.delete()
    assert not empty.exists()


def test_collection_acl_get_and_update(client, alice):
    name = "acltest"
    coll = client.dir(f"data://.my/{name}")
    coll.create(ReadAcl.private)
    try:
        coll.file("note.txt").put("private note")
        assert coll.get_permissions().read_acl == AclType.private
        assert not alice.file(f"data://demo/{name}/note.txt").exists()
        with pytest.raises(DataApiError):
            alice.file(f"data://demo/{name}/note.txt").getString()
        assert name not in [d.getName() for d in alice.dir("data://demo").dirs()]

        assert coll.update_permissions(ReadAcl.public)
        assert coll.get_permissions().read_acl == AclType.public
        assert alice.file(f"data://demo/{name}/note.txt").getString() == "private note"
        assert name in [d.getName() for d in alice.dir("data://demo").dirs()]

        coll.update_permissions(ReadAcl.my_algos)
        assert coll.get_permissions().read_acl == AclType.my_algos
        assert not alice.file(f"data://demo/{name}/note.txt").exists()
    finally:
        coll.delete(force=True)


def test_other_users_cannot_write(alice):
    with pytest.raises(Exception):  # noqa: B017 - the client raises a bare Exception for 403 JSON
        alice.file("data://demo/public/intruder.txt").put("x")
    assert not alice.file("data://demo/public/intruder.txt").exists()
    with pytest.raises(DataApiError):
        alice.dir("data://demo/public").delete(force=True)


def test_public_and_private_demo_collections(client, alice):
    assert client.file("data://alice/public/hello.txt").getString().startswith("Hello from alice")
    assert not client.file("data://alice/private/secret.txt").exists()
    assert alice.file("data://alice/private/secret.txt").getString().startswith("Only alice")


def test_get_permissions_is_none_outside_collections(client):
    assert client.dir("data://.my").get_permissions() is None
    assert client.dir("s3://demo-bucket").get_permissions() is None


def test_listing_a_directory_through_getjson(client):
    listing = client.file("data://.my/datasets").getJson()
    assert {f["filename"] for f in listing["files"]} >= {"cities.csv", "planets.json"}


def test_nested_directories_inside_a_collection(client):
    nested = client.dir("data://.my/nested/docs/guides")
    assert [f.getName() for f in nested.files()] == ["getting-started.md"]
    assert "pandas" in client.file("data://.my/nested/docs/guides/getting-started.md").getString()


def test_connectors_through_the_data_url_family(client, scratch):
    assert client.file("s3://demo-bucket/hello.txt").getString().startswith("Hello from the demo S3")
    assert client.file("dropbox://Documents/notes.txt").exists()
    assert client.file("dropbox+work://Projects/plan.md").getString().startswith("# Plan")
    client.file("dropbox://Documents/" + scratch + ".txt").put("via connector")
    try:
        assert client.file("dropbox://Documents/" + scratch + ".txt").getString() == "via connector"
    finally:
        client.file("dropbox://Documents/" + scratch + ".txt").delete()


def test_path_restricted_connector(client):
    assert client.file("s3+images://media/images/cat.png").getBytes().startswith(b"\x89PNG")
    assert [f.getName() for f in client.dir("s3+images://media/images").files()] == ["cat.png", "dog.png"]
    with pytest.raises(DataApiError):
        list(client.dir("s3+images://").list())
    with pytest.raises(DataApiError):
        list(client.dir("s3+images://media").list())
    assert not client.file("s3+images://media/private/secret.txt").exists()


def test_put_json_content_is_stored_verbatim(client, scratch):
    client.file(f"data://.my/{scratch}/n.json").put("123")
    assert client.file(f"data://.my/{scratch}/n.json").getString() == "123"
    assert json.loads(client.file(f"data://.my/{scratch}/n.json").getString()) == 123
