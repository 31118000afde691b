"""Smoke-test a deployed sd-turbo-serve SageMaker endpoint.

Sends one generation request to a named endpoint, checks that a decodable image
comes back, and writes that image to a file. Used by the deploy workflow right
after ``terraform apply`` and usable by hand::

    python -m deployments.smoke_test --endpoint-name sd-turbo-prod --region eu-west-1
    python -m deployments.smoke_test --endpoint-name sd-turbo-async --async \\
        --input-s3-uri s3://my-bucket/smoke-inputs/ --timeout-s 600

Real-time endpoints are called with ``sagemaker-runtime:InvokeEndpoint``
(``Accept: application/json``). Asynchronous endpoints: the request JSON is
uploaded to S3, ``InvokeEndpointAsync`` is called with that InputLocation and the
returned OutputLocation / FailureLocation are polled until one exists or the
timeout passes.

The response must follow the service contract: a JSON object with ``image``
(base64) and ``format``; ``width``/``height`` when present must match the
decoded image.

Exit codes (one line on stderr says which and why):

    0  success (one JSON summary line on stdout)
    1  any other failure (AWS credentials, permissions, unexpected API error)
    2  bad command line (argparse)
    3  endpoint missing or not in service
    4  the endpoint answered with an error (ModelError, an error JSON, async failure)
    5  the response is not a valid image response
    6  timed out

Pointing at a local emulator: boto3 honours ``AWS_ENDPOINT_URL`` and the
service-specific ``AWS_ENDPOINT_URL_SAGEMAKER``, ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``
and ``AWS_ENDPOINT_URL_S3`` variables, which is how the tests run it against moto.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENDPOINT_MISSING = 3
EXIT_ERROR_RESPONSE = 4
EXIT_INVALID_RESPONSE = 5
EXIT_TIMEOUT = 6

_REASONS = {
    EXIT_FAILED: "failed",
    EXIT_USAGE: "usage",
    EXIT_ENDPOINT_MISSING: "endpoint-missing",
    EXIT_ERROR_RESPONSE: "error-response",
    EXIT_INVALID_RESPONSE: "invalid-response",
    EXIT_TIMEOUT: "timeout",
}

# Endpoint states in which SageMaker routes invocations to a live variant.
# "Updating" covers a blue/green (canary) deployment in progress: the old fleet serves.
SERVING_STATUSES = frozenset({"InService", "Updating", "SystemUpdating"})

_PIL_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


class SmokeTestError(Exception):
    """A smoke-test failure with the exit code it maps to."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SmokeResult:
    endpoint_name: str
    mode: str
    path: Path
    image_format: str
    width: int
    height: int
    num_bytes: int
    seed: int | None
    elapsed_ms: float
    output_location: str | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "ok",
            "endpoint": self.endpoint_name,
            "mode": self.mode,
            "out": str(self.path),
            "format": self.image_format,
            "width": self.width,
            "height": self.height,
            "bytes": self.num_bytes,
            "seed": self.seed,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }
        if self.output_location:
            out["output_location"] = self.output_location
        return out


