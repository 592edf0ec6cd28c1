"""``algofs serve --executor dask://…`` against a real ``distributed.LocalCluster`` with worker processes."""

from __future__ import annotations

import Algorithmia
import pytest
from Algorithmia.errors import AlgorithmException

from algofs_jupyter.server.users import DEMO_USERS

from .algo_helpers import ServerWithOptions

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow  # a LocalCluster with worker processes takes ~15 s to start here


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as local:
        yield local


@pytest.fixture(scope="module")
def dask_server(cluster, tmp_path_factory):
    address = cluster.scheduler_address.replace("tcp://", "dask://")
    with ServerWithOptions(tmp_path_factory.mktemp("algo-dask"), ["--executor", address], demo=True,
                           large_file_mb=0, users=dict(DEMO_USERS)) as server:
        yield server


@pytest.fixture(scope="module")
def dask_client(dask_server):
    return Algorithmia.client(api_key=DEMO_USERS["demo"], api_address=dask_server.url)


def test_results_stdout_and_errors_come_back(dask_client, cluster):
    assert dask_client.algo("demo/echo").pipe({"a": [1, 2]}).result == {"a": [1, 2]}
    assert dask_client.algo("demo/echo").pipe(b"\x00\x01").result == b"\x00\x01"
    assert dask_client.algo("demo/echo/0.9.0").pipe("x").result == "0.9.0: x"
    counted = dask_client.algo("demo/wordcount").set_options(stdout=True).pipe("a b c")
    assert counted.result["words"] == 3 and counted.metadata.stdout == "counting 3 words\n"
    with pytest.raises(AlgorithmException) as info:
        dask_client.algo("demo/fail").pipe("boom")
    assert "always fails" in info.value.message and "ValueError" in info.value.stack_trace
    with distributed.Client(cluster.scheduler_address) as inspect:
        from algofs_jupyter.server.algo_dask import worker_pool_stats

        stats = inspect.run(worker_pool_stats)
    assert sum(s.get("started", 0) for s in stats.values()) >= 1  # the calls ran on the Dask workers


def test_timeout_kills_the_call_and_the_next_one_works(dask_client):
    algo = dask_client.algo("demo/sleep").set_options(timeout=2)
    with pytest.raises(AlgorithmException, match="timed out"):
        algo.pipe("30")
    assert dask_client.algo("demo/sleep").set_options(timeout=30).pipe("0.1").result == "slept 0.1 seconds"
