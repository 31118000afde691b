"""Waiting for the application to run, with a deadline, and saying why it does not.

A replica that cannot be scheduled, or whose constructor never returns, leaves Serve waiting
forever; SageMaker would only see a failed health check. ``wait_until_running`` polls
``serve.status()`` until the application is RUNNING, has failed, or the start-up deadline has
passed, and ``explain`` turns Serve's status (application and deployment states, replica
states, Ray's messages such as "taken more than 30s to be scheduled ... Resources required")
into one line for the log.

Used by the container entrypoint (which then exits non-zero) and by the ``serve run`` builder's
watchdog (which logs the same line and stops ``serve run`` the way Ctrl+C does).
"""

from __future__ import annotations

import _thread
import enum
import logging
import math
import os
import threading
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


def find_application(status: Any, app_name: str | None, deployments: Collection[str] = ()) -> tuple[str, Any]:
    """(name, ApplicationStatusOverview or None) of ``app_name``, or, when no name is known (as
    under ``serve run --name``), of the application holding all of ``deployments``."""
    if app_name is not None:
        return app_name, status.applications.get(app_name)
    for name, app in status.applications.items():
        if set(deployments) <= set(app.deployments):
            return name, app
    return "(not deployed yet)", None


def explain(app_name: str, app: Any) -> str:
    """One line: the application's state and each unhealthy deployment's state and message."""
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
    app_name: str | None,
    deployments: Collection[str] = (),
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
        name, app = find_application(status(), app_name, deployments)
        state = _name(app.status) if app is not None else None
        if state == "RUNNING":
            return StartupResult(Outcome.RUNNING, "")
        if state == "DEPLOY_FAILED":
            return StartupResult(Outcome.FAILED, explain(name, app))
        if clock() >= deadline:
            return StartupResult(Outcome.DEADLINE, explain(name, app))
        sleep(min(poll_s, deadline - clock()) if deadline != math.inf else poll_s)


def start_serve_run_watchdog(deadline_s: float, deployments: Collection[str]) -> threading.Thread | None:
    """For ``serve run``: report, and stop, an application that is not running by the deadline.

    ``serve run`` calls the builder before it starts Ray, then blocks until the application is
    RUNNING, forever if a replica never starts. This daemon thread waits for Ray to be up, then
    watches the application holding ``deployments``. At the deadline it logs the same reason the
    container entrypoint gives and interrupts the main thread, which ``serve run`` handles as
    Ctrl+C: it shuts Serve down and exits. A DEPLOY_FAILED application needs no help: ``serve
    run`` prints Serve's error and exits by itself.
    """
    if deadline_s <= 0:
        return None
    deadline = deadline_after(deadline_s)
    os.environ.update(ray_slow_startup_env(deadline_s, os.environ))

    def watch() -> None:
        import ray

        while not ray.is_initialized():
            if time.monotonic() >= deadline:
                return  # Ray never started here (e.g. `serve build` only imports the app)
            time.sleep(0.2)
        try:
            result = wait_until_running(deadline, None, deployments)
        except Exception:  # noqa: BLE001 - Serve shut down under us (Ctrl+C): nothing to report
            logger.debug("start-up watchdog stopped", exc_info=True)
            return
        if result.outcome is Outcome.DEADLINE:
            log_event(
                logger,
                "startup_deadline_passed",
                logging.ERROR,
                startup_deadline_s=deadline_s,
                reason=result.reason,
                action="stopping serve run",
            )
            _thread.interrupt_main()

    thread = threading.Thread(target=watch, name="startup-watchdog", daemon=True)
    thread.start()
    return thread


def _name(value: Any) -> str:
    # Serve's statuses are str enums; str() of them varies across Python versions.
    return getattr(value, "value", value)
