"""A byte-bounded LRU cache of encoded images for seeded requests.

A seeded request fully determines its image, so a repeat (a retry, a refresh, a popular prompt)
is answered without touching the GPU. Unseeded requests draw a fresh seed and are never cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteBudgetLRUCache(Generic[V]):
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self.current_bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Hashable, value: V, size: int) -> bool:
        """Store ``value`` costing ``size`` bytes; False when it alone exceeds the budget."""
        if size > self.max_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.current_bytes -= old[1]
        self._entries[key] = (value, size)
        self.current_bytes += size
        while self.current_bytes > self.max_bytes:
            _, (_, evicted_size) = self._entries.popitem(last=False)
            self.current_bytes -= evicted_size
        return True