# --------------------------------------------------------------------------- request / response


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    req: dict[str, Any] = {
        "prompt": args.prompt,
        "seed": args.seed,
        "num_inference_steps": args.steps,
        "output_format": args.output_format,
    }
    if args.width is not None:
        req["width"] = args.width
    if args.height is not None:
        req["height"] = args.height
    return req


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _describe_error_body(raw: bytes | str) -> str:
    """Summarise a body that may be the service's error JSON ({"error": {...}})."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        doc = json.loads(text)
    except ValueError:
        return _one_line(text) or "<empty body>"
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        text = f"{err.get('type', 'error')}: {err.get('message', '')}"
        if err.get("field"):
            text += f" (field {err['field']})"
        return _one_line(text)
    return _one_line(text)


def validate_response(body: bytes) -> tuple[dict[str, Any], bytes, Any]:
    """Check a response body against the contract; return (doc, image bytes, PIL image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SmokeTestError(
            EXIT_INVALID_RESPONSE,
            f"response is not JSON ({len(body)} bytes, starts {body[:40]!r})",
        ) from None
    if not isinstance(doc, dict):
        raise SmokeTestError(
            EXIT_INVALID_RESPONSE,
            f"response JSON is a {type(doc).__name__}, not an object",
        )
    if "error" in doc and "image" not in doc:
        raise SmokeTestError(
            EXIT_ERROR_RESPONSE,
            f"endpoint returned an error: {_describe_error_body(body)}",
        )
    image_b64 = doc.get("image")
    if not isinstance(image_b64, str) or not image_b64:
        raise SmokeTestError(
            EXIT_INVALID_RESPONSE,
            f"response has no 'image' string (keys: {sorted(doc)[:10]})",
        )
    try:
        data = base64.b64decode(image_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SmokeTestError(
            EXIT_INVALID_RESPONSE, "'image' is not valid base64"
        ) from None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise SmokeTestError(
            EXIT_INVALID_RESPONSE,
            f"'image' does not decode as an image ({len(data)} bytes): {_one_line(exc)}",
        ) from None
    declared = doc.get("format")
    if isinstance(declared, str) and declared.lower() in _PIL_FORMATS:
        if _PIL_FORMATS[declared.lower()] != img.format:
            raise SmokeTestError(
                EXIT_INVALID_RESPONSE,
                f"response says format {declared!r} but the image is {img.format}",
            )
    elif declared is not None:
        raise SmokeTestError(EXIT_INVALID_RESPONSE, f"unknown 'format' {declared!r}")
    for key, actual in (("width", img.width), ("height", img.height)):
        if key in doc and doc[key] != actual:
            raise SmokeTestError(
                EXIT_INVALID_RESPONSE,
                f"response says {key}={doc[key]} but the image is {img.width}x{img.height}",
            )
    return doc, data, img


# --------------------------------------------------------------------------- AWS helpers


def _client_error_parts(exc: Exception) -> tuple[str, str, dict[str, Any]]:
    resp = getattr(exc, "response", {}) or {}
    err = resp.get("Error", {}) or {}
    return str(err.get("Code", "")), str(err.get("Message", "")), resp


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise SmokeTestError(EXIT_USAGE, f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise SmokeTestError(EXIT_USAGE, f"no bucket in {uri!r}")
    return bucket, key


def check_endpoint(sagemaker: Any, endpoint_name: str) -> str:
    from botocore.exceptions import ClientError

    try:
        desc = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as exc:
        code, msg, _ = _client_error_parts(exc)
        if code in ("ValidationException", "ValidationError") and (
            "could not find" in msg.lower() or "not found" in msg.lower()
        ):
            raise SmokeTestError(
                EXIT_ENDPOINT_MISSING,
                f"endpoint {endpoint_name!r} not found: {_one_line(msg)}",
            ) from None
        raise
    status = str(desc.get("EndpointStatus", "Unknown"))
    if status not in SERVING_STATUSES:
        reason = desc.get("FailureReason")
        extra = f" ({_one_line(reason)})" if reason else ""
        raise SmokeTestError(
            EXIT_ENDPOINT_MISSING,
            f"endpoint {endpoint_name!r} is {status}, not serving{extra}",
        )
    return status



def _invoke_failure(exc: Exception, endpoint_name: str, what: str) -> Exception:
    """The smoke-test error for a failed (async) invocation, or ``exc`` itself if unmapped."""
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return SmokeTestError(EXIT_TIMEOUT, f"{what} timed out: {_one_line(exc)}")
    if isinstance(exc, ClientError):
        return _map_invoke_error(exc, endpoint_name) or exc
    return exc

def _map_invoke_error(exc: Exception, endpoint_name: str) -> SmokeTestError | None:
    code, msg, resp = _client_error_parts(exc)
    if (
        code in ("ValidationException", "ValidationError")
        and "not found" in msg.lower()
    ):
        return SmokeTestError(
            EXIT_ENDPOINT_MISSING,
            f"endpoint {endpoint_name!r} not found: {_one_line(msg)}",
        )
    if code == "ModelError":
        status = resp.get("OriginalStatusCode")
        original = resp.get("OriginalMessage") or msg
        where = f" HTTP {status}" if status else ""
        return SmokeTestError(
            EXIT_ERROR_RESPONSE, f"ModelError{where}: {_describe_error_body(original)}"
        )
    if code in (
        "ModelNotReadyException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalDependencyException",
    ):
        return SmokeTestError(EXIT_ERROR_RESPONSE, f"{code}: {_one_line(msg)}")
    return None


def invoke_realtime(runtime: Any, endpoint_name: str, request: dict[str, Any]) -> bytes:

    try:
        resp = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(request).encode("utf-8"),
        )
    except Exception as exc:  # noqa: BLE001 - mapped to a smoke-test error, or re-raised
        raise _invoke_failure(exc, endpoint_name, "invoke_endpoint") from None
    return resp["Body"].read()


def _get_if_exists(s3: Any, uri: str) -> bytes | None:
    from botocore.exceptions import ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code, _, resp = _client_error_parts(exc)
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return None
        raise


def invoke_async(
    runtime: Any,
    s3: Any,
    endpoint_name: str,
    request: dict[str, Any],
    input_s3_uri: str,
    timeout_s: float,
    poll_interval_s: float,
) -> tuple[bytes, str]:
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    bucket, key = parse_s3_uri(input_s3_uri)
    if not key or key.endswith("/"):
        key = f"{key}smoke-test-{uuid.uuid4().hex}.json"
    input_location = f"s3://{bucket}/{key}"
    deadline = time.monotonic() + timeout_s
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(request).encode("utf-8"),
            ContentType="application/json",
        )
        resp = runtime.invoke_endpoint_async(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            InputLocation=input_location,
        )
    except Exception as exc:  # noqa: BLE001 - mapped to a smoke-test error, or re-raised
        raise _invoke_failure(exc, endpoint_name, "async invocation") from None
    output_location = resp.get("OutputLocation")
    failure_location = resp.get("FailureLocation")
    if not output_location:
        raise SmokeTestError(
            EXIT_INVALID_RESPONSE, "InvokeEndpointAsync returned no OutputLocation"
        )
    while True:
        try:
            body = _get_if_exists(s3, output_location)
            if body is not None:
                return body, output_location
            if failure_location:
                failure = _get_if_exists(s3, failure_location)
                if failure is not None:
                    raise SmokeTestError(
                        EXIT_ERROR_RESPONSE,
                        f"async inference failed ({failure_location}): {_describe_error_body(failure)}",
                    )
        except (ReadTimeoutError, ConnectTimeoutError):
            pass  # a slow S3 poll is retried until the overall deadline
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SmokeTestError(
                EXIT_TIMEOUT,
                f"no async output after {timeout_s:g}s (waited on {output_location}"
                + (f" and {failure_location})" if failure_location else ")"),
            )
        time.sleep(min(poll_interval_s, remaining))


# --------------------------------------------------------------------------- orchestration


def default_out_path(image_format: str) -> Path:
    return Path(f"smoke-test-output.{_EXTENSIONS.get(image_format, 'img')}")


def run(
    args: argparse.Namespace,
    *,
    runtime: Any,
    sagemaker: Any | None,
    s3: Any | None,
) -> SmokeResult:
    """Run one smoke test with the given boto3 clients (the testable core)."""
    started = time.monotonic()
    if not args.skip_describe and sagemaker is not None:
        check_endpoint(sagemaker, args.endpoint_name)
    request = build_request(args)
    output_location = None
    if args.use_async:
        if s3 is None:
            raise SmokeTestError(EXIT_USAGE, "async mode needs an S3 client")
        body, output_location = invoke_async(
            runtime,
            s3,
            args.endpoint_name,
            request,
            args.input_s3_uri,
            args.timeout_s,
            args.poll_interval_s,
        )
    else:
        body = invoke_realtime(runtime, args.endpoint_name, request)
    doc, data, img = validate_response(body)
    path = Path(args.out) if args.out else default_out_path(img.format)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    seed = doc.get("seed")
    return SmokeResult(
        endpoint_name=args.endpoint_name,
        mode="async" if args.use_async else "realtime",
        path=path,
        image_format=img.format,
        width=img.width,
        height=img.height,
        num_bytes=len(data),
        seed=seed if isinstance(seed, int) else None,
        elapsed_ms=(time.monotonic() - started) * 1000.0,
        output_location=output_location,
    )


def make_clients(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import boto3
    from botocore.config import Config

    session = (
        boto3.session.Session(region_name=args.region)
        if args.region
        else boto3.session.Session()
    )
    # One attempt per call: the smoke test wants a clear verdict inside --timeout-s,
    # not silent retries that multiply it.
    runtime_cfg = Config(
        connect_timeout=min(10.0, args.timeout_s),
        read_timeout=args.timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    control_cfg = Config(
        connect_timeout=min(10.0, args.timeout_s),
        read_timeout=min(60.0, args.timeout_s),
        retries={"total_max_attempts": 3, "mode": "standard"},
    )
    runtime = session.client("sagemaker-runtime", config=runtime_cfg)
    sagemaker = session.client("sagemaker", config=control_cfg)
    s3 = session.client("s3", config=control_cfg) if args.use_async else None
    return runtime, sagemaker, s3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m deployments.smoke_test",
        description="Invoke a sd-turbo-serve SageMaker endpoint once and check a decodable image comes back.",
    )
    p.add_argument("--endpoint-name", required=True, help="SageMaker endpoint name")
    p.add_argument(
        "--region", default=None, help="AWS region (default: the boto3 default chain)"
    )
    p.add_argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="asynchronous endpoint: upload the request to S3 and poll the output location",
    )
    p.add_argument(
        "--input-s3-uri",
        default=None,
        help="async only: s3://bucket/key.json for the request, or a prefix ending in '/' (a unique name is added)",
    )
    p.add_argument("--prompt", default="a photo of a red fox in the snow, smoke test")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=1, help="num_inference_steps (1..4)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--output-format", choices=["jpeg", "png", "webp"], default="jpeg")
    p.add_argument(
        "--out",
        default=None,
        help="where to write the image (default: smoke-test-output.<ext>)",
    )
    p.add_argument(
        "--timeout-s",
        type=float,
        default=120.0,
        help="real-time: socket read timeout of the invocation; async: total wait for the output (default 120)",
    )
    p.add_argument(
        "--poll-interval-s",
        type=float,
        default=5.0,
        help="async: seconds between S3 polls",
    )
    p.add_argument(
        "--skip-describe",
        action="store_true",
        help="do not call DescribeEndpoint first (for roles without sagemaker:DescribeEndpoint)",
    )
    args = p.parse_args(argv)
    if args.use_async and not args.input_s3_uri:
        p.error("--async needs --input-s3-uri")
    if not args.use_async and args.input_s3_uri:
        p.error("--input-s3-uri only applies with --async")
    if args.timeout_s <= 0 or args.poll_interval_s <= 0:
        p.error("--timeout-s and --poll-interval-s must be positive")
    return args


def _fail(code: int, message: str) -> int:
    print(
        f"smoke-test: FAIL [{_REASONS.get(code, 'failed')}] {message}", file=sys.stderr
    )
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        runtime, sagemaker, s3 = make_clients(args)
        result = run(args, runtime=runtime, sagemaker=sagemaker, s3=s3)
    except SmokeTestError as exc:
        return _fail(exc.code, exc.message)
    except NoRegionError:
        return _fail(EXIT_FAILED, "no AWS region: pass --region or set AWS_REGION")
    except NoCredentialsError:
        return _fail(EXIT_FAILED, "no AWS credentials found")
    except ClientError as exc:
        code, msg, _ = _client_error_parts(exc)
        return _fail(EXIT_FAILED, f"AWS error {code}: {_one_line(msg)}")
    except BotoCoreError as exc:
        return _fail(EXIT_FAILED, f"AWS client error: {_one_line(exc)}")
    print(json.dumps(result.summary(), sort_keys=True))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
