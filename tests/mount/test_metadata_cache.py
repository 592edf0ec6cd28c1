"""``MetadataCache`` alone: TTLs, negative entries, listings answering lookups, the memory bound."""

from __future__ import annotations

import time

from algofs_jupyter.mount.metadata_cache import DIRECTORY, FILE, Attr, MetadataCache


def test_entries_live_for_their_ttl_and_negative_ones_for_theirs() -> None:
    cache = MetadataCache(ttl=2.0, negative_ttl=0.05)
    cache.put("data/u/c/f", Attr(FILE, 3, 1.0))
    cache.put("data/u/c/missing", None)
    assert cache.lookup("data/u/c/f") == (True, Attr(FILE, 3, 1.0))
    assert cache.lookup("data/u/c/missing") == (True, None)
    time.sleep(0.1)
    assert cache.lookup("data/u/c/missing") == (False, None)
    assert cache.lookup("data/u/c/f")[0]
    time.sleep(2.0)
    assert cache.lookup("data/u/c/f") == (False, None)


def test_a_fresh_listing_answers_lookups_of_its_children_including_absent_ones() -> None:
    cache = MetadataCache()
    cache.put_listing("data/u/c", {"a": Attr(FILE, 1), "sub": Attr(DIRECTORY)})
    assert cache.lookup("data/u/c/a") == (True, Attr(FILE, 1))
    assert cache.lookup("data/u/c/nope") == (True, None)  # known not to exist: no HEAD
    assert cache.listing("data/u/c") == {"a": Attr(FILE, 1), "sub": Attr(DIRECTORY)}


def test_own_changes_patch_the_listing_and_invalidate_makes_it_incomplete() -> None:
    cache = MetadataCache()
    cache.put_listing("data/u/c", {"a": Attr(FILE, 1)})
    cache.put("data/u/c/new", Attr(FILE, 2))
    cache.remove("data/u/c/a")
    assert cache.listing("data/u/c") == {"new": Attr(FILE, 2)}
    cache.invalidate("data/u/c/new")
    assert cache.listing("data/u/c") is None  # no longer complete
    assert cache.lookup("data/u/c/new") == (False, None)


def test_memory_is_bounded_and_an_oversized_listing_is_not_kept() -> None:
    cache = MetadataCache(max_entries=10)
    cache.put_listing("data/u/big", {f"f{i}": Attr(FILE, i) for i in range(6)})
    assert cache.listing("data/u/big") is None
    for i in range(30):
        cache.put(f"data/u/c/f{i}", Attr(FILE, i))
    stats = cache.stats()
    assert stats["entries"] + stats["listed_entries"] <= 10
    assert cache.lookup("data/u/c/f29")[0] and not cache.lookup("data/u/c/f0")[0]  # oldest went first
