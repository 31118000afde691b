"""Drive a target with Locust (used as a library) at fixed concurrency levels.

Importing this module imports locust, which gevent-monkeypatches the process: it is only
ever imported by ``python -m loadtest run`` (its own process), never by the app, the
benchmark driver or the test process.

Each concurrency level is a fresh ``locust.env.Environment`` + ``LocalRunner`` with N
closed-loop users (wait_time 0): every user sends one request, waits for the answer,
sends the next.  At the end of a level no new request is sent and the in-flight ones are
allowed to finish (so the server is idle when the next level starts); they are recorded,
but only requests that finished inside the measured window count for throughput.
"""
from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import locust  # noqa: F401  (first: gevent monkeypatching before boto3/urllib3/ssl)
from locust import User, constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from loadtest.stats import percentile
from loadtest.workload import Workload


@dataclass
class RunConfig:
    target: str  # "http" | "sagemaker"
    workload: Workload
    url: str | None = None
    path: str = "/predict"
    accept: str = "application/json"
    endpoint_name: str | None = None
    region: str | None = None
    endpoint_url: str | None = None  # sagemaker-runtime endpoint override (moto, VPC endpoint)
    timeout_s: float = 120.0
    seed: int = 0


@dataclass
class LevelState:
    concurrency: int
    records: list[dict[str, Any]] = field(default_factory=list)
    issuing: bool = True
    inflight: int = 0
    issued: int = 0
    max_requests: int | None = None


# The currently running level; users read it (one level at a time per process).
_CFG: RunConfig | None = None
_STATE: LevelState | None = None


def _claim() -> bool:
    """Reserve one request slot; False when the level no longer issues requests."""
    st = _STATE
    if st is None or not st.issuing:
        return False
    if st.max_requests is not None and st.issued >= st.max_requests:
        st.issuing = False
        return False
    st.issued += 1
    st.inflight += 1
    return True


def _record(rec: dict[str, Any]) -> None:
    st = _STATE
    if st is None:
        return
    st.inflight -= 1
    rec["concurrency"] = st.concurrency
    st.records.append(rec)


def _parse_json_body(rec: dict[str, Any], body: bytes) -> None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        if 200 <= rec["status"] < 300:
            rec["ok"] = False
            rec["error"] = "unparseable JSON body"
        return
    if not isinstance(doc, dict):
        return
    if 200 <= rec["status"] < 300:
        if "image" not in doc:
            rec["ok"] = False
            rec["error"] = "no image in response"
        bs = doc.get("batch_size")
        rec["batch_size"] = int(bs) if isinstance(bs, (int, float)) else None
        model = doc.get("model")
        if isinstance(model, dict) and isinstance(model.get("name"), str):
            rec["model"] = model["name"]  # the model that made the image, as the server says
        t = doc.get("timings_ms") or {}
        for k in ("queue", "inference", "encode", "total"):
            if isinstance(t.get(k), (int, float)):
                rec[f"server_{k}_ms"] = float(t[k])
        rec["request_id"] = doc.get("request_id")
    else:
        err = doc.get("error")
        if isinstance(err, dict):
            rec["error"] = f"{err.get('type')}: {err.get('message')}"[:200]
        rec["request_id"] = doc.get("request_id")


def _new_record(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": _CFG.target if _CFG else "",
        "ok": False,
        "status": 0,
        "batch_size": None,
        "images": 1,
        "width": body.get("width"),
        "height": body.get("height"),
        "model": body.get("model"),  # what was asked for (None: the default); the answer's, once parsed
        "bytes": 0,
        "error": None,
    }


