"""Waiting for the application to run, with a deadline, and saying why it does not.

A replica that cannot be scheduled, or whose constructor never returns, leaves Serve waiting
forever; SageMaker would only see a failed health check. ``explain`` turns Serve's status
(application and deployment states, replica states, Ray's messages such as "taken more than 30s
to be scheduled ... Resources required for each replica") into one message for the log.

Two users, one reason:
  * the container entrypoint: ``wait_until_running`` polls ``serve.status()`` until the app is
    RUNNING, has failed, or the start-up deadline has passed; the entrypoint then exits non-zero;
  * every other way of running the app (``serve run``, a Serve config): the ingress replica,
    which polls the same status for readiness anyway, feeds it to a ``StartupWatch`` that logs
    the reason once (event ``startup_deadline_passed``) when the deadline passes.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from serve_app.logs import log_event

logger = logging.getLogger("sd_turbo.startup")

# How often Serve's status is read while waiting.
POLL_S = 1.0
# Ray Serve's controller explains a slow replica ("to be scheduled" with the resources it needs,
# or "to initialize") only once it has waited this long; by default 30 s, every 30 s. Under a
# short deadline the explanation must come sooner, or the deadline would pass without it.
RAY_SLOW_STARTUP_ENV = ("RAY_SERVE_SLOW_STARTUP_WARNING_S", "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S")
RAY_SLOW_STARTUP_DEFAULT_S = 30


class Outcome(enum.Enum):
    RUNNING = "running"
    FAILED = "failed"  # Serve gave up (e.g. the constructor failed max_constructor_retry_count times)
    DEADLINE = "deadline"  # still not running when the start-up deadline passed


@dataclass(frozen=True)
class StartupResult:
    outcome: Outcome
    reason: str  # empty when running


def deadline_after(seconds: float, now: float | None = None) -> float:
    """A time.monotonic() deadline; 0 or less means none."""
    if seconds <= 0:
        return math.inf
    return (time.monotonic() if now is None else now) + seconds


def ray_slow_startup_env(deadline_s: float, environ: Collection[str] = ()) -> dict[str, str]:
    """Environment for the Ray head so Serve explains a slow replica well before the deadline.

    A quarter of the deadline, at most Ray's default of 30 s; variables already set win. Must be
    in the environment before Ray starts (the controller reads it once).
    """
    if deadline_s <= 0:
        return {}
    seconds = str(max(1, min(RAY_SLOW_STARTUP_DEFAULT_S, int(deadline_s // 4))))
    return {name: seconds for name in RAY_SLOW_STARTUP_ENV if name not in environ}


def explain(app_name: str, app: Any) -> str:
    """The application's state, then each unhealthy deployment's state, replicas and Ray's message."""
    if app is None:
        return f"application {app_name!r} has not been deployed yet (Serve has not registered it)"
    parts = [f"application {app_name!r} is {_name(app.status)}" + (f": {app.message}" if app.message else "")]
    for name, deployment in sorted(app.deployments.items()):
        if _name(deployment.status) == "HEALTHY":
            continue
        replicas = ", ".join(
            f"{count} {_name(state)}" for state, count in sorted(deployment.replica_states.items())
        )
        line = f"deployment {name} is {_name(deployment.status)} (replicas: {replicas or 'none'})"
        if deployment.message:
            line += f": {deployment.message}"
        elif "STARTING" in replicas:
            line += ": no message from Ray yet (replicas waiting for resources or in their constructor)"
        parts.append(line)
    return "; ".join(parts)


def wait_until_running(
    deadline: float,
    app_name: str,
    *,
    status: Callable[[], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = POLL_S,
) -> StartupResult:
    """Poll Serve until the application runs, fails, or ``deadline`` (time.monotonic) passes."""
    if status is None:
        from ray import serve

        status = serve.status
    while True:
        app = status().applications.get(app_name)
        state = _name(app.status) if app is not None else None
        if state == "RUNNING":
            return StartupResult(Outcome.RUNNING, "")
        if state == "DEPLOY_FAILED":
            return StartupResult(Outcome.FAILED, explain(app_name, app))
        if clock() >= deadline:
            return StartupResult(Outcome.DEADLINE, explain(app_name, app))
        sleep(min(poll_s, deadline - clock()) if deadline != math.inf else poll_s)


class StartupWatch:
    """Logs once, at the deadline, why the application is not running (for the ingress replica)."""

    def __init__(self, app_name: str, deadline_s: float, clock: Callable[[], float] = time.monotonic):
        self.app_name = app_name
        self.deadline_s = deadline_s
        self._deadline = deadline_after(deadline_s, now=clock())
        self._clock = clock
        self._settled = False  # running once, or reported: nothing more to say

    @property
    def settled(self) -> bool:
        """Running once, or the deadline reported: the watch needs no more statuses."""
        return self._settled

    def observe(self, app: Any) -> str | None:
        """Feed the app's latest status; returns (and logs) the reason the first time it is
        past the deadline and not RUNNING, else None."""
        if self._settled:
            return None
        if app is not None and _name(app.status) == "RUNNING":
            self._settled = True
            return None
        if self._clock() < self._deadline:
            return None
        self._settled = True
        reason = explain(self.app_name, app)
        log_event(
            logger, "startup_deadline_passed", logging.ERROR, startup_deadline_s=self.deadline_s, reason=reason
        )
        return reason


def _name(value: Any) -> str:
    # Serve's statuses are str enums; str() of them varies across Python versions.
    return getattr(value, "value", value)
