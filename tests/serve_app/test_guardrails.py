import pytest

from serve_app.errors import PromptRejected, TooManyRequests
from serve_app.guardrails import PromptBlocklist, RateLimiter


def test_blocklist_matches_whole_words_case_insensitively():
    blocklist = PromptBlocklist.from_setting("gore, bad phrase ,")
    blocklist.check("prompt", "a gorgeous sunset")  # 'gore' inside a word is fine
    blocklist.check("prompt", None)
    with pytest.raises(PromptRejected) as info:
        blocklist.check("negative_prompt", "some BAD Phrase here")
    assert info.value.field == "negative_prompt" and "phrase" not in info.value.message.lower()
    PromptBlocklist.from_setting("").check("prompt", "anything")


def test_rate_limiter_allows_burst_then_refuses_with_retry_after_and_refills():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(TooManyRequests) as info:
        limiter.acquire("a")
    assert info.value.retry_after_s == 1 and info.value.status_code == 429
    limiter.acquire("b")  # other clients are not affected
    now[0] += 1.0
    limiter.acquire("a")


def test_rate_limiter_memory_is_bounded():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, clock=lambda: now[0], max_clients=10)
    for i in range(100):
        now[0] += 0.01
        limiter.acquire(f"client-{i}")
    assert len(limiter._buckets) <= 10
