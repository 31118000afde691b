"""Chaos helpers for the image and the entrypoint: a small steady load, a pinger, a kill, a verdict.

A test starts the service, starts a ``Watch`` (one client sending ``POST /invocations`` one after
another, and ``GET /ping`` every 0.25 s, each answer recorded with when it was asked), SIGKILLs
one process of the service, and then asks ``verdict`` whether the service kept SageMaker's
contract:

* it serves again (an /invocations 200 asked after the last failed one) within RECOVER_S, or its
  process (the container) ended with a non-zero code within RECOVER_S;
* /ping never said 200 while requests could not succeed: from TELL_S after the kill on, the
  first request asked after a 200 from /ping must succeed;
* no request waited longer than its timeout (the app's 50 s, plus a little).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

RECOVER_S = 60.0  # serve again, or exit non-zero, within this after the kill
TELL_S = 10.0  # /ping must tell the truth this soon after the kill
SETTLE_S = 25.0  # watched at least this long after the kill
REQUEST_LIMIT_S = 56.0  # the app's request timeout (50 s) and its answer
PING_EVERY_S = 0.25
REQUEST = {"prompt": "a steady lighthouse", "width": 64, "height": 64}


@dataclass
class Answer:
    kind: str  # "ping" or "request"
    asked_at: float
    took_s: float
    outcome: object  # an HTTP status, or the transport error's name


class LoopingThreads:
    """Daemon threads, each running its loop until stopped: started on entering, stopped and
    joined (at most ``join_s`` each) on leaving. A loop ends when ``self._stop`` is set."""

    join_s = 10.0

    def _start_looping(self, *loops) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=loop, daemon=True) for loop in loops]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.join_s)


@dataclass
class Watch(LoopingThreads):
    url: str
    answers: list[Answer] = field(default_factory=list)
    join_s = REQUEST_LIMIT_S + 5  # a request in flight finishes, or times out, first

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._start_looping(self._ping, self._load)

    def _record(self, kind: str, asked_at: float, outcome: object) -> None:
        with self._lock:
            self.answers.append(Answer(kind, asked_at, time.monotonic() - asked_at, outcome))

    def _ping(self) -> None:
        while not self._stop.is_set():
            asked_at = time.monotonic()
            try:
                outcome: object = httpx.get(self.url + "/ping", timeout=3).status_code
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            self._record("ping", asked_at, outcome)
            self._stop.wait(PING_EVERY_S)

    def _load(self) -> None:
        while not self._stop.is_set():
            asked_at = time.monotonic()
            try:
                outcome: object = httpx.post(self.url + "/invocations", json=REQUEST, timeout=REQUEST_LIMIT_S + 10).status_code
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            self._record("request", asked_at, outcome)
            self._stop.wait(0.3)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return sorted(self.answers, key=lambda a: a.asked_at)

    def served_since(self, since: float) -> float | None:
        """When the first request asked after ``since`` that succeeded was asked."""
        return next((a.asked_at for a in self.snapshot() if a.kind == "request" and a.asked_at >= since and a.outcome == 200), None)

    def settled(self, killed_at: float) -> bool:
        """Serving again, for good: SETTLE_S have passed since the kill (a dead node's requests
        keep succeeding for seconds before they stop), and the last two requests and the
        last ping, all asked since, succeeded."""
        if time.monotonic() < killed_at + SETTLE_S:
            return False
        answers = [a for a in self.snapshot() if a.asked_at >= killed_at]
        requests = [a.outcome for a in answers if a.kind == "request"]
        pings = [a.outcome for a in answers if a.kind == "ping"]
        return requests[-2:] == [200, 200] and pings[-1:] == [200]


def verdict(answers: list[Answer], killed_at: float, exited_at: float | None, exit_code: int | None) -> list[str]:
    """What broke the contract (empty: kept)."""
    problems = []
    requests = [a for a in answers if a.kind == "request"]
    # Served again: the first success after the last failure since the kill (none failed: at once).
    after = [a for a in requests if a.asked_at >= killed_at]
    failed = [a for a in after if a.outcome != 200]
    if not failed:
        recovered = killed_at if after else None
    else:
        recovered = next((a.asked_at for a in after if a.asked_at > failed[-1].asked_at and a.outcome == 200), None)
    # 1. Served again, or ended non-zero, within RECOVER_S.
    served_in_time = recovered is not None and recovered - killed_at <= RECOVER_S
    exited_in_time = exited_at is not None and exit_code not in (None, 0) and exited_at - killed_at <= RECOVER_S
    if not (served_in_time or exited_in_time):
        problems.append(
            f"neither served again nor exited non-zero within {RECOVER_S:g} s "
            f"(first 200 {'never' if recovered is None else f'{recovered - killed_at:.1f} s'} after the kill; "
            f"exit {exit_code} {'never' if exited_at is None else f'{exited_at - killed_at:.1f} s'} after it)"
        )
    # 2. /ping 200 only while requests succeed: the first request asked after each such ping.
    for ping in answers:
        if ping.kind != "ping" or ping.outcome != 200 or ping.asked_at < killed_at + TELL_S:
            continue
        following = next((a for a in requests if a.asked_at >= ping.asked_at), None)
        if following is not None and following.outcome != 200:
            problems.append(
                f"/ping answered 200 {ping.asked_at - killed_at:.1f} s after the kill, but the next request "
                f"(asked {following.asked_at - killed_at:.1f} s after it) got {following.outcome}"
            )
            break
    # 3. No request held past its timeout.
    held = [a for a in requests if a.took_s > REQUEST_LIMIT_S]
    if held:
        problems.append(f"{len(held)} request(s) held past {REQUEST_LIMIT_S:g} s (longest {max(a.took_s for a in held):.0f} s)")
    return problems


def timeline(answers: list[Answer], killed_at: float) -> str:
    """A compact account for failure messages: runs of equal outcomes, per kind."""
    lines = []
    for kind in ("ping", "request"):
        runs: list[list] = []
        for a in (a for a in answers if a.kind == kind):
            if runs and runs[-1][0] == a.outcome:
                runs[-1][2] = a.asked_at
                runs[-1][3] += 1
            else:
                runs.append([a.outcome, a.asked_at, a.asked_at, 1])
        lines.append(f"{kind}: " + ", ".join(f"{o} x{n} [{s - killed_at:+.1f}..{e - killed_at:+.1f} s]" for o, s, e, n in runs))
    return "\n".join(lines)


# The processes a test may kill, by what their command line says.
FAULTS = {
    "raylet": lambda cmd: "/raylet/raylet" in cmd,
    "gcs": lambda cmd: "/gcs/gcs_server" in cmd,
    "controller": lambda cmd: cmd.startswith("ray::ServeController"),
    "model_replica": lambda cmd: cmd.startswith("ray::ServeReplica") and "SDTurboModel" in cmd,
    "ingress_replica": lambda cmd: cmd.startswith("ray::ServeReplica") and "Ingress" in cmd,
    "port_responder": lambda cmd: "port_handover.py" in cmd,
}


def find(processes: dict[int, str], fault: str) -> int:
    matching = [pid for pid, cmd in processes.items() if FAULTS[fault](cmd)]
    assert len(matching) == 1, f"{fault}: expected one process, found {matching} in {processes}"
    return matching[0]
