"""Raw HTTP tests of the Algorithm API: wire shapes, limits and bad input."""

from __future__ import annotations

import base64

import pytest

TEXT = {"Content-Type": "text/plain"}


def assert_json_error(response, status):
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_success_shape(http):
    body = http("POST", "/v1/algo/demo/echo", data=b"hi", headers=TEXT).json()
    assert body["result"] == "hi"
    assert body["metadata"]["content_type"] == "text"
    assert isinstance(body["metadata"]["duration"], float)
    assert "stdout" not in body["metadata"]


def test_binary_is_base64(http):
    payload = b"\x00\xff\x10binary"
    body = http("POST", "/v1/algo/demo/echo", data=payload,
                headers={"Content-Type": "application/octet-stream"}).json()
    assert body["metadata"]["content_type"] == "binary"
    assert base64.b64decode(body["result"]) == payload


def test_application_text_is_text(http):
    body = http("POST", "/v1/algo/demo/echo/1.0.0", data="ü".encode(),
                headers={"Content-Type": "application/text"})
    assert body.json()["result"] == "ü"


def test_error_shape_is_http_200(http):
    response = http("POST", "/v1/algo/demo/fail", data=b"x", headers=TEXT)
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["error_type"] == "AlgorithmError"
    assert "always fails" in error["message"]
    assert error["stacktrace"] == error["stack_trace"] and "ValueError" in error["stacktrace"]
    assert "duration" in response.json()["metadata"]


def test_stdout_query_parameter_accepts_python_booleans(http):
    body = http("POST", "/v1/algo/demo/wordcount?timeout=60&stdout=True", data=b"a b", headers=TEXT).json()
    assert body["metadata"]["stdout"] == "counting 2 words\n"
    body = http("POST", "/v1/algo/demo/wordcount?timeout=60&stdout=False", data=b"a b", headers=TEXT).json()
    assert "stdout" not in body["metadata"]


def test_raw_output_binary(http):
    response = http("POST", "/v1/algo/demo/echo?output=raw", data=b"\x01\x02",
                    headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200 and response.content == b"\x01\x02"


def test_void_output(http):
    body = http("POST", "/v1/algo/demo/echo?output=void", data=b"x", headers=TEXT).json()
    assert body["async"] == "void" and body["request_id"].startswith("req-")


def test_body_over_10_mib_rejected_from_content_length(http):
    response = http("POST", "/v1/algo/demo/echo", data=b"x" * (10 * 1024 * 1024 + 1),
                    headers={"Content-Type": "application/octet-stream"})
    assert_json_error(response, 400)
    assert "10 MiB" in response.json()["error"]["message"]


def test_chunked_body_over_10_mib_rejected(http):
    def chunks():
        for _ in range(11):
            yield b"y" * (1024 * 1024)

    response = http("POST", "/v1/algo/demo/echo", data=chunks(),
                    headers={"Content-Type": "application/octet-stream"})
    assert_json_error(response, 400)


def test_body_of_exactly_10_mib_is_accepted(http):
    payload = b"z" * (10 * 1024 * 1024)
    response = http("POST", "/v1/algo/demo/wordcount", data=payload, headers=TEXT)
    assert response.json()["result"]["characters"] == len(payload)


@pytest.mark.parametrize("query,body,ctype", [
    ("", b"{not json", "application/json"),
    ("", b"\xff\xfe", "text/plain"),
    ("?timeout=abc", b"x", "text/plain"),
    ("?timeout=0", b"x", "text/plain"),
    ("?timeout=5000", b"x", "text/plain"),
    ("?stdout=maybe", b"x", "text/plain"),
    ("?output=xml", b"x", "text/plain"),
])
def test_bad_requests(http, query, body, ctype):
    response = http("POST", "/v1/algo/demo/echo" + query, data=body, headers={"Content-Type": ctype})
    assert_json_error(response, 400)


def test_unknown_algorithm_and_version(http):
    assert_json_error(http("POST", "/v1/algo/demo/nope", data=b"x", headers=TEXT), 404)
    assert_json_error(http("POST", "/v1/algo/demo/echo/9.9.9", data=b"x", headers=TEXT), 404)
    assert_json_error(http("POST", "/v1/algo/demo/echo/3.*", data=b"x", headers=TEXT), 404)
    assert_json_error(http("POST", "/v1/algo/demo", data=b"x", headers=TEXT), 400)


def test_algorithm_listing_extension(http):
    results = {a["name"]: a for a in http("GET", "/v1/algorithms/demo").json()["results"]}
    assert set(results) >= {"echo", "wordcount", "fail", "sleep"}
    assert results["echo"] == {"name": "echo", "versions": ["1.0.0", "0.9.0"], "latest": "1.0.0"}
    pinky = http("GET", "/v1/algorithms/anowell").json()["results"]
    assert pinky == [{"name": "Pinky", "versions": ["1.0.0", "0.1.0"], "latest": "1.0.0"}]
    assert http("GET", "/v1/algorithms/nobody").json() == {"results": []}


def test_algorithm_detail(http):
    assert http("GET", "/v1/algorithms/anowell/Pinky").json()["versions"] == ["1.0.0", "0.1.0"]
    missing = http("GET", "/v1/algorithms/anowell/Brain")
    assert missing.status_code == 404 and missing.json() == {"error": "No such algorithm"}