class PredictHttpUser(FastHttpUser):
    """POST /predict (or --path) with a JSON body; reads batch_size from the JSON or X-Batch-Size."""

    wait_time = constant(0)
    network_timeout = 120.0
    connection_timeout = 30.0
    max_retries = 0

    def on_start(self) -> None:
        self._rng = random.Random((_CFG.seed if _CFG else 0) * 100003 + id(self))

    @task
    def predict(self) -> None:
        if not _claim():
            gevent.sleep(0.02)
            return
        cfg = _CFG
        body = cfg.workload.make(self._rng)
        rec = _new_record(body)
        payload = json.dumps(body).encode()
        t0 = time.time()
        p0 = time.perf_counter()
        try:
            with self.client.post(
                cfg.path,
                data=payload,
                headers={"Content-Type": "application/json", "Accept": cfg.accept},
                catch_response=True,
                name=cfg.path,
            ) as resp:
                content = resp.content or b""
                rec["status"] = int(resp.status_code or 0)
                rec["bytes"] = len(content)
                rec["ok"] = 200 <= rec["status"] < 300
                if rec["status"] == 0:
                    rec["error"] = str(resp.error)[:200] if resp.error else "transport error"
                elif cfg.accept == "application/json" or content[:1] == b"{":
                    _parse_json_body(rec, content)
                else:
                    bs = resp.headers.get("X-Batch-Size") if resp.headers else None
                    rec["batch_size"] = int(bs) if bs and str(bs).isdigit() else None
                    rec["request_id"] = resp.headers.get("X-Request-Id") if resp.headers else None
                if rec["ok"]:
                    resp.success()
                else:
                    resp.failure(rec["error"] or f"HTTP {rec['status']}")
        except Exception as exc:  # noqa: BLE001 - a load tool records every failure
            rec["status"] = rec["status"] or 0
            rec["ok"] = False
            rec["error"] = f"{type(exc).__name__}: {exc}"[:200]
        rec["start"] = t0
        rec["latency_ms"] = (time.perf_counter() - p0) * 1000.0
        _record(rec)


class SageMakerUser(User):
    """sagemaker-runtime InvokeEndpoint through boto3 (SigV4), JSON in and out, no retries."""

    wait_time = constant(0)

    def on_start(self) -> None:
        import boto3
        from botocore.config import Config

        cfg = _CFG
        self._rng = random.Random(cfg.seed * 100003 + id(self))
        self._client = boto3.session.Session().client(
            "sagemaker-runtime",
            region_name=cfg.region,
            endpoint_url=cfg.endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1},
                read_timeout=cfg.timeout_s,
                connect_timeout=min(30.0, cfg.timeout_s),
                max_pool_connections=4,
            ),
        )

    @task
    def invoke(self) -> None:
        if not _claim():
            gevent.sleep(0.02)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        cfg = _CFG
        body = cfg.workload.make(self._rng)
        rec = _new_record(body)
        t0 = time.time()
        p0 = time.perf_counter()
        exc_for_event: Exception | None = None
        try:
            resp = self._client.invoke_endpoint(
                EndpointName=cfg.endpoint_name,
                ContentType="application/json",
                Accept=cfg.accept,
                Body=json.dumps(body).encode(),
            )
            content = resp["Body"].read()
            rec["status"] = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 200))
            rec["bytes"] = len(content)
            rec["ok"] = 200 <= rec["status"] < 300
            if content[:1] == b"{":
                _parse_json_body(rec, content)
            attrs = resp.get("CustomAttributes") or ""
            if rec["batch_size"] is None and "batch_size=" in attrs:
                try:
                    rec["batch_size"] = int(attrs.split("batch_size=")[1].split(",")[0])
                except ValueError:
                    pass
        except ClientError as exc:
            r = exc.response or {}
            # ModelError carries the container's own status; other errors the service's.
            status = r.get("OriginalStatusCode") or r.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            rec["status"] = int(status)
            code = r.get("Error", {}).get("Code", "")
            rec["error"] = f"{code}: {r.get('Error', {}).get('Message', '')}"[:200]
            exc_for_event = exc
        except (BotoCoreError, OSError) as exc:
            rec["status"] = 0
            rec["error"] = f"{type(exc).__name__}: {exc}"[:200]
            exc_for_event = exc
        rec["start"] = t0
        rec["latency_ms"] = (time.perf_counter() - p0) * 1000.0
        _record(rec)
        self.environment.events.request.fire(
            request_type="invoke_endpoint",
            name=cfg.endpoint_name,
            response_time=rec["latency_ms"],
            response_length=rec["bytes"],
            exception=exc_for_event if exc_for_event else (None if rec["ok"] else Exception(rec["error"] or "error")),
            context={},
        )


