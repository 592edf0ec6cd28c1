"""Algorithm management: create, update, source upload (extension), build, publish, versions, builds.

On disk, next to the published ``<version>/`` directories that :mod:`.algorithms` serves::

    <root>/algorithms/<user>/<algo>/.meta/algorithm.json        id, details, settings, created
    <root>/algorithms/<user>/<algo>/.meta/source/               the working source (the language's
                                                                template at create, then uploads)
    <root>/algorithms/<user>/<algo>/.meta/commits/<sha>/         a built snapshot, callable by its hash
    <root>/algorithms/<user>/<algo>/.meta/builds/<id>.json      one build: status, commit, times, logs
    <root>/algorithms/<user>/<algo>/<version>/version.json      publish record of a version

A "commit" is the SHA-1 of the source files (there is no git here; the hosted API used git hashes in
the same places). Directories appear by rename, so a reader never sees half a version.

Concurrency: handlers run on the event loop; a build awaits its worker, so one ``asyncio.Lock`` per
algorithm serialises compile/publish of the same algorithm. Lock order: only that lock (``_locks``),
never two at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

from .algo_box import AlgorithmBox
from .algo_errors import ErrorLog
from .algo_sandbox import popen_kwargs
from .algo_templates import language_of, template_files
from .algorithms import AlgorithmStore, version_key
from .errors import ApiError, bad_request

ALGO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
SOURCE_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
MAX_SOURCE_BYTES = 10 * 1024 * 1024
BUILD_TIMEOUT = 60.0
VERSION_TYPES = ("major", "minor", "revision")
DEFAULT_SETTINGS = {"algorithm_callability": "public", "source_visibility": "closed", "language": "python3",
                    "environment": "cpu", "package_set": "python3", "license": "apl",
                    "network_access": "isolated", "pipeline_enabled": True, "insights_enabled": False}
SCM = {"scm": {"id": "internal", "provider": "internal", "default": True, "enabled": True}}


def now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def not_authorized() -> ApiError:
    return ApiError(403, "Caller is not authorized to perform the operation", code=2001)


class NoSuchAlgorithm(ApiError):
    """404 answered as the bare ``{"error": "No such algorithm"}`` the client's ``exists()`` looks for."""

    def __init__(self) -> None:
        super().__init__(404, "No such algorithm")


def no_such_algorithm() -> ApiError:
    return NoSuchAlgorithm()


def next_version(published: list[str], version_type: str) -> str:
    """Semantic version bump as the hosted API did: first publish of ``minor`` is 0.1.0, etc."""
    major, minor, revision = (0, 0, 0)
    if published:
        parts = [*version_key(published[0]), 0, 0, 0][:3]
        major, minor, revision = parts
    if version_type == "major":
        return f"{major + 1}.0.0"
    if version_type == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{revision + 1}"


def _write_json(path: Path, body: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(body, indent=1))
    os.replace(tmp, path)


