"""Demo content for ``algofs serve --demo`` (see ``seed.py`` and docs/server.md)."""
