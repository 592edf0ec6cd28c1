"""The README's Binder launch line (issue 25, item 9): no badge pointing at a placeholder owner."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_binder_link_to_a_placeholder_repository():
    for doc in (ROOT / "README.md", ROOT / "docs" / "binder.md"):
        text = doc.read_text()
        assert "mybinder.org" in text, doc  # still says how to launch on Binder
        for owner in re.findall(r"mybinder\.org/v2/gh/([^/)\s]+)/", text):
            assert owner == "<github-user>", (doc, owner)  # no real repository is recorded
