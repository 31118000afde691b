"""Tests for deployments/smoke_test.py against a moto server on loopback.

The CLI is run as a subprocess (``python -m deployments.smoke_test``) with boto3
pointed at moto through AWS_ENDPOINT_URL, so exit codes and stderr are the real
ones. moto's sagemaker-runtime returns canned results configured through
``/moto-api/static/sagemaker/(async-)endpoint-results``; SageMaker error shapes
moto cannot produce (ModelError, a not-serving endpoint) use botocore's Stubber.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from PIL import Image

from deployments import smoke_test

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ENDPOINT = "sd-turbo-smoke"
INPUT_BUCKET = "smoke-inputs"


def _image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (180, 40, 20)).save(buf, fmt)
    return buf.getvalue()


def _contract_response(
    data: bytes, fmt: str = "jpeg", width: int = 64, height: int = 48
) -> dict:
    return {
        "image": base64.b64encode(data).decode("ascii"),
        "format": fmt,
        "seed": 1234,
        "width": width,
        "height": height,
        "num_inference_steps": 1,
        "guidance_scale": 0.0,
        "model": {"id": "tiny", "revision": None},
        "batch_size": 1,
        "cached": False,
        "timings_ms": {"queue": 0.1, "inference": 1.0, "encode": 0.2, "total": 1.3},
        "request_id": "req-1",
    }


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class MotoAWS:
    def __init__(self, url: str) -> None:
        self.url = url
        kw = {
            "endpoint_url": url,
            "region_name": REGION,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self.sagemaker = boto3.client("sagemaker", **kw)
        self.runtime = boto3.client("sagemaker-runtime", **kw)
        self.s3 = boto3.client("s3", **kw)

    def _post(self, path: str, payload: dict) -> None:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status in (200, 201)

    def reset(self) -> None:
        self._post("/moto-api/reset", {})

    def realtime_results(
        self, *bodies: str, content_type: str = "application/json"
    ) -> None:
        self._post(
            "/moto-api/static/sagemaker/endpoint-results",
            {"results": [{"Body": b, "ContentType": content_type} for b in bodies]},
        )

    def async_results(self, *results: tuple[str, bool]) -> None:
        self._post(
            "/moto-api/static/sagemaker/async-endpoint-results",
            {"results": [{"data": d, "is_failure": f} for d, f in results]},
        )

    def env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_ENDPOINT_URL=self.url,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        env.update(extra)
        return env


@pytest.fixture
def aws(moto_url):
    aws = MotoAWS(moto_url)
    aws.reset()
    aws.sagemaker.create_model(
        ModelName="sd-turbo-model",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker-exec",
        PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-turbo-serve:abc123"
        },
    )
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName="sd-turbo-config",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": "sd-turbo-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g4dn.xlarge",
            }
        ],
    )
    aws.sagemaker.create_endpoint(
        EndpointName=ENDPOINT, EndpointConfigName="sd-turbo-config"
    )
    aws.s3.create_bucket(Bucket=INPUT_BUCKET)
    yield aws
    aws.reset()


def run_cli(
    aws: MotoAWS, cwd: Path, *args: str, env: dict | None = None, timeout: float = 60
):
    return subprocess.run(
        [sys.executable, "-m", "deployments.smoke_test", *args],
        check=False,
        cwd=cwd,
        env=env or aws.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- real-time path


def test_realtime_success_writes_decodable_image(aws, tmp_path):
    jpeg = _image_bytes("JPEG")
    aws.realtime_results(json.dumps(_contract_response(jpeg)))
    out = tmp_path / "img" / "out.jpg"

    proc = run_cli(
        aws,
        tmp_path,
        "--endpoint-name",
        ENDPOINT,
        "--region",
        REGION,
        "--out",
        str(out),
    )

    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok"
    assert summary["mode"] == "realtime"
    assert summary["format"] == "JPEG"
    assert (summary["width"], summary["height"]) == (64, 48)
    assert summary["seed"] == 1234
    assert out.read_bytes() == jpeg
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.size == (64, 48)


def test_realtime_default_output_name(aws, tmp_path):
    png = _image_bytes("PNG")
    aws.realtime_results(json.dumps(_contract_response(png, fmt="png")))

    proc = run_cli(aws, tmp_path, "--endpoint-name", ENDPOINT, "--output-format", "png")

    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "smoke-test-output.png").read_bytes() == png


def test_missing_endpoint_exits_3(aws, tmp_path):
    proc = run_cli(aws, tmp_path, "--endpoint-name", "no-such-endpoint")

    assert proc.returncode == smoke_test.EXIT_ENDPOINT_MISSING
    assert "no-such-endpoint" in proc.stderr and "not found" in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line
    assert not list(tmp_path.iterdir())


def test_error_json_response_exits_4(aws, tmp_path):
    error = {
        "error": {
            "type": "invalid_field",
            "message": "width must be a multiple of 8",
            "field": "width",
        },
        "request_id": "r-2",
    }
    aws.realtime_results(json.dumps(error))

    proc = run_cli(aws, tmp_path, "--endpoint-name", ENDPOINT)

    assert proc.returncode == smoke_test.EXIT_ERROR_RESPONSE
    assert "invalid_field: width must be a multiple of 8 (field width)" in proc.stderr


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html>502 Bad Gateway</html>", "not JSON"),
        (json.dumps({"format": "jpeg", "seed": 1}), "no 'image'"),
        (
            json.dumps({"image": "***not base64***", "format": "jpeg"}),
            "not valid base64",
        ),
        (
            json.dumps(
                {
                    "image": base64.b64encode(b"definitely not an image").decode(),
                    "format": "jpeg",
                }
            ),
            "does not decode as an image",
        ),
        (json.dumps(_contract_response(_image_bytes("PNG"), fmt="jpeg")), "is PNG"),
        (
            json.dumps(_contract_response(_image_bytes("JPEG"), width=512, height=512)),
            "width=512",
        ),
    ],
    ids=[
        "html",
        "no-image",
        "bad-base64",
        "not-an-image",
        "format-mismatch",
        "size-mismatch",
    ],
)
def test_invalid_response_exits_5(aws, tmp_path, body, expected):
    aws.realtime_results(body)

    proc = run_cli(
        aws, tmp_path, "--endpoint-name", ENDPOINT, "--out", str(tmp_path / "x.jpg")
    )

    assert proc.returncode == smoke_test.EXIT_INVALID_RESPONSE, proc.stderr
    assert expected in proc.stderr
    assert proc.stderr.startswith("smoke-test: FAIL [invalid-response]")
    assert not (tmp_path / "x.jpg").exists()


@pytest.fixture
def black_hole():
    """A loopback TCP server that accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_loop():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join(timeout=5)
    for c in held:
        c.close()
    sock.close()


