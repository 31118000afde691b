"""The naive baseline: the same model behind a plain per-request HTTP server.

What the project improves on, kept deliberately simple:

* the pipeline is loaded once at start-up (``serve_app.model.load_pipeline``), float32,
  with no serving optimisation (no channels-last, no compile, no batching);
* one inference at a time (a lock around the pipeline call; the threads only queue);
* the image is always PNG-encoded (``output_format`` is ignored), base64 in JSON;
* stdlib ``http.server``: no Ray, no asyncio, no framework.

It speaks the subset of the service's API the load tool needs: ``POST /predict`` and
``POST /invocations`` (same JSON request and response fields, ``batch_size`` always 1),
``GET /ping``.  Run: ``python -m loadtest.baseline_server --model tiny --port 8081``.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from serve_app.protocol import FAMILY_LIMITS, MAX_GUIDANCE_SCALE, MAX_SEED

log = logging.getLogger("loadtest.baseline")

MAX_BODY = 1 << 20
# The baseline runs SD-Turbo: its family's sizes and steps.
LIMITS = FAMILY_LIMITS["sd"]


class RequestError(Exception):
    def __init__(self, status: int, type_: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type_, message, field


def validate(doc: Any) -> dict[str, Any]:
    """The request fields the baseline honours, checked against the service's API limits."""
    if not isinstance(doc, dict):
        raise RequestError(422, "validation_error", "body must be a JSON object")
    prompt = doc.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(422, "validation_error", "prompt is required and must be a non-empty string", "prompt")

    def _int(name: str, default: int, lo: int, hi: int) -> int:
        v = doc.get(name, default)
        if v is None:
            v = default
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise RequestError(422, "validation_error", f"{name} must be an integer in [{lo}, {hi}]", name)
        return v

    out = {
        "prompt": prompt,
        "negative_prompt": doc.get("negative_prompt") if isinstance(doc.get("negative_prompt"), str) else None,
        "num_inference_steps": _int("num_inference_steps", LIMITS.default_steps, 1, LIMITS.max_steps),
        "width": _int("width", LIMITS.default_side, LIMITS.min_side, LIMITS.max_side),
        "height": _int("height", LIMITS.default_side, LIMITS.min_side, LIMITS.max_side),
        "seed": doc.get("seed"),
    }
    for dim in ("width", "height"):
        if out[dim] % LIMITS.side_multiple:
            raise RequestError(422, "validation_error", f"{dim} must be a multiple of {LIMITS.side_multiple}", dim)
    gs = doc.get("guidance_scale", 0.0)
    if isinstance(gs, bool) or not isinstance(gs, (int, float)) or not 0.0 <= gs <= MAX_GUIDANCE_SCALE:
        raise RequestError(
            422, "validation_error", f"guidance_scale must be a number in [0, {MAX_GUIDANCE_SCALE:g}]", "guidance_scale"
        )
    out["guidance_scale"] = float(gs)
    seed = out["seed"]
    if seed is None:
        seed = int.from_bytes(uuid.uuid4().bytes[:4], "big")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise RequestError(422, "validation_error", "seed must be an integer in [0, 2^32-1]", "seed")
    out["seed"] = seed
    return out


