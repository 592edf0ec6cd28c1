"""The shared name rules (contract §2.3) used by the server and the FUSE layer."""

from __future__ import annotations

import pytest

from algofs_jupyter.names import invalid_name_reason, is_valid_name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a?b", "a#b", "nul\x00", "a%41", "x%2f", "%E2%82%AC",
                                  ".algofs-partial-1", "tab\there", "line\nbreak"])
def test_unusable_names(name):
    assert invalid_name_reason(name)
    assert not is_valid_name(name)


@pytest.mark.parametrize("name", ["a b", "ü", "a+b", "a;b", "a'b", "a&b=c", "[x]", "100%", "%zz", "...",
                                  ".hidden", "file.tar.gz", "a%4"])
def test_usable_names(name):
    assert invalid_name_reason(name) is None
