"""The ingress deployment: serves the HTTP app and forwards each job to the model deployment.

The app itself is built without Ray (``serve_app.ingress_app.build_ingress_app``); this actor
adds what needs Ray: the model call through a deployment handle (turning Ray's failures into the
service's errors), the readiness poll of the model deployment, the start-up watch, and the
drain / abort methods the container entrypoint calls on SIGTERM.

Imports nothing that loads torch or diffusers: the ingress process only parses, validates and awaits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestCancelledError

from serve_app import direct_ingress
from serve_app.batching import GenerationJob, GenerationResult
from serve_app.emf import EmfWriter
from serve_app.errors import ModelUnavailable, Overloaded, ServiceError
from serve_app.ingress_app import build_ingress_app
from serve_app.liveness import describe_death, process_state
from serve_app.logs import configure_logging, log_event
from serve_app.metrics import IngressMetrics
from serve_app.model.resolved import ResolvedModel
from serve_app.model_replica import model_deployment_name
from serve_app.ray_private import model_replicas_running
from serve_app.settings import Settings
from serve_app.startup import StartupWatch

logger = logging.getLogger("sd_turbo.ingress")

INGRESS_DEPLOYMENT = "Ingress"
# How often the ingress refreshes its view of the model deployment's health.
READINESS_POLL_S = 0.5
# Retry-After for a full queue: a batch completes in well under a second on a GPU.
OVERLOAD_RETRY_AFTER_S = 1


@serve.deployment(name=INGRESS_DEPLOYMENT)
@serve.ingress()
class Ingress:
    async def __init__(self, models, settings: Settings, resolved: list[ResolvedModel]):
        """``models``: the served models' deployment handles, in the order of ``resolved`` (the
        default first)."""
        # An async constructor runs on the replica's event loop, so the readiness poll starts here.
        configure_logging(settings.log_level)
        if direct_ingress.is_enabled():
            # Serve starts this replica's own HTTP server after the constructor returns.
            direct_ingress.share_port_with_responder()
        # 1. The app, from plain values: the model is reached through its deployment handle.
        handles = {served.name: handle for served, handle in zip(resolved, models, strict=True)}
        self.ingress = build_ingress_app(
            settings,
            resolved,
            functools.partial(call_model, handles),
            metrics=IngressMetrics(emf=EmfWriter.from_settings(settings)),
        )
        # 2. Readiness: `serve run` names the application "default"; the container names it from
        #    the settings. Whatever runs the app, the reason it is not running by the start-up
        #    deadline is logged; the container entrypoint also exits on it (issue 16).
        self.app_name = serve.get_replica_context().app_name
        self._model_deployments = [model_deployment_name(m.name, index == 0) for index, m in enumerate(resolved)]
        self._startup_watch = StartupWatch(self.app_name, settings.startup_deadline_s)
        self._readiness_poll = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness")
        self._readiness_pending: Future | None = None
        self._raylet_pid = int(os.environ.get("RAY_RAYLET_PID", "0"))  # Ray sets it in every worker
        self._readiness_task = asyncio.get_running_loop().create_task(self._poll_readiness())

    def __serve_build_asgi_app__(self):
        return self.ingress.app

    # --- operators, tests and the container's orderly stop ----------------------------------
    async def process_stats(self) -> dict:
        """This replica's process: what it has loaded and what it costs (operators and tests)."""
        import ray

        return {
            "pid": os.getpid(),
            "actor_name": ray.get_runtime_context().get_actor_name(),
            "rss_bytes": _rss_bytes(),
            "torch_loaded": "torch" in sys.modules,
            "diffusers_loaded": "diffusers" in sys.modules,
            "user_code_thread": threading.current_thread().name,
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
            # Whether this replica serves the HTTP port itself (Ray started with direct ingress).
            "direct_ingress": direct_ingress.is_enabled(),
        }

    async def drain(self) -> int:
        """Stop taking new work (/ping turns 503); returns the requests still in flight."""
        return self.ingress.inflight.drain()

    async def inflight(self) -> int:
        return self.ingress.inflight.open

    async def abort_inflight(self, reason: str) -> int:
        """Answer every request still in flight with a 503 ``shutting_down`` error, now."""
        return self.ingress.inflight.abort(reason)

    # --- readiness -------------------------------------------------------------------------
    async def _poll_readiness(self) -> None:
        """Keep ``self.ingress.readiness`` current: every READINESS_POLL_S, never blocking the loop.

        /ping reads the recorded answer, so it never waits behind image generation or a dead
        component; asking the controller (not the model replica) also keeps health probes out
        of the model's queue. One question at a time, on a thread of its own: a question that
        hangs (its node is gone) is not asked again on top, and its answer goes stale.
        """
        was_ready = False
        while True:
            try:
                self._poll_readiness_once()
            except Exception:  # noqa: BLE001 - a failed poll means "not known ready"
                logger.exception("readiness poll failed")
                self.ingress.readiness.observe(False, "the readiness poll failed")
            verdict = self.ingress.readiness.verdict()
            if verdict.ready != was_ready:
                log_event(logger, "ready" if verdict.ready else "not_ready", reason=verdict.reason)
                was_ready = verdict.ready
            await asyncio.sleep(READINESS_POLL_S)

    def _poll_readiness_once(self) -> None:
        readiness = self.ingress.readiness
        # 1. The raylet of this node, from /proc: a dead node answers no question.
        if self._raylet_pid and process_state(self._raylet_pid) != "alive":
            readiness.observe(False, describe_death("raylet", self._raylet_pid, None))
            return
        # 2. The controller's answer to the last question, once it has come.
        pending = self._readiness_pending
        if pending is not None:
            if not pending.done():
                return
            try:
                healthy, reason = pending.result()
            except Exception as exc:  # noqa: BLE001 - the controller could not be asked
                healthy, reason = False, f"the Serve controller could not be asked: {type(exc).__name__}"
            readiness.observe(healthy, reason)
        # 3. The next question.
        self._readiness_pending = self._readiness_poll.submit(self._ask_controller)

    def _ask_controller(self) -> tuple[bool, str]:
        """On the readiness thread: whether every served model has a running replica (a request
        may name any of them), and the start-up watch fed."""
        if not self._startup_watch.settled:
            # While starting, the full status too: the start-up watch says what is stuck.
            self._startup_watch.observe(serve.status().applications.get(self.app_name))
        return model_replicas_running(self.app_name, self._model_deployments)


