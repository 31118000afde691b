"""Request guardrails beyond the schema: a prompt blocklist and a per-client rate limiter."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from serve_app.errors import PromptRejected, TooManyRequests


class PromptBlocklist:
    """Rejects prompts containing a listed word or phrase (case-insensitive, whole words)."""

    def __init__(self, terms: Iterable[str]):
        cleaned = sorted({t.strip().lower() for t in terms if t.strip()})
        self._pattern: re.Pattern[str] | None = (
            re.compile(r"\b(?:" + "|".join(re.escape(t) for t in cleaned) + r")\b", re.IGNORECASE)
            if cleaned
            else None
        )

    @classmethod
    def from_setting(cls, value: str) -> PromptBlocklist:
        return cls(value.split(","))

    def check(self, field: str, text: str | None) -> None:
        if self._pattern is None or text is None:
            return
        if self._pattern.search(text):
            # The message does not echo the matched term: the blocklist is not for probing.
            raise PromptRejected(f"{field} contains a blocked term (content policy)", field=field)


class RateLimiter:
    """Token bucket per client: ``per_minute`` sustained, ``burst`` at once."""

    def __init__(self, per_minute: int, burst: int = 0, clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000):
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_clients = max_clients

    def acquire(self, client: str) -> None:
        now = self._clock()
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            wait_s = (1.0 - tokens) / self.rate
            raise TooManyRequests(
                f"rate limit of {self.rate * 60:g} requests/minute exceeded for this client",
                retry_after_s=max(1, int(wait_s + 0.999)),
            )
        if len(self._buckets) >= self._max_clients and client not in self._buckets:
            # Bounded memory: forget the idlest half (their buckets have refilled anyway).
            for stale in sorted(self._buckets, key=lambda c: self._buckets[c][1])[: self._max_clients // 2]:
                del self._buckets[stale]
        self._buckets[client] = (tokens - 1.0, now)
