"""Each package's README has a File | Job map, and docs/architecture.md one of the top-level modules; a module
missing from a map, or a row naming a file that is gone, is a map a newcomer can no longer trust."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "algofs_jupyter"
ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def mapped_names(package: Path) -> set[str]:
    return set(ROW.findall((package / "README.md").read_text()))


def modules(package: Path) -> set[str]:
    """Modules and subpackages below ``package`` as the map names them (``storage/s3.py``, ``demo/``)."""
    names = set()
    for path in package.rglob("*.py"):
        relative = path.relative_to(package)
        if relative.name == "__init__.py" and len(relative.parts) == 1:
            continue
        if "demo" in relative.parts[:1]:
            names.add("demo/")
        elif relative.name != "__init__.py":
            names.add(relative.as_posix())
    return names


@pytest.mark.parametrize("name, least", [("mount", 10), ("jupyter", 10), ("server", 10), ("fs", 7)])
def test_the_module_map_names_every_module_and_only_those(name: str, least: int) -> None:
    package = PACKAGE / name
    mapped = mapped_names(package) - {"__init__.py"}
    assert len(mapped) >= least
    assert sorted(modules(package) - mapped) == [], "modules missing from the map"
    assert sorted(mapped - modules(package)) == [], "rows naming no module"


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def top_level_names() -> set[str]:
    """The top-level modules and the subpackages without a map of their own (``testing/``)."""
    names = {path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    names |= {f"{path.name}/" for path in PACKAGE.iterdir()
              if (path / "__init__.py").is_file() and not (path / "README.md").is_file()}
    return names


def test_architecture_maps_the_top_level_modules() -> None:
    section = ARCHITECTURE.read_text().split("## Module maps", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", section, re.MULTILINE)
    mapped = {name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)}
    assert len(mapped) >= 10
    assert sorted(top_level_names() - mapped) == [], "top-level modules missing from docs/architecture.md"
    assert sorted(mapped - top_level_names()) == [], "rows naming no top-level module"
