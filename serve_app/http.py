"""HTTP transport: routes, content negotiation and error responses.

FastAPI does the HTTP work: the request body is a typed ``GenerateRequest`` (parsed, validated
and documented in OpenAPI by FastAPI), and every refusal is an exception turned into the one
error body (``ErrorResponse``) by the exception handlers registered in ``create_http_app``:
the service's own ``ServiceError``, FastAPI's ``RequestValidationError`` and HTTP errors
(unknown route, wrong method). A bug still gets a JSON 500 with the request id.

Built as a plain FastAPI app around an ImageService and a readiness callable, so it is tested
with Starlette's TestClient; the Ray ingress deployment serves the very same app.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.errors import (
    BadRequest,
    HTTPError,
    InvalidField,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from serve_app.logs import ACCESS_LOGGER, AUDIT_LOGGER, log_event, prompt_hash
from serve_app.pages import pages_router
from serve_app.protocol import (
    DECODER_NOT_LOADED,
    IMAGE_MEDIA_TYPES,
    MODEL_NOT_SERVED,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    ModelsResponse,
    PingResponse,
    request_model_for,
)
from serve_app.serving import ImageOutcome, ImageService

logger = logging.getLogger(ACCESS_LOGGER)
audit_logger = logging.getLogger(AUDIT_LOGGER)

_ERROR_DOCS = {
    400: "Malformed JSON, or a body that is not a JSON object.",
    413: "Request body larger than the configured limit, or an answer larger than the response "
    "limit (SageMaker: 6 MB) with no S3 bucket to route it to.",
    415: "Content-Type is not application/json.",
    422: "A field is missing, out of range or unknown, the model or decoder is not served here, the "
    "prompt is too long for the model or blocked by the content policy, or S3 delivery is not "
    "configured; `error.field` names the field. "
    "`error.type` `image_blocked`: the image safety checker flagged the generated image, which is "
    "not returned (another prompt or seed may pass).",
    500: "An unexpected server error (a bug); the body's request_id finds it in the logs.",
    429: "This client exceeded its rate limit; see Retry-After.",
    503: "Not ready, overloaded (bounded queue full) or the model replica failed; see Retry-After.",
    504: "No image within the request timeout; the request was cancelled.",
}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in _ERROR_DOCS.items()
}
_IMAGE_CONTENT = {media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_MEDIA_TYPES.values()}
_MEDIA_TO_FORMAT = {media: fmt for fmt, media in IMAGE_MEDIA_TYPES.items()}
# Error types of HTTP errors raised by routing itself (no route, wrong method).
_HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}
# /ping's 503 (loading, or a replica being replaced): when to ask again.
PING_RETRY_AFTER_S = 2
# JSON field names, numbers and quotes around the base64 image.
_JSON_OVERHEAD_BYTES = 2048


# --- the request's identity ---------------------------------------------------------------------
def new_request_id(supplied: str | None) -> str:
    """Use the caller's id when it is a sane token, else a fresh one."""
    if supplied and len(supplied) <= 128 and supplied.isascii() and supplied.isprintable() and " " not in supplied:
        return supplied
    return uuid.uuid4().hex


@dataclass
class RequestContext:
    """Who asked for what: the id every answer carries, and the audit line's fields."""

    request_id: str
    client: str
    route: str
    prompt_sha256: str | None = None

    def audit_fields(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "client": self.client,
            "route": self.route,
            "prompt_sha256": self.prompt_sha256,
        }


def request_context(request: Request) -> RequestContext:
    """The request's context, made once per request: routes (as a dependency), the checks before
    the body is read and the exception handlers all see the same one (``request.state``)."""
    context = getattr(request.state, "context", None)
    if context is None:
        context = RequestContext(
            request_id=new_request_id(request.headers.get("x-request-id")),
            client=request.client.host if request.client else "-",
            route=request.url.path,
        )
        request.state.context = context
    return context


async def _request_context_dependency(request: Request) -> RequestContext:
    # An async dependency: FastAPI runs a plain ``def`` one on a worker thread, which cost every
    # request two thread hand-overs (~5% of the ingress's CPU under py-spy, issue 11).
    return request_context(request)


Context = Annotated[RequestContext, Depends(_request_context_dependency)]
# Content negotiation only: not a parameter of the API (any value gets an answer).
Accept = Annotated[str | None, Header(include_in_schema=False)]


# --- checks before the body is parsed -----------------------------------------------------------
def require_json_content_type(request: Request) -> None:
    # SageMaker and curl send application/json (optionally with a charset).
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {content_type or 'none'!r}")