def test_realtime_timeout_exits_6(aws, tmp_path, black_hole):
    # DescribeEndpoint goes to moto; only the runtime call goes to the silent server.
    env = aws.env(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=black_hole)

    proc = run_cli(
        aws, tmp_path, "--endpoint-name", ENDPOINT, "--timeout-s", "1", env=env
    )

    assert proc.returncode == smoke_test.EXIT_TIMEOUT, proc.stderr
    assert "timed out" in proc.stderr


# --------------------------------------------------------------------------- async path


def test_async_success_uploads_input_and_reads_output(aws, tmp_path):
    jpeg = _image_bytes("JPEG")
    aws.async_results((json.dumps(_contract_response(jpeg)), False))
    out = tmp_path / "async.jpg"

    proc = run_cli(
        aws,
        tmp_path,
        "--endpoint-name",
        ENDPOINT,
        "--async",
        "--input-s3-uri",
        f"s3://{INPUT_BUCKET}/requests/",
        "--prompt",
        "a lighthouse at dusk",
        "--out",
        str(out),
        "--poll-interval-s",
        "0.1",
    )

    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "async"
    assert summary["output_location"].startswith("s3://") and summary[
        "output_location"
    ].endswith("response.json")
    assert out.read_bytes() == jpeg
    # the request really went through S3
    listed = aws.s3.list_objects_v2(Bucket=INPUT_BUCKET, Prefix="requests/")["Contents"]
    assert len(listed) == 1 and listed[0]["Key"].endswith(".json")
    uploaded = json.loads(
        aws.s3.get_object(Bucket=INPUT_BUCKET, Key=listed[0]["Key"])["Body"].read()
    )
    assert uploaded["prompt"] == "a lighthouse at dusk"
    assert uploaded["seed"] == 1234


def test_async_failure_location_exits_4(aws, tmp_path):
    aws.async_results(("CUDA out of memory while generating", True))

    proc = run_cli(
        aws,
        tmp_path,
        "--endpoint-name",
        ENDPOINT,
        "--async",
        "--input-s3-uri",
        f"s3://{INPUT_BUCKET}/requests/",
        "--poll-interval-s",
        "0.1",
    )

    assert proc.returncode == smoke_test.EXIT_ERROR_RESPONSE, proc.stderr
    assert (
        "async inference failed" in proc.stderr and "CUDA out of memory" in proc.stderr
    )


