"""Where algorithms live and which version a call means.

Layout: ``<root>/algorithms/<user>/<algo>/<version>/algorithm.py`` defining ``apply(input)``; versions
are dotted numbers (``1.0.0``). A call may name an exact version, ``latest``/``latestPrivate`` or
nothing (the highest), a pattern such as ``1.*`` / ``1.2.*`` / ``1.x`` (the highest matching), or, for
the owner only, the git hash of a build (unpublished code, as the hosted API allowed). Management state
(settings, uploaded source, builds, commits) lives in ``<algo>/.meta/`` (see ``algo_registry.py``);
``settings.algorithm_callability == "private"`` hides an algorithm from everyone but its owner. An
organization's algorithms (``<org>/<algo>``) have all its members as owners (``acts_for``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_VERSION = re.compile(r"^\d+(\.\d+)*$")
_PATTERN = re.compile(r"^(\d+\.)+[*x]$")
_GIT_HASH = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^\w[\w.-]*$")


@dataclass(frozen=True)
class ResolvedAlgorithm:
    owner: str
    name: str
    version: str
    directory: Path

    @property
    def entry_point(self) -> Path:
        return self.directory / "algorithm.py"


def _settled(mtime_ns: int) -> bool:
    """Only cache by an mtime older than the file system's timestamp granularity (a few ms), so a change
    in the same tick cannot hide behind an equal mtime."""
    return time.time_ns() - mtime_ns > 100_000_000


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class AlgorithmStore:
    """Reads the layout above. Versions and settings are cached per algorithm, keyed by the ``mtime_ns``
    of the algorithm's directory / ``algorithm.json`` (a publish renames a directory in, an update
    replaces the file), so a warm call costs two ``stat``s instead of a listing and a JSON parse.

    Concurrency: event loop only; the caches are plain dicts replaced whole (no lock).
    """

    def __init__(self, root: Path):
        self.base = root / "algorithms"
        self.base.mkdir(parents=True, exist_ok=True)
        self._versions: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self._settings: dict[tuple[str, str], tuple[int, dict]] = {}
        #: a role of ``caller`` in the organization ``owner``, or None (app.py: ``OrganizationStore.role``)
        self.org_role: Callable[[str, str], str | None] = lambda _owner, _caller: None

    def acts_for(self, owner: str, caller: str | None) -> bool:
        """Whether ``caller`` may manage and privately call ``owner``'s algorithms: the owner, or a member
        of the organization ``owner``."""
        return caller is not None and (caller == owner or self.org_role(owner, caller) is not None)

    def meta_dir(self, owner: str, name: str) -> Path:
        return self.base / owner / name / ".meta"

    def settings(self, owner: str, name: str) -> dict:
        path = self.meta_dir(owner, name) / "algorithm.json"
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return {}
        hit = self._settings.get((owner, name))
        if hit and hit[0] == stamp:
            return hit[1]
        try:
            settings = json.loads(path.read_text()).get("settings", {})
        except (OSError, ValueError, AttributeError):
            settings = {}
        if _settled(stamp):
            self._settings[(owner, name)] = (stamp, settings)
        return settings

    def visible_to(self, owner: str, name: str, caller: str | None) -> bool:
        return (self.acts_for(owner, caller)
                or self.settings(owner, name).get("algorithm_callability") != "private")

    def versions(self, owner: str, name: str) -> list[str]:
        """Published versions, highest first."""
        if not (_NAME.match(owner) and _NAME.match(name)):
            return []
        directory = self.base / owner / name
        try:
            stamp = directory.stat().st_mtime_ns
        except OSError:
            return []
        hit = self._versions.get((owner, name))
        if hit and hit[0] == stamp:
            return list(hit[1])
        try:
            found = [p.name for p in directory.iterdir()
                     if _VERSION.match(p.name) and (p / "algorithm.py").is_file()]
        except OSError:  # not a directory
            return []
        ordered = sorted(found, key=version_key, reverse=True)
        if _settled(stamp):
            self._versions[(owner, name)] = (stamp, ordered)
        return list(ordered)

    def forget(self, owner: str, name: str) -> None:
        """Drop the cached versions and settings of one algorithm (after a publish or an update)."""
        self._versions.pop((owner, name), None)
        self._settings.pop((owner, name), None)

    def list_user(self, owner: str, caller: str | None = None) -> list[dict]:
        """``[{"name", "versions", "latest"}]`` for the extension endpoint ``GET /v1/algorithms/<user>``."""
        if not _NAME.match(owner) or not (self.base / owner).is_dir():
            return []
        results = []
        for algo_dir in sorted((self.base / owner).iterdir()):
            if not self.visible_to(owner, algo_dir.name, caller):
                continue
            versions = self.versions(owner, algo_dir.name)
            if versions:
                results.append({"name": algo_dir.name, "versions": versions, "latest": versions[0]})
        return results

    def resolve(self, owner: str, name: str, spec: str | None,
                caller: str | None = None) -> ResolvedAlgorithm | None:
        if not (_NAME.match(owner) and _NAME.match(name)) or not self.visible_to(owner, name, caller):
            return None
        if spec and _GIT_HASH.match(spec) and self.acts_for(owner, caller):
            commit = self.meta_dir(owner, name) / "commits" / spec
            if (commit / "algorithm.py").is_file():
                return ResolvedAlgorithm(owner, name, spec, commit)
            return None
        versions = self.versions(owner, name)
        if not versions:
            return None
        chosen: str | None
        if spec in (None, "", "latest", "latestPrivate"):
            chosen = versions[0]
        elif _PATTERN.match(spec):
            prefix = spec[:-1]
            matching = [v for v in versions if v.startswith(prefix)]
            chosen = matching[0] if matching else None
        else:
            chosen = spec if spec in versions else None
        if chosen is None:
            return None
        return ResolvedAlgorithm(owner, name, chosen, self.base / owner / name / chosen)
