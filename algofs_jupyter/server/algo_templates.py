"""The languages this server runs, their environments, and the template a new algorithm starts from.

The hosted service started every new algorithm from its language's template (Python 3: ``apply(input)``
returning ``"hello {input}"``), so create → compile → call by the build's hash → publish worked with no
upload in between; the official client's own tests rely on it. This server runs Python 3 only (the
worker is ``algorithm_runner.py`` under the server's or the system's Python 3), so that is the one
language and the one environment it lists; asking for another is a 400, not an algorithm that can never
build. The template files live in ``templates/<language>/`` next to this module.
"""

from __future__ import annotations

import io
import sys
import tarfile
import uuid
from pathlib import Path

from .errors import ApiError, bad_request

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_LANGUAGE = "python3"
#: Names clients send for Python 3 (the hosted API's package sets and environment names).
PYTHON3_ALIASES = ("python3", "python3-1", "python36", "python37", "python38", "python39", "python310",
                   "python311", "python312")
_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
LANGUAGES = [{"name": "python3", "display_name": "Python 3.x (Environments)",
              "configuration": '{"display_name": "Python 3.x (Environments)", "req_files": [], '
                               '"artifacts": [{"source": "algorithm.py", "destination": "algorithm.py"}]}'}]
ENVIRONMENT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "algofs://environments/python3/cpu"))
SPECIFICATION_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "algofs://environment-specifications/python3"))


def environments(language: str) -> dict:
    """``GET /v1/algorithm-environments/edge/languages/<language>/environments``."""
    if language not in PYTHON3_ALIASES:
        raise ApiError(404, f"no environments for language {language[:50]!r}: this server runs python3 only")
    return {"environments": [{
        "id": ENVIRONMENT_ID, "environment_specification_id": SPECIFICATION_ID,
        "display_name": f"Python {_PY}", "description": f"Python {_PY} as this server runs it: the standard "
        "library and the server's site-packages, in its sandbox, on CPU", "created_at": None,
        "language": LANGUAGES[0], "machine_type": "CPU"}]}


def language_of(settings: dict) -> str:
    """The language a create/update asks for (``language`` or ``package_set``), checked: python3 only."""
    for key in ("language", "package_set"):
        value = settings.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or not value.startswith(PYTHON3_ALIASES):
            raise bad_request(f"settings.{key}={str(value)[:50]!r}: this server runs python3 algorithms only "
                              "(GET /v1/algorithm-environments/edge/languages)")
    env = settings.get("algorithm_environment")
    if env not in (None, "") and not isinstance(env, str):
        raise bad_request("settings.algorithm_environment must be a string")
    return DEFAULT_LANGUAGE


def template_files(language: str = DEFAULT_LANGUAGE) -> dict[str, str]:
    """{file name: text} of the language's template: what a new algorithm's source starts as."""
    folder = TEMPLATES / language
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file() and p.suffix != ".pyc"}


def template_tarball(specification_id: str) -> bytes:
    """``…/environment-specifications/<id>/template``: the template as the tar.gz the client unpacks."""
    if specification_id not in (SPECIFICATION_ID, ENVIRONMENT_ID):
        raise ApiError(404, "no such environment specification")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in template_files().items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