def test_async_invalid_output_exits_5(aws, tmp_path):
    aws.async_results(("not json at all", False))

    proc = run_cli(
        aws,
        tmp_path,
        "--endpoint-name",
        ENDPOINT,
        "--async",
        "--input-s3-uri",
        f"s3://{INPUT_BUCKET}/requests/",
        "--poll-interval-s",
        "0.1",
    )

    assert proc.returncode == smoke_test.EXIT_INVALID_RESPONSE, proc.stderr


def test_async_timeout_when_no_output_appears_exits_6(aws, tmp_path):
    # moto writes the async output at invoke time. Invoke once with the exact
    # InputLocation the CLI will use, delete the result objects, and the CLI's
    # invocation (same InputLocation -> same locations in moto) never sees output.
    input_uri = f"s3://{INPUT_BUCKET}/fixed/request.json"
    aws.async_results((json.dumps(_contract_response(_image_bytes())), False))
    aws.s3.put_object(Bucket=INPUT_BUCKET, Key="fixed/request.json", Body=b"{}")
    pre = aws.runtime.invoke_endpoint_async(
        EndpointName=ENDPOINT, InputLocation=input_uri
    )
    for loc in (pre["OutputLocation"], pre["FailureLocation"]):
        bucket, key = smoke_test.parse_s3_uri(loc)
        aws.s3.delete_object(Bucket=bucket, Key=key)

    proc = run_cli(
        aws,
        tmp_path,
        "--endpoint-name",
        ENDPOINT,
        "--async",
        "--input-s3-uri",
        input_uri,
        "--timeout-s",
        "1.5",
        "--poll-interval-s",
        "0.2",
    )

    assert proc.returncode == smoke_test.EXIT_TIMEOUT, proc.stderr
    assert "no async output after 1.5s" in proc.stderr
    assert pre["OutputLocation"] in proc.stderr


def test_async_requires_input_uri(aws, tmp_path):
    proc = run_cli(aws, tmp_path, "--endpoint-name", ENDPOINT, "--async")

    assert proc.returncode == smoke_test.EXIT_USAGE
    assert "--input-s3-uri" in proc.stderr


# --------------------------------------------------------------------------- error shapes moto cannot produce


def _args(*extra: str):
    return smoke_test.parse_args(["--endpoint-name", ENDPOINT, *extra])


def _stubbed(service: str):
    client = boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client, Stubber(client)


def test_model_error_maps_to_error_response(tmp_path):
    runtime, stub = _stubbed("sagemaker-runtime")
    original = json.dumps(
        {"error": {"type": "overloaded", "message": "queue full", "field": None}}
    )
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received server error (503) from primary with message ...",
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": 503, "OriginalMessage": original},
    )
    with stub, pytest.raises(smoke_test.SmokeTestError) as exc:
        smoke_test.run(
            _args("--skip-describe", "--out", str(tmp_path / "x.jpg")),
            runtime=runtime,
            sagemaker=None,
            s3=None,
        )
    assert exc.value.code == smoke_test.EXIT_ERROR_RESPONSE
    assert (
        "ModelError" in exc.value.message
        and "overloaded: queue full" in exc.value.message
    )


def test_invoke_not_found_maps_to_endpoint_missing(tmp_path):
    runtime, stub = _stubbed("sagemaker-runtime")
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message=f"Endpoint {ENDPOINT} of account 123456789012 not found.",
        http_status_code=400,
    )
    with stub, pytest.raises(smoke_test.SmokeTestError) as exc:
        smoke_test.run(
            _args("--skip-describe"), runtime=runtime, sagemaker=None, s3=None
        )
    assert exc.value.code == smoke_test.EXIT_ENDPOINT_MISSING


def test_failed_endpoint_is_not_serving():
    sagemaker, stub = _stubbed("sagemaker")
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{ENDPOINT}",
            "EndpointConfigName": "cfg",
            "EndpointStatus": "Failed",
            "FailureReason": "CannotStartContainerError",
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z",
        },
        {"EndpointName": ENDPOINT},
    )
    with stub, pytest.raises(smoke_test.SmokeTestError) as exc:
        smoke_test.check_endpoint(sagemaker, ENDPOINT)
    assert exc.value.code == smoke_test.EXIT_ENDPOINT_MISSING
    assert (
        "Failed" in exc.value.message
        and "CannotStartContainerError" in exc.value.message
    )
