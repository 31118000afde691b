"""HTTP transport: routes, content negotiation and error responses.

Built as a plain FastAPI app around an ImageService and a readiness callable, so it is tested
with Starlette's TestClient; the Ray ingress deployment serves the very same app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from serve_app.errors import (
    BadRequest,
    InvalidField,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from serve_app.logs import ACCESS_LOGGER, AUDIT_LOGGER, log_event, prompt_hash
from serve_app.protocol import (
    IMAGE_MEDIA_TYPES,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    PingResponse,
)
from serve_app.serving import ImageService, new_request_id, response_with_image

logger = logging.getLogger(ACCESS_LOGGER)
audit_logger = logging.getLogger(AUDIT_LOGGER)

_ERROR_DOCS = {
    400: "Malformed JSON, or a body that is not a JSON object.",
    413: "Request body larger than the configured limit, or an answer larger than the response "
    "limit (SageMaker: 6 MB) with no S3 bucket to route it to.",
    415: "Content-Type is not application/json.",
    422: "A field is missing, out of range or unknown, the prompt is too long or blocked by the "
    "content policy, or S3 delivery is not configured; `error.field` names the field.",
    500: "An unexpected server error (a bug); the body's request_id finds it in the logs.",
    429: "This client exceeded its rate limit; see Retry-After.",
    503: "Not ready, overloaded (bounded queue full) or the model replica failed; see Retry-After.",
    504: "No image within the request timeout; the request was cancelled.",
}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in _ERROR_DOCS.items()
}
_IMAGE_CONTENT = {media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_MEDIA_TYPES.values()}
_GENERATE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": GenerateRequest.model_json_schema()}},
    },
}
_MEDIA_TO_FORMAT = {media: fmt for fmt, media in IMAGE_MEDIA_TYPES.items()}


def error_response(exc: ServiceError, request_id: str) -> JSONResponse:
    body = ErrorResponse(
        error={"type": exc.error_type, "message": exc.message, "field": exc.field}, request_id=request_id
    )
    headers = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=headers)


def negotiate_image_format(accept: str | None) -> str | None:
    """The image format the Accept header asks for, or None for the JSON response.

    Media types are taken in order of q-value (ties keep header order); JSON wins when it or a
    wildcard comes first, so ordinary clients and SageMaker's default get JSON.
    """
    if not accept:
        return None
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, *params = [token.strip() for token in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        ranked.append((-q, position, media.lower()))
    for negative_q, _, media in sorted(ranked):
        if negative_q == 0:
            continue
        if media in _MEDIA_TO_FORMAT:
            return _MEDIA_TO_FORMAT[media]
        if media in ("application/json", "*/*", "application/*"):
            return None
    return None


async def read_json_body(request: Request, max_bytes: int) -> dict:
    # 1. Content type: SageMaker and curl send application/json (optionally with a charset).
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {content_type or 'none'!r}", field=None
        )
    # 2. Size: refuse on the declared length, and stop reading once past the limit otherwise.
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    # 3. Syntax.
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest(f"body must be a JSON object, got {type(payload).__name__}")
    return payload


def parse_generate_request(payload: dict) -> GenerateRequest:
    try:
        return GenerateRequest.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        kind = first["type"]
        if kind == "extra_forbidden":
            message = f"unknown field {field!r}"
        elif kind == "missing":
            message = f"{field} is required"
        else:
            message = f"{field}: {first['msg']}"
        raise InvalidField(message, field=field) from None


def create_http_app(
    get_service: Callable[[], ImageService],
    is_ready: Callable[[], bool],
    *,
    max_body_bytes: int,
    model_info: Callable[[], Any],
    admit: Callable[[Request], None] | None = None,
    on_rejected: Callable[[str], None] | None = None,
) -> FastAPI:
    """The FastAPI app. ``admit`` may raise a ServiceError (rate limits) before any work;
    ``on_rejected`` is told the error type of every refused request (metrics)."""
    app = FastAPI(
        title="SD-Turbo image generation",
        version="0.1.0",
        description="SD-Turbo behind Ray Serve. POST /predict (or SageMaker's /invocations) with a "
        "prompt; get a base64 image in JSON, or raw bytes with `Accept: image/jpeg`.",
    )

    @app.get(
        "/ping",
        response_model=PingResponse,
        responses={503: {"model": PingResponse, "description": "Model not loaded or not warm yet."}},
        summary="Health check (SageMaker contract)",
    )
    async def ping() -> JSONResponse:
        # Answers from local state only: it never waits behind image generation.
        ready = is_ready()
        body = PingResponse(status="ready" if ready else "loading", model=model_info())
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    async def handle_generate(request: Request) -> Response:
        request_id = new_request_id(request.headers.get("x-request-id"))
        client = request.client.host if request.client else "-"
        audit = {"request_id": request_id, "client": client, "route": request.url.path, "prompt_sha256": None}
        try:
            if admit is not None:
                admit(request)
            payload = await read_json_body(request, max_body_bytes)
            if isinstance(payload.get("prompt"), str):
                audit["prompt_sha256"] = prompt_hash(payload["prompt"])
            generate_request = parse_generate_request(payload)
            image_format = negotiate_image_format(request.headers.get("accept"))
            if image_format is not None:
                # The Accept header decides the format of a raw-bytes answer.
                generate_request = generate_request.model_copy(update={"output_format": image_format})
            raw = image_format is not None and generate_request.delivery == "inline"
            outcome = await get_service().generate(generate_request, request_id, client, raw=raw)
        except ServiceError as exc:
            if on_rejected is not None:
                on_rejected(exc.error_type)
            log_event(
                audit_logger,
                "audit",
                level=logging.WARNING if exc.status_code < 500 else logging.ERROR,
                decision="rejected",
                status=exc.status_code,
                error_type=exc.error_type,
                message=exc.message,
                **audit,
            )
            return error_response(exc, request_id)
        except Exception:  # noqa: BLE001 - a bug still gets a JSON answer, and a log with the trace
            logger.exception("unexpected error handling %s", request_id)
            log_event(audit_logger, "audit", level=logging.ERROR, decision="failed", status=500, **audit)
            return error_response(ServiceError("internal error; see the server log for this request id"), request_id)
        log_event(audit_logger, "audit", decision="allowed", status=200, cached=outcome.response.cached, **audit)
        if not raw or outcome.response.image_url is not None:
            return JSONResponse(response_with_image(outcome))
        meta = outcome.response
        return Response(
            content=outcome.image,
            media_type=IMAGE_MEDIA_TYPES[meta.format],
            # (Ray Serve's proxy adds X-Request-Id, the same id as the JSON's request_id.)
            headers={
                "X-Seed": str(meta.seed),
                "X-Width": str(meta.width),
                "X-Height": str(meta.height),
                "X-Num-Inference-Steps": str(meta.num_inference_steps),
                "X-Guidance-Scale": str(meta.guidance_scale),
                "X-Batch-Size": str(meta.batch_size),
                "X-Cached": str(meta.cached).lower(),
                "X-Model-Id": meta.model.id,
                "X-Model-Revision": meta.model.revision or "",
                "X-Decoder": meta.decoder,
                "X-Timings-Ms": json.dumps(meta.timings_ms.model_dump(), separators=(",", ":")),
            },
        )

    route_options = dict(
        response_model=GenerateResponse,
        responses={200: {"content": _IMAGE_CONTENT}, **_ERROR_RESPONSES},
        openapi_extra=_GENERATE_OPENAPI,
    )

    @app.post("/predict", summary="Generate an image", **route_options)
    async def predict(request: Request) -> Response:
        return await handle_generate(request)

    @app.post("/invocations", summary="Generate an image (SageMaker contract)", **route_options)
    async def invocations(request: Request) -> Response:
        return await handle_generate(request)

    return app
