"""The Algorithm API (``POST /v1/algo/<user>/<algo>[/<version>]``) and the algorithm listings.

Algorithm failures are answered HTTP 200 with an ``error`` object, as the hosted API did; only
requests that are malformed (bad options, bodies over 10 MiB, malformed JSON) or address no algorithm
get 4xx. ``output=raw`` returns the bare result (400 on algorithm errors); ``output=void`` returns at
once and runs the call in the background. Concurrent calls are capped per caller and overall (429).
Only the algorithm's owner sees stack traces and absolute paths in its errors (and its stdout).
The per-call token acts as the caller within the call's scope (call_scope.py): what the input names, the
call tree's ``data://.session``; a nested call's scope is at most its parent's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets

from tornado.web import stream_request_body

from .algo_limits import CallLimiter
from .algorithms import AlgorithmStore, ResolvedAlgorithm
from .call_scope import CallScope, CallScratch, close_scratch, pointed_at
from .errors import ApiError, bad_request
from .executor import CallOutcome, CallRequest, Executor, encode_payload
from .handler_base import ApiHandler

MAX_ALGO_BODY = 10 * 1024 * 1024
DEFAULT_TIMEOUT = 300.0
MAX_TIMEOUT = 3000.0
_CALL_PATH = re.compile(r"^/v1/algo/(\w+)/([\w.-]+)(?:/([\w.*-]+))?/?$")
_TEXT_TYPES = ("text/", "application/text")
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")


def parse_bool(value: str | None, name: str) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise bad_request(f"{name} must be true or false")
    return lowered in ("true", "1")


def decode_body(content_type: str, body: bytes) -> tuple[str, object]:
    """The call input per Content-Type: text, JSON, or binary (anything else)."""
    mime = content_type.split(";")[0].strip().lower()
    if mime == "application/json":
        try:
            return "json", json.loads(body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"malformed JSON input: {exc}") from exc
        except RecursionError as exc:
            raise bad_request("JSON input is nested too deeply") from exc
    if mime.startswith(_TEXT_TYPES):
        try:
            return "text", body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_request("text input is not valid UTF-8") from exc
    return "binary", body


@stream_request_body
class AlgoCallHandler(ApiHandler):
    def initialize(self) -> None:
        self.parts: list[bytes] = []
        self.received = 0

    def prepare(self) -> None:
        self.request.connection.set_max_body_size(1 << 40)  # type: ignore[union-attr] # drained, not buffered
        try:
            self.authenticate()
            length = self.request.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_ALGO_BODY:
                raise ApiError(400, f"request body of {length} bytes exceeds the 10 MiB limit", code=4001)
        except ApiError as error:
            self.defer_if_body_follows(error)

    def data_received(self, chunk: bytes) -> None:
        if self.deferred_error is not None:
            return  # rejected already: drain the body without keeping it
        self.received += len(chunk)
        if self.received <= MAX_ALGO_BODY:
            self.parts.append(chunk)
        else:
            self.parts = []

    @property
    def store(self) -> AlgorithmStore:
        return self.application.settings["algorithms"]

    @property
    def executor(self) -> Executor:
        return self.application.settings["executor"]

    @property
    def limiter(self) -> CallLimiter:
        return self.application.settings["call_limiter"]

    def _options(self) -> tuple[float, bool, str | None]:
        raw_timeout = self.get_query_argument("timeout", None)
        try:
            timeout = float(raw_timeout) if raw_timeout is not None else DEFAULT_TIMEOUT
        except ValueError as exc:
            raise bad_request("timeout must be a number of seconds") from exc
        if not 0 < timeout <= MAX_TIMEOUT:
            raise bad_request(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds")
        stdout = parse_bool(self.get_query_argument("stdout", None), "stdout")
        output = self.get_query_argument("output", None)
        if output not in (None, "", "raw", "void", "default"):
            raise bad_request("output must be raw or void")
        return timeout, stdout, output or None

    async def post(self) -> None:
        if self.received > MAX_ALGO_BODY:
            raise ApiError(400, "request body exceeds the 10 MiB limit", code=4001)
        match = _CALL_PATH.match(self.request.path)
        if not match:
            raise bad_request("expected /v1/algo/<user>/<algorithm>[/<version>]")
        owner, name, spec = match.groups()
        timeout, want_stdout, output = self._options()
        content_type, data = decode_body(self.request.headers.get("Content-Type", ""), b"".join(self.parts))
        algo = self.store.resolve(owner, name, spec, caller=self.identity.username)
        if algo is None:
            ref = f"algo://{owner}/{name}" + (f"/{spec}" if spec else "")
            raise ApiError(404, f"algorithm {ref} not found", error_type="AlgorithmNotFound")
        caller = self.identity.username
        is_owner = self.store.acts_for(algo.owner, caller)
        refusal = self.application.settings["algorithm_box"].refusal
        if refusal:  # this server cannot keep users' code apart (algo_box.py): say so, run nothing
            raise ApiError(503, refusal, error_type="AlgorithmIsolationUnavailable")
        self.limiter.acquire(caller)
        if output == "void":
            request_id = "req-" + secrets.token_hex(8)
            asyncio.ensure_future(self._run_and_release(algo, content_type, data, timeout))
            self.write_json({"async": "void", "request_id": request_id})
            return
        try:
            outcome = await self._run(algo, content_type, data, timeout)
        finally:
            self.limiter.release(caller)
        if not is_owner and outcome.error is not None:
            outcome.error = redact_error(outcome.error)
        if output == "raw":
            self._answer_raw(outcome)
        else:
            self._answer(outcome, want_stdout and is_owner)

    async def _run_and_release(self, algo: ResolvedAlgorithm, content_type: str, data: object,
                               timeout: float) -> None:
        try:
            await self._run(algo, content_type, data, timeout)
        finally:
            self.limiter.release(self.identity.username)

    async def _run(self, algo: ResolvedAlgorithm, content_type: str, data: object,
                   timeout: float) -> CallOutcome:
        users, caller, parent = self.users, self.identity.username, self.identity.scope
        named = pointed_at(content_type, data, caller)
        scope = CallScope(CallScratch(caller), named) if parent is None else parent.nested(named)
        token = users.issue_algorithm_token(caller, algo.owner, scope)
        try:
            if not self.executor.api_address:
                self.executor.api_address = f"{self.request.protocol}://{self.request.host}"
            network = self.store.settings(algo.owner, algo.name).get("network_access") == "full"
            request = CallRequest(algo, content_type, encode_payload(content_type, data), timeout, token,
                                  self.identity.username, network=network)
            outcome = await self.executor.call(request)
            if outcome.error is not None:  # for the owner's error lists (algo_errors.py)
                record = self.application.settings["registry"].record(algo.owner, algo.name)
                if record is not None:
                    self.application.settings["algorithm_errors"].record(algo.owner, algo.name, record["id"],
                                                                         algo.version, outcome.error)
            return outcome
        finally:
            users.revoke_algorithm_token(token)
            if parent is None:  # the top-level call ended: so do its data://.session and its tree's tokens
                await self.offload(close_scratch, self.application.settings["namespace"].data,
                                   scope.scratch)

    def _answer(self, outcome: CallOutcome, include_stdout: bool) -> None:
        metadata: dict = {"duration": round(outcome.duration, 6)}
        if include_stdout:
            metadata["stdout"] = outcome.stdout
        if outcome.error is not None:
            error = dict(outcome.error)
            error["stack_trace"] = error.get("stacktrace", "")
            self.write_json({"error": error, "metadata": metadata})
            return
        metadata["content_type"] = outcome.content_type
        self.write_json({"result": outcome.result, "metadata": metadata})

    def _answer_raw(self, outcome: CallOutcome) -> None:
        if outcome.error is not None:
            self.write_json({"error": outcome.error}, status=400)
            return
        if outcome.content_type == "binary":
            self.set_header("Content-Type", "application/octet-stream")
            self.finish(base64.b64decode(outcome.result))  # type: ignore[arg-type]
        elif outcome.content_type == "text":
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(outcome.result.encode("utf-8"))  # type: ignore[attr-defined]
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(outcome.result))


def redact_error(error: dict) -> dict:
    """What a caller who does not own the algorithm may see: no stack trace, no absolute paths."""
    message = _ABSOLUTE_PATH.sub(lambda m: m.group(1), str(error.get("message", "")))
    return {"message": message, "stacktrace": "", "error_type": error.get("error_type", "AlgorithmError")}