def _progress_line(st: LevelState, elapsed: float, duration_s: float | None) -> str:
    recs = st.records
    ok = [r for r in recs if r.get("ok")]
    lats = [r["latency_ms"] for r in ok[-500:]]
    total = f"/{duration_s:.0f}s" if duration_s else "s"
    rate = len(ok) / elapsed if elapsed > 0 else 0.0
    p50 = percentile(lats, 50) if lats else math.nan
    p95 = percentile(lats, 95) if lats else math.nan
    bound = f" {len(recs)}/{st.max_requests} req" if st.max_requests else f" {len(recs)} req"
    return (
        f"[c={st.concurrency:>3}] {elapsed:5.1f}{total}{bound} ok={len(ok)} err={len(recs) - len(ok)} "
        f"in-flight={st.inflight} {rate:6.2f} img/s p50={p50:7.1f}ms p95={p95:7.1f}ms"
    )


class _QuietSpawnRate(logging.Filter):
    """All users start at once on purpose (closed-loop levels): drop locust's ramp-up warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "spawn rate is very high" not in record.getMessage()


logging.getLogger("locust.runners").addFilter(_QuietSpawnRate())


def run_level(
    cfg: RunConfig,
    concurrency: int,
    *,
    duration_s: float | None,
    max_requests: int | None,
    progress: Callable[[str], None] | None = None,
    progress_interval_s: float = 2.0,
) -> tuple[list[dict[str, Any]], float, float]:
    """Run one concurrency level; return (records, window start, window end)."""
    global _CFG, _STATE
    if duration_s is None and max_requests is None:
        raise ValueError("a level needs a duration or a request count")
    _CFG = cfg
    st = LevelState(concurrency=concurrency, max_requests=max_requests)
    _STATE = st
    if cfg.target == "http":
        user_cls: type[User] = type("PredictHttpUserCfg", (PredictHttpUser,), {
            "host": cfg.url.rstrip("/"),
            "network_timeout": cfg.timeout_s,
            "connection_timeout": min(30.0, cfg.timeout_s),
        })
    elif cfg.target == "sagemaker":
        user_cls = SageMakerUser
    else:
        raise ValueError(f"unknown target {cfg.target!r}")
    env = Environment(user_classes=[user_cls], host=cfg.url, catch_exceptions=True)
    runner = env.create_local_runner()
    t_start = time.time()
    runner.start(concurrency, spawn_rate=max(1000.0, float(concurrency)), wait=False)
    last_print = 0.0
    try:
        while True:
            gevent.sleep(0.05)
            now = time.time()
            elapsed = now - t_start
            if duration_s is not None and elapsed >= duration_s:
                st.issuing = False
            if max_requests is not None and st.issued >= max_requests:
                st.issuing = False
            if progress and now - last_print >= progress_interval_s:
                last_print = now
                progress(_progress_line(st, elapsed, duration_s))
            if not st.issuing:
                break
        t_stop = time.time()
        # drain: let in-flight requests finish (bounded by the request timeout)
        deadline = t_stop + cfg.timeout_s + 5.0
        while st.inflight > 0 and time.time() < deadline:
            gevent.sleep(0.02)
    finally:
        runner.quit()
        _STATE = None
    if progress:
        progress(_progress_line(st, time.time() - t_start, duration_s) + "  done")
    if duration_s is not None and (max_requests is None or len(st.records) < max_requests):
        window_end = t_stop
    else:
        window_end = max((r["start"] + r["latency_ms"] / 1000.0 for r in st.records), default=t_stop)
    return st.records, t_start, window_end


def stderr_progress() -> Callable[[str], None]:
    tty = sys.stderr.isatty()

    def emit(line: str) -> None:
        if tty:
            end = "\n" if line.endswith("done") else ""
            sys.stderr.write("\r\x1b[2K" + line + end)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return emit
