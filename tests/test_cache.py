"""The one TTL cache: entries expire by its clock, never outlive the cache's own lifetime, and are bounded."""

from __future__ import annotations

from chalicelib.cache import TtlCache
from tests.support.clock import FakeMonotonic


def test_entries_expire_by_the_injected_clock() -> None:
    clock = FakeMonotonic()
    cache: TtlCache[str, int] = TtlCache(5.0, clock=clock)
    cache.put("a", 1)
    clock.advance(4.999)
    assert cache.get("a") == 1
    clock.advance(0.001)
    assert cache.get("a") is None


def test_a_shorter_lifetime_is_kept_and_a_longer_one_is_capped() -> None:
    clock = FakeMonotonic()
    cache: TtlCache[str, int] = TtlCache(5.0, clock=clock)
    cache.put("short", 1, ttl=1.0)
    cache.put("long", 2, ttl=60.0)
    cache.put("spent", 3, ttl=-1.0)
    clock.advance(1.0)
    assert cache.get("short") is None and cache.get("long") == 2 and cache.get("spent") is None
    clock.advance(4.0)
    assert cache.get("long") is None


def test_the_oldest_entries_go_first_when_full() -> None:
    cache: TtlCache[int, int] = TtlCache(60.0, max_entries=3, clock=FakeMonotonic())
    for i in range(5):
        cache.put(i, i)
    assert [cache.get(i) for i in range(5)] == [None, None, 2, 3, 4]