async def call_model(models: dict, job: GenerationJob) -> GenerationResult:
    """``job`` on the deployment of the model it names (``models``: name -> handle; the first is
    the default), Ray's failures as the service's errors."""
    model = models[job.spec.model] if job.spec.model is not None else next(iter(models.values()))
    response = model.generate.remote(job)
    try:
        return await response
    except asyncio.CancelledError:
        # The caller timed out or went away: drop the work instead of finishing it unseen.
        response.cancel()
        raise
    except ServiceError:
        raise
    except BackPressureError:
        raise Overloaded("the model queue is full; retry shortly", retry_after_s=OVERLOAD_RETRY_AFTER_S) from None
    except RayTaskError as exc:
        cause = exc.cause if hasattr(exc, "cause") else None
        if isinstance(cause, ServiceError):
            raise cause from None
        logger.exception("model call failed")
        raise ModelUnavailable(
            "the model replica failed while generating this image; it was not completed", retry_after_s=1
        ) from None
    except (ActorDiedError, ActorUnavailableError, DeploymentUnavailableError, RequestCancelledError):
        logger.exception("model replica unavailable")
        raise ModelUnavailable(
            "the model replica holding this request stopped; it was not completed", retry_after_s=2
        ) from None


def _rss_bytes() -> int:
    """Resident set size of this process (Linux), 0 where /proc is not available."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
