"""fsspec's own conformance suite (``fsspec.tests.abstract``, as s3fs and gcsfs run it) on ``algo://``.

One real ``algofs serve`` (local storage) for the module; every test works in a fresh collection of its
own under ``data/<user>/``. Every test passes, none is xfailed: the Data API keeps empty folders
(``supports_empty_directories``). docs/filesystem.md, "The algo:// filesystem", says what it checks.
The S3 storage passes the copy suite too, but at ~15 s a test on a busy 2-core machine it stays out of
the default run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import fsspec
import pytest
from fsspec.tests import abstract

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.server.embedded_server import EmbeddedServer


@pytest.fixture(scope="module")
def conformance_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One ``algofs serve`` (no demo content: quick to start) for the whole module."""
    server = EmbeddedServer(tmp_path_factory.mktemp("fsspec-conformance"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class AlgoFixtures(abstract.AbstractFixtures):
    @pytest.fixture(scope="class")
    def fs(self, conformance_server: EmbeddedServer) -> AlgoFileSystem:
        return fsspec.filesystem("algo", api_address=conformance_server.url,
                                 api_key=conformance_server.api_key, skip_instance_cache=True)

    @pytest.fixture
    def fs_path(self, fs: AlgoFileSystem, conformance_server: EmbeddedServer) -> Iterator[str]:
        path = f"data/{conformance_server.username}/fsspec-{uuid.uuid4().hex[:8]}"
        fs.mkdir(path)
        try:
            yield path
        finally:
            fs.rm(path, recursive=True)

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return True


class TestAlgoCopy(abstract.AbstractCopyTests, AlgoFixtures):
    pass


class TestAlgoGet(abstract.AbstractGetTests, AlgoFixtures):
    pass


class TestAlgoPut(abstract.AbstractPutTests, AlgoFixtures):
    pass


class TestAlgoOpen(abstract.AbstractOpenTests, AlgoFixtures):
    pass


class TestAlgoPipe(abstract.AbstractPipeTests, AlgoFixtures):
    pass


class PlainApiFixtures(AlgoFixtures):
    """``extensions=False``: the Data API alone, as against the hosted API (copies go through the client,
    exclusive creates check first)."""

    @pytest.fixture(scope="class")
    def fs(self, conformance_server: EmbeddedServer) -> AlgoFileSystem:
        return fsspec.filesystem("algo", api_address=conformance_server.url,
                                 api_key=conformance_server.api_key, extensions=False,
                                 skip_instance_cache=True)


class TestAlgoCopyPlainApi(abstract.AbstractCopyTests, PlainApiFixtures):
    pass


class TestAlgoOpenPlainApi(abstract.AbstractOpenTests, PlainApiFixtures):
    pass


class TestAlgoPipePlainApi(abstract.AbstractPipeTests, PlainApiFixtures):
    pass
