"""Whether this instance can make an image now, and, when it cannot, what died.

SageMaker routes traffic by ``/ping`` and replaces an instance only when it stops answering 200,
so ``/ping`` must not say 200 while requests cannot succeed. Measured on the image before this
module (2026-12-04): with the raylet killed, the ingress replica kept answering 200 for minutes
from its last cached answer (its poll of the Serve controller hung on the dead node), and every
request ended in a 504 after 50 s.

Two users, plain Python here (the Ray calls stay in the deployment layer and the entrypoint):

* the ingress replica keeps a ``Readiness``: its poller records each answer of the Serve
  controller ("a model replica runs" or why not) and ``/ping`` reads it. An answer older than
  ``stale_after_s`` counts as "not ready": a poll that hangs on a dead component turns /ping 503
  without /ping ever waiting for it. The raylet of the replica's own node is checked from
  ``/proc`` (``process_state``) on every poll: it costs nothing and needs no Ray call.
* the entrypoint watches the Ray processes it started (``describe_death``) and exits, with one
  line saying what died, when a component Ray does not bring back is gone.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def process_state(pid: int, proc: Path = Path("/proc")) -> str:
    """'alive', 'zombie' (exited, not yet reaped by its parent) or 'gone'."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return "gone"
    # The command may hold spaces and parentheses: the state follows the last ")".
    state = stat.rsplit(")", 1)[1].split()[0]
    return "zombie" if state in ("Z", "X") else "alive"


def describe_exit(returncode: int) -> str:
    """A Popen return code in words: 'killed by SIGKILL', 'exited with code 1'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def describe_death(name: str, pid: int, returncode: int | None) -> str:
    how = describe_exit(returncode) if returncode is not None else "gone"
    return f"the {name} (pid {pid}) died ({how})"


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str  # why not ready; empty when ready


class Readiness:
    """The ingress's current answer to "can this instance make an image now?".

    ``observe`` records a completed poll; ``verdict`` answers from what was recorded, at once.
    Ready only while the last poll said so and is younger than ``stale_after_s``.
    """

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.monotonic):
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._observed_at: float | None = None
        self._healthy = False
        self._reason = "starting: no answer from the Serve controller yet"
        self.ever_ready = False

    def observe(self, healthy: bool, reason: str = "") -> None:
        self._observed_at = self._clock()
        self._healthy = healthy
        self._reason = "" if healthy else (reason or "no model replica is running")
        self.ever_ready = self.ever_ready or healthy

    def verdict(self) -> Verdict:
        if self._observed_at is None:
            return Verdict(False, self._reason)
        age = self._clock() - self._observed_at
        if age > self.stale_after_s:
            return Verdict(False, f"no answer from the Serve controller for {age:.0f} s")
        return Verdict(self._healthy, self._reason)
