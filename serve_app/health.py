"""What the model replica's ``check_health`` reports: whether its pipeline still works.

Ray Serve calls ``check_health`` periodically and replaces a replica whose check raises. The
model replica is unhealthy when its last pipeline call failed with an error that is not the
request's own (a CUDA error, a corrupted pipeline: the next call would fail the same way), or
when a pipeline call has run far longer than any request may wait (a hung device).
Plain Python, no Ray: tested directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class PipelineHealth:
    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic):
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._running_since: float | None = None
        self.last_error: str | None = None

    def call_started(self) -> None:
        self._running_since = self._clock()

    def call_succeeded(self) -> None:
        self._running_since = None
        self.last_error = None

    def call_failed(self, exc: BaseException) -> None:
        """A failure of the pipeline itself (not a request's own error, such as out-of-memory)."""
        self._running_since = None
        self.last_error = f"{type(exc).__name__}: {exc}"

    def call_ended(self) -> None:
        """A call that ended with the request's own error: says nothing about the device."""
        self._running_since = None

    def check(self) -> None:
        """Raise RuntimeError with the reason when the pipeline should not get more work."""
        if self.last_error is not None:
            raise RuntimeError(f"the last pipeline call failed: {self.last_error}")
        if self._running_since is not None:
            running_s = self._clock() - self._running_since
            if running_s > self.stall_after_s:
                raise RuntimeError(
                    f"a pipeline call has been running for {running_s:.0f} s "
                    f"(limit {self.stall_after_s:.0f} s): the device looks hung"
                )
