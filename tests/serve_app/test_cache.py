from serve_app.cache import ByteBudgetLRUCache


def test_evicts_least_recently_used_to_stay_within_budget():
    cache = ByteBudgetLRUCache(max_bytes=10)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    assert cache.get("a") == "A"  # a is now most recent
    cache.put("c", "C", 4)  # evicts b
    assert cache.get("b") is None
    assert cache.get("a") == "A" and cache.get("c") == "C"
    assert cache.current_bytes == 8


def test_oversized_values_are_not_stored_and_replacing_updates_size():
    cache = ByteBudgetLRUCache(max_bytes=10)
    assert cache.put("big", "X", 11) is False
    assert len(cache) == 0
    cache.put("k", "v1", 6)
    cache.put("k", "v2", 3)
    assert cache.current_bytes == 3 and cache.get("k") == "v2"
    assert (cache.hits, cache.misses) == (1, 0)