class BaselineModel:
    """One pipeline, one call at a time."""

    def __init__(self, model: str, device: str = "cpu", revision: str | None = None, cache_dir: str | None = None):
        import torch

        from serve_app.model import load_pipeline

        kwargs: dict[str, Any] = dict(model=model, revision=revision, device=device, dtype="float32")
        if cache_dir:
            kwargs["cache_dir"] = cache_dir
        self._torch = torch
        self.pipe = load_pipeline(**kwargs)
        self.model_id = model
        self.revision = revision
        self.device = device
        self.lock = threading.Lock()
        self.ready = False

    def warm_up(self, width: int = 64, height: int = 64) -> None:
        self.generate({"prompt": "warm-up", "negative_prompt": None, "num_inference_steps": 1, "width": width,
                       "height": height, "seed": 0, "guidance_scale": 0.0})
        self.ready = True

    def generate(self, req: dict[str, Any]) -> tuple[bytes, dict[str, float]]:
        torch = self._torch
        t_wait = time.perf_counter()
        with self.lock:
            t0 = time.perf_counter()
            gen = torch.Generator(device="cpu" if self.device == "cpu" else self.device).manual_seed(req["seed"])
            with torch.inference_mode():
                image = self.pipe(
                    prompt=req["prompt"],
                    negative_prompt=req["negative_prompt"] if req["guidance_scale"] > 1.0 else None,
                    num_inference_steps=req["num_inference_steps"],
                    guidance_scale=req["guidance_scale"],
                    width=req["width"],
                    height=req["height"],
                    generator=gen,
                ).images[0]
            t1 = time.perf_counter()
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        t2 = time.perf_counter()
        return buf.getvalue(), {"queue": (t0 - t_wait) * 1000, "inference": (t1 - t0) * 1000, "encode": (t2 - t1) * 1000}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the load tool reuses connections
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server: BaselineHTTPServer

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, type_: str, message: str, field: str | None, rid: str) -> None:
        body = json.dumps({"error": {"type": type_, "message": message, "field": field}, "request_id": rid}).encode()
        extra = {"X-Request-Id": rid}
        if status == 503:
            extra["Retry-After"] = "1"
        self._send(status, body, "application/json", extra)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?")[0] == "/ping":
            ok = self.server.model.ready
            self._send(200 if ok else 503, b'{"status":"ok"}' if ok else b'{"status":"loading"}', "application/json")
        else:
            self._error(404, "not_found", f"no route {self.path}", None, uuid.uuid4().hex)

    def do_POST(self) -> None:  # noqa: N802
        rid = self.headers.get("X-Request-Id") or uuid.uuid4().hex
        t_start = time.perf_counter()
        if self.path.split("?")[0] not in ("/predict", "/invocations"):
            self._error(404, "not_found", f"no route {self.path}", None, rid)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._error(413, "payload_too_large", f"body over {MAX_BODY} bytes", None, rid)
            return
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(415, "unsupported_media_type", "Content-Type must be application/json", None, rid)
            return
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(400, "malformed_json", f"invalid JSON: {exc}", None, rid)
            return
        try:
            req = validate(doc)
        except RequestError as exc:
            self._error(exc.status, exc.type, exc.message, exc.field, rid)
            return
        if not self.server.model.ready:
            self._error(503, "not_ready", "model is loading", None, rid)
            return
        try:
            png, timings = self.server.model.generate(req)
        except Exception as exc:  # noqa: BLE001
            log.exception("inference failed")
            self._error(500, "internal_error", f"{type(exc).__name__}: {exc}", None, rid)
            return
        timings["total"] = (time.perf_counter() - t_start) * 1000
        meta = {
            "format": "png",
            "seed": req["seed"],
            "width": req["width"],
            "height": req["height"],
            "num_inference_steps": req["num_inference_steps"],
            "guidance_scale": req["guidance_scale"],
            "model": {"id": self.server.model.model_id, "revision": self.server.model.revision},
            "batch_size": 1,
            "cached": False,
            "timings_ms": {k: round(v, 3) for k, v in timings.items()},
            "request_id": rid,
        }
        accept = (self.headers.get("Accept") or "").lower()
        if accept.startswith("image/"):
            self._send(200, png, "image/png", {"X-Request-Id": rid, "X-Seed": str(req["seed"]), "X-Batch-Size": "1"})
            return
        body = json.dumps({"image": base64.b64encode(png).decode("ascii"), **meta}).encode()
        self._send(200, body, "application/json", {"X-Request-Id": rid})


class BaselineHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connections under a 16+ client load

    def __init__(self, addr: tuple[str, int], model: BaselineModel):
        super().__init__(addr, Handler)
        self.model = model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.baseline_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="preset name, local diffusers dir or hub id (as serve_app.model.load_pipeline)")
    p.add_argument("--revision")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache-dir", help="preset/model cache (default: the service's setting)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--warmup-size", default="64x64", help="WxH of the warm-up call before /ping turns 200")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    model = BaselineModel(args.model, device=args.device, revision=args.revision, cache_dir=args.cache_dir)
    srv = BaselineHTTPServer((args.host, args.port), model)
    w, _, h = args.warmup_size.partition("x")
    model.warm_up(int(w), int(h or w))
    log.info("baseline server ready on http://%s:%d (model=%s, float32, PNG, no batching)", args.host, srv.server_address[1], args.model)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