async def read_body_within(request: Request, max_bytes: int) -> None:
    """Read the body into the request (where FastAPI then finds it), refusing it on its declared
    length, and stopping once past the limit when no length is declared."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    request._body = bytes(body)  # Starlette's cache of the body: Request.body() returns it


def generate_route_class(
    max_body_bytes: int, admit: Callable[[Request], None] | None
) -> type[APIRoute]:
    """The route class of /predict and /invocations.

    FastAPI reads and parses the body before it solves a route's dependencies, so these checks
    run in the route's handler instead (FastAPI's documented custom-route extension point): a
    refused client costs no body read, a too-large body is never held whole, and the order of
    refusals is admission (503/429), content type (415), size (413), JSON (400), fields (422).
    Each raises a ServiceError, answered by the app's exception handler.
    """

    class GenerateRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            parse_and_run = super().get_route_handler()

            async def checked(request: Request) -> Response:
                if admit is not None:
                    admit(request)
                require_json_content_type(request)
                await read_body_within(request, max_body_bytes)
                return await parse_and_run(request)

            return checked

    return GenerateRoute


# --- answers ------------------------------------------------------------------------------------
def error_response(exc: ServiceError, request_id: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(
        error={"type": exc.error_type, "message": exc.message, "field": exc.field}, request_id=request_id
    )
    headers = dict(headers or {})
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=headers)


def service_error_from_validation(exc: RequestValidationError) -> ServiceError:
    """FastAPI's first validation error as the service's error: 400 for the body as a whole
    (not JSON, not an object), 422 naming the field otherwise."""
    first = exc.errors()[0]
    kind = first["type"]
    loc = tuple(first["loc"])
    if kind == "json_invalid":
        return BadRequest(f"body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}")
    path = loc[1:] if loc[:1] == ("body",) else loc
    if not path:
        if kind == "missing":
            return BadRequest("the body is empty; it must be a JSON object")
        return BadRequest(f"body must be a JSON object, got {_json_type(exc.body)}")
    field = ".".join(str(part) for part in path) or None
    if kind == "extra_forbidden":
        message = f"unknown field {field!r}"
    elif kind in (DECODER_NOT_LOADED, MODEL_NOT_SERVED):
        message = first["msg"]
    elif kind == "missing":
        message = f"{field} is required"
    else:
        message = f"{field}: {first['msg']}"
    return InvalidField(message, field=field)


def _json_type(value: Any) -> str:
    kinds = ((type(None), "null"), (bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "an array"))
    return next((name for python_type, name in kinds if isinstance(value, python_type)), type(value).__name__)


def json_response_bytes(image_bytes: int) -> int:
    """Size of the JSON answer carrying an image of ``image_bytes`` as base64."""
    return 4 * ((image_bytes + 2) // 3) + _JSON_OVERHEAD_BYTES


def response_with_image(outcome: ImageOutcome) -> dict:
    """The JSON body: metadata plus the image as base64."""
    body = outcome.response.model_dump()
    if outcome.response.image_url is None:
        body["image"] = base64.b64encode(outcome.image).decode("ascii")
    return body


def image_response(outcome: ImageOutcome) -> Response:
    """The raw image bytes, its metadata in X- headers."""
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
            "X-Model": meta.model.name,
            "X-Model-Id": meta.model.id,
            "X-Model-Revision": meta.model.revision or "",
            "X-Model-Random-Weights": str(meta.model.random_weights).lower(),
            "X-Decoder": meta.decoder,
            "X-Timings-Ms": json.dumps(meta.timings_ms.model_dump(), separators=(",", ":")),
        },
    )


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


class JsonInternalErrors:
    """Outermost catch: an exception no handler took (a bug) still gets the JSON error body with
    the request id, and its trace goes to the log, instead of a bare text 500."""

    def __init__(self, app: ASGIApp, answer: Callable[[Request], Response]):
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:  # too late for another answer
                raise
            await self.answer(Request(scope, receive))(scope, receive, send)


# --- the app ------------------------------------------------------------------------------------
def create_http_app(
    service: ImageService,
    is_ready: Callable[[], bool],
    *,
    max_body_bytes: int,
    admit: Callable[[Request], None] | None = None,
    on_rejected: Callable[[str], None] | None = None,
    playground: bool = True,
) -> FastAPI:
    """The FastAPI app. ``admit`` may raise a ServiceError (rate limits, draining) before any
    work; ``on_rejected`` is told the error type of every refused request (metrics)."""
    app = FastAPI(
        title="SD-Turbo image generation",
        version="0.1.0",
        description="SD-Turbo behind Ray Serve. POST /predict (or SageMaker's /invocations) with a "
        "prompt; get a base64 image in JSON, or raw bytes with `Accept: image/jpeg`.",
        docs_url=None, redoc_url=None,  # their default pages load from a CDN; /docs comes from pages_router
    )
    app.include_router(pages_router(playground=playground))  # the playground at / and an offline /docs

    # 1. Every refusal: one audit line, one metric, one JSON error body.
    def refuse(request: Request, exc: ServiceError, headers: dict[str, str] | None = None) -> JSONResponse:
        context = request_context(request)
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
            **context.audit_fields(),
        )
        return error_response(exc, context.request_id, headers)

    @app.exception_handler(ServiceError)
    async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return refuse(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        context = request_context(request)
        if isinstance(exc.body, dict) and isinstance(exc.body.get("prompt"), str):
            context.prompt_sha256 = prompt_hash(exc.body["prompt"])
        return refuse(request, service_error_from_validation(exc))

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's answer to a body it cannot decode
            error: ServiceError = BadRequest(f"body is not valid JSON: {exc.detail}")
        else:
            error_type = _HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
            error = HTTPError(exc.status_code, error_type, str(exc.detail))
        return refuse(request, error, exc.headers)

    def on_bug(request: Request) -> JSONResponse:
        context = request_context(request)
        logger.exception("unexpected error handling %s", context.request_id)
        log_event(audit_logger, "audit", level=logging.ERROR, decision="failed", status=500, **context.audit_fields())
        return error_response(ServiceError("internal error; see the server log for this request id"), context.request_id)

    app.add_middleware(JsonInternalErrors, answer=on_bug)

    # 2. Routes.
    @app.get(
        "/ping",
        response_model=PingResponse,
        responses={503: {"model": PingResponse, "description": "Model not loaded or not warm yet."}},
        summary="Health check (SageMaker contract)",
    )
    async def ping() -> JSONResponse:
        # Answers from local state only: it never waits behind image generation.
        ready = is_ready()
        body = PingResponse(status="ready" if ready else "loading", model=service.model_info)
        if ready:
            return JSONResponse(body.model_dump())
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": str(PING_RETRY_AFTER_S)})

    @app.get("/models", response_model=ModelsResponse, summary="The served models, with their defaults and limits")
    async def models() -> ModelsResponse:
        return ModelsResponse(models=service.model_limits())

    async def generate(generate_request: GenerateRequest, context: RequestContext, accept: str | None) -> Response:
        context.prompt_sha256 = prompt_hash(generate_request.prompt)
        image_format = negotiate_image_format(accept)
        if image_format is not None:
            # The Accept header decides the format of a raw-bytes answer.
            generate_request = generate_request.model_copy(update={"output_format": image_format})
        raw = image_format is not None and generate_request.delivery == "inline"
        outcome = await service.generate(
            generate_request,
            context.request_id,
            context.client,
            response_bytes=None if raw else json_response_bytes,  # raw: the image alone
        )
        log_event(audit_logger, "audit", decision="allowed", status=200, cached=outcome.response.cached, **context.audit_fields())
        if not raw or outcome.response.image_url is not None:
            return JSONResponse(response_with_image(outcome))
        return image_response(outcome)

    async def predict(generate_request: GenerateRequest, context: Context, accept: Accept = None) -> Response:
        return await generate(generate_request, context, accept)

    async def invocations(generate_request: GenerateRequest, context: Context, accept: Accept = None) -> Response:
        return await generate(generate_request, context, accept)

    # This server's request schema: ``decoder`` lists only the decoders it loaded, ``model`` only
    # the models it serves, and sizes and steps the loosest bounds of its models' (each request
    # is then checked against its own model's), so the served OpenAPI document offers what it accepts.
    request_model = request_model_for(
        service.settings.loaded_decoders, service.model_names, service.served_families
    )
    generation = APIRouter(route_class=generate_route_class(max_body_bytes, admit))
    generate_route = dict(
        methods=["POST"],
        response_model=GenerateResponse,
        responses={200: {"content": _IMAGE_CONTENT}, **_ERROR_RESPONSES},
    )
    for path, endpoint, summary in (
        ("/predict", predict, "Generate an image"),
        ("/invocations", invocations, "Generate an image (SageMaker contract)"),
    ):
        endpoint.__annotations__["generate_request"] = request_model
        generation.add_api_route(path, endpoint, summary=summary, **generate_route)
    app.include_router(generation)
    return app
