"""Algorithm API calls of the official client (contract §5) against real algorithm processes."""

from __future__ import annotations

import json

import pytest
from Algorithmia.algorithm import OutputType
from Algorithmia.errors import AlgorithmException


def test_pinky_answers_in_character_and_deterministically(client):
    question = "Are you pondering what I'm pondering?"
    first = client.algo("anowell/Pinky").pipe(question)
    assert first.metadata.content_type == "text"
    assert first.result.startswith(("I think so, Brain", "Uh, I think so, Brain", "Well, I think so, Brain"))
    assert client.algo("anowell/Pinky/1.0.0").pipe(question).result == first.result
    assert client.algo("anowell/Pinky/0.1.0").pipe(question).result == "Narf!"
    assert "Brain" in client.algo("algo://anowell/Pinky").pipe("What shall we do tonight?").result


@pytest.mark.parametrize("value", ["plain text ü", {"a": [1, 2.5, None, True]}, [1, 2, 3], 42, None])
def test_echo_text_and_json(client, value):
    response = client.algo("demo/echo").pipe(value)
    assert response.result == value
    assert response.metadata.content_type == ("text" if isinstance(value, str) else "json")
    assert response.metadata.duration > 0


def test_echo_binary(client):
    payload = bytes(range(256)) * 10
    response = client.algo("demo/echo").pipe(payload)
    assert response.metadata.content_type == "binary"
    assert response.result == payload


def test_version_selection(client):
    assert client.algo("demo/echo/0.9.0").pipe("x").result == "0.9.0: x"
    assert client.algo("demo/echo/0.*").pipe("x").result == "0.9.0: x"
    assert client.algo("demo/echo/1.*").pipe("x").result == "x"
    assert client.algo("demo/echo/latest").pipe("x").result == "x"
    with pytest.raises(Exception, match="Non-Algorithm related Failure"):
        client.algo("demo/echo/2.0.0").pipe("x")


def test_wordcount_with_stdout(client):
    algo = client.algo("demo/wordcount")
    algo.set_options(timeout=60, stdout=True)
    response = algo.pipe("the cat and the hat\nthe end")
    assert response.result["words"] == 7
    assert response.result["lines"] == 2
    assert response.result["top"][0] == ["the", 3]
    assert response.metadata.stdout == "counting 7 words\n"


def test_stdout_only_for_the_owner(alice):
    algo = alice.algo("demo/wordcount")
    algo.set_options(stdout=True)
    response = algo.pipe("one two")
    assert response.result["words"] == 2
    assert response.metadata.stdout is None


def test_algorithm_error_raises_algorithm_exception(client):
    with pytest.raises(AlgorithmException) as info:
        client.algo("demo/fail").pipe("boom")
    assert "demo/fail always fails" in info.value.message
    assert info.value.error_type == "AlgorithmError"
    assert "ValueError" in info.value.stack_trace


def test_timeout_kills_the_algorithm(client):
    algo = client.algo("demo/sleep")
    algo.set_options(timeout=1)
    with pytest.raises(AlgorithmException) as info:
        algo.pipe("30")
    assert "timed out" in info.value.message


def test_sleep_within_timeout(client):
    algo = client.algo("demo/sleep")
    algo.set_options(timeout=30)
    assert algo.pipe(0.2).result == "slept 0.2 seconds"


def test_raw_output(client):
    algo = client.algo("demo/echo")
    algo.set_options(output=OutputType.raw)
    assert algo.pipe("raw text") == "raw text"
    assert json.loads(algo.pipe({"k": 1})) == {"k": 1}
    failing = client.algo("demo/fail")
    failing.set_options(output=OutputType.raw)
    # raw errors are HTTP 400; 2.0.5 turns any non-2xx into this generic exception before reading it
    with pytest.raises(Exception, match="400"):
        failing.pipe("x")


def test_void_output_returns_at_once(client):
    algo = client.algo("demo/sleep")
    algo.set_options(output=OutputType.void)
    response = algo.pipe("0.1")
    assert response.async_protocol == "void"
    assert response.request_id.startswith("req-")


def test_algorithm_exists(client):
    assert client.algo("anowell/Pinky").exists()
    assert not client.algo("anowell/NoSuchAlgo").exists()


def test_unknown_algorithm_is_not_an_algorithm_exception(client):
    with pytest.raises(Exception, match="Non-Algorithm related Failure"):
        client.algo("demo/nothing").pipe("x")


def test_algorithm_code_can_read_data_as_an_algorithm_of_its_owner(api_server, client, tmp_path):
    """Algorithms get a per-call token: they read their owner's ``algo://.my/*`` collections."""
    import Algorithmia

    algorithm_dir = api_server.root / "algorithms" / "alice" / "reader" / "1.0.0"
    algorithm_dir.mkdir(parents=True)
    (algorithm_dir / "algorithm.py").write_text(
        "import Algorithmia\n"
        "def apply(path):\n"
        "    return Algorithmia.client().file(path).getString()\n"
    )
    alice = Algorithmia.client(api_key="sim-alice-key", api_address=api_server.url)
    alice.dir("data://.my/algo_only").create()  # default ACL: algo://.my/*
    try:
        alice.file("data://.my/algo_only/x.txt").put("for alice's algorithms")
        assert not client.file("data://alice/algo_only/x.txt").exists()
        result = client.algo("alice/reader").pipe("data://alice/algo_only/x.txt").result
        assert result == "for alice's algorithms"
        with pytest.raises(AlgorithmException):
            client.algo("alice/reader").pipe("data://alice/private/secret.txt")
    finally:
        alice.dir("data://.my/algo_only").delete(force=True)