class AlgorithmRegistry:
    def __init__(self, store: AlgorithmStore, box: AlgorithmBox, api_address: str = "",
                 errors: ErrorLog | None = None):
        self.store = store
        self.box = box  # builds run the owner's code: in the owner's box, as the owner's uid and cgroup
        self.api_address = api_address
        self.errors = errors  # failed builds are listed with the algorithm's errors
        self._builds_started = 0
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    # -- paths and records ------------------------------------------------------------------------
    def _dir(self, owner: str, name: str) -> Path:
        return self.store.base / owner / name

    def _meta(self, owner: str, name: str) -> Path:
        return self.store.meta_dir(owner, name)

    def record(self, owner: str, name: str) -> dict | None:
        """The algorithm's record; algorithms placed on disk by hand (the demo) get a default one."""
        path = self._meta(owner, name) / "algorithm.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        if self.store.versions(owner, name):
            ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"algo://{owner}/{name}"))
            return {"id": ident, "name": name, "details": {"label": name, "summary": "", "tagline": ""},
                    "settings": dict(DEFAULT_SETTINGS), "created": None}
        return None

    def find_by_id(self, algorithm_id: str) -> tuple[str, str, dict] | None:
        """(owner, name, record) of the algorithm with this id (the client's secrets and errors calls
        name algorithms by id). A scan of the algorithms' records: there are few per server."""
        if not re.match(r"^[0-9a-f-]{36}$", algorithm_id):
            return None
        for owner_dir in sorted(self.store.base.iterdir()) if self.store.base.is_dir() else []:
            if not re.match(r"^\w+$", owner_dir.name) or not owner_dir.is_dir():
                continue
            for algo_dir in sorted(owner_dir.iterdir()):
                if not ALGO_NAME.match(algo_dir.name):
                    continue
                record = self.record(owner_dir.name, algo_dir.name)
                if record is not None and record["id"] == algorithm_id:
                    return owner_dir.name, algo_dir.name, record
        return None

    def require(self, owner: str, name: str, caller: str | None, write: bool = False) -> dict:
        """The record, or 404 (no such algorithm) / 403 (not the owner, or private)."""
        if not (ALGO_NAME.match(name) and re.match(r"^\w+$", owner)):
            raise no_such_algorithm()
        record = self.record(owner, name)
        if record is None:
            raise no_such_algorithm()
        if not self.store.acts_for(owner, caller) and (
                write or record["settings"].get("algorithm_callability") == "private"):
            raise not_authorized()
        return record

    def _builds(self, owner: str, name: str) -> list[dict]:
        folder = self._meta(owner, name) / "builds"
        builds = []
        for path in folder.glob("*.json") if folder.is_dir() else []:
            try:
                builds.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(builds, key=lambda b: (b.get("started_at") or "", b["build_id"]), reverse=True)

    def _version_record(self, owner: str, name: str, version: str) -> dict:
        try:
            return json.loads((self._dir(owner, name) / version / "version.json").read_text())
        except (OSError, ValueError):
            return {"semantic_version": version}

    def algorithm_view(self, owner: str, name: str, record: dict, version: str | None = None,
                       commit: str | None = None) -> dict:
        """The hosted API's algorithm object (Test/api/app.py shapes), plus ``versions``/``latest`` that
        this server's listing clients (mount, widget) read."""
        versions = self.store.versions(owner, name)
        version = version or (versions[0] if versions else None)
        info: dict = {}
        if version:
            info = self._version_record(owner, name, version)
            commit = commit or info.get("git_hash")
        build = next((b for b in self._builds(owner, name) if commit and b.get("commit_sha") == commit), None)
        if commit and not version:
            info = {"git_hash": commit}
        view = {"id": record["id"], "name": name, "username": owner, "details": record["details"],
                "settings": record["settings"], "source": SCM, "resource_type": "algorithm",
                "versions": versions, "latest": versions[0] if versions else None,
                "self_link": f"{self.api_address}/v1/algorithms/{owner}/{name}"
                             + (f"/versions/{commit or version}" if (commit or version) else "")}
        if info:
            ref = f"{record['id']}/{commit or version}"
            info.setdefault("version_uuid", str(uuid.uuid5(uuid.NAMESPACE_URL, ref)))
            view["version_info"] = info
        if build:
            view["build"] = self._build_view(build)
            view["compilation"] = {"successful": build["status"] == "succeeded",
                                   "output": build.get("logs", "")}
        elif version:
            view["compilation"] = {"successful": True, "output": ""}
        return view

    @staticmethod
    def _build_view(build: dict) -> dict:
        return {k: build.get(k) for k in ("build_id", "status", "commit_sha", "started_at", "finished_at",
                                          "version_info")} | {"resource_type": "algorithm_build"}

    # -- create / update / source ------------------------------------------------------------------
    def create(self, owner: str, caller: str, body: dict) -> dict:
        if not self.store.acts_for(owner, caller):
            raise not_authorized()
        name = body.get("name")
        if not isinstance(name, str) or not ALGO_NAME.match(name):
            raise bad_request("name must be 1-64 letters, digits or underscores, not starting with a digit")
        if self.record(owner, name) is not None:
            raise ApiError(409, f"algorithm {owner}/{name} already exists", code=4090)
        details, settings = body.get("details") or {}, body.get("settings") or {}
        if not isinstance(details, dict) or not isinstance(settings, dict):
            raise bad_request("details and settings must be objects")
        language = language_of(settings)
        record = {"id": str(uuid.uuid4()), "name": name,
                  "details": {"label": name, "summary": "", "tagline": ""} | _strings(details),
                  "settings": DEFAULT_SETTINGS | _settings(settings) | {"language": language},
                  "created": now_iso()}
        meta = self._meta(owner, name)
        (meta / "source").mkdir(parents=True, exist_ok=True)
        for file_name, text in template_files(language).items():  # as the hosted service: start runnable
            (meta / "source" / file_name).write_text(text)
        _write_json(meta / "algorithm.json", record)
        self.store.forget(owner, name)
        return self.algorithm_view(owner, name, record)

    def update(self, owner: str, name: str, caller: str, body: dict) -> dict:
        record = self.require(owner, name, caller, write=True)
        self._apply(owner, name, record, body)
        return self.algorithm_view(owner, name, record)

    def _apply(self, owner: str, name: str, record: dict, body: dict) -> None:
        """Store the ``details`` and ``settings`` of an update or a publish body (objects; else ignored)."""
        details, settings = body.get("details"), body.get("settings")
        if isinstance(settings, dict):
            language_of(settings)
        if isinstance(details, dict):
            record["details"] |= _strings(details)
        if isinstance(settings, dict):
            record["settings"] |= _settings(settings)
        meta = self._meta(owner, name)
        meta.mkdir(parents=True, exist_ok=True)
        _write_json(meta / "algorithm.json", record)
        self.store.forget(owner, name)

    def upload_source(self, owner: str, name: str, caller: str, files: dict[str, str]) -> dict:
        """Extension: replace the working source with ``files`` ({name: text}); needs algorithm.py."""
        record = self.require(owner, name, caller, write=True)
        if "algorithm.py" not in files:
            raise bad_request("the source needs a file algorithm.py that defines apply(input)")
        total = 0
        for file_name, text in files.items():
            if not isinstance(file_name, str) or not SOURCE_FILE.match(file_name):
                raise bad_request(f"bad source file name {str(file_name)[:100]!r}: "
                                  "plain names only, no folders")
            if not isinstance(text, str):
                raise bad_request(f"source file {file_name} must be text")
            total += len(text.encode("utf-8", "surrogatepass"))
        if total > MAX_SOURCE_BYTES:
            raise ApiError(413, "source exceeds the 10 MiB limit")
        meta = self._meta(owner, name)
        meta.mkdir(parents=True, exist_ok=True)
        staging = meta / f".source-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            for file_name, text in files.items():
                (staging / file_name).write_text(text, encoding="utf-8", errors="surrogateescape")
        except (OSError, UnicodeError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise bad_request(f"cannot store the source: {exc.__class__.__name__}") from exc
        old = meta / f".old-{uuid.uuid4().hex[:8]}"
        if (meta / "source").exists():
            os.rename(meta / "source", old)
        os.rename(staging, meta / "source")
        shutil.rmtree(old, ignore_errors=True)
        return {"commit_sha": source_sha(meta / "source"), "files": sorted(files)} | {"id": record["id"]}

    # -- build / publish ---------------------------------------------------------------------------
    def _lock(self, owner: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((owner, name), asyncio.Lock())

    async def compile(self, owner: str, name: str, caller: str) -> dict:
        record = self.require(owner, name, caller, write=True)
        async with self._lock(owner, name):
            build = await self._build(owner, name)
        return self.algorithm_view(owner, name, record, commit=build["commit_sha"])

    async def _build(self, owner: str, name: str) -> dict:
        meta = self._meta(owner, name)
        source = meta / "source"
        if not (source / "algorithm.py").is_file():
            raise bad_request("no source to build: upload algorithm.py first "
                              "(PUT .../source, docs/algorithm-source.md)")
        sha = source_sha(source)
        commit = meta / "commits" / sha
        if not commit.is_dir():
            tmp = meta / "commits" / f".{sha}-{uuid.uuid4().hex[:8]}"
            shutil.copytree(source, tmp)
            try:
                os.rename(tmp, commit)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        build = {"build_id": str(uuid.uuid4()), "status": "in-progress", "commit_sha": sha,
                 "started_at": now_iso(), "finished_at": None, "version_info": {"semantic_version": None},
                 "logs": ""}
        (meta / "builds").mkdir(exist_ok=True)
        _write_json(meta / "builds" / f"{build['build_id']}.json", build)
        ok, logs = await self._check(owner, commit)
        build.update(status="succeeded" if ok else "failed", finished_at=now_iso(), logs=logs)
        _write_json(meta / "builds" / f"{build['build_id']}.json", build)
        record = self.record(owner, name)
        if not ok and self.errors is not None and record is not None:
            lines = [line for line in logs.strip().splitlines() if not line.startswith("(build took")]
            message = f"build {build['build_id']} failed: {lines[-1] if lines else 'no output'}"
            self.errors.record(owner, name, record["id"], sha,
                               {"error_type": "BuildFailed", "message": message})
        return build

    async def _check(self, owner: str, commit: Path) -> tuple[bool, str]:
        """Import the code in its owner's box (``algorithm_runner.py --check``), with no network."""
        if self.box.refusal:
            return False, self.box.refusal
        self._builds_started += 1
        launch = await asyncio.to_thread(self.box.prepare, owner, f"build{self._builds_started}", commit,
                                         False, True)
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(*launch.argv, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE,
                                                        **popen_kwargs(launch.spec))
            try:
                out, err = await asyncio.wait_for(proc.communicate(), BUILD_TIMEOUT)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                return False, f"build timed out after {BUILD_TIMEOUT:g} s while importing algorithm.py"
        finally:
            await asyncio.to_thread(self.box.finish, launch)
        took = f"(build took {time.monotonic() - started:.2f} s)"
        lines = [line for line in out.decode("utf-8", "replace").splitlines() if line.startswith("{")]
        try:
            report = json.loads(lines[-1])
        except (IndexError, ValueError):
            detail = err.decode(errors="replace")[-4000:]
            return False, f"the build worker exited with status {proc.returncode}\n{detail}"
        text = out.decode("utf-8", "replace").splitlines()
        printed = "\n".join(line for line in text if not line.startswith("{"))
        log = (printed + "\n" if printed else "") + report.get("log", "")
        return bool(report.get("ok")), f"{log.rstrip()}\n{took}"

    async def publish(self, owner: str, name: str, caller: str, body: dict,
                      on_published: Callable[[str, str], Awaitable[object]] | None = None) -> dict:
        record = self.require(owner, name, caller, write=True)
        raw_info = body.get("version_info")
        info: dict = raw_info if isinstance(raw_info, dict) else {}
        version_type = info.get("version_type") or "minor"
        if version_type not in VERSION_TYPES:
            raise bad_request("version_info.version_type must be major, minor or revision")
        self._apply(owner, name, record, body)  # the client's publish(details=, settings=) as the hosted API
        async with self._lock(owner, name):
            sha = source_sha(self._meta(owner, name) / "source") if (
                self._meta(owner, name) / "source" / "algorithm.py").is_file() else None
            if sha is None:
                raise bad_request("no source to publish: upload algorithm.py first")
            build = next((b for b in self._builds(owner, name) if b["commit_sha"] == sha
                          and b["status"] != "in-progress"), None)
            if build is None or build["status"] != "succeeded":
                build = await self._build(owner, name)
            if build["status"] != "succeeded":
                logs = build.get("logs", "")
                raise ApiError(400, "build failed: " + logs.strip(), error_type="BuildFailed",
                               build_id=build["build_id"], logs=logs)
            version = next_version(self.store.versions(owner, name), version_type)
            target = self._dir(owner, name) / version
            tmp = self._dir(owner, name) / f".publish-{uuid.uuid4().hex[:8]}"
            shutil.copytree(self._meta(owner, name) / "commits" / sha, tmp)
            _write_json(tmp / "version.json", {
                "semantic_version": version, "git_hash": sha, "build_id": build["build_id"],
                "release_notes": str(info.get("release_notes", "")), "sample_input": info.get("sample_input"),
                "published_at": now_iso()})
            os.rename(tmp, target)
            self.store.forget(owner, name)
        if on_published is not None:
            await on_published(owner, name)
        return self.algorithm_view(owner, name, record, version=version)

    # -- reads -------------------------------------------------------------------------------------
    def versions(self, owner: str, name: str, caller: str | None, query: dict[str, str]) -> dict:
        record = self.require(owner, name, caller)
        published = query.get("published")
        published_versions = self.store.versions(owner, name)
        results: list[dict] = []
        if published in (None, "", "true"):
            results += [self.algorithm_view(owner, name, record, version=v) for v in published_versions]
        if published in (None, "", "false") and self.store.acts_for(owner, caller):
            done = {self._version_record(owner, name, v).get("git_hash") for v in published_versions}
            seen: set[str] = set()
            for build in self._builds(owner, name):
                sha = build["commit_sha"]
                if build["status"] == "succeeded" and sha not in done and sha not in seen:
                    seen.add(sha)
                    results.append(self.algorithm_view(owner, name, record, commit=sha))
        if query.get("callable") == "false":
            results = []
        return self._page(results, query, f"/v1/algorithms/{owner}/{name}/versions")

    def version_info(self, owner: str, name: str, caller: str | None, ref: str) -> dict:
        record = self.require(owner, name, caller)
        for version in self.store.versions(owner, name):
            if ref in (version, self._version_record(owner, name, version).get("git_hash")):
                return self.algorithm_view(owner, name, record, version=version)
        is_commit = re.match(r"^[0-9a-f]{40}$", ref) and (self._meta(owner, name) / "commits" / ref).is_dir()
        if self.store.acts_for(owner, caller) and is_commit:
            return self.algorithm_view(owner, name, record, commit=ref)
        raise ApiError(404, "not found")

    def builds(self, owner: str, name: str, caller: str | None, query: dict[str, str]) -> dict:
        self.require(owner, name, caller, write=True)
        builds = [self._build_view(b) for b in self._builds(owner, name)]
        return self._page(builds, query, f"/v1/algorithms/{owner}/{name}/builds")

    def build(self, owner: str, name: str, caller: str | None, build_id: str, logs: bool = False) -> dict:
        self.require(owner, name, caller, write=True)
        for build in self._builds(owner, name):
            if build["build_id"] == build_id:
                return {"logs": build.get("logs", "")} if logs else self._build_view(build)
        raise ApiError(404, "build not found")

    def _page(self, items: list[dict], query: dict[str, str], path: str) -> dict:
        """``{"marker", "next_link", "results"}``; the marker is the offset of the next page."""
        try:
            limit = int(query.get("limit") or 50)
            offset = int(query.get("marker") or 0)
        except ValueError as exc:
            raise bad_request("limit and marker must be integers") from exc
        if not (1 <= limit <= 1000) or offset < 0:
            raise bad_request("limit must be 1-1000 and marker non-negative")
        page = items[offset:offset + limit]
        more = offset + limit < len(items)
        marker = str(offset + limit) if more else None
        link = f"{self.api_address}{path}?limit={limit}&marker={marker}" if more else None
        return {"marker": marker, "next_link": link, "results": page}


def source_sha(directory: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _strings(values: dict) -> dict:
    return {str(k)[:100]: str(v)[:10000] for k, v in values.items() if isinstance(v, (str, int, float))}


def _settings(values: dict) -> dict:
    allowed = {"algorithm_callability": ("public", "private"), "network_access": ("isolated", "full")}
    out = {}
    for key, value in values.items():
        if key in allowed and value not in allowed[key]:
            raise bad_request(f"settings.{key} must be one of {', '.join(allowed[key])}")
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[str(key)[:100]] = value
    return out
